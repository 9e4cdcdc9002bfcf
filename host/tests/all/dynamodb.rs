//! The DynamoDB table sink on the real wire protocol. `put` and `put-if-absent` run against
//! dynalite (npm), which behaves like DynamoDB where moto does not (concurrent updates, the
//! 25-item batch limit, conditional writes, the 400 KB limit). Aggregates use
//! `TransactWriteItems`, which dynalite does not implement, so they run against moto server
//! (PyPI) started one-request-at-a-time (see `emulators`), which makes its updates atomic as
//! DynamoDB's are, so concurrent redelivery is asserted too. Each test starts its own emulator
//! on a free loopback port and stops it; where one cannot be installed the test says SKIPPED.
//! The last tests run one suite of cases against both twins, the local SQLite table and
//! DynamoDB, and require the same outcome of each.

use aws_sdk_dynamodb::Client;
use serde_json::Value;
use weir_host::Record;
use weir_host::pipeline::config::{Counter, CounterOp, TableConfig, TableMode};
use weir_host::report::Emitted;
use weir_host::sink::table::dynamodb::{DynamoTable, from_attribute};
use weir_host::sink::{Delivery, Sink};

use weir_test_artifacts::emulators::{self, Process};

struct Emulator {
    client: Client,
    rt: tokio::runtime::Runtime,
    _process: Process,
}

/// dynalite, or `None` after saying SKIPPED.
fn dynalite() -> Option<Emulator> {
    connect(emulators::dynalite()?)
}

/// moto server, or `None` after saying SKIPPED.
fn moto() -> Option<Emulator> {
    connect(emulators::moto()?)
}

fn connect(process: Process) -> Option<Emulator> {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let config = rt.block_on(emulators::sdk_config(&process.endpoint(), 3));
    Some(Emulator { client: Client::new(&config), rt, _process: process })
}

impl Emulator {
    fn create_table(&self, name: &str, key: &str) {
        self.rt.block_on(emulators::create_table(&self.client, name, key));
    }

    fn sink(&self, name: &str, key: &str, mode: TableMode) -> DynamoTable {
        let config = TableConfig { name: name.into(), key: vec![key.into()], mode };
        DynamoTable::new(self.client.clone(), name, config)
    }

    fn scan(&self, table: &str) -> Vec<Value> {
        let out = self.rt.block_on(self.client.scan().table_name(table).send()).expect("scan");
        let mut items: Vec<Value> = out
            .items()
            .iter()
            .map(|i| Value::Object(i.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect()))
            .collect();
        items.sort_by_key(|v| v.to_string());
        items
    }
}

fn emitted(bodies: &[(String, String)]) -> Vec<Emitted> {
    bodies
        .iter()
        .enumerate()
        .map(|(i, (id, b))| Emitted { origin: i, record: Record::new(id.clone(), b.clone()) })
        .collect()
}

impl Emulator {
    /// One write, driven on the emulator's runtime (where the client's connections live).
    fn write(&self, sink: &mut DynamoTable, records: &[Emitted]) -> weir_host::sink::SinkReport {
        self.rt
            .block_on(sink.write(&Delivery { emitted: records, chain: "test", parts: Default::default() }))
            .expect("write")
    }
}

