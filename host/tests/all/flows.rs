//! Whole flows on the AWS wire protocol, against moto server (S3, SQS, SNS, DynamoDB; one
//! request at a time, see `emulators`): the orders example pipeline from `examples/orders`,
//! its plugins, and the production sinks and object store from `weir_host::aws`.
//!
//! Each flow checks conservation: every input message is done (its record delivered, filtered
//! or in the dead-letter queue with its reason) or reported failed to be redelivered; nothing
//! is lost and nothing counted twice.
//!
//! (a) SQS -> validate -> enrich -> tables and aggregates, notifications through a topic to a
//!     queue with a filter policy, rejects in the DLQ with their reason;
//! (b) a CSV uploaded to S3 -> its S3 event in SQS -> rows in the table;
//! (c) the same with the S3 event wrapped in SNS inside SQS;
//! (d) one batch delivered twice, then concurrently by two consumers: no duplicate effect;
//! (e) a fault-injection proxy between weir and the emulator (throttling, 500s, dropped
//!     connections, lost answers, slow answers, failed entries inside 200 answers, resets in
//!     the middle of a download), on SQS records and a CSV object: redelivering just the failed
//!     messages ends with every record in the tables exactly once, exact aggregates, and every
//!     notification and dead letter delivered.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, Event, NotificationConfiguration, QueueConfiguration, TopicConfiguration,
    VersioningConfiguration,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use weir_host::aws::Aws;
use weir_host::pipeline::checkpoints::S3Checkpoints;
use weir_host::pipeline::{Bindings, Pipeline, Runner, build};
use weir_host::sink::table::dynamodb::from_attribute;
use weir_host::source::lambda::SqsMessage;
use weir_host::source::objects::Objects;
use weir_host::{Chain, StageSpec};
use weir_test_artifacts as wasm;

use crate::{chain, load};
use weir_test_artifacts::emulators::{self, Process};

/// The emulator, clients on it, and the example pipeline's resources.
pub(crate) struct World {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) pipeline: Pipeline,
    /// Clients straight to the emulator, for setting up and checking.
    pub(crate) direct: Aws,
    pub(crate) input_url: String,
    pub(crate) dlq_url: String,
    notified_url: String,
    pub(crate) _moto: Process,
}

pub(crate) async fn clients(endpoint: &str, max_attempts: u32, rt: tokio::runtime::Handle) -> Aws {
    Aws::from_config(emulators::sdk_config(endpoint, max_attempts).await, true, rt)
}

impl World {
    fn new() -> Option<World> {
        World::with_sinks("", 100)
    }

