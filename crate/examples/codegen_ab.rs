//! A/B of what wasmtime's code generation settings cost a compute loop, outside the addon (no
//! N-API, no JS): the same export run under each setting, so the difference is the setting alone.
//!
//!   cargo run --release --example codegen_ab -- FILE EXPORT ARG [RUNS]
//!
//! Runs `EXPORT(ARG)` of a core module with no imports (FILE: binary or WAT), `ARG` an i32 or,
//! with a trailing `L`, an i64. Prints one JSON line per setting: the milliseconds of each of RUNS
//! calls (default 5) after one warm-up call, their median, and the result. `bench/codegen.ts` runs
//! it beside V8 on `fib` (bench/wasm.ts) and two of the real programs.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use wasmtime::{Config, Engine, Instance, Module, OptLevel, Store, Strategy, Val};

/// One setting: what the engine compiles in.
struct Setting {
    name: &'static str,
    strategy: Strategy,
    epochs: bool,
    fuel: bool,
    opt: OptLevel,
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: "cranelift",
        strategy: Strategy::Cranelift,
        epochs: false,
        fuel: false,
        opt: OptLevel::Speed,
    },
    Setting {
        name: "cranelift+epochs",
        strategy: Strategy::Cranelift,
        epochs: true,
        fuel: false,
        opt: OptLevel::Speed,
    },
    Setting {
        name: "cranelift+fuel",
        strategy: Strategy::Cranelift,
        epochs: false,
        fuel: true,
        opt: OptLevel::Speed,
    },
    Setting {
        name: "cranelift+epochs+fuel",
        strategy: Strategy::Cranelift,
        epochs: true,
        fuel: true,
        opt: OptLevel::Speed,
    },
    Setting {
        name: "cranelift-opt-none+epochs",
        strategy: Strategy::Cranelift,
        epochs: true,
        fuel: false,
        opt: OptLevel::None,
    },
    Setting {
        name: "winch",
        strategy: Strategy::Winch,
        epochs: false,
        fuel: false,
        opt: OptLevel::Speed,
    },
    Setting {
        name: "winch+epochs",
        strategy: Strategy::Winch,
        epochs: true,
        fuel: false,
        opt: OptLevel::Speed,
    },
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (bytes, export, arg, runs) = match args.as_slice() {
        [file, export, arg, rest @ ..] => {
            let runs = match rest {
                [] => 5,
                [runs] => runs.parse().context("RUNS")?,
                _ => bail!("usage: codegen_ab FILE EXPORT ARG [RUNS]"),
            };
            let arg = match arg.strip_suffix('L') {
                Some(wide) => Val::I64(wide.parse().context("ARG")?),
                None => Val::I32(arg.parse().context("ARG")?),
            };
            (
                std::fs::read(file).with_context(|| format!("reading {file}"))?,
                export.clone(),
                arg,
                runs,
            )
        }
        _ => bail!("usage: codegen_ab FILE EXPORT ARG [RUNS]"),
    };
    for setting in SETTINGS {
        let (times, result) = measure(setting, &bytes, &export, &arg, runs)?;
        let samples: Vec<String> = times.iter().map(|ms| format!("{ms:.3}")).collect();
        println!(
            r#"{{"setting":"{}","medianMs":{:.3},"samplesMs":[{}],"result":"{result}"}}"#,
            setting.name,
            times[times.len() / 2],
            samples.join(",")
        );
    }
    Ok(())
}

/// The milliseconds of each timed call, sorted, and the result.
fn measure(setting: &Setting, bytes: &[u8], export: &str, arg: &Val, runs: usize) -> Result<(Vec<f64>, String)> {
    let mut config = Config::new();
    config
        .strategy(setting.strategy)
        .epoch_interruption(setting.epochs)
        .consume_fuel(setting.fuel)
        .cranelift_opt_level(setting.opt);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, bytes)?;
    let mut store = Store::new(&engine, ());
    if setting.fuel {
        store.set_fuel(u64::MAX)?;
    }
    if setting.epochs {
        // A deadline that never comes, as a call with a far `timeoutMs` has.
        store.set_epoch_deadline(u64::MAX / 2);
    }
    let instance = Instance::new(&mut store, &module, &[])?;
    let func = instance
        .get_func(&mut store, export)
        .with_context(|| format!("no export {export}"))?;
    let mut out = [Val::I64(0)];
    let runs = runs.max(1);
    let mut times = Vec::with_capacity(runs);
    for run in 0..=runs {
        let started = Instant::now();
        func.call(&mut store, std::slice::from_ref(arg), &mut out)?;
        if run > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let result = match out[0] {
        Val::I32(value) => value.to_string(),
        Val::I64(value) => value.to_string(),
        ref other => format!("{other:?}"),
    };
    Ok((times, result))
}