#[test]
fn put_writes_in_groups_of_25_and_the_last_duplicate_wins() {
    let Some(db) = dynalite() else { return };
    db.create_table("orders", "pk");
    let mut sink = db.sink("orders", "pk", TableMode::Put { order_by: None });
    let mut bodies: Vec<(String, String)> = (0..60)
        .map(|i| (format!("r{i}"), format!(r#"{{"pk":"k{i}","amount":{i}.10,"tags":["a"],"n":null}}"#)))
        .collect();
    bodies.push(("dup".into(), r#"{"pk":"k0","amount":99}"#.into()));
    bodies.push(("nokey".into(), r#"{"amount":1}"#.into()));
    let report = db.write(&mut sink, &emitted(&bodies));
    // The superseded duplicate counts as written: its item was written, then overwritten.
    assert_eq!((report.written, report.unchanged, report.unwritable.len()), (61, 0, 1));
    assert_eq!(report.unwritable[0].index, 61);
    let items = db.scan("orders");
    assert_eq!(items.len(), 60);
    let k0 = items.iter().find(|i| i["pk"] == "k0").unwrap();
    assert_eq!(k0["amount"], 99);
    let k7 = items.iter().find(|i| i["pk"] == "k7").unwrap();
    assert_eq!(k7["amount"].to_string(), "7.1", "numbers stay exact decimals");
    assert_eq!(k7["tags"], serde_json::json!(["a"]));
}

/// One item DynamoDB refuses (a key of the wrong type for the table) is dead-lettered alone with
/// DynamoDB's message; its 24 neighbours in the same BatchWriteItem group are written, not
/// failed with it until they reach the DLQ.
#[test]
fn an_item_dynamodb_refuses_is_unwritable_alone_and_its_group_is_written() {
    let Some(db) = dynalite() else { return };
    db.create_table("typed", "pk");
    let mut sink = db.sink("typed", "pk", TableMode::Put { order_by: None });
    let mut bodies: Vec<(String, String)> =
        (0..25).map(|i| (format!("r{i}"), format!(r#"{{"pk":"k{i}","v":{i}}}"#))).collect();
    // The table's key is a string; this record's is a number.
    bodies[7] = ("bad".into(), r#"{"pk":7,"v":7}"#.into());
    let report = db.write(&mut sink, &emitted(&bodies));
    assert_eq!((report.written, report.failed.len(), report.unwritable.len()), (24, 0, 1), "{report:?}");
    assert_eq!(report.unwritable[0].index, 7);
    assert!(report.unwritable[0].reason.contains("DynamoDB refused the item: ValidationException"), "{report:?}");
    assert_eq!(db.scan("typed").len(), 24);
}

#[test]
fn put_if_absent_treats_a_redelivery_as_done() {
    let Some(db) = dynalite() else { return };
    db.create_table("first", "pk");
    let mut sink = db.sink("first", "pk", TableMode::PutIfAbsent);
    let first = emitted(&[("a".into(), r#"{"pk":"k","v":1}"#.into())]);
    assert_eq!(db.write(&mut sink, &first).written, 1);
    let again = emitted(&[("a".into(), r#"{"pk":"k","v":2}"#.into())]);
    assert_eq!(db.write(&mut sink, &again).unchanged, 1);
    assert_eq!(db.scan("first")[0]["v"], 1);
}

/// Conditional puts that fail for now are sent again by the sink itself: here the SDK makes one
/// attempt only (as when its retry quota is spent, which a redelivered batch of conditional
/// failures drains) and a fifth of requests meet a fault; every record is still written once.
#[test]
fn put_if_absent_sends_again_what_failed_for_now() {
    let Some(dynalite) = emulators::dynalite() else { return };
    let Some(proxy) = emulators::fault_proxy_holding(dynalite.port, 0.2, 7, 0.3) else { return };
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let direct = Client::new(&rt.block_on(emulators::sdk_config(&dynalite.endpoint(), 3)));
    rt.block_on(emulators::create_table(&direct, "first", "pk"));
    let timeouts =
        aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(std::time::Duration::from_millis(200));
    let faulty = rt.block_on(emulators::sdk_config(&proxy.endpoint(), 1)).into_builder().timeout_config(timeouts.build());
    let db = Emulator { client: Client::new(&faulty.build()), rt, _process: dynalite };
    let mut sink = db.sink("first", "pk", TableMode::PutIfAbsent);
    let bodies: Vec<(String, String)> = (0..60).map(|i| (format!("m-{i}"), format!(r#"{{"pk":"k{i}","v":{i}}}"#))).collect();
    let report = db.write(&mut sink, &emitted(&bodies));
    assert!(report.failed.is_empty(), "{report:?}");
    // A put applied before its answer was lost finds its own item on the retry.
    assert_eq!(report.written + report.unchanged, 60, "{report:?}");
    let stored = Emulator { client: direct, rt: tokio::runtime::Runtime::new().expect("tokio"), _process: proxy };
    let items = stored.scan("first");
    assert_eq!(items.len(), 60);
    assert!(items.iter().all(|i| i["pk"].as_str() == Some(&format!("k{}", i["v"]))), "{items:?}");
}

#[test]
fn aggregates_count_each_record_once_however_often_it_is_delivered() {
    let Some(db) = moto() else { return };
    db.create_table("stats", "user_id");
    let mode = TableMode::Aggregate {
        group_by: "user_id".into(),
        counters: vec![
            Counter { name: "orders".into(), op: CounterOp::Count, field: None },
            Counter { name: "spend".into(), op: CounterOp::Sum, field: Some("amount".into()) },
        ],
    };
    let bodies: Vec<(String, String)> =
        (0..40).map(|i| (format!("m-{i}"), format!(r#"{{"user_id":"u{}","amount":0.1}}"#, i % 4))).collect();
    let batch = emitted(&bodies);
    let mut sink = db.sink("stats", "user_id", mode.clone());
    assert_eq!(db.write(&mut sink, &batch).written, 40);
    // Redelivered whole, and half of it again with new records.
    assert_eq!(db.write(&mut sink, &batch).unchanged, 40);
    let mut mixed = batch[..20].to_vec();
    mixed.push(Emitted { origin: 20, record: Record::new("m-new", r#"{"user_id":"u0","amount":2.5}"#) });
    let r = db.write(&mut sink, &mixed);
    assert_eq!((r.written, r.unchanged), (1, 20));
    let groups: Vec<Value> =
        db.scan("stats").into_iter().filter(|i| !i["user_id"].as_str().unwrap().starts_with("weir-seen#")).collect();
    assert_eq!(groups.len(), 4);
    for g in &groups {
        let extra = if g["user_id"] == "u0" { 1 } else { 0 };
        assert_eq!(g["orders"], 10 + extra);
        // Compared as exact decimals: moto writes 1 as "1.0" (DynamoDB would normalise it).
        let spend = rust_decimal::Decimal::from_str_exact(&g["spend"].to_string()).unwrap().normalize();
        assert_eq!(spend.to_string(), if extra == 1 { "3.5" } else { "1" }, "ten times 0.1 is exactly 1");
    }
}

#[test]
fn aggregates_delivered_concurrently_by_two_consumers_count_once() {
    let Some(db) = moto() else { return };
    db.create_table("stats", "user_id");
    let mode = TableMode::Aggregate {
        group_by: "user_id".into(),
        counters: vec![Counter { name: "orders".into(), op: CounterOp::Count, field: None }],
    };
    // 120 records in 3 groups: more than one transaction's worth of markers per group.
    let bodies: Vec<(String, String)> =
        (0..360).map(|i| (format!("m-{i}"), format!(r#"{{"user_id":"u{}"}}"#, i % 3))).collect();
    let batch = emitted(&bodies);
    let reports: Vec<weir_host::sink::SinkReport> = std::thread::scope(|scope| {
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let mut sink = db.sink("stats", "user_id", mode.clone());
                let (batch, db) = (&batch, &db);
                scope.spawn(move || db.write(&mut sink, batch))
            })
            .collect();
        consumers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for r in &reports {
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(r.written + r.unchanged, 360);
    }
    assert_eq!(reports[0].written + reports[1].written, 360, "each record counted by exactly one consumer");
    let groups: Vec<Value> =
        db.scan("stats").into_iter().filter(|i| !i["user_id"].as_str().unwrap().starts_with("weir-seen#")).collect();
    assert_eq!(groups.len(), 3);
    for g in &groups {
        assert_eq!(g["orders"], 120, "{g}");
    }
}

#[test]
fn items_over_400_kb_are_unwritable_with_their_size() {
    let Some(db) = dynalite() else { return };
    db.create_table("big", "pk");
    let mut sink = db.sink("big", "pk", TableMode::Put { order_by: None });
    let big = format!(r#"{{"pk":"k","blob":"{}"}}"#, "x".repeat(410 * 1024));
    let report = db.write(&mut sink, &emitted(&[("big".into(), big), ("ok".into(), r#"{"pk":"k2"}"#.into())]));
    assert_eq!(report.written, 1);
    assert!(
        report.unwritable[0].reason.contains("over DynamoDB's 409600-byte limit"),
        "{}",
        report.unwritable[0].reason
    );
}

// ---------------------------------------------------------------------------------------------
// The twins: one suite of cases, run against the local table (SQLite) and DynamoDB (dynalite for
// item tables, moto for aggregates). Both must file every record the same way (written,
// unchanged, or unwritable with the same reason) and end with the same content, so that a local
// run predicts production (sink::table::rules).

use std::collections::BTreeMap;

use futures_util::FutureExt;
use weir_host::sink::SinkReport;
use weir_host::sink::table::sqlite::{self, Database, TableSink};

/// How a backend filed a batch: written and unchanged counts, and each unwritable record.
type Filed = (usize, usize, Vec<(usize, String)>);

fn filed(report: SinkReport) -> Filed {
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let mut unwritable: Vec<(usize, String)> = report.unwritable.into_iter().map(|u| (u.index, u.reason)).collect();
    unwritable.sort();
    (report.written, report.unchanged, unwritable)
}

fn local_twin(dir: &std::path::Path, config: TableConfig) -> (Database, TableSink) {
    let db = Database::open(dir).unwrap();
    let sink = TableSink::new(db.clone(), config).unwrap();
    (db, sink)
}

fn write_local(sink: &mut TableSink, records: &[Emitted]) -> SinkReport {
    let delivery = Delivery { emitted: records, chain: "test", parts: Default::default() }; // as Emulator::write
    sink.write(&delivery).now_or_never().expect("local writes complete when called").unwrap()
}

#[test]
fn item_tables_file_every_record_alike_locally_and_on_dynamodb() {
    let Some(db) = dynalite() else { return };
    db.create_table("twins", "pk");
    let big = format!(r#"{{"pk":"big","v":"{}"}}"#, "x".repeat(410 * 1024));
    let bodies: Vec<(String, String)> = [
        r#"{"pk":"a","v":1}"#,
        r#"{"pk":"b","v":{"nested":[1,"two",null]}}"#,
        r#"{"pk":""}"#,
        r#"{"pk":true}"#,
        "[1]",
        big.as_str(),
        r#"{"pk":"a","v":3}"#,
    ]
    .iter()
    .enumerate()
    .map(|(i, b)| (format!("r{i}"), b.to_string()))
    .collect();
    let batch = emitted(&bodies);
    let config = TableConfig { name: "twins".into(), key: vec!["pk".into()], mode: TableMode::PutIfAbsent };
    let dir = tempfile::tempdir().unwrap();
    let (local_db, mut local) = local_twin(dir.path(), config.clone());
    let mut remote = db.sink("twins", "pk", config.mode.clone());

    for round in ["first delivery", "redelivery"] {
        let l = filed(write_local(&mut local, &batch));
        let r = filed(db.write(&mut remote, &batch));
        assert_eq!(l, r, "{round}: local and DynamoDB filed the batch differently");
        assert_eq!(l.2.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [2, 3, 4, 5], "{round}");
    }
    // The same items, whatever the backend.
    let remote_items: BTreeMap<String, Value> = db
        .scan("twins")
        .into_iter()
        .map(|mut item| {
            item.as_object_mut().unwrap().remove("weir_chain");
            (item["pk"].as_str().unwrap().to_string(), item)
        })
        .collect();
    assert_eq!(remote_items.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(sqlite::count_items(&local_db, "twins").unwrap(), 2);
    for (pk, item) in &remote_items {
        let local_item: Value =
            serde_json::from_str(&sqlite::get_item(&local_db, "twins", pk, "").unwrap().unwrap()).unwrap();
        assert_eq!(&local_item, item, "item {pk}");
    }
}

#[test]
fn aggregates_file_every_record_alike_locally_and_on_dynamodb() {
    let Some(db) = moto() else { return };
    db.create_table("twin_stats", "g");
    let mode = TableMode::Aggregate {
        group_by: "g".into(),
        counters: vec![
            Counter { name: "orders".into(), op: CounterOp::Count, field: None },
            Counter { name: "spend".into(), op: CounterOp::Sum, field: Some("amount".into()) },
        ],
    };
    let bodies: Vec<(String, String)> = [
        r#"{"g":"u1","amount":2.5}"#,
        r#"{"g":"u1","amount":"2.5"}"#,
        r#"{"g":true,"amount":1}"#,
        r#"{"g":"u2","amount":1}"#,
        r#"{"amount":1}"#,
        r#"{"g":"u1","amount":0.25}"#,
    ]
    .iter()
    .enumerate()
    .map(|(i, b)| (format!("m{i}"), b.to_string()))
    .collect();
    let mut bodies = bodies;
    // A record id too long for a marker's key as it is (an object key of kilobytes): counted,
    // its marker named by the id's hash. A group too long for DynamoDB's key: unwritable in both.
    bodies.push((format!("s3://in/{}#2", "k".repeat(3000)), r#"{"g":"u2","amount":1}"#.into()));
    bodies.push(("m7".into(), format!(r#"{{"g":"{}","amount":1}}"#, "g".repeat(2049))));
    let batch = emitted(&bodies);
    let config = TableConfig { name: "twin_stats".into(), key: vec!["g".into()], mode: mode.clone() };
    let dir = tempfile::tempdir().unwrap();
    let (local_db, mut local) = local_twin(dir.path(), config);
    let mut remote = db.sink("twin_stats", "g", mode);

    for round in ["first delivery", "redelivery"] {
        let l = filed(write_local(&mut local, &batch));
        let r = filed(db.write(&mut remote, &batch));
        assert_eq!(l, r, "{round}: local and DynamoDB filed the batch differently");
        assert_eq!(l.2.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 2, 4, 7], "{round}");
        assert!(l.2[3].1.contains("over DynamoDB's 2048-byte limit"), "{round}: {:?}", l.2[3]);
    }
    let decimal = |v: &Value| {
        let text = v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
        rust_decimal::Decimal::from_str_exact(&text).unwrap().normalize().to_string()
    };
    let remote_groups: BTreeMap<String, (String, String)> = db
        .scan("twin_stats")
        .into_iter()
        .filter(|i| !i["g"].as_str().unwrap().starts_with("weir-seen#"))
        .map(|g| (g["g"].as_str().unwrap().to_string(), (decimal(&g["orders"]), decimal(&g["spend"]))))
        .collect();
    let local_groups: BTreeMap<String, (String, String)> = sqlite::read_aggregates(&local_db, "twin_stats")
        .unwrap()
        .into_iter()
        .map(|g| {
            let c = |name: &str| decimal(&Value::String(g.counters[name].clone()));
            (g.key.clone(), (c("orders"), c("spend")))
        })
        .collect();
    assert_eq!(local_groups, remote_groups);
    assert_eq!(local_groups["u1"], ("2".to_string(), "2.75".to_string()));
    assert_eq!(local_groups["u2"], ("2".to_string(), "2".to_string()), "the long-id record counted once");
}

/// `put` with `order_by`: a redelivered older record never overwrites a newer one, in one batch
/// the newest record of a key wins, and both twins file every record alike.
#[test]
fn put_with_order_by_keeps_the_newest_record_locally_and_on_dynamodb() {
    let Some(db) = dynalite() else { return };
    db.create_table("latest", "pk");
    let mode = TableMode::Put { order_by: Some("at".into()) };
    let config = TableConfig { name: "latest".into(), key: vec!["pk".into()], mode: mode.clone() };
    let dir = tempfile::tempdir().unwrap();
    let (local_db, mut local) = local_twin(dir.path(), config);
    let mut remote = db.sink("latest", "pk", mode);
    let batch = |bodies: &[&str]| -> Vec<Emitted> {
        emitted(&bodies.iter().enumerate().map(|(i, b)| (format!("r{i}"), b.to_string())).collect::<Vec<_>>())
    };
    let rounds = [
        // a: the newer (2) wins over the older (1) in the same batch; b is new; one record has
        // no ordering field.
        (
            batch(&[
                r#"{"pk":"a","at":2,"v":"a2"}"#,
                r#"{"pk":"a","at":1,"v":"a1"}"#,
                r#"{"pk":"b","at":10,"v":"b10"}"#,
                r#"{"pk":"c"}"#,
            ]),
            (2, 1, vec![3]),
        ),
        // A redelivery of a's older record, b's older one (9 < 10 by value, not by text), and b's
        // newer one: only the last is written.
        (
            batch(&[
                r#"{"pk":"a","at":1,"v":"a1"}"#,
                r#"{"pk":"b","at":9,"v":"b9"}"#,
                r#"{"pk":"b","at":11,"v":"b11"}"#,
            ]),
            (1, 2, vec![]),
        ),
        // The same record again (equal order): rewritten, the same item.
        (batch(&[r#"{"pk":"b","at":11,"v":"b11"}"#]), (1, 0, vec![])),
    ];
    for (n, (records, (written, unchanged, unwritable))) in rounds.iter().enumerate() {
        let l = filed(write_local(&mut local, records));
        let r = filed(db.write(&mut remote, records));
        assert_eq!(l, r, "round {n}: local and DynamoDB filed the batch differently");
        assert_eq!(
            (l.0, l.1, l.2.iter().map(|(i, _)| *i).collect::<Vec<_>>()),
            (*written, *unchanged, unwritable.clone()),
            "round {n}"
        );
    }
    let remote_items: BTreeMap<String, String> = db
        .scan("latest")
        .into_iter()
        .map(|i| (i["pk"].as_str().unwrap().to_string(), i["v"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(remote_items, BTreeMap::from([("a".into(), "a2".into()), ("b".into(), "b11".into())]));
    for (pk, v) in &remote_items {
        let local_item: Value =
            serde_json::from_str(&sqlite::get_item(&local_db, "latest", pk, "").unwrap().unwrap()).unwrap();
        assert_eq!(local_item["v"], v.as_str(), "item {pk}");
    }
}