    /// The example pipeline with these sinks added (TOML appended to its file), in batches of
    /// `batch_size` records.
    fn with_sinks(extra: &str, batch_size: usize) -> Option<World> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orders/weir.toml");
        let text = std::fs::read_to_string(&path).expect("example") + "\n" + extra;
        assert!(text.contains("\nbatch_size = 100\n"), "the example's batch size");
        World::with_pipeline(&text.replace("\nbatch_size = 100\n", &format!("\nbatch_size = {batch_size}\n")))
    }

    /// A pipeline file of the example's stages (and its sinks' names), given whole.
    pub(crate) fn with_pipeline(text: &str) -> Option<World> {
        let moto = emulators::moto()?;
        let rt = tokio::runtime::Runtime::new().expect("tokio");
        let direct = rt.block_on(clients(&moto.endpoint(), 5, rt.handle().clone()));
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orders/weir.toml");
        let pipeline = Pipeline::parse(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let (input_url, dlq_url, notified_url) = rt.block_on(async {
            for t in &pipeline.tables {
                emulators::create_table(&direct.dynamodb, &t.name, &t.key[0]).await;
            }
            for bucket in ["orders-processed", "orders-incoming"] {
                direct.s3.create_bucket().bucket(bucket).send().await.expect("create bucket");
            }
            let queue = |name: &'static str| {
                let sqs = direct.sqs.clone();
                async move {
                    let out = sqs.create_queue().queue_name(name).send().await.expect("create queue");
                    out.queue_url().unwrap().to_string()
                }
            };
            let input = queue("orders-in").await;
            let dlq = queue("orders-rejects").await;
            let notified = queue("big-usd-orders").await;
            let topic = direct.sns.create_topic().name("big-orders").send().await.expect("topic");
            let notified_arn = queue_arn(&direct, &notified).await;
            direct
                .sns
                .subscribe()
                .topic_arn(topic.topic_arn().unwrap())
                .protocol("sqs")
                .endpoint(notified_arn)
                .attributes("RawMessageDelivery", "true")
                .attributes("FilterPolicy", r#"{"pipeline":["orders"],"currency":["USD"]}"#)
                .send()
                .await
                .expect("subscribe");
            (input, dlq, notified)
        });
        Some(World { rt, pipeline, direct, input_url, dlq_url, notified_url, _moto: moto })
    }

    /// A consumer: the example chain and the AWS sinks, straight to the emulator.
    fn consumer(&self) -> (Runner, Objects) {
        self.consumer_with(self.direct.clone())
    }

    /// A consumer through the fault proxy: three attempts of at most `attempt` each (a slow
    /// answer is retried while the first attempt is still applied), checkpoints in S3.
    pub(crate) fn faulty_consumer(&self, proxy: &Process, attempt: std::time::Duration) -> (Runner, Objects) {
        let aws = self.rt.block_on(async {
            let timeouts = aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(attempt).build();
            let config =
                emulators::sdk_config(&proxy.endpoint(), 3).await.into_builder().timeout_config(timeouts).build();
            Aws::from_config(config, true, self.rt.handle().clone())
        });
        let checkpoints =
            S3Checkpoints::new(aws.s3.clone(), self.rt.handle().clone(), "orders-processed", "weir-checkpoints/");
        let (mut runner, objects) = self.consumer_with(aws);
        runner.set_checkpoints(Some(Box::new(checkpoints)));
        (runner, objects)
    }

    /// A consumer on these clients.
    fn consumer_with(&self, aws: Aws) -> (Runner, Objects) {
        let bindings = Bindings::default();
        let wired = self.rt.block_on(build::aws(&self.pipeline, &aws, &bindings)).expect("sinks");
        let objects = build::aws_objects(&self.pipeline, &aws, &bindings);
        (Runner::new(example_chain(&self.pipeline), wired.outputs, self.pipeline.batch_size), objects)
    }

    /// Receives everything in a queue (short polls until empty), deleting it.
    fn drain(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        let mut empty = 0;
        while empty < 2 {
            let out = self
                .rt
                .block_on(
                    self.direct
                        .sqs
                        .receive_message()
                        .queue_url(url)
                        .max_number_of_messages(10)
                        .message_attribute_names("All")
                        .message_system_attribute_names(MessageSystemAttributeName::All)
                        .send(),
                )
                .expect("receive");
            let messages = out.messages().to_vec();
            if messages.is_empty() {
                empty += 1;
                continue;
            }
            for m in &messages {
                self.rt
                    .block_on(
                        self.direct
                            .sqs
                            .delete_message()
                            .queue_url(url)
                            .receipt_handle(m.receipt_handle().unwrap())
                            .send(),
                    )
                    .expect("delete");
            }
            all.extend(messages);
        }
        all
    }

    fn send(&self, url: &str, bodies: &[String]) {
        for body in bodies {
            self.rt.block_on(self.direct.sqs.send_message().queue_url(url).message_body(body).send()).expect("send");
        }
    }

    pub(crate) fn scan(&self, table: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .rt
                .block_on(self.direct.dynamodb.scan().table_name(table).set_exclusive_start_key(start).send())
                .expect("scan");
            items.extend(
                out.items()
                    .iter()
                    .map(|i| Value::Object(i.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect())),
            );
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        items
    }

    /// Aggregate rows of a table (markers left out), by group.
    pub(crate) fn groups(&self, table: &str, key: &str) -> BTreeMap<String, Value> {
        self.scan(table)
            .into_iter()
            .filter(|i| !i[key].as_str().unwrap_or_default().starts_with("weir-seen#"))
            .map(|i| (i[key].as_str().unwrap().to_string(), i))
            .collect()
    }
}

async fn queue_arn(aws: &Aws, url: &str) -> String {
    let out = aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    out.attributes().unwrap()[&QueueAttributeName::QueueArn].clone()
}

