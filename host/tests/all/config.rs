//! UI tests for `weir.toml`: each `tests/ui/<case>.toml` is a bad pipeline file, and
//! `<case>.err` the exact message a user sees. `BLESS=1 cargo test` rewrites the `.err` files
//! (review the diff).

use std::path::Path;

use weir_host::pipeline::Pipeline;
use weir_host::source::objects::{ObjectRef, Objects, read_object};

/// Checks one case: the message for `tests/ui/<case>.toml` is `tests/ui/<case>.err`.
fn check(case: &str) {
    let file = Path::new("tests/ui").join(format!("{case}.toml"));
    let actual = match Pipeline::load(&file) {
        Ok(_) => "(accepted)".to_string(),
        Err(e) => e.to_string(),
    };
    let err_file = file.with_extension("err");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&err_file, format!("{actual}\n")).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&err_file).unwrap_or_default();
    assert_eq!(expected.trim_end(), actual, "{}", file.display());
}

/// One test per case, named after it.
macro_rules! ui_cases {
    ($($case:ident),* $(,)?) => {
        $(#[test] fn $case() { check(stringify!($case)); })*
        const CASES: &[&str] = &[$(stringify!($case)),*];
    };
}

ui_cases!(
    aggregate_without_group_by,
    bad_config_value,
    bad_limits,
    bad_mode,
    bad_partition,
    bad_sha,
    bad_source_limit,
    duplicate_stage,
    missing_plugin,
    no_stages,
    sum_without_field,
    syntax_error,
    unknown_field,
    unknown_limit,
    when_without_value,
    wrong_type,
);

#[test]
fn every_case_file_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir("tests/ui")
        .expect("tests/ui")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(String::from))
        .collect();
    files.sort();
    assert_eq!(files, CASES, "add the new case to ui_cases!");
}

#[test]
fn the_example_pipeline_is_valid() {
    let p = Pipeline::load(Path::new("../examples/orders/weir.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name, "orders");
    assert_eq!(p.stages.len(), 4);
    assert_eq!(p.tables.len(), 3);
}

/// `[source]` limits reach the readers: a JSON line over `max_record_bytes` is unreadable, the
/// next one is read.
#[test]
fn source_limits_bound_what_a_run_reads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    let text = "name = \"l\"\n[[stages]]\nname = \"v\"\nplugin = \"v.wasm\"\n[source]\nmax_record_bytes = 2048\n";
    let p = Pipeline::parse_deployed(&file, text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.source.limits.max_record_bytes, 2048);
    assert_eq!(p.source.limits.max_expansion, 200, "the default");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, format!("{{\"a\":\"{}\"}}\n{{\"b\":1}}\n", "x".repeat(4096))).unwrap();
    let options = weir_host::source::OpenOptions { limits: p.source.limits, ..Default::default() };
    let items: Vec<_> = weir_host::source::open_file(&input, &options).unwrap().collect();
    assert!(
        matches!(&items[0], weir_host::source::SourceItem::Unreadable(u) if u.reason.contains("longer than 2048 bytes")),
        "{items:?}"
    );
    assert!(matches!(&items[1], weir_host::source::SourceItem::Record(_)));

    // An object over `max_object_bytes` is one unreadable item, unread; a smaller one is read.
    let text = format!("{text}max_object_bytes = 1048576\n");
    let p = Pipeline::parse_deployed(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::write(dir.path().join("b/big.jsonl"), "{\"a\":1}\n".repeat(150_000)).unwrap();
    std::fs::write(dir.path().join("b/small.jsonl"), "{\"a\":1}\n".repeat(10)).unwrap();
    let objects = weir_host::source::objects::Objects { limits: p.source.limits, ..Objects::local(dir.path()) };
    let big: Vec<_> = read_object(&objects, &ObjectRef::new("b", "big.jsonl")).collect();
    assert!(
        matches!(&big[..], [weir_host::source::SourceItem::Unreadable(u)]
            if u.reason == "s3://b/big.jsonl: 1200000 bytes, over the pipeline's [source] max_object_bytes (1048576); not read"),
        "{big:?}"
    );
    assert_eq!(read_object(&objects, &ObjectRef::new("b", "small.jsonl")).count(), 10);
    let small = text.replace("max_object_bytes = 1048576", "max_object_bytes = 1000");
    let err = Pipeline::parse_deployed(&file, &small).unwrap_err().to_string();
    assert!(
        err.contains("source.max_object_bytes") && err.contains("must be at least 1048576 (1 MiB), got 1000"),
        "{err}"
    );
}
