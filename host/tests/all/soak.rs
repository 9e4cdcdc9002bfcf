//! The chaos soak (issue #15): the example's chain and the AWS sinks, through the fault proxy to
//! moto, on 100,000 orders (half as SQS messages, half as rows of CSV objects in S3), with
//!
//! - 5 % of AWS requests faulted in every way the proxy injects (throttling, 500s, dropped
//!   connections, lost answers, slow answers past the attempt timeout, failed entries inside 200
//!   answers, resets in the middle of a GetObject body);
//! - a deadline that cuts batches at random: cut objects go on in continuation messages (as
//!   the Lambda sends them), other cut messages are redelivered;
//! - redeliveries of done events (SQS is at-least-once) and of every failed message;
//! - overwritten objects: keys uploaded twice to a versioned bucket, each event naming its version.
//!
//! Then, against ground truth computed from the inputs: every good order's item exists once with
//! its content, every aggregate is exact, every reject is in the dead-letter queue with its reason
//! (standard SQS is at-least-once: repeats are counted, never a missing or an unknown one), nothing
//! else is in the tables, and no checkpoint is left behind.
//!
//! Seeded (`WEIR_SOAK_SEED`, default 15); `WEIR_SOAK_RECORDS` sets the size (default 100,000).
//! The long mode before a release, `WEIR_SOAK_MINUTES=60`, repeats the soak on new seeds until
//! that many minutes have passed (`bash tests/run.sh --long` runs just that).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use serde_json::{Value, json};
use weir_host::source::lambda::{RESUME_ATTRIBUTE, SqsMessage};
use weir_test_artifacts::emulators;

use crate::flows::{World, assert_tables, csv_of, faults_injected, is_good, messages, order, orders_of};

/// The example's chain with its table sinks and dead-letter queue (notifications and files are
/// proven by the flows; here every effect is checked against ground truth).
const PIPELINE: &str = r#"
name = "orders"
batch_size = 500

[[stages]]
name = "reshape"
plugin = "../../plugins/csv-reshape"
[stages.config]
"cast.amount" = "float"
drop = "note_internal"

[[stages]]
name = "validate"
plugin = "../../plugins/validate-order"

[[stages]]
name = "enrich"
plugin = "../../plugins/enrich-order"
[stages.config]
tax_rate = "0.2"
pk_fields = "user_id,order_id"

[[sinks.table]]
name = "orders"
key = ["pk"]
mode = "put-if-absent"

[[sinks.table]]
name = "user_stats"
key = ["user_id"]
mode = "aggregate"
group_by = "user_id"
counters = [
  { name = "orders", op = "count" },
  { name = "spend_cents", op = "sum", field = "amount_cents" },
]

[[sinks.table]]
name = "currency_stats"
key = ["currency"]
mode = "aggregate"
group_by = "currency"
counters = [
  { name = "orders", op = "count" },
  { name = "total", op = "sum", field = "total" },
]

[dead_letter]
queue = "orders-rejects"
"#;

/// A seeded xorshift generator, shared by the deadline and the scheduler.
#[derive(Clone)]
struct Rng(Arc<AtomicU64>);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(Arc::new(AtomicU64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)))
    }

    /// Uniform in [0, 1).
    fn next(&self) -> f64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
#[ignore = "issue #15: exact at 2,000 and 10,000 records (about 2 min), but the deadline does not yet cut any batch, so its last check fails; run with `-- --ignored soak`"]
fn chaos_soak_every_record_exactly_once_against_ground_truth() {
    let seed = env_number("WEIR_SOAK_SEED", 15);
    let records = env_number("WEIR_SOAK_RECORDS", 100_000) as usize;
    let minutes = env_number("WEIR_SOAK_MINUTES", 0);
    let started = Instant::now();
    let mut round = 0;
    loop {
        if !soak(seed + round, records) {
            return; // no emulator here (skipped, said by the harness)
        }
        round += 1;
        if started.elapsed() >= Duration::from_secs(minutes * 60) {
            eprintln!("soak: {round} round(s) of {records} records in {:?}, every one exact", started.elapsed());
            return;
        }
    }
}

