//! What a cold compile costs straight on wasmtime (no N-API, no JS), under the addon's engine
//! settings and variations of them, so the addon's share and each setting's share can be told apart.
//!
//!   cargo run --release --example compile_cost -- FILE [RUNS] [SETTING]
//!
//! FILE is a core module or a component (binary). Each of RUNS compiles (default 30, after 3
//! warm-up compiles) appends a custom section with a fresh counter, so nothing can be answered from
//! a cache. Prints one JSON line per setting (only those whose name contains SETTING, when given,
//! e.g. to profile one) with the median in microseconds.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, Module, OptLevel, Strategy};

struct Setting {
    name: &'static str,
    strategy: Strategy,
    parallel: bool,
    unwind: bool,
    address_map: bool,
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: "cranelift (the addon's settings)",
        strategy: Strategy::Cranelift,
        parallel: true,
        unwind: true,
        address_map: true,
    },
    Setting {
        name: "cranelift, no native unwind info",
        strategy: Strategy::Cranelift,
        parallel: true,
        unwind: false,
        address_map: true,
    },
    Setting {
        name: "cranelift, no unwind info, no address map",
        strategy: Strategy::Cranelift,
        parallel: true,
        unwind: false,
        address_map: false,
    },
    Setting {
        name: "cranelift, serial, no unwind info",
        strategy: Strategy::Cranelift,
        parallel: false,
        unwind: false,
        address_map: true,
    },
    Setting {
        name: "winch (the addon's settings)",
        strategy: Strategy::Winch,
        parallel: true,
        unwind: true,
        address_map: true,
    },
    Setting {
        name: "winch, no native unwind info",
        strategy: Strategy::Winch,
        parallel: true,
        unwind: false,
        address_map: true,
    },
];

fn engine(setting: &Setting) -> Result<Engine> {
    let mut config = Config::new();
    config
        .strategy(setting.strategy)
        .wasm_component_model(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .parallel_compilation(setting.parallel)
        .native_unwind_info(setting.unwind)
        .generate_address_map(setting.address_map);
    Ok(Engine::new(&config)?)
}

/// `bytes` with a custom section named "nonce" holding `n`, appended (valid in modules and components).
fn with_nonce(bytes: &[u8], n: u32) -> Vec<u8> {
    let mut payload = vec![5u8];
    payload.extend_from_slice(b"nonce");
    payload.extend_from_slice(&n.to_le_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, runs, only) = match args.as_slice() {
        [file] => (file, 30, ""),
        [file, runs] => (file, runs.parse().context("RUNS")?, ""),
        [file, runs, only] => (file, runs.parse().context("RUNS")?, only.as_str()),
        _ => bail!("usage: compile_cost FILE [RUNS] [SETTING]"),
    };
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    let component = wasmparser::Parser::is_component(&bytes);
    let mut nonce = 0u32;
    for setting in SETTINGS.iter().filter(|setting| setting.name.contains(only)) {
        let engine = engine(setting)?;
        let mut compile = |engine: &Engine| -> Result<f64> {
            nonce += 1;
            let input = with_nonce(&bytes, nonce);
            let start = Instant::now();
            if component {
                drop(Component::new(engine, &input)?);
            } else {
                drop(Module::new(engine, &input)?);
            }
            Ok(start.elapsed().as_secs_f64() * 1e6)
        };
        for _ in 0..3 {
            compile(&engine)?;
        }
        let mut times = (0..runs).map(|_| compile(&engine)).collect::<Result<Vec<f64>>>()?;
        times.sort_by(f64::total_cmp);
        println!(
            r#"{{"setting":"{}","medianUs":{:.1}}}"#,
            setting.name,
            times[times.len() / 2]
        );
    }
    Ok(())
}