/// The example's stages, on the plugins the test build compiled.
fn example_chain(pipeline: &Pipeline) -> Chain {
    let specs = pipeline
        .stages
        .iter()
        .map(|s| {
            let path = match s.name.as_str() {
                "reshape" => wasm::CSV_RESHAPE,
                "validate" => wasm::VALIDATE_ORDER,
                "enrich" => wasm::ENRICH_ORDER,
                "redact" => wasm::PII_REDACT,
                other => panic!("unknown example stage {other}"),
            };
            s.config.iter().fold(StageSpec::new(&s.name, load(path)).limits(s.limits), |spec, (k, v)| spec.config(k, v))
        })
        .collect();
    chain(specs)
}

/// An order; every seventh has an unknown currency (rejected by validate).
pub(crate) fn order(i: usize) -> Value {
    let currency = if i % 7 == 3 { "XYZ" } else { ["USD", "EUR", "GBP"][i % 3] };
    json!({
        "order_id": format!("o-{i:04}"),
        "user_id": format!("u-{}", i % 5),
        "amount": format!("{}.{:02}", 20 + (i * 37) % 400, i % 100).parse::<f64>().unwrap(),
        "currency": currency,
        "timestamp": format!("2024-05-0{}T10:00:00Z", 1 + i % 3),
        "channel": (["web", "app"][i % 2]),
        "email": format!("c{i}@example.com"),
    })
}

pub(crate) fn is_good(o: &Value) -> bool {
    o["currency"] != "XYZ"
}

/// What the tables must hold for these orders: per-user (count, cents) and per-currency
/// (count, total).
type Expected = (BTreeMap<String, (u64, i64)>, BTreeMap<String, (u64, Decimal)>);

fn expected(orders: &[Value]) -> Expected {
    let mut users: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    let mut currencies: BTreeMap<String, (u64, Decimal)> = BTreeMap::new();
    for o in orders.iter().filter(|o| is_good(o)) {
        let amount = Decimal::from_str_exact(&o["amount"].to_string()).unwrap();
        let cents = (amount * Decimal::from(100)).round();
        let u = users.entry(o["user_id"].as_str().unwrap().to_string()).or_default();
        u.0 += 1;
        u.1 += i64::try_from(cents.mantissa() / 10i128.pow(cents.scale())).unwrap();
        let total = (amount * Decimal::new(12, 1)).round_dp(2);
        let c = currencies.entry(o["currency"].as_str().unwrap().to_string()).or_default();
        c.0 += 1;
        c.1 += total;
    }
    (users, currencies)
}

fn decimal(v: &Value) -> Decimal {
    Decimal::from_str_exact(&v.to_string()).unwrap_or_else(|e| panic!("{v}: {e}")).normalize()
}

/// The tables hold each good order once and exact aggregates.
pub(crate) fn assert_tables(world: &World, orders: &[Value]) {
    let good: BTreeSet<String> = orders
        .iter()
        .filter(|o| is_good(o))
        .map(|o| format!("{}#{}", o["user_id"].as_str().unwrap(), o["order_id"].as_str().unwrap()))
        .collect();
    let rows = world.scan("orders");
    let keys: Vec<String> = rows.iter().map(|r| r["pk"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys.len(), good.len(), "one row per good order");
    assert_eq!(keys.into_iter().collect::<BTreeSet<_>>(), good);
    let (users, currencies) = expected(orders);
    let user_rows = world.groups("user_stats", "user_id");
    assert_eq!(user_rows.len(), users.len());
    for (user, (count, cents)) in &users {
        let row = &user_rows[user];
        assert_eq!(row["orders"], *count, "{user}: {row}");
        assert_eq!(decimal(&row["spend_cents"]), Decimal::from(*cents), "{user}: {row}");
    }
    let currency_rows = world.groups("currency_stats", "currency");
    for (currency, (count, total)) in &currencies {
        let row = &currency_rows[currency];
        assert_eq!(row["orders"], *count, "{currency}: {row}");
        assert_eq!(decimal(&row["total"]), total.normalize(), "{currency}: {row}");
    }
}

/// Receives up to ten messages from the input queue as Lambda's SQS event records.
fn receive_event(world: &World) -> Vec<(Value, String)> {
    let out = world
        .rt
        .block_on(
            world
                .direct
                .sqs
                .receive_message()
                .queue_url(&world.input_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send(),
        )
        .expect("receive");
    out.messages()
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), json!({"stringValue": v.string_value(), "dataType": v.data_type()})))
                        .collect()
                })
                .unwrap_or_default();
            let record = json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "messageAttributes": attributes,
                "eventSource": "aws:sqs",
                "awsRegion": emulators::REGION,
            });
            (record, m.receipt_handle().unwrap_or_default().to_string())
        })
        .collect()
}

