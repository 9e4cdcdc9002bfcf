//! UI tests for `weir.toml`: each `tests/ui/<case>.toml` is a bad pipeline file, and
//! `<case>.err` the exact message a user sees. `BLESS=1 cargo test` rewrites the `.err` files
//! (review the diff).

use std::path::Path;

use weir_host::pipeline::Pipeline;

#[test]
fn bad_pipeline_files_get_messages_naming_file_field_and_what_is_allowed() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir("tests/ui")
        .expect("tests/ui")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "{cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let relative = Path::new("tests/ui").join(case.file_name().unwrap());
        let actual = match Pipeline::load(&relative) {
            Ok(_) => "(accepted)".to_string(),
            Err(e) => e.to_string(),
        };
        let err_file = case.with_extension("err");
        if bless {
            std::fs::write(&err_file, format!("{actual}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&err_file).unwrap_or_default();
        if expected.trim_end() != actual {
            failures.push(format!("{}\n  expected: {}\n  actual:   {actual}", case.display(), expected.trim_end()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_example_pipeline_is_valid() {
    let p = Pipeline::load(Path::new("../examples/orders/weir.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name, "orders");
    assert_eq!(p.stages.len(), 4);
    assert_eq!(p.tables.len(), 3);
}
