//! A cold start as the Lambda does it, minus the network: a fresh process builds the wasm
//! engine, opens the precompiled cache, loads a three-stage chain (validate-order,
//! enrich-order, pii-redact), instantiates it with its config and runs one record through it.
//! Prints `first record <microseconds since main>` when the record is out, so a harness that
//! spawns it (`bench/cold_start.py`) sees process start to first record.
//!
//! `cargo run --release -p weir-host --example cold_start -- CACHE_DIR`

use std::time::Instant;

use weir_host::{ArtifactCache, Chain, Engine, Plugin, Record, StageSpec};
use weir_test_artifacts as wasm;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let cache_dir = std::env::args().nth(1).ok_or("usage: cold_start CACHE_DIR")?;
    let engine = Engine::new()?;
    let cache = ArtifactCache::open(&cache_dir)?;
    let stages = [
        ("validate", wasm::VALIDATE_ORDER, vec![]),
        ("enrich", wasm::ENRICH_ORDER, vec![("tax_rate", "0.2")]),
        ("redact", wasm::PII_REDACT, vec![("skip_fields", "order_id,user_id,pk")]),
    ];
    let mut specs = Vec::new();
    let mut outcomes = Vec::new();
    for (name, path, config) in stages {
        let bytes = std::fs::read(path)?;
        let plugin = Plugin::from_bytes(&engine, name, &bytes, Some(&cache))?;
        outcomes.push(format!("{name}:{:?}", plugin.cache_outcome()));
        specs.push(config.into_iter().fold(StageSpec::new(name, plugin), |s, (k, v)| s.config(k, v)));
    }
    let mut chain = Chain::new(specs)?;
    let order = r#"{"order_id":"o-1","user_id":"u-1","amount":12.5,"currency":"usd","timestamp":"2024-05-01T10:00:00Z","channel":"web","email":"a@example.com"}"#;
    let report = chain.run(vec![Record::new("r-1", order)]);
    let elapsed = start.elapsed();
    if report.emitted.len() != 1 {
        return Err(format!("expected one output, got {report:?}").into());
    }
    println!("first record {} us ({})", elapsed.as_micros(), outcomes.join(" "));
    Ok(())
}
