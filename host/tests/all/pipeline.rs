//! The run loop on the embedded default sinks: conservation, each table mode, replay
//! idempotency, dead letters, and every local source including replayed Lambda payloads.

use std::io::Read;
use std::path::Path;

use futures_util::FutureExt;
use serde_json::Value;
use weir_host::pipeline::config::{
    Counter, CounterOp, NotifyConfig, ObjectFormat, ObjectsConfig, PartitionTemplate, Predicate, PredicateOp,
    TableConfig, TableMode,
};
use weir_host::pipeline::{Io, Outputs, Runner};
use weir_host::report::Emitted;
use weir_host::sink::dead_letter::file::RejectedFile;
use weir_host::sink::notify::file::NotifyFile;
use weir_host::sink::objects::file::ObjectFiles;
use weir_host::sink::table::sqlite::{self, Database, TableSink};
use weir_host::sink::{Delivery, Sink};
use weir_host::source::{self, OpenOptions, SourceItem};
use weir_host::{Record, StageSpec};
use weir_test_artifacts as wasm;

use crate::{chain, load};

fn emitted(records: &[(&str, &str)]) -> Vec<Emitted> {
    records.iter().enumerate().map(|(i, (id, body))| Emitted { origin: i, record: Record::new(*id, *body) }).collect()
}

fn write(sink: &mut dyn Sink, records: &[(&str, &str)]) -> weir_host::sink::SinkReport {
    let e = emitted(records);
    let delivery = Delivery { emitted: &e, chain: "test", parts: Default::default() };
    sink.write(&delivery).now_or_never().expect("a local sink completes when called").unwrap()
}

fn table(name: &str, key: &[&str], mode: TableMode) -> TableConfig {
    TableConfig { name: name.into(), key: key.iter().map(|k| k.to_string()).collect(), mode }
}

