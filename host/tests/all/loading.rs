//! Loading: what is accepted, what is refused, and how the refusal reads.

use std::path::Path;

use weir_host::{
    Engine, LoadError, Plugin, StageError, StageSpec,
    engine::{Allocation, EngineOptions},
};
use weir_test_artifacts as wasm;

use crate::engine;

fn load_err(path: &str) -> LoadError {
    Plugin::from_file(engine(), Path::new(path), None).expect_err("must be refused")
}

#[test]
fn example_plugins_load_and_import_nothing_beyond_the_sandbox() {
    for path in [wasm::VALIDATE_ORDER, wasm::ENRICH_ORDER, wasm::CSV_RESHAPE, wasm::PII_REDACT, wasm::HOSTILE] {
        let plugin = Plugin::from_file(engine(), Path::new(path), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plugin.sha256().len(), 64);
        assert!(plugin.label().contains('@'));
    }
}

#[test]
fn a_core_module_is_not_a_component() {
    let err = Plugin::from_bytes(engine(), "core", b"\0asm\x01\0\0\0", None).unwrap_err();
    assert!(matches!(err, LoadError::NotAComponent { .. }), "{err}");
    assert!(err.to_string().contains("core WebAssembly module, not a component"), "{err}");
    let err = Plugin::from_bytes(engine(), "text", b"{\"not\": \"wasm\"}", None).unwrap_err();
    assert_eq!(err.to_string(), "text: not a WebAssembly binary (no `\\0asm` header)");
}

#[test]
fn a_component_of_another_world_is_missing_the_export() {
    let err = load_err(wasm::NOT_WEIR);
    assert!(matches!(err, LoadError::MissingExport { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("does not export `weir:transform/transformer@0.1.0`"), "{msg}");
    assert!(msg.contains("wasi:cli/run"), "names what it does export: {msg}");
}

#[test]
fn a_future_contract_version_is_refused_by_version() {
    let err = load_err(wasm::WRONG_VERSION);
    assert!(matches!(err, LoadError::WrongVersion { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "wrong_version: targets weir:transform@0.2.0, but this host supports weir:transform@0.1.0"
    );
}

#[test]
fn a_plugin_importing_sockets_or_files_is_refused_naming_the_imports() {
    let err = load_err(wasm::FORBIDDEN);
    let LoadError::ForbiddenImport { imports, .. } = &err else { panic!("{err}") };
    // std's TcpStream pulls in sockets, and the filesystem (which plain plugins never import).
    assert!(imports.iter().any(|i| i.starts_with("wasi:sockets/tcp@")), "{imports:?}");
    assert!(imports.iter().any(|i| i.starts_with("wasi:filesystem/")), "{imports:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("forbidden: imports `wasi:"), "{msg}");
    assert!(msg.contains("which weir plugins may not use"), "{msg}");
}

#[test]
fn a_pinned_digest_must_match() {
    let bytes = std::fs::read(wasm::VALIDATE_ORDER).unwrap();
    let err = Plugin::from_bytes_pinned(engine(), "validate", &bytes, &"0".repeat(64), None).unwrap_err();
    assert!(matches!(err, LoadError::DigestMismatch { .. }), "{err}");
    let good = weir_host::plugin::sha256_hex(&bytes);
    Plugin::from_bytes_pinned(engine(), "validate", &bytes, &good.to_uppercase(), None).expect("pin matches");
}

#[test]
fn init_can_refuse_the_config_with_a_message() {
    let enrich = crate::load(wasm::ENRICH_ORDER);
    let err = weir_host::Chain::new(vec![StageSpec::new("enrich", enrich).config("tax_rate", "lots")]).unwrap_err();
    assert!(matches!(err, StageError::InitRefused { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("stage `enrich` (enrich_order@"), "{msg}");
    assert!(msg.contains("config `tax_rate`: \"lots\" is not a decimal number"), "{msg}");

    let hostile = crate::load(wasm::HOSTILE);
    let err = weir_host::Stage::new(StageSpec::new("h", hostile).config("fail_init", "no thanks")).unwrap_err();
    assert!(err.to_string().ends_with("init refused the config: no thanks"), "{err}");
}

#[test]
fn bad_limits_are_refused_naming_the_field() {
    let plugin = crate::load(wasm::VALIDATE_ORDER);
    let limits = weir_host::Limits { memory_mib: 0, ..Default::default() };
    let err = weir_host::Stage::new(StageSpec::new("v", plugin).limits(limits)).unwrap_err();
    assert_eq!(err.to_string(), "stage `v`: invalid limits: memory_mib must be 1..=4096, got 0");
}

#[test]
fn pooling_is_used_here_and_an_impossible_pool_falls_back() {
    assert_eq!(engine().allocation(), Allocation::Pooling);
    // 2 million 4 GiB memory slots cannot be reserved in a 47-bit address space.
    let fallback = Engine::with_options(&EngineOptions { pooling: true, pool_instances: 1_000_000 }).unwrap();
    assert_eq!(fallback.allocation(), Allocation::OnDemand);
    // The fallback engine runs plugins all the same.
    let plugin = Plugin::from_file(&fallback, Path::new(wasm::VALIDATE_ORDER), None).unwrap();
    let mut chain = crate::chain(vec![StageSpec::new("v", plugin)]);
    let report = crate::run(&mut chain, crate::records(&[crate::examples::GOOD_ORDER]));
    assert_eq!(report.emitted.len(), 1);
}
