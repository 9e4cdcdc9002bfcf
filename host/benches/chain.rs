//! Throughput and start-up costs of the weir host. Run: `cargo bench -p weir-host`.
//! Results, method and machine: BENCHMARKS.md.
//!
//! - `validate_enrich/{native,wasm}/N`: validate-order -> enrich-order on ~200-byte JSON orders,
//!   batches of N. `native` runs the same plugin crates compiled for the host, through the SDK's
//!   batch loop (direct calls, no wasm); `wasm` runs the components through a `Chain`.
//! - `instantiate/{pooling,on_demand}`: starting a stage (instantiate + init).
//! - `load/{compile,cache}`: turning the wasm file into a ready plugin, cold vs precompiled.
//! - `wire/{packed,record_shaped}/N`: the boundary cost alone. The same echo transform behind
//!   weir's packed batch (one text buffer plus spans; the hostile test plugin's default) and
//!   behind a record-shaped interface (`list<record{id, body, attributes}>`, strings copied one
//!   by one; `tests/plugins/record-shaped`), each with the host work a stage does (check the
//!   output is JSON, build the output records).

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use weir_host::engine::EngineOptions;
use weir_host::{ArtifactCache, Chain, Engine, Plugin, Record, Stage, StageSpec};
use weir_plugin::testing::Harness;
use weir_test_artifacts as wasm;

fn order(i: usize) -> String {
    format!(
        r#"{{"order_id":"ord-{i:08}","user_id":"user-{:05}","amount":{}.{:02},"currency":"eur","timestamp":"2024-05-{:02}T10:{:02}:00Z","channel":"web","sku":"SKU-{:06}","store":"berlin-mitte-01","email":"customer{:05}@example.com"}}"#,
        i % 9973,
        i % 500,
        i % 100,
        1 + i % 28,
        i % 60,
        i % 100_000,
        i % 50_000
    )
}

fn batch(n: usize) -> Vec<Record> {
    (0..n).map(|i| Record::new(format!("msg-{i}"), order(i))).collect()
}

fn validate_enrich(c: &mut Criterion) {
    let engine = Engine::new().expect("engine");
    let load = |p: &str| Plugin::from_file(&engine, Path::new(p), None).expect("plugin");
    let mut chain = Chain::new(vec![
        StageSpec::new("validate", load(wasm::VALIDATE_ORDER)),
        StageSpec::new("enrich", load(wasm::ENRICH_ORDER)).config("tax_rate", "0.2"),
    ])
    .expect("chain");
    let mut validate = Harness::<validate_order::ValidateOrder>::new(&[]).expect("native validate");
    let mut enrich = Harness::<enrich_order::EnrichOrder>::new(&[("tax_rate", "0.2")]).expect("native enrich");
    let avg = batch(100).iter().map(|r| r.body.len()).sum::<usize>() / 100;
    eprintln!("record body size: {avg} bytes on average");

    let mut group = c.benchmark_group("validate_enrich");
    for n in [1usize, 10, 100, 1000] {
        let records = batch(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("native/{n}"), |b| {
            b.iter(|| {
                let inputs: Vec<weir_plugin::Record<'_>> =
                    records.iter().map(|r| weir_plugin::Record::new(&r.id, &r.body)).collect();
                let validated = validate.run_batch(inputs);
                let bodies: Vec<String> =
                    validated.into_iter().filter_map(Result::ok).flatten().map(|o| o.body).collect();
                let enriched = enrich.run_batch(bodies.iter().map(|b| weir_plugin::Record::new("id", b)).collect());
                black_box(enriched)
            })
        });
        group.bench_function(format!("wasm/{n}"), |b| {
            b.iter_batched(|| records.clone(), |r| black_box(chain.run(r)), BatchSize::SmallInput)
        });
    }
    group.finish();
}

fn instantiate(c: &mut Criterion) {
    let mut group = c.benchmark_group("instantiate");
    for (label, pooling) in [("pooling", true), ("on_demand", false)] {
        let engine = Engine::with_options(&EngineOptions { pooling, ..Default::default() }).expect("engine");
        let plugin = Plugin::from_file(&engine, Path::new(wasm::ENRICH_ORDER), None).expect("plugin");
        let spec = StageSpec::new("enrich", plugin).config("tax_rate", "0.2");
        group.bench_function(label, |b| b.iter(|| black_box(Stage::new(spec.clone()).expect("stage"))));
    }
    group.finish();
}

fn load(c: &mut Criterion) {
    let engine = Engine::new().expect("engine");
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = ArtifactCache::open(dir.path()).expect("cache");
    let path = Path::new(wasm::ENRICH_ORDER);
    Plugin::from_file(&engine, path, Some(&cache)).expect("warm the cache");
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.bench_function("compile", |b| b.iter(|| black_box(Plugin::from_file(&engine, path, None).expect("compile"))));
    group.bench_function("cache", |b| {
        b.iter(|| black_box(Plugin::from_file(&engine, path, Some(&cache)).expect("cached")))
    });
    group.finish();
}

mod record_shaped {
    wasmtime::component::bindgen!({
        path: "../tests/plugins/record-shaped/wit",
        world: "weir:bench-record-shaped/plugin@0.1.0",
    });
}

fn wire(c: &mut Criterion) {
    use record_shaped::exports::weir::bench_record_shaped::transformer::{Outcome, Rec};
    use weir_host::sandbox::Sandbox;

    let engine = Engine::new().expect("engine");
    let packed = Plugin::from_file(&engine, Path::new(wasm::HOSTILE), None).expect("packed echo");
    let mut stage = Stage::new(StageSpec::new("echo", packed)).expect("stage");

    let component =
        wasmtime::component::Component::from_file(engine.wasmtime(), wasm::RECORD_SHAPED).expect("record-shaped echo");
    let mut linker = wasmtime::component::Linker::<Sandbox>::new(engine.wasmtime());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    let mut store = wasmtime::Store::new(engine.wasmtime(), Sandbox::new(64 << 20));
    store.set_epoch_deadline(u64::MAX / 2);
    let echo = record_shaped::Plugin::instantiate(&mut store, &component, &linker).expect("instantiate");

    let mut group = c.benchmark_group("wire");
    for n in [1usize, 10, 100, 1000] {
        let records = batch(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("packed/{n}"), |b| b.iter(|| black_box(stage.process(&records))));
        group.bench_function(format!("record_shaped/{n}"), |b| {
            b.iter(|| {
                let recs: Vec<Rec> = records
                    .iter()
                    .map(|r| Rec { id: r.id.clone(), body: r.body.clone(), attributes: r.attributes.clone() })
                    .collect();
                let outcomes =
                    echo.weir_bench_record_shaped_transformer().call_transform(&mut store, &recs).expect("call");
                let out: Vec<Vec<Record>> = outcomes
                    .into_iter()
                    .map(|o| match o {
                        Outcome::Emit(recs) => recs
                            .into_iter()
                            .filter(|r| serde_json::from_str::<serde::de::IgnoredAny>(&r.body).is_ok())
                            .map(|r| Record { id: r.id, body: r.body, attributes: r.attributes })
                            .collect(),
                        Outcome::Reject(_) => Vec::new(),
                    })
                    .collect();
                black_box(out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, validate_enrich, instantiate, load, wire);
criterion_main!(benches);