/// Consumes the input queue as the Lambda would: each batch through the runner, done messages
/// deleted, failed ones left for redelivery. Returns (messages done, messages failed).
fn consume(world: &World, runner: &mut Runner, objects: &Objects) -> (usize, usize) {
    let (mut done, mut failed) = (0, 0);
    loop {
        let received = receive_event(world);
        if received.is_empty() {
            return (done, failed);
        }
        let records = messages(received.iter().map(|(r, _)| r.clone()).collect());
        let failures = runner.run_sqs_event(&records, objects).expect("runner").failed;
        for (record, handle) in &received {
            if failures.contains_key(record["messageId"].as_str().unwrap()) {
                failed += 1;
                continue;
            }
            done += 1;
            world
                .rt
                .block_on(world.direct.sqs.delete_message().queue_url(&world.input_url).receipt_handle(handle).send())
                .expect("delete");
        }
    }
}

#[test]
fn a_sqs_orders_reach_tables_aggregates_filtered_notifications_and_the_dlq() {
    let Some(world) = World::new() else { return };
    let orders: Vec<Value> = (0..60).map(order).collect();
    world.send(&world.input_url, &orders.iter().map(Value::to_string).collect::<Vec<_>>());
    let (mut runner, objects) = world.consumer();
    let (done, failed) = consume(&world, &mut runner, &objects);
    assert_eq!((done, failed), (60, 0));
    let stats = runner.stats().clone();
    assert!(stats.is_conserved(), "{stats:?}");
    let bad = orders.iter().filter(|o| !is_good(o)).count();
    assert_eq!((stats.inputs, stats.delivered, stats.rejected, stats.failed), (60, 60 - bad as u64, bad as u64, 0));

    assert_tables(&world, &orders);

    // Notifications: big orders (total > 300) pass the topic; the subscription's filter
    // policy lets only USD ones into the queue, by the message attributes weir set.
    let notified = world.drain(&world.notified_url);
    let expected_ids: BTreeSet<String> = orders
        .iter()
        .filter(|o| is_good(o) && o["currency"] == "USD" && o["amount"].as_f64().unwrap() * 1.2 > 300.0)
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!expected_ids.is_empty());
    let got: BTreeSet<String> = notified
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(body["currency"], "USD");
            body["order_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(got, expected_ids);

    // Rejects: in the DLQ, body = the original message body, with stage, kind and reason.
    let letters = world.drain(&world.dlq_url);
    assert_eq!(letters.len(), bad);
    for l in &letters {
        let attrs = l.message_attributes().unwrap();
        let attr = |k: &str| attrs[k].string_value().unwrap().to_string();
        assert_eq!(attr("stage"), "validate");
        assert_eq!(attr("kind"), "plugin-reject");
        assert!(attr("reason").contains("currency"), "{}", attr("reason"));
        let body: Value = serde_json::from_str(l.body().unwrap()).unwrap();
        assert_eq!(body["currency"], "XYZ");
    }

    // Hive-partitioned output files for the delivered records.
    let listed = world
        .rt
        .block_on(world.direct.s3.list_objects_v2().bucket("orders-processed").prefix("orders/dt=2024-05-0").send())
        .expect("list");
    assert!(!listed.contents().is_empty());
}

const CSV: &str = "order_id,user_id,amount,currency,timestamp,channel,email,note_internal\n\
o-0001,u-1,12.50,USD,2024-05-01T10:00:00Z,web,a@example.com,x\n\
o-0002,u-2,400.00,EUR,2024-05-02T10:00:00Z,app,b@example.com,y\n\
o-0003,u-1,7.25,XYZ,2024-05-02T11:00:00Z,web,c@example.com,z\n\
o-0004,u-3,99.99,GBP,2024-05-03T10:00:00Z,store,d@example.com,\n";

fn csv_orders() -> Vec<Value> {
    orders_of(CSV)
}

