//! The DynamoDB table sink on the real wire protocol. `put` and `put-if-absent` run against
//! dynalite (npm), which behaves like DynamoDB where moto does not (concurrent updates, the
//! 25-item batch limit, conditional writes, the 400 KB limit). Aggregates use
//! `TransactWriteItems`, which dynalite does not implement, so they run against moto server
//! (PyPI) started one-request-at-a-time (see `emulators`), which makes its updates atomic as
//! DynamoDB's are, so concurrent redelivery is asserted too. Each test starts its own emulator
//! on a free loopback port and stops it; where one cannot be installed the test says SKIPPED.

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
        self.rt.block_on(sink.write(&Delivery { emitted: records, chain: "test" })).expect("write")
    }
}

#[test]
fn put_writes_in_groups_of_25_and_the_last_duplicate_wins() {
    let Some(db) = dynalite() else { return };
    db.create_table("orders", "pk");
    let mut sink = db.sink("orders", "pk", TableMode::Put);
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
    let mut sink = db.sink("big", "pk", TableMode::Put);
    let big = format!(r#"{{"pk":"k","blob":"{}"}}"#, "x".repeat(410 * 1024));
    let report = db.write(&mut sink, &emitted(&[("big".into(), big), ("ok".into(), r#"{"pk":"k2"}"#.into())]));
    assert_eq!(report.written, 1);
    assert!(
        report.unwritable[0].reason.contains("over DynamoDB's 409600-byte limit"),
        "{}",
        report.unwritable[0].reason
    );
}
