//! The plugins this process has loaded and not yet let go of (lib/sandbox/loaded.ts): the real
//! paths of the files each read (its manifest and wasm) and of the directories its guest may
//! write. Kept here, not in JS, because a process's JS is one realm per thread: a plugin loaded
//! in a worker thread went unseen by a plugin loaded on the main thread (probe H51: A, loaded in
//! a worker, rewrote the manifest of B, loaded from A's writable directory on the main thread).
//! A check and its claim are one step under one lock, so two threads cannot both pass at once;
//! a thread's claims end with its environment (a terminated worker's plugins are gone).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use napi::Env;
use napi_derive::napi;

use crate::js::Js;
use crate::runtime::dispatcher::at_teardown_once;
use crate::sync::lock;

/// What one plugin reads and may write, as real paths.
#[napi(object)]
pub struct PluginPaths {
    pub manifest: String,
    pub wasm: String,
    pub writable: Vec<String>,
}

/// Why a plugin was refused: another loaded plugin, and the directory where they meet.
#[napi(object)]
pub struct ClaimRefusal {
    /// The other plugin's manifest.
    pub other: String,
    pub dir: String,
    /// This plugin's files lie in `dir`, which the other may write; else this plugin may write
    /// `dir`, which holds the other's files.
    pub inside_other: bool,
}

/// A claim made (`token`, for [`release_plugin_claim`]) or refused.
#[napi(object)]
pub struct PluginClaim {
    pub token: u32,
    pub refusal: Option<ClaimRefusal>,
}

struct Claim {
    env: usize,
    paths: PluginPaths,
}

#[derive(Default)]
struct Claims {
    next_token: u32,
    held: HashMap<u32, Claim>,
}

fn claims() -> &'static Mutex<Claims> {
    static CLAIMS: OnceLock<Mutex<Claims>> = OnceLock::new();
    CLAIMS.get_or_init(Mutex::default)
}

/// Claims `paths` for as long as the plugin is loaded, unless its files lie in another loaded
/// plugin's writable directory or its writable directories hold another's files (another load
/// of the same manifest is the same plugin).
#[napi(js_name = "claimPluginPaths")]
pub fn claim_plugin_paths(env: Env, paths: PluginPaths) -> napi::Result<PluginClaim> {
    let raw = env.raw() as usize;
    at_teardown_once(Js(env.raw()), "plugin claims", move || release_environment(raw))?;
    let mut claims = lock(claims());
    for claim in claims.held.values() {
        let other = &claim.paths;
        if other.manifest == paths.manifest {
            continue;
        }
        let refusal = |dir: &String, inside_other| PluginClaim {
            token: 0,
            refusal: Some(ClaimRefusal {
                other: other.manifest.clone(),
                dir: dir.clone(),
                inside_other,
            }),
        };
        if let Some(dir) = other.writable.iter().find(|dir| holds(dir, &paths)) {
            return Ok(refusal(dir, true));
        }
        if let Some(dir) = paths.writable.iter().find(|dir| holds(dir, other)) {
            return Ok(refusal(dir, false));
        }
    }
    claims.next_token = claims.next_token.checked_add(1).unwrap_or(1);
    let token = claims.next_token;
    claims.held.insert(token, Claim { env: raw, paths });
    Ok(PluginClaim { token, refusal: None })
}

/// Ends a claim (its plugin disposed and idle, or collected); a second release does nothing.
#[napi(js_name = "releasePluginClaim")]
pub fn release_plugin_claim(token: u32) {
    lock(claims()).held.remove(&token);
}

fn release_environment(env: usize) {
    let mut claims = lock(claims());
    claims.held.retain(|_, claim| claim.env != env);
}

/// Whether directory `dir` holds (at any depth) the plugin's manifest or wasm.
fn holds(dir: &str, plugin: &PluginPaths) -> bool {
    Path::new(&plugin.manifest).starts_with(dir) || Path::new(&plugin.wasm).starts_with(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_holds_what_lies_below_it_by_whole_components() {
        let plugin = PluginPaths {
            manifest: "/p/a/data/b.toml".into(),
            wasm: "/p/b/b.wasm".into(),
            writable: vec![],
        };
        assert!(holds("/p/a/data", &plugin));
        assert!(holds("/p/b", &plugin));
        assert!(holds("/p/b/b.wasm", &plugin), "the file itself");
        assert!(!holds("/p/a/dat", &plugin), "not a prefix of a name");
        assert!(!holds("/p/c", &plugin));
    }
}