/// One soak; `false` when the emulators are not installed.
fn soak(seed: u64, records: usize) -> bool {
    let t0 = Instant::now();
    let Some(world) = World::with_pipeline(PIPELINE) else { return false };
    let Some(proxy) = emulators::fault_proxy_holding(world._moto.port, 0.05, seed, 3.0) else { return false };
    let rng = Rng::new(seed);
    let s3 = &world.direct.s3;

    // Half the orders as SQS messages, half as rows of ten object versions: four keys uploaded
    // twice (a versioned bucket; each event names its version) and two uploaded once.
    let sqs_orders = records / 2;
    let per_object = (records - sqs_orders) / 10;
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    let versioning = s3.put_bucket_versioning().bucket("orders-incoming").versioning_configuration(enabled);
    world.rt.block_on(versioning.send()).expect("versioning");
    let mut all: Vec<Value> = (0..sqs_orders).map(order).collect();
    let mut object_events = Vec::new();
    for v in 0..10 {
        let key = format!("soak/orders-{}.csv", if v < 8 { v / 2 } else { v - 4 });
        let first = sqs_orders + v * per_object;
        let csv = csv_of((first..first + per_object).map(order));
        all.extend(orders_of(&csv));
        let put = s3.put_object().bucket("orders-incoming").key(&key).body(ByteStream::from(csv.into_bytes()));
        let version = world.rt.block_on(put.send()).expect("upload").version_id().expect("a version").to_string();
        let event = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "orders-incoming"}, "object": {"key": key, "versionId": version}}}]});
        object_events
            .push(json!({"messageId": format!("s3-{v}"), "body": event.to_string(), "eventSource": "aws:sqs"}));
    }
    // Events of up to 500 messages, the object events among them.
    let mut bodies: Vec<Value> = (0..sqs_orders)
        .map(|i| json!({"messageId": format!("msg-{i:06}"), "body": order(i).to_string(), "eventSource": "aws:sqs"}))
        .collect();
    for (n, e) in object_events.into_iter().enumerate() {
        bodies.insert((n * 997) % (bodies.len() + 1), e);
    }
    let mut pending: VecDeque<Vec<SqsMessage>> = bodies.chunks(500).map(|c| messages(c.to_vec())).collect();

    // The consumer, through the proxy, with attempt timeouts shorter than a slow answer (it is
    // retried while the first attempt is still applied) but well above the emulator's queueing
    // (moto applies one request at a time, and a batch has a hundred puts in flight), checkpoints
    // in S3, and a deadline that runs out before 10 % of batches.
    let (mut runner, objects) = world.faulty_consumer(&proxy, Duration::from_secs(2));
    let deadline = rng.clone();
    runner.set_deadline(Some(Box::new(move || deadline.next() < 0.1)));

    let (mut runs, mut failed, mut cut, mut again) = (0usize, 0usize, 0usize, 0usize);
    while let Some(event) = pending.pop_front() {
        runs += 1;
        assert!(runs < 20 * (records / 500 + 10), "still failing after {runs} runs: {} events left", pending.len());
        let run_started = Instant::now();
        let outcome = runner.run_sqs_event(&event, &objects).expect("runner");
        if runs % 20 == 0 {
            eprintln!(
                "soak: run {runs} of {} messages in {:?} ({} failed, {} cut); {} events pending, {:?} in",
                event.len(),
                run_started.elapsed(),
                outcome.failed.len(),
                outcome.cut.len(),
                pending.len(),
                t0.elapsed()
            );
        }
        // Cut objects go on in a continuation message, as the Lambda sends them.
        let mut redeliver: Vec<SqsMessage> = Vec::new();
        for m in &event {
            let id = m.message_id.clone().unwrap_or_default();
            if let Some(resume) = outcome.cut.get(&id) {
                cut += 1;
                let mut next = json!({"messageId": format!("{id}+c{runs}"), "body": m.body, "eventSource": "aws:sqs",
                    "messageAttributes": {RESUME_ATTRIBUTE: {"stringValue": serde_json::to_string(resume).unwrap(),
                    "dataType": "String"}}});
                next["attributes"] = json!({"ApproximateReceiveCount": "1"});
                redeliver.extend(messages(vec![next]));
                runner.clear_checkpoint(&id);
            } else if outcome.failed.contains_key(&id) {
                failed += 1;
                let mut m = m.clone();
                let receives = m.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse::<u32>().ok());
                m.attributes.insert("ApproximateReceiveCount".into(), (receives.unwrap_or(1) + 1).to_string());
                redeliver.push(m);
            }
        }
        if !redeliver.is_empty() {
            pending.push_back(redeliver);
        }
        // At-least-once: now and then a done event comes back whole.
        if rng.next() < 0.03 {
            again += 1;
            pending.push_back(event);
        }
    }
    let stats = runner.stats().clone();
    assert!(stats.is_conserved(), "{stats:?}");

    // Ground truth: every good order once, exact aggregates, no other group.
    assert_tables(&world, &all);
    assert_eq!(world.groups("user_stats", "user_id").len(), 5);
    assert_eq!(world.groups("currency_stats", "currency").len(), 3);
    // Every reject in the dead-letter queue with its reason; repeats are the queue's.
    let mut rejects: BTreeMap<String, usize> = BTreeMap::new();
    for m in drain(&world, &world.dlq_url) {
        let attrs = m.message_attributes().expect("a dead letter's attributes");
        let attr = |k: &str| attrs.get(k).and_then(|a| a.string_value()).unwrap_or_default().to_string();
        assert_eq!((attr("stage").as_str(), attr("kind").as_str()), ("validate", "plugin-reject"), "{m:?}");
        assert!(attr("reason").contains("currency"), "{}", attr("reason"));
        let body: Value = serde_json::from_str(m.body().unwrap_or_default()).expect("a dead letter's body");
        *rejects.entry(body["order_id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    let bad: BTreeSet<String> =
        all.iter().filter(|o| !is_good(o)).map(|o| o["order_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(rejects.keys().cloned().collect::<BTreeSet<_>>(), bad, "every reject, and nothing else");
    let repeats: usize = rejects.values().map(|n| n - 1).sum();
    // No checkpoint outlives its unit.
    let listed = world.direct.s3.list_objects_v2().bucket("orders-processed").prefix("weir-checkpoints/");
    let left = world.rt.block_on(listed.send()).expect("list checkpoints").key_count().unwrap_or(0);
    assert_eq!(left, 0, "checkpoints left behind");

    let faults = faults_injected(&proxy);
    eprintln!(
        "soak seed {seed}: {} records ({} good) in {:?}; {runs} event runs, {failed} messages failed and \
         redelivered, {cut} cut and continued, {again} done events redelivered; {repeats} repeated dead \
         letters; faults injected: {faults}",
        all.len(),
        all.len() - bad.len(),
        t0.elapsed()
    );
    assert!(failed > 0 && cut > 0 && again > 0, "the soak must meet failures, cuts and redeliveries");
    for kind in ["throttle", "error500", "drop", "lost", "partial", "reset", "slow"] {
        assert!(faults[kind].as_u64().unwrap_or(0) > 0, "no {kind} fault was injected: {faults}");
    }
    let share = {
        let injected: u64 = faults
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "forwarded")
            .map(|(_, v)| v.as_u64().unwrap_or(0))
            .sum();
        injected as f64 / (injected + faults["forwarded"].as_u64().unwrap_or(0)) as f64
    };
    assert!(share >= 0.035, "{share:.3} of requests faulted: {faults}");
    true
}

/// Receives everything in a queue, deleting it in batches of ten.
fn drain(world: &World, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let sqs = &world.direct.sqs;
    let mut all = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let receive = sqs.receive_message().queue_url(url).max_number_of_messages(10).message_attribute_names("All");
        let got = world.rt.block_on(receive.send()).expect("receive").messages().to_vec();
        if got.is_empty() {
            empty += 1;
            continue;
        }
        let entries = got.iter().enumerate().map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .expect("an entry")
        });
        let delete = sqs.delete_message_batch().queue_url(url).set_entries(Some(entries.collect()));
        world.rt.block_on(delete.send()).expect("delete");
        all.extend(got);
    }
    all
}
