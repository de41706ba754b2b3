//! Which of a component's `wasi:*` imports the WASI linked here serves. wasmtime-wasi itself is
//! asked, on a linker of its own, whether it defines each interface and each of its members, so
//! nothing here restates WASI's lists, and a guest built against a later 0.2.x whose interface has
//! a function this wasmtime-wasi lacks learns which one (that interface is then the host's to give
//! whole) instead of meeting wasmtime's type-check error alone.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceType};

use super::imported_resources::ImportedResources;
use crate::store::HostState;
use crate::sync::lock;

/// The WASI preview 2 version wasmtime-wasi 48 defines, wasi:http's included. An import at any
/// 0.2.x finds it (wasmtime matches semver-compatible versions); the tests fail when an upgrade of
/// wasmtime-wasi moves it (instance.spec.ts asks for interfaces at older versions).
pub const VERSION: &str = "0.2.12";

/// What the runtime's WASI makes of a component's `wasi:*` imports, found once per component.
#[derive(Default)]
pub struct WasiImports {
    /// Whether it imports anything of WASI's (for a core module, of preview 1's modules).
    pub any: bool,
    /// The imported interfaces the runtime serves whole (asked of every import at every
    /// instantiation).
    served: HashSet<String>,
    /// The runtime's interfaces imported with members it lacks, each with those members.
    lacking: Vec<(String, Vec<String>)>,
    /// The runtime's interfaces it could serve but for sharing resource types with one it lacks
    /// members of (the host must give them all, for the types to be its own): each with that one.
    tied: Vec<(String, String)>,
}

impl WasiImports {
    /// For a core module, whose preview 1 imports are linked by module name.
    pub fn module(any: bool) -> Self {
        WasiImports {
            any,
            ..Default::default()
        }
    }

    pub fn of(component: &Component) -> Self {
        let engine = component.engine();
        let mut found = WasiImports::default();
        let mut runtime = Runtime {
            component,
            linker: None,
        };
        // A resource an interface `use`s from another is listed in it too, as the same type: only
        // where it first appears is it that interface's own.
        let resources = ImportedResources::of(component);
        let mut seen = Vec::new();
        let mut first_seen = |item: &ComponentItem| match item {
            ComponentItem::Resource(ty) => resources.payload(ty, &mut seen).1,
            _ => false,
        };
        // Each runtime interface's resource types, its own and those it `use`s.
        let mut shared: Vec<(String, Vec<ResourceType>)> = Vec::new();
        for (name, import) in component.component_type().imports(engine) {
            let ComponentItem::ComponentInstance(instance) = &import.ty else {
                first_seen(&import.ty);
                found.any |= name.starts_with("wasi:");
                continue;
            };
            let own: Vec<bool> = instance
                .exports(engine)
                .map(|(_, export)| first_seen(&export.ty))
                .collect();
            if !name.starts_with("wasi:") {
                continue;
            }
            found.any = true;
            let Some(runtime_name) = runtime_name(name) else {
                continue;
            };
            // No answer (no linker to ask: out of memory): wasmtime's own check still decides.
            let Some(interface) = runtime.defines(&runtime_name, None) else {
                return found;
            };
            if !interface {
                continue;
            }
            let mut lacked = Vec::new();
            for ((member, export), own) in instance.exports(engine).zip(own) {
                let kind = match &export.ty {
                    ComponentItem::ComponentFunc(_) => Member::Func,
                    ComponentItem::Resource(_) if own => Member::Resource,
                    _ => continue,
                };
                match runtime.defines(&runtime_name, Some((member, kind))) {
                    Some(true) => {}
                    Some(false) => lacked.push(member.to_string()),
                    None => return found,
                }
            }
            let types = (instance.exports(engine))
                .filter_map(|(_, export)| match export.ty {
                    ComponentItem::Resource(ty) => Some(ty),
                    _ => None,
                })
                .collect();
            shared.push((name.to_string(), types));
            if lacked.is_empty() {
                found.served.insert(name.to_string());
            } else {
                found.lacking.push((name.to_string(), lacked));
            }
        }
        found.untie(&shared);
        found
    }

    /// Moves out of `served` every interface that shares a resource type with one the host must
    /// give, until none does: the host's classes are then the types of both.
    fn untie(&mut self, shared: &[(String, Vec<ResourceType>)]) {
        let types_of = |name: &str| shared.iter().find(|(known, _)| known == name).map(|(_, types)| types);
        let mut given: Vec<String> = self.lacking.iter().map(|(name, _)| name.clone()).collect();
        while let Some(host) = given.pop() {
            let Some(host_types) = types_of(&host) else { continue };
            let (tied, kept): (HashSet<String>, HashSet<String>) =
                std::mem::take(&mut self.served).into_iter().partition(|served| {
                    types_of(served).is_some_and(|types| types.iter().any(|ty| host_types.contains(ty)))
                });
            self.served = kept;
            for name in tied {
                given.push(name.clone());
                self.tied.push((name, host.clone()));
            }
        }
    }