pub(crate) fn orders_of(csv: &str) -> Vec<Value> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    reader
        .deserialize::<BTreeMap<String, String>>()
        .map(|row| {
            let row = row.unwrap();
            json!({"order_id": row["order_id"], "user_id": row["user_id"], "currency": row["currency"],
                   "amount": row["amount"].parse::<f64>().unwrap()})
        })
        .collect()
}

/// Uploads the CSV under a key that needs URL-encoding, and waits for its S3 event to be
/// consumed; returns the object's key.
fn upload_and_consume(world: &World) -> String {
    let key = "uploads/2024 05/orders+1 é.csv";
    world
        .rt
        .block_on(
            world
                .direct
                .s3
                .put_object()
                .bucket("orders-incoming")
                .key(key)
                .body(ByteStream::from_static(CSV.as_bytes()))
                .send(),
        )
        .expect("upload");
    let (mut runner, objects) = world.consumer();
    let (done, failed) = consume(world, &mut runner, &objects);
    assert_eq!(failed, 0);
    assert!(done >= 1, "the S3 event arrived");
    let stats = runner.stats();
    assert!(stats.is_conserved(), "{stats:?}");
    assert_eq!((stats.inputs, stats.delivered, stats.rejected), (4, 3, 1), "{stats:?}");
    let letters = world.drain(&world.dlq_url);
    assert_eq!(letters.len(), 1);
    let attrs = letters[0].message_attributes().unwrap();
    assert_eq!(attrs["source_id"].string_value().unwrap(), format!("s3://orders-incoming/{key}#4"));
    key.to_string()
}

#[test]
fn b_a_csv_uploaded_to_s3_becomes_rows_through_its_s3_event() {
    let Some(world) = World::new() else { return };
    let input_arn = world.rt.block_on(queue_arn(&world.direct, &world.input_url));
    let notification = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder().queue_arn(input_arn).events(Event::S3ObjectCreated).build().unwrap(),
        )
        .build();
    world
        .rt
        .block_on(
            world
                .direct
                .s3
                .put_bucket_notification_configuration()
                .bucket("orders-incoming")
                .notification_configuration(notification)
                .send(),
        )
        .expect("notification");
    upload_and_consume(&world);
    assert_tables(&world, &csv_orders());
}

#[test]
fn c_an_s3_event_wrapped_in_sns_inside_sqs_becomes_rows() {
    let Some(world) = World::new() else { return };
    let topic = world.rt.block_on(world.direct.sns.create_topic().name("uploads").send()).expect("topic");
    let topic_arn = topic.topic_arn().unwrap().to_string();
    let input_arn = world.rt.block_on(queue_arn(&world.direct, &world.input_url));
    world
        .rt
        .block_on(world.direct.sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(input_arn).send())
        .expect("subscribe");
    let notification = NotificationConfiguration::builder()
        .topic_configurations(
            TopicConfiguration::builder().topic_arn(&topic_arn).events(Event::S3ObjectCreated).build().unwrap(),
        )
        .build();
    world
        .rt
        .block_on(
            world
                .direct
                .s3
                .put_bucket_notification_configuration()
                .bucket("orders-incoming")
                .notification_configuration(notification)
                .send(),
        )
        .expect("notification");
    upload_and_consume(&world);
    assert_tables(&world, &csv_orders());
}

