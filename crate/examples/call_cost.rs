//! What a component call costs straight on wasmtime (no N-API, no JS): the floor under the
//! addon's component-call rows, through the dynamic `Val` API and through the typed API.
//!
//!   cargo run --release --example call_cost -p airssys-wasm -- [FILE] [ROUNDS]
//!
//! FILE is the types fixture (default `fixtures/build/types.wasm`, from `npm run build:wasm`); its
//! imports are defined as traps, since the calls measured never reach them. Each of ROUNDS rounds
//! (default 9) times a batch of calls per way; one JSON line per way gives the median in
//! nanoseconds per call. The string is the bench's: 1,024 UTF-8 bytes, a few of them multi-byte.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use wasmtime::component::{Component, Func, Instance, Linker, Val, WasmStr};
use wasmtime::{Config, Engine, Store};

/// The bench's 1 KiB string (bench/component-call.ts).
fn text_1kib() -> String {
    let unit = "airssys-wasm ü€ ";
    let mut text = String::new();
    while text.len() + unit.len() <= 1024 {
        text.push_str(unit);
    }
    text.push_str(&"x".repeat(1024 - text.len()));
    text
}

fn export(store: &mut Store<()>, instance: &Instance, interface: Option<&str>, name: &str) -> Result<Func> {
    let parent = match interface {
        Some(interface) => Some(
            instance
                .get_export_index(&mut *store, None, interface)
                .with_context(|| format!("no export {interface}"))?,
        ),
        None => None,
    };
    let index = instance
        .get_export_index(&mut *store, parent.as_ref(), name)
        .with_context(|| format!("no export {name}"))?;
    instance.get_func(&mut *store, index).context("not a function")
}

/// The median over `rounds` of the time per call of `batch` calls of `call`, in nanoseconds.
fn median_ns(rounds: usize, batch: u32, mut call: impl FnMut() -> wasmtime::Result<()>) -> Result<f64> {
    for _ in 0..batch / 10 {
        call()?;
    }
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..batch {
            call()?;
        }
        times.push(start.elapsed().as_nanos() as f64 / f64::from(batch));
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, rounds) = match args.as_slice() {
        [] => ("fixtures/build/types.wasm", 9),
        [file] => (file.as_str(), 9),
        [file, rounds] => (file.as_str(), rounds.parse().context("ROUNDS")?),
        _ => bail!("usage: call_cost [FILE] [ROUNDS]"),
    };
    // The addon's settings that touch a call: epoch checks compiled in, a deadline set.
    let mut config = Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    let engine = Engine::new(&config)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    let component = Component::new(&engine, &bytes)?;
    let mut linker: Linker<()> = Linker::new(&engine);
    linker.define_unknown_imports_as_traps(&component)?;
    let mut store = Store::new(&engine, ());
    store.set_epoch_deadline(u64::MAX / 2);
    let instance = linker.instantiate(&mut store, &component)?;
    let add = export(&mut store, &instance, Some("test:types/numbers@0.1.0"), "add")?;
    let echo = export(&mut store, &instance, None, "roundtrip-string")?;
    let text = text_1kib();

    let report = |way: &str, ns: f64| println!(r#"{{"call":"{way}","medianNs":{ns:.0}}}"#);
    let mut out = [Val::Bool(false)];
    report(
        "add(u32, u32) -> u32, Val",
        median_ns(rounds, 200_000, || {
            add.call(&mut store, &[Val::U32(2), Val::U32(3)], &mut out)
        })?,
    );
    let typed = add.typed::<(u32, u32), (u32,)>(&store)?;
    report(
        "add(u32, u32) -> u32, typed",
        median_ns(rounds, 200_000, || typed.call(&mut store, (2, 3)).map(drop))?,
    );
    report(
        "roundtrip-string(1 KiB), Val",
        median_ns(rounds, 20_000, || {
            echo.call(&mut store, &[Val::String(text.clone())], &mut out)
        })?,
    );
    let typed = echo.typed::<(&str,), (String,)>(&store)?;
    report(
        "roundtrip-string(1 KiB), typed to a String",
        median_ns(rounds, 20_000, || typed.call(&mut store, (&text,)).map(drop))?,
    );
    let typed = echo.typed::<(&str,), (WasmStr,)>(&store)?;
    report(
        "roundtrip-string(1 KiB), typed, validated in guest memory (no copy out)",
        median_ns(rounds, 20_000, || {
            let (returned,) = typed.call(&mut store, (&text,))?;
            returned.to_str(&store).map(drop)
        })?,
    );
    Ok(())
}