    /// Whether the runtime's WASI serves the import `name` whole.
    pub fn serves(&self, name: &str) -> bool {
        self.served.contains(name)
    }

    /// The interface the host must give that the runtime's interface `name` shares resource types
    /// with, when that is why the runtime does not serve `name`.
    pub fn tied_to(&self, name: &str) -> Option<&str> {
        (self.tied.iter())
            .find(|(tied, _)| tied == name)
            .map(|(_, host)| host.as_str())
    }

    /// The members of the runtime's interface `name` the runtime lacks (none for any other name).
    pub fn lacked(&self, name: &str) -> &[String] {
        (self.lacking.iter())
            .find(|(lacking, _)| lacking == name)
            .map_or(&[], |(_, members)| members)
    }
}

/// Adds the WASI every component with WASI is linked with: wasmtime-wasi's preview 2 and its
/// wasi:http client (linked whether or not the guest makes requests: componentize-js guests always
/// import it).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// Answers already had, process-wide: whether the runtime's WASI defines an interface (no member)
/// or a member of one. wasmtime-wasi's set is fixed, so they hold for every engine, and only the
/// first component to name something builds a linker to ask; a guest's made-up names are kept up
/// to [`KNOWN_MOST`], past which they are asked again each time.
static KNOWN: LazyLock<Mutex<HashMap<(String, String), bool>>> = LazyLock::new(Default::default);
const KNOWN_MOST: usize = 4096;

/// The runtime's WASI, asked about one component's imports.
struct Runtime<'a> {
    component: &'a Component,
    linker: Option<Linker<HostState>>,
}

impl Runtime<'_> {
    /// Whether the runtime defines the interface `interface` (its name at the runtime's version),
    /// or that member of it; `None` when there is no linker to ask.
    fn defines(&mut self, interface: &str, member: Option<(&str, Member)>) -> Option<bool> {
        let key = (
            interface.to_string(),
            member.map_or(String::new(), |(name, _)| name.to_string()),
        );
        let known = |known: &HashMap<(String, String), bool>| known.get(&key).copied();
        if let Some(answer) = known(&lock(&KNOWN)) {
            return Some(answer);
        }
        let linker = match &mut self.linker {
            Some(linker) => linker,
            None => {
                let mut built = Linker::new(self.component.engine());
                add_to_linker(&mut built).ok()?;
                self.linker.insert(built)
            }
        };
        // Defining something at a name fails only where the runtime has it.
        let answer = match member {
            None => defines(&mut linker.root(), interface, Member::Func),
            Some((name, kind)) => defines(&mut linker.instance(interface).ok()?, name, kind),
        };
        let mut known = lock(&KNOWN);
        if known.len() < KNOWN_MOST {
            known.insert(key, answer);
        }
        Some(answer)
    }
}

/// The name the runtime defines an import's interface at, for a `wasi:*` import at a 0.2 version
/// (a prerelease or another minor is never the runtime's).
fn runtime_name(name: &str) -> Option<String> {
    let (interface, version) = name.split_once('@')?;
    let patch = version.strip_prefix("0.2.")?;
    let numeric = !patch.is_empty() && patch.bytes().all(|byte| byte.is_ascii_digit());
    numeric.then(|| format!("{interface}@{VERSION}"))
}

#[derive(Clone, Copy)]
enum Member {
    Func,
    Resource,
}

/// Whether `instance` already defines `name`: a definition of one's own is refused only then (the
/// linker refuses shadowing). The probe's own definition, where it succeeds, stays on this linker,
/// which only answers such questions.
fn defines(instance: &mut LinkerInstance<'_, HostState>, name: &str, member: Member) -> bool {
    let defined = match member {
        Member::Resource => instance.resource(name, ResourceType::host::<()>(), |_, _| Ok(())),
        Member::Func => instance.func_new(name, |_, _, _, _| Ok(())),
    };
    defined.is_err()
}

// Asking wasmtime-wasi needs a linker over the addon's store state, whose WASI reaches into JS, so
// a test binary without Node cannot link it: the ava specs (instance.spec.ts, dts.spec.ts) test
// what `WasiImports::of` finds, on real components.
#[cfg(test)]
mod tests {
    use crate::component::wasi_served::runtime_name;

    #[test]
    fn an_import_at_any_0_2_version_is_asked_at_the_runtimes() {
        assert_eq!(
            runtime_name("wasi:io/streams@0.2.0").as_deref(),
            Some("wasi:io/streams@0.2.12")
        );
        assert_eq!(
            runtime_name("wasi:io/streams@0.2.99").as_deref(),
            Some("wasi:io/streams@0.2.12")
        );
        for name in [
            "wasi:io/streams",
            "wasi:io/streams@0.3.0",
            "wasi:io/streams@0.2.3-rc.1",
            "wasi:io/streams@0.2.",
            "wasi:io/streams@0.2.x",
            "wasi:io/streams@1.0.0",
        ] {
            assert_eq!(runtime_name(name), None, "{name}");
        }
    }
}