/// A key overwritten in a versioned bucket (a daily export): each S3 event names its version,
/// and weir reads that version, not the latest, under record ids that carry it, so yesterday's
/// rows neither hide today's (aggregate markers, `put-if-absent` items) nor stand in for them.
#[test]
fn f_each_version_of_an_overwritten_key_is_read_as_its_event_names_it() {
    let Some(world) = World::new() else { return };
    let s3 = &world.direct.s3;
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    let versioning = s3.put_bucket_versioning().bucket("orders-incoming").versioning_configuration(enabled);
    world.rt.block_on(versioning.send()).expect("versioning");
    let (key, today) = ("daily/orders.csv", CSV.replace("o-000", "o-100"));
    let mut versions = Vec::new();
    for body in [CSV.to_string(), today.clone()] {
        let put = s3.put_object().bucket("orders-incoming").key(key).body(ByteStream::from(body.into_bytes()));
        let out = world.rt.block_on(put.send()).expect("upload");
        versions.push(out.version_id().expect("a versioned bucket names the version").to_string());
    }
    // Both events arrive after the overwrite, as they may; each names its own version, as S3's do.
    let events: Vec<String> = versions
        .iter()
        .map(|v| {
            json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "orders-incoming"}, "object": {"key": key, "versionId": v}}}]})
            .to_string()
        })
        .collect();
    world.send(&world.input_url, &events);
    let (mut runner, objects) = world.consumer();
    let (done, failed) = consume(&world, &mut runner, &objects);
    assert_eq!((done, failed), (2, 0));
    let mut both = orders_of(CSV);
    both.extend(orders_of(&today));
    assert_tables(&world, &both);
    let letters = world.drain(&world.dlq_url);
    let sources: BTreeSet<String> = letters
        .iter()
        .map(|l| l.message_attributes().unwrap()["source_id"].string_value().unwrap().to_string())
        .collect();
    let expected = versions.iter().map(|v| format!("s3://orders-incoming/{key}?versionId={v}#4")).collect();
    assert_eq!(sources, expected, "each version's rejected row, under its own id");
}

/// Orders as a CSV export of the example's columns.
pub(crate) fn csv_of(orders: impl Iterator<Item = Value>) -> String {
    let mut csv = String::from("order_id,user_id,amount,currency,timestamp,channel,email,note_internal\n");
    for o in orders {
        let f = |k: &str| o[k].as_str().map(String::from).unwrap_or_else(|| o[k].to_string());
        csv += &format!(
            "{},{},{},{},{},{},{},\n",
            f("order_id"),
            f("user_id"),
            f("amount"),
            f("currency"),
            f("timestamp"),
            f("channel"),
            f("email")
        );
    }
    csv
}