#[test]
fn put_is_last_write_wins_and_put_if_absent_first_write_wins() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut put = TableSink::new(db.clone(), table("put", &["pk", "sk"], TableMode::Put { order_by: None })).unwrap();
    let mut first = TableSink::new(db.clone(), table("first", &["pk"], TableMode::PutIfAbsent)).unwrap();
    for sink in [&mut put as &mut dyn Sink, &mut first] {
        write(sink, &[("a", r#"{"pk":"k","sk":1,"v":1}"#)]);
        let again = write(sink, &[("b", r#"{"pk":"k","sk":1,"v":2}"#), ("c", r#"{"pk":"k2","sk":1,"v":3}"#)]);
        assert_eq!(again.written + again.unchanged, 2);
    }
    let item = |t: &str, pk: &str, sk: &str| -> Value {
        serde_json::from_str(&sqlite::get_item(&db, t, pk, sk).unwrap().unwrap()).unwrap()
    };
    assert_eq!(item("put", "k", "1")["v"], 2);
    assert_eq!(item("first", "k", "")["v"], 1, "a redelivery does not overwrite");
    assert_eq!(sqlite::count_items(&db, "put").unwrap(), 2);
    let bad = write(&mut put, &[("d", r#"{"sk":1}"#), ("e", "[1]")]);
    assert_eq!(bad.unwritable.len(), 2);
    assert_eq!(bad.unwritable[0].reason, "key attribute `pk` is missing, empty, or not a string or number");
}

#[test]
fn aggregates_count_each_record_id_once_with_exact_sums() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mode = TableMode::Aggregate {
        group_by: "user".into(),
        counters: vec![
            Counter { name: "orders".into(), op: CounterOp::Count, field: None },
            Counter { name: "spend".into(), op: CounterOp::Sum, field: Some("amount".into()) },
        ],
    };
    let mut agg = TableSink::new(db.clone(), table("stats", &["user"], mode)).unwrap();
    let batch = [
        ("r1", r#"{"user":"u1","amount":0.1}"#),
        ("r2", r#"{"user":"u1","amount":0.2}"#),
        ("r3", r#"{"user":"u2","amount":5}"#),
    ];
    assert_eq!(write(&mut agg, &batch).written, 3);
    // Replayed, and replayed concurrently with a new record.
    assert_eq!(write(&mut agg, &batch).unchanged, 3);
    let r = write(&mut agg, &[batch[0], ("r4", r#"{"user":"u2","amount":1.5}"#)]);
    assert_eq!((r.written, r.unchanged), (1, 1));
    let groups = sqlite::read_aggregates(&db, "stats").unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].key, "u1");
    assert_eq!(groups[0].counters["orders"], "2");
    assert_eq!(groups[0].counters["spend"], "0.3", "0.1 + 0.2 is exactly 0.3");
    assert_eq!(groups[1].counters["spend"], "6.5");
    // Not a JSON number (a numeric string included, as on DynamoDB): unwritable, nothing counted.
    let bad = write(&mut agg, &[("r5", r#"{"user":"u3","amount":"lots"}"#), ("r6", r#"{"user":"u3","amount":"2"}"#)]);
    assert_eq!(bad.unwritable.len(), 2);
    assert!(bad.unwritable[0].reason.contains("`amount`, which is missing or not a number"));
    assert_eq!(sqlite::read_aggregates(&db, "stats").unwrap().len(), 2);
}

#[test]
fn notifications_filter_by_predicate_and_carry_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let when = Predicate { field: "total".into(), op: PredicateOp::Gt, value: Some(toml::Value::Integer(100)) };
    let mut n = NotifyFile::new(
        dir.path(),
        "orders",
        NotifyConfig {
            topic: "big".into(),
            when: Some(when),
            attributes: vec!["currency".into(), "n".into()],
            group_by: None,
        },
    );
    let r = write(
        &mut n,
        &[("a", r#"{"total":100.5,"currency":"EUR","n":3}"#), ("b", r#"{"total":99}"#), ("c", r#"{"x":1}"#)],
    );
    assert_eq!((r.written, r.unchanged), (1, 2));
    let line: Value =
        serde_json::from_str(std::fs::read_to_string(dir.path().join("notifications.jsonl")).unwrap().trim()).unwrap();
    assert_eq!(line["topic"], "big");
    // As SNS gets them: `n` is a number, so a Number attribute, written as text.
    assert_eq!(
        line["attributes"],
        serde_json::json!({"currency":"EUR","n":"3","pipeline":"orders","weir_chain":"test"})
    );
    assert_eq!(line["record_id"], "a");
}

#[test]
fn objects_are_hive_partitioned_and_replays_rewrite_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    for format in [ObjectFormat::Jsonl, ObjectFormat::Csv] {
        let config = ObjectsConfig {
            bucket: "b".into(),
            prefix: "orders/".into(),
            partition: PartitionTemplate::parse("dt={date}/").unwrap(),
            format,
        };
        let mut o = ObjectFiles::new(dir.path(), config);
        let batch = [
            ("1", r#"{"date":"2024-05-01","a":1}"#),
            ("2", r#"{"date":"2024-05-02","a":"x,y"}"#),
            ("3", r#"{"date":"2024-05-01","b":true}"#),
        ];
        write(&mut o, &batch);
        write(&mut o, &batch);
        let ext = if format == ObjectFormat::Csv { "csv" } else { "jsonl" };
        let day1: Vec<_> = std::fs::read_dir(dir.path().join("objects/b/orders/dt=2024-05-01"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == ext))
            .collect();
        assert_eq!(day1.len(), 1, "one file per batch and partition, rewritten on replay");
        let text = std::fs::read_to_string(day1[0].path()).unwrap();
        if format == ObjectFormat::Csv {
            assert_eq!(text, "a,date,b\n1,2024-05-01,\n,2024-05-01,true\n", "columns in order of first appearance");
        } else {
            assert_eq!(text.lines().count(), 2);
        }
    }
}

fn example_runner(out: &Path) -> Runner {
    let chain = chain(vec![
        StageSpec::new("reshape", load(wasm::CSV_RESHAPE)).config("cast.amount", "float"),
        StageSpec::new("validate", load(wasm::VALIDATE_ORDER)),
        StageSpec::new("enrich", load(wasm::ENRICH_ORDER)).config("tax_rate", "0.2"),
    ]);
    let db = Database::open(out).unwrap();
    let agg = TableMode::Aggregate {
        group_by: "user_id".into(),
        counters: vec![
            Counter { name: "orders".into(), op: CounterOp::Count, field: None },
            Counter { name: "spend_cents".into(), op: CounterOp::Sum, field: Some("amount_cents".into()) },
        ],
    };
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(TableSink::new(db.clone(), table("orders", &["pk"], TableMode::PutIfAbsent)).unwrap()),
        Box::new(TableSink::new(db, table("users", &["user_id"], agg)).unwrap()),
    ];
    let dead_letter = Box::new(RejectedFile::new(out, "rejects"));
    Runner::new(chain, Outputs { sinks, dead_letter, io: Io::own().unwrap() }, 100)
}

fn run_file(runner: &mut Runner, path: &Path, s3_root: Option<&Path>) {
    let options = OpenOptions { s3_root: s3_root.map(Path::to_path_buf), ..Default::default() };
    runner.run(source::open_file(path, &options).unwrap(), |_| {}).unwrap();
}

fn rejected_lines(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("rejected.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_example_csv_is_conserved_and_replaying_it_changes_nothing() {
    let out = tempfile::tempdir().unwrap();
    let csv = Path::new("../examples/orders/data/orders.csv");
    let mut runner = example_runner(out.path());
    run_file(&mut runner, csv, None);
    let stats = runner.stats().clone();
    assert!(stats.is_conserved(), "{stats:?}");
    assert_eq!(stats.inputs, 10_002, "10,000 orders + a ragged row + a non-UTF-8 row");
    assert_eq!(stats.unreadable, 2);
    assert!(stats.rejected > 200 && stats.delivered > 9_000, "{stats:?}");
    let dead = rejected_lines(out.path());
    assert_eq!(dead.len() as u64, stats.rejected + stats.unreadable, "every reject is in the dead-letter file");
    let kinds: std::collections::BTreeSet<String> =
        dead.iter().map(|d| format!("{}/{}", d["stage"].as_str().unwrap(), d["kind"].as_str().unwrap())).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["reshape/plugin-reject", "source/unreadable", "validate/plugin-reject"]
    );
    let ragged = dead.iter().find(|d| d["reason"].as_str().unwrap().contains("expected 7 fields")).unwrap();
    assert_eq!(ragged["record"]["body"], "ord-ragged,user-0001,10.00");
    // A rejected record carries the input it came from when a stage had reshaped it.
    let validated = dead.iter().find(|d| d["stage"] == "validate").unwrap();
    assert!(validated["original"]["body"].as_str().unwrap().contains("\"amount\":\""), "{validated}");

    let db = Database::open(out.path()).unwrap();
    let orders = sqlite::count_items(&db, "orders").unwrap();
    let users = sqlite::read_aggregates(&db, "users").unwrap();
    let total: u64 = users.iter().map(|g| g.counters["orders"].parse::<u64>().unwrap()).sum();
    assert_eq!(orders, stats.delivered);
    assert_eq!(total, stats.delivered);

    // Replay the same file: the table and the aggregates do not change.
    let mut again = example_runner(out.path());
    run_file(&mut again, csv, None);
    assert_eq!(sqlite::count_items(&db, "orders").unwrap(), orders);
    assert_eq!(sqlite::read_aggregates(&db, "users").unwrap(), users);
}

#[test]
fn the_example_sqs_events_are_conserved() {
    let out = tempfile::tempdir().unwrap();
    let mut runner = example_runner(out.path());
    let mut files: Vec<_> =
        std::fs::read_dir("../examples/orders/data/sqs").unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    assert_eq!(files.len(), 10);
    for f in &files {
        run_file(&mut runner, f, None);
    }
    let stats = runner.stats();
    assert!(stats.is_conserved(), "{stats:?}");
    assert_eq!(stats.inputs, 10_000);
    assert!(stats.unreadable > 0, "non-JSON bodies are reported: {stats:?}");
    let dead = rejected_lines(out.path());
    assert!(dead.iter().any(|d| d["reason"].as_str().unwrap().starts_with("message body is not JSON")));
}

#[test]
fn replayed_lambda_payloads_sqs_and_s3_events() {
    let out = tempfile::tempdir().unwrap();
    let mut runner = example_runner(out.path());
    run_file(&mut runner, Path::new("tests/fixtures/sqs-event.json"), None);
    assert_eq!((runner.stats().inputs, runner.stats().delivered, runner.stats().unreadable), (2, 1, 1));

    let out = tempfile::tempdir().unwrap();
    let mut runner = example_runner(out.path());
    run_file(&mut runner, Path::new("tests/fixtures/s3-event.json"), Some(Path::new("tests/fixtures/s3root")));
    let stats = runner.stats();
    // 3 rows of the object (key URL-decoded: `incoming%2Forders+2024-05.csv`), 1 rejected
    // (XYZ), and the second object is missing: a clear failure for that object alone.
    assert_eq!((stats.inputs, stats.delivered, stats.rejected, stats.unreadable), (4, 2, 1, 1), "{stats:?}");
    let dead = rejected_lines(out.path());
    let missing = dead.iter().find(|d| d["kind"] == "unreadable").unwrap();
    assert_eq!(missing["source_id"], "s3://example-bucket/incoming/deleted-before-read.csv");
    let rejected = dead
        .iter()
        .find(|d| d["stage"] == "validate" && d["source_id"].as_str().unwrap().starts_with("s3://"))
        .unwrap();
    assert_eq!(rejected["source_id"], "s3://example-bucket/incoming/orders 2024-05.csv#4");
}

#[test]
fn s3_events_inside_sns_inside_sqs_are_unwrapped_and_test_events_skipped() {
    let out = tempfile::tempdir().unwrap();
    let mut runner = example_runner(out.path());
    run_file(&mut runner, Path::new("tests/fixtures/sqs-sns-s3-event.json"), Some(Path::new("tests/fixtures/s3root")));
    let stats = runner.stats();
    // The test event is nothing; the SNS-wrapped S3 event is the object's 3 rows (1 invalid);
    // the plain message is one order.
    assert_eq!((stats.inputs, stats.delivered, stats.rejected, stats.unreadable), (4, 3, 1, 0), "{stats:?}");
    let db = Database::open(out.path()).unwrap();
    assert_eq!(sqlite::count_items(&db, "orders").unwrap(), 3);
    let dead = rejected_lines(out.path());
    assert_eq!(dead[0]["source_id"], "s3://example-bucket/incoming/orders 2024-05.csv#4");
}

#[test]
fn envelopes() {
    use weir_host::source::lambda::{Envelope, envelope};
    assert_eq!(envelope(r#"{"Event":"s3:TestEvent"}"#), Envelope::TestEvent);
    assert_eq!(envelope(r#"{"a":1}"#), Envelope::Plain);
    assert_eq!(envelope("not json"), Envelope::Plain);
    let record = serde_json::json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "EXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {}, "s3": {"bucket": {"name": "b"}, "object": {"key": "a%2Fb+c.csv"}}
    });
    let notification = |records: serde_json::Value| serde_json::json!({"Type": "Notification", "Message": serde_json::json!({"Records": records}).to_string()});
    let sns = notification(serde_json::json!([record]));
    let Envelope::S3(objects) = envelope(&sns.to_string()) else { panic!() };
    assert_eq!((objects[0].bucket.as_str(), objects[0].key.as_str()), ("b", "a/b c.csv"));
    // S3 records without a bucket: unreadable, with the reason, not a record.
    let bare = notification(serde_json::json!([{"eventSource": "aws:s3", "s3": {"object": {"key": "k"}}}]));
    let Envelope::Malformed(reason) = envelope(&bare.to_string()) else { panic!() };
    assert!(reason.contains("cannot be read") && reason.contains("missing field"), "{reason}");
    let plain_sns = serde_json::json!({"Type":"Notification","Message":"{\"order\":1}"});
    assert_eq!(
        envelope(&plain_sns.to_string()),
        Envelope::Notification(r#"{"order":1}"#.into()),
        "an SNS notification of a record: the message is the record"
    );
}

/// A reader that never ends: if a source buffered its input, taking a few items would hang or
/// exhaust memory.
struct Endless {
    header: Vec<u8>,
    row: Vec<u8>,
    pos: usize,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let src = if self.pos < self.header.len() {
                &self.header[self.pos..]
            } else {
                let off = (self.pos - self.header.len()) % self.row.len();
                &self.row[off..]
            };
            let k = src.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&src[..k]);
            n += k;
            self.pos += k;
        }
        Ok(n)
    }
}

#[test]
fn sources_stream_and_never_read_a_whole_input() {
    let csv = Endless { header: b"a,b\r\n".to_vec(), row: b"1,\"two\r\nlines\"\r\n".to_vec(), pos: 0 };
    let items: Vec<SourceItem> =
        source::csv::read(std::io::BufReader::new(csv), "endless.csv".into(), vec![], 1 << 20).take(10_000).collect();
    assert_eq!(items.len(), 10_000);
    let lines = Endless { header: Vec::new(), row: b"{\"a\":1}\n".to_vec(), pos: 0 };
    assert_eq!(
        source::json::read_lines(std::io::BufReader::new(lines), "e.jsonl".into(), 1 << 20).take(10_000).count(),
        10_000
    );
    let array = Endless { header: b"[".to_vec(), row: b"{\"a\":1},".to_vec(), pos: 0 };
    assert_eq!(source::json::read_array(array, "e.json".into()).take(10_000).count(), 10_000);
}
