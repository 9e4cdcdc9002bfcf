//! Hostile plugins: each fault is contained to the record that caused it, reported with the
//! right kind, the batch's innocent records get their real outcomes, the next batch works, and
//! the process never aborts (every test here runs in the same process).

use weir_host::{BatchReport, Chain, Limits, Record, RejectKind, StageSpec};
use weir_test_artifacts as wasm;

use crate::{chain, load, run};

fn hostile(limits: Limits) -> Chain {
    chain(vec![StageSpec::new("hostile", load(wasm::HOSTILE)).limits(limits)])
}

/// Five innocent records with the culprit in the middle.
fn batch_with(culprit_mode: &str) -> Vec<Record> {
    let mut batch: Vec<Record> = (0..5).map(|i| Record::new(format!("ok#{i}"), format!(r#"{{"n":{i}}}"#))).collect();
    batch.insert(2, Record::new("culprit#1", format!(r#"{{"hostile":"{culprit_mode}"}}"#)));
    batch
}

/// Asserts the culprit alone was rejected with `kind`, returns its reason.
fn assert_contained(report: &BatchReport, kind: RejectKind) -> String {
    assert_eq!(report.inputs, 6);
    assert_eq!(report.rejected.len(), 1, "{report:#?}");
    let r = &report.rejected[0];
    assert_eq!((r.record.id.as_str(), r.kind, r.stage.as_str()), ("culprit#1", kind, "hostile"), "{}", r.reason);
    let ids: Vec<&str> = report.emitted.iter().map(|e| e.record.id.as_str()).collect();
    assert_eq!(ids, ["ok#0", "ok#1", "ok#2", "ok#3", "ok#4"]);
    r.reason.clone()
}

/// The chain still processes a clean batch after the fault.
fn assert_recovers(chain: &mut Chain) {
    let report = run(chain, vec![Record::new("after#1", "{\"fine\":true}")]);
    assert_eq!(report.emitted.len(), 1, "{report:#?}");
}

#[test]
fn an_infinite_loop_times_out() {
    let mut chain = hostile(Limits { time_ms: 100, ..Default::default() });
    let report = run(&mut chain, batch_with("loop"));
    let reason = assert_contained(&report, RejectKind::Timeout);
    assert_eq!(reason, "time limit exceeded (100 ms)");
    assert_recovers(&mut chain);
    let m = chain.stages()[0].metrics();
    assert_eq!(m.isolations, 1);
    assert!(m.restarts >= 2, "the faulted instances were replaced: {m:?}");
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let mut chain = hostile(Limits { memory_mib: 32, ..Default::default() });
    let report = run(&mut chain, batch_with("alloc"));
    let reason = assert_contained(&report, RejectKind::Memory);
    assert!(reason.starts_with("memory limit exceeded: tried to grow to"), "{reason}");
    assert!(reason.contains("limit 32 MiB"), "{reason}");
    assert_recovers(&mut chain);
}

#[test]
fn a_panic_traps_and_its_message_is_reported() {
    let mut chain = hostile(Limits::default());
    let report = run(&mut chain, batch_with("panic"));
    let reason = assert_contained(&report, RejectKind::Trap);
    assert!(reason.contains("boom on marker record culprit#1"), "{reason}");
    assert_recovers(&mut chain);
}

#[test]
fn a_huge_output_hits_the_output_limit() {
    // Enough memory to build the 100 MB string, so the output limit is what stops it.
    let mut chain = hostile(Limits { memory_mib: 512, max_output_bytes: 1 << 20, ..Default::default() });
    let report = run(&mut chain, batch_with("huge"));
    let reason = assert_contained(&report, RejectKind::OutputLimit);
    assert!(reason.contains("exceeds 1048576 bytes"), "{reason}");
    assert_recovers(&mut chain);
}

#[test]
fn a_huge_output_under_the_default_memory_limit_is_a_memory_fault() {
    let mut chain = hostile(Limits::default());
    let report = run(&mut chain, batch_with("huge"));
    assert_contained(&report, RejectKind::Memory);
    assert_recovers(&mut chain);
}

#[test]
fn unbounded_recursion_overflows_the_stack_and_is_contained() {
    let mut chain = hostile(Limits::default());
    let report = run(&mut chain, batch_with("recurse"));
    let reason = assert_contained(&report, RejectKind::Trap);
    assert!(reason.starts_with("stack overflow"), "{reason}");
    assert_recovers(&mut chain);
}

#[test]
fn a_wrong_outcome_count_is_invalid_output_for_the_culprit_only() {
    let mut chain = hostile(Limits::default());
    let report = run(&mut chain, batch_with("count"));
    let reason = assert_contained(&report, RejectKind::InvalidOutput);
    assert_eq!(reason, "returned 2 outcomes for 1 records (must be one per record, in order)");
    assert_recovers(&mut chain);
}

#[test]
fn a_non_json_output_is_invalid_output() {
    let mut chain = hostile(Limits::default());
    let report = run(&mut chain, batch_with("nonjson"));
    let reason = assert_contained(&report, RejectKind::InvalidOutput);
    assert!(reason.starts_with("output 0 is not JSON"), "{reason}");
    // Attributed directly: no isolation re-run was needed.
    assert_eq!(chain.stages()[0].metrics().isolations, 0);
    assert_recovers(&mut chain);
}

#[test]
fn slow_but_legal_records_all_pass_after_isolation() {
    // 12 records x 30 ms overrun a 200 ms batch budget; each alone is well within it.
    let mut chain = hostile(Limits { time_ms: 200, ..Default::default() });
    let batch: Vec<Record> =
        (0..12).map(|i| Record::new(format!("slow#{i}"), r#"{"hostile":"slow","ms":30}"#)).collect();
    let report = run(&mut chain, batch);
    assert_eq!(report.emitted.len(), 12, "{:#?}", report.rejected);
    assert_eq!(chain.stages()[0].metrics().isolations, 1);
}

#[test]
fn fan_out_filter_and_reject_are_accounted_for() {
    let mut chain = hostile(Limits::default());
    let batch = vec![
        Record::new("a", r#"{"hostile":"fanout"}"#).with_attribute("k", "v"),
        Record::new("b", r#"{"hostile":"filter"}"#),
        Record::new("c", r#"{"hostile":"reject"}"#),
        Record::new("d", r#"{"hostile":"log"}"#),
    ];
    let report = run(&mut chain, batch);
    let ids: Vec<&str> = report.emitted.iter().map(|e| e.record.id.as_str()).collect();
    assert_eq!(ids, ["a/0", "a/1", "a/2", "d"]);
    assert!(report.emitted[..3].iter().all(|e| e.origin == 0 && e.record.attribute("k") == Some("v")));
    assert_eq!(report.filtered.len(), 1);
    assert_eq!(report.filtered[0].record_id, "b");
    assert_eq!(report.rejected[0].kind, RejectKind::PluginReject);
    assert_eq!(report.rejected[0].reason, "record c asked to be rejected");
    let m = chain.stages()[0].metrics();
    assert_eq!((m.records_in, m.records_out, m.passed, m.filtered), (4, 4, 2, 1));
}

#[test]
fn too_many_outputs_per_record_is_an_output_limit() {
    let mut chain = hostile(Limits { max_outputs_per_record: 2, ..Default::default() });
    let report = run(&mut chain, vec![Record::new("a", r#"{"hostile":"fanout"}"#), Record::new("b", "{}")]);
    assert_eq!(report.rejected[0].kind, RejectKind::OutputLimit);
    assert_eq!(report.rejected[0].reason, "emitted 3 records, limit 2");
    assert_eq!(report.emitted.len(), 1);
}

#[test]
fn every_fault_in_one_batch_and_in_a_later_stage() {
    // One batch holding every hostile mode at once, behind a pass-through stage.
    let modes = ["loop", "alloc", "panic", "recurse", "count", "nonjson", "reject", "filter"];
    let mut batch: Vec<Record> = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        batch.push(Record::new(format!("ok#{i}"), format!(r#"{{"n":{i}}}"#)));
        batch.push(Record::new(format!("bad#{mode}"), format!(r#"{{"hostile":"{mode}"}}"#)));
    }
    let limits = Limits { time_ms: 100, memory_mib: 32, ..Default::default() };
    let mut chain = chain(vec![
        StageSpec::new("first", load(wasm::PII_REDACT)),
        StageSpec::new("hostile", load(wasm::HOSTILE)).limits(limits),
    ]);
    let report = run(&mut chain, batch);
    assert_eq!(report.emitted.len(), modes.len(), "{:#?}", report.rejected);
    let kinds: Vec<(String, RejectKind)> = report.rejected.iter().map(|r| (r.record.id.clone(), r.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("bad#loop".to_string(), RejectKind::Timeout),
            ("bad#alloc".into(), RejectKind::Memory),
            ("bad#panic".into(), RejectKind::Trap),
            ("bad#recurse".into(), RejectKind::Trap),
            ("bad#count".into(), RejectKind::InvalidOutput),
            ("bad#nonjson".into(), RejectKind::InvalidOutput),
            ("bad#reject".into(), RejectKind::PluginReject),
        ]
    );
    assert_eq!(report.filtered.len(), 1);
    assert_recovers(&mut chain);
}

#[test]
fn plugin_log_lines_are_tagged_with_stage_plugin_and_record() {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let mut chain = hostile(Limits::default());
    tracing::subscriber::with_default(subscriber, || {
        run(&mut chain, vec![Record::new("first", "{}"), Record::new("m-42", r#"{"hostile":"log"}"#)]);
    });
    let logged = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value = serde_json::from_str(
        logged.lines().find(|l| l.contains("hello from m-42")).unwrap_or_else(|| panic!("no plugin line in {logged}")),
    )
    .unwrap();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "weir::plugin");
    assert_eq!(line["fields"]["stage"], "hostile");
    assert_eq!(line["fields"]["record"], "m-42");
    assert!(line["fields"]["plugin"].as_str().unwrap().starts_with("hostile@"));
}