/// The fault proxy's counts of the faults it injected, by kind.
pub(crate) fn faults_injected(proxy: &Process) -> Value {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    use std::io::{Read, Write};
    write!(stream, "GET /__faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

/// A Lambda SQS event of these orders, with fixed message ids.
fn event(orders: &[Value]) -> Vec<SqsMessage> {
    messages(
        orders
            .iter()
            .enumerate()
            .map(|(i, o)| json!({"messageId": format!("msg-{i:04}"), "body": o.to_string(), "eventSource": "aws:sqs"}))
            .collect(),
    )
}

/// SQS event records as Lambda's types read them.
pub(crate) fn messages(records: Vec<Value>) -> Vec<SqsMessage> {
    serde_json::from_value(Value::Array(records)).expect("SQS event records")
}

#[test]
fn d_a_batch_delivered_twice_and_concurrently_has_one_effect() {
    let Some(world) = World::new() else { return };
    let orders: Vec<Value> = (0..100).map(order).collect();
    let records = event(&orders);
    let (mut first, objects) = world.consumer();
    for _ in 0..2 {
        let failed = first.run_sqs_event(&records, &objects).expect("runner").failed;
        assert!(failed.is_empty(), "{failed:?}");
    }
    // Two consumers at once (a visibility timeout expiring mid-batch).
    let mut consumers = [world.consumer(), world.consumer()];
    std::thread::scope(|scope| {
        for (runner, objects) in consumers.iter_mut() {
            let records = &records;
            scope.spawn(move || {
                let failed = runner.run_sqs_event(records, objects).expect("runner").failed;
                assert!(failed.is_empty(), "{failed:?}");
            });
        }
    });
    for (runner, _) in &consumers {
        assert!(runner.stats().is_conserved());
        assert_eq!(runner.stats().inputs, 100);
    }
    assert_tables(&world, &orders);
}

#[test]
fn e_faults_between_weir_and_aws_lose_nothing_and_duplicate_nothing() {
    // The example pipeline, plus a `put` table (BatchWriteItem) keyed like its `orders` table.
    let latest = "[[sinks.table]]\nname = \"latest\"\nkey = [\"pk\"]\nmode = \"put\"\n";
    let Some(world) = World::with_sinks(latest, 10) else { return };
    // 20% of requests fault, every way the proxy can: throttling, 500s, dropped connections,
    // lost answers, answers slower than the clients' 1 s attempt timeout (the first attempt is
    // still applied), failed entries inside 200 answers (UnprocessedItems, PublishBatch and
    // SendMessageBatch `Failed`), and resets in the middle of a GetObject body. The SDK makes
    // three attempts: most faults are absorbed by its retries or the sinks' per-entry retries,
    // the rest must surface as per-message failures and be redelivered (an object's from its
    // checkpoint: batches of 10 records here, so that one has ten).
    let Some(proxy) = emulators::fault_proxy(world._moto.port, 0.2, 7) else { return };
    let orders: Vec<Value> = (0..150).map(order).collect();
    let mut pending = event(&orders);
    // And 100 orders in a CSV object, named by an S3 event in the same batches.
    let csv = csv_of((150..250).map(order));
    let put = world.direct.s3.put_object().bucket("orders-incoming").key("faults/orders.csv");
    world.rt.block_on(put.body(ByteStream::from(csv.clone().into_bytes())).send()).expect("upload");
    let s3_event = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "orders-incoming"}, "object": {"key": "faults/orders.csv"}}}]});
    pending
        .extend(messages(vec![json!({"messageId": "msg-s3", "body": s3_event.to_string(), "eventSource": "aws:sqs"})]));

    // A failed object keeps its leading rows done: the retry resumes after them.
    let (mut runner, objects) = world.faulty_consumer(&proxy, std::time::Duration::from_secs(1));
    let mut rounds = 0;
    let mut failed_any = 0;
    while !pending.is_empty() {
        rounds += 1;
        assert!(rounds <= 25, "still failing after 25 redeliveries: {}", pending.len());
        let failed = runner.run_sqs_event(&pending, &objects).expect("runner").failed;
        failed_any += failed.len();
        // (Shown when the test fails.)
        eprintln!("round {rounds}: {} failed {:?}", failed.len(), failed.iter().next());
        // Exactly the failed messages are redelivered, as SQS does with batchItemFailures.
        pending.retain(|m| failed.contains_key(m.message_id.as_deref().unwrap()));
    }
    let stats = runner.stats();
    assert!(stats.is_conserved(), "{stats:?}");

    // Ground truth, from the inputs: every good order in the tables once, exact aggregates.
    let mut all = orders.clone();
    all.extend(orders_of(&csv));
    assert_tables(&world, &all);
    // The put table holds exactly the items of the put-if-absent one.
    let strip = |mut rows: Vec<Value>| -> BTreeMap<String, Value> {
        rows.iter_mut().map(|r| r.as_object_mut().unwrap().remove("weir_chain")).for_each(drop);
        rows.into_iter().map(|r| (r["pk"].as_str().unwrap().to_string(), r)).collect()
    };
    assert_eq!(strip(world.scan("latest")), strip(world.scan("orders")), "put and put-if-absent tables");
    // Notifications and dead letters are at-least-once: each expected one arrived, nothing else.
    let notified: BTreeSet<String> = world
        .drain(&world.notified_url)
        .iter()
        .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["order_id"].as_str().unwrap().to_string())
        .collect();
    let big_usd: BTreeSet<String> = all
        .iter()
        .filter(|o| is_good(o) && o["currency"] == "USD" && o["amount"].as_f64().unwrap() * 1.2 > 300.0)
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!big_usd.is_empty());
    assert_eq!(notified, big_usd, "every big USD order notified, through the topic's filter policy");
    let rejected: BTreeSet<String> = world
        .drain(&world.dlq_url)
        .iter()
        .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["order_id"].as_str().unwrap().to_string())
        .collect();
    let bad: BTreeSet<String> =
        all.iter().filter(|o| !is_good(o)).map(|o| o["order_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(rejected, bad, "every rejected order in the dead-letter queue");

    let faults = faults_injected(&proxy);
    eprintln!("faults injected: {faults}; rounds {rounds}; messages failed and redelivered {failed_any}");
    assert!(failed_any > 0 && rounds > 1, "some messages must have failed and been redelivered");
    for kind in ["throttle", "error500", "drop", "lost", "partial", "reset", "slow"] {
        assert!(faults[kind].as_u64().unwrap() > 0, "no {kind} fault was injected: {faults}");
    }
}

#[test]
fn dead_letters_over_256_kb_are_offloaded_to_s3_with_a_pointer() {
    use weir_host::Record;
    use weir_host::sink::dead_letter::sqs::{Offload, SqsDeadLetters};
    use weir_host::sink::{DeadLetter, DeadLetterSink};
    let Some(world) = World::new() else { return };
    world.rt.block_on(world.direct.s3.create_bucket().bucket("rejects-large").send()).expect("bucket");
    let offload =
        Offload { client: world.direct.s3.clone(), bucket: "rejects-large".into(), prefix: "dead-letters/".into() };
    let mut sink = SqsDeadLetters::new(world.direct.sqs.clone(), &world.dlq_url, Some(offload));
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(300 * 1024));
    let letter = |id: &str, body: &str| DeadLetter {
        stage: "validate".into(),
        kind: "plugin-reject".into(),
        reason: "too big to be true".into(),
        record: Record::new(id, body),
        source_id: id.into(),
        original: None,
        chain: "validate=v@1".into(),
    };
    let letters = [letter("m-big", &big), letter("m-small", r#"{"a":1}"#)];
    let failed = world.rt.block_on(sink.send(&letters)).expect("send");
    assert!(failed.is_empty(), "{failed:?}");
    let letters = world.drain(&world.dlq_url);
    assert_eq!(letters.len(), 2);
    let big_letter = letters
        .iter()
        .find(|m| m.message_attributes().unwrap()["source_id"].string_value() == Some("m-big"))
        .expect("the big letter");
    let pointer: Value = serde_json::from_str(big_letter.body().unwrap()).unwrap();
    let key = pointer["weir_offloaded"]["key"].as_str().unwrap();
    assert_eq!(pointer["weir_offloaded"]["bucket"], "rejects-large");
    assert_eq!(pointer["weir_offloaded"]["bytes"], big.len());
    let object = world.rt.block_on(async {
        let out = world.direct.s3.get_object().bucket("rejects-large").key(key).send().await.expect("offloaded object");
        out.body.collect().await.expect("object body")
    });
    assert_eq!(object.into_bytes(), big.as_bytes(), "the original record, whole");
    assert_eq!(big_letter.message_attributes().unwrap()["reason"].string_value(), Some("too big to be true"));
}

#[test]
fn fifo_topics_get_a_message_group_and_a_deduplication_id() {
    use weir_host::pipeline::config::NotifyConfig;
    use weir_host::report::Emitted;
    use weir_host::sink::notify::sns::SnsTopic;
    use weir_host::sink::{Delivery, Sink};
    let Some(world) = World::new() else { return };
    let (topic_arn, queue_url) = world.rt.block_on(async {
        let topic = world
            .direct
            .sns
            .create_topic()
            .name("orders.fifo")
            .attributes("FifoTopic", "true")
            .send()
            .await
            .expect("fifo topic");
        let queue = world
            .direct
            .sqs
            .create_queue()
            .queue_name("orders-out.fifo")
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .expect("fifo queue");
        let url = queue.queue_url().unwrap().to_string();
        let arn = queue_arn(&world.direct, &url).await;
        world
            .direct
            .sns
            .subscribe()
            .topic_arn(topic.topic_arn().unwrap())
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .expect("subscribe");
        (topic.topic_arn().unwrap().to_string(), url)
    });
    let config =
        NotifyConfig { topic: "orders.fifo".into(), when: None, attributes: vec![], group_by: Some("user_id".into()) };
    let mut sink = SnsTopic::new(world.direct.sns.clone(), topic_arn, "orders", config);
    let emitted: Vec<Emitted> = (0..12)
        .map(|i| Emitted {
            origin: i,
            record: weir_host::Record::new(format!("m-{i}"), format!(r#"{{"user_id":"u{}","i":{i}}}"#, i % 2)),
        })
        .collect();
    let delivery = Delivery { emitted: &emitted, chain: "test", parts: Default::default() };
    let report = world.rt.block_on(sink.write(&delivery)).expect("publish");
    assert_eq!(report.written, 12);
    // The same records again: deduplicated by record id.
    world.rt.block_on(sink.write(&delivery)).expect("publish again");
    let received = world.drain(&queue_url);
    assert_eq!(received.len(), 12, "redelivered records are deduplicated");
    let groups: BTreeSet<String> =
        received.iter().map(|m| m.attributes().unwrap()[&MessageSystemAttributeName::MessageGroupId].clone()).collect();
    assert_eq!(groups, BTreeSet::from(["u0".to_string(), "u1".to_string()]));
}
