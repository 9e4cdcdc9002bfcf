//! The twins agree: the local notify, objects and dead-letter sinks (files under an output
//! directory) and their AWS twins (SNS, S3, SQS on moto server) are given the same deliveries,
//! and must report the same outcome of each record (written, unchanged, unwritable, failed),
//! under the same sink name, with the same effect: the same notifications with the same
//! attributes, the same object keys and bytes, the same dead letters with the same reasons.
//! A local run therefore predicts production. (The tables' suite is in `dynamodb.rs`.)

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use weir_host::Record;
use weir_host::aws::Aws;
use weir_host::pipeline::config::{NotifyConfig, ObjectFormat, ObjectsConfig, PartitionTemplate};
use weir_host::report::Emitted;
use weir_host::sink::dead_letter::file::RejectedFile;
use weir_host::sink::dead_letter::sqs::{Offload, SqsDeadLetters};
use weir_host::sink::notify::file::NotifyFile;
use weir_host::sink::notify::sns::SnsTopic;
use weir_host::sink::notify::{Predicate, PredicateOp};
use weir_host::sink::objects::file::ObjectFiles;
use weir_host::sink::objects::s3::S3Objects;
use weir_host::sink::{DeadLetter, DeadLetterSink, Delivery, Sink, SinkReport};
use weir_test_artifacts::emulators::{self, Process};

/// moto, clients on it, and an output directory for the local twins.
struct World {
    rt: tokio::runtime::Runtime,
    aws: Aws,
    dir: tempfile::TempDir,
    _moto: Process,
}

impl World {
    fn new() -> Option<World> {
        let moto = emulators::moto()?;
        let rt = tokio::runtime::Runtime::new().expect("tokio");
        let aws = rt.block_on(async {
            Aws::from_config(emulators::sdk_config(&moto.endpoint(), 3).await, true, tokio::runtime::Handle::current())
        });
        Some(World { rt, aws, dir: tempfile::tempdir().expect("tempdir"), _moto: moto })
    }

    fn queue(&self, name: &str) -> String {
        let out = self.rt.block_on(self.aws.sqs.create_queue().queue_name(name).send()).expect("queue");
        out.queue_url().expect("url").to_string()
    }

    /// Everything in a queue, as (body, string attributes).
    fn drain(&self, url: &str) -> Vec<(String, BTreeMap<String, String>)> {
        let mut all = Vec::new();
        loop {
            let out = self
                .rt
                .block_on(
                    self.aws
                        .sqs
                        .receive_message()
                        .queue_url(url)
                        .max_number_of_messages(10)
                        .message_attribute_names("All")
                        .send(),
                )
                .expect("receive");
            if out.messages().is_empty() {
                return all;
            }
            for m in out.messages() {
                let attributes = m
                    .message_attributes()
                    .map(|a| {
                        a.iter().map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_string())).collect()
                    })
                    .unwrap_or_default();
                all.push((m.body().unwrap_or_default().to_string(), attributes));
                let delete = self.aws.sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap());
                self.rt.block_on(delete.send()).expect("delete");
            }
        }
    }

    fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.rt.block_on(async {
            let out = self.aws.s3.get_object().bucket(bucket).key(key).send().await.expect("object");
            out.body.collect().await.expect("body").into_bytes().to_vec()
        })
    }

    /// One delivery to both twins; their reports must agree, and are returned.
    fn write_both(&self, local: &mut dyn Sink, aws: &mut dyn Sink, emitted: &[Emitted]) -> SinkReport {
        assert_eq!(local.name(), aws.name(), "the twins carry one name (it names them in dead letters)");
        let delivery = Delivery { emitted, chain: "validate=v@1", parts: Default::default() };
        let local_report = self.rt.block_on(local.write(&delivery)).expect("local write");
        let aws_report = self.rt.block_on(aws.write(&delivery)).expect("AWS write");
        assert_eq!(local_report, aws_report, "the twins report each record the same way");
        local_report
    }
}

fn emitted(bodies: &[&str]) -> Vec<Emitted> {
    bodies.iter().enumerate().map(|(i, b)| Emitted { origin: i, record: Record::new(format!("r{i}"), *b) }).collect()
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn notify_twins_send_the_same_notifications_with_the_same_attributes() {
    let Some(w) = World::new() else { return };
    let queue = w.queue("alerts-out");
    let topic = w.rt.block_on(async {
        let topic = w.aws.sns.create_topic().name("alerts").send().await.expect("topic");
        let arn = topic.topic_arn().unwrap().to_string();
        let attrs = w.aws.sqs.get_queue_attributes().queue_url(&queue).attribute_names(QueueAttributeName::QueueArn);
        let queue_arn =
            attrs.send().await.expect("queue arn").attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
        let subscribe = w.aws.sns.subscribe().topic_arn(&arn).protocol("sqs").endpoint(queue_arn);
        subscribe.attributes("RawMessageDelivery", "true").send().await.expect("subscribe");
        arn
    });
    let config = NotifyConfig {
        topic: "alerts".into(),
        when: Some(Predicate { field: "total".into(), op: PredicateOp::Gt, value: Some(toml::Value::Integer(10)) }),
        attributes: vec!["currency".into(), "total".into(), "vip".into(), "note".into(), "missing".into()],
        group_by: None,
    };
    let mut local = NotifyFile::new(w.dir.path(), "orders", config.clone());
    let mut aws = SnsTopic::new(w.aws.sns.clone(), &topic, "orders", config);
    let oversized = format!(r#"{{"total":11,"blob":"{}"}}"#, "x".repeat(300 * 1024));
    let batch = emitted(&[
        r#"{"total":12.5,"currency":"EUR","vip":true,"note":""}"#,
        r#"{"total":10}"#,
        r#"{"total":"11"}"#,
        r#"{"total":1e3,"currency":"USD","note":"rush"}"#,
        r#"{"currency":"EUR"}"#,
        &oversized,
    ]);
    let report = w.write_both(&mut local, &mut aws, &batch);
    assert_eq!((report.written, report.unchanged, report.failed.len()), (2, 3, 0), "{report:?}");
    assert_eq!(report.unwritable.len(), 1);
    assert!(report.unwritable[0].reason.contains("over SNS's 262144-byte limit"), "{report:?}");

    let mut sent: Vec<(Value, BTreeMap<String, String>)> =
        w.drain(&queue).into_iter().map(|(body, attrs)| (serde_json::from_str(&body).unwrap(), attrs)).collect();
    let mut written: Vec<(Value, BTreeMap<String, String>)> = lines(&w.dir.path().join("notifications.jsonl"))
        .into_iter()
        .map(|l| (l["message"].clone(), serde_json::from_value(l["attributes"].clone()).unwrap()))
        .collect();
    sent.sort_by_key(|(b, _)| b.to_string());
    written.sort_by_key(|(b, _)| b.to_string());
    assert_eq!(written, sent, "the same notifications, with the same attributes");
    let first = &written.iter().find(|(b, _)| b["currency"] == "EUR").unwrap().1;
    let expected = [
        ("currency", "EUR"),
        ("pipeline", "orders"),
        ("total", "12.5"),
        ("vip", "true"),
        ("weir_chain", "validate=v@1"),
    ];
    assert_eq!(
        first,
        &expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        "empty fields are left out"
    );
}

#[test]
fn objects_twins_write_the_same_keys_and_bytes_and_rewrite_them_on_redelivery() {
    let Some(w) = World::new() else { return };
    w.rt.block_on(w.aws.s3.create_bucket().bucket("out").send()).expect("bucket");
    for format in [ObjectFormat::Jsonl, ObjectFormat::Csv] {
        let config = ObjectsConfig {
            bucket: "out".into(),
            prefix: format!("{format:?}/").to_lowercase(),
            partition: PartitionTemplate::parse("dt={date}/").unwrap(),
            format,
        };
        let mut local = ObjectFiles::new(w.dir.path(), config.clone());
        let mut aws = S3Objects::new(w.aws.s3.clone(), "out", config.clone());
        let batch = emitted(&[
            r#"{"date":"2024-05-01","a":1,"text":"x,\"y\""}"#,
            r#"{"date":"2024-05-02","a":2.50,"nested":{"b":[1]}}"#,
            r#"{"a":3}"#,
            r#"{"date":"2024-05-01","b":null,"é":"ü"}"#,
        ]);
        for _ in 0..2 {
            let report = w.write_both(&mut local, &mut aws, &batch);
            assert_eq!((report.written, report.unwritable.len(), report.failed.len()), (4, 0, 0), "{report:?}");
        }
        let listed =
            w.rt.block_on(w.aws.s3.list_objects_v2().bucket("out").prefix(&config.prefix).send()).expect("list");
        let mut keys: Vec<String> = listed.contents().iter().filter_map(|o| o.key().map(String::from)).collect();
        keys.sort();
        let root = w.dir.path().join("objects/out");
        let mut files: Vec<String> = walk(&root.join(&config.prefix))
            .into_iter()
            .map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"))
            .collect();
        files.sort();
        assert_eq!(files, keys, "{format:?}: the same keys, once each after a redelivery");
        assert_eq!(keys.len(), 3, "{keys:?}");
        for key in &keys {
            assert_eq!(std::fs::read(root.join(key)).unwrap(), w.object("out", key), "{key}: the same bytes");
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { found.extend(walk(&path)) } else { found.push(path) }
    }
    found
}

#[test]
fn dead_letter_twins_keep_the_same_letters_with_the_same_reasons() {
    let Some(w) = World::new() else { return };
    let queue = w.queue("rejects");
    w.rt.block_on(w.aws.s3.create_bucket().bucket("offload").send()).expect("bucket");
    let offload = Offload { client: w.aws.s3.clone(), bucket: "offload".into(), prefix: "dead-letters/".into() };
    let mut local = RejectedFile::new(w.dir.path(), "rejects");
    let mut aws = SqsDeadLetters::new(w.aws.sqs.clone(), &queue, Some(offload));
    let letter = |id: &str, kind: &str, reason: String, body: &str, original: Option<&str>| DeadLetter {
        stage: "validate".into(),
        kind: kind.into(),
        reason,
        record: Record::new(id, body),
        source_id: format!("src-{id}"),
        original: original.map(|o| Record::new(id, o)),
        chain: "validate=v@1".into(),
    };
    let letters = [
        letter("a", "plugin-reject", "amount must be positive".into(), r#"{"amount":-1}"#, None),
        letter("b", "plugin-reject", "é".repeat(3000), r#"{"changed":1}"#, Some(r#"{"as":"entered"}"#)),
        letter("c", "unreadable", "not JSON".into(), "", None),
        letter("d", "trap", "over SQS's limit".into(), &format!(r#"{{"blob":"{}"}}"#, "x".repeat(300 * 1024)), None),
        letter("e", "trap", "a character SQS refuses".into(), "{\"a\":\"\u{1}\"}", None),
    ];
    let local_failed = w.rt.block_on(local.send(&letters)).expect("local");
    let aws_failed = w.rt.block_on(aws.send(&letters)).expect("AWS");
    assert!(local_failed.is_empty() && aws_failed.is_empty(), "{local_failed:?} {aws_failed:?}");

    // (source id, stage, kind, reason, body as it entered the chain)
    type Letter = (String, String, String, String, String);
    let mut queued: Vec<Letter> = w
        .drain(&queue)
        .into_iter()
        .map(|(body, a)| {
            let body = match serde_json::from_str::<Value>(&body).ok().and_then(|v| v.get("weir_offloaded").cloned()) {
                Some(pointer) => {
                    assert_eq!(
                        a.get("offloaded").map(String::as_str),
                        Some(&*format!("s3://offload/{}", pointer["key"].as_str().unwrap()))
                    );
                    String::from_utf8(w.object("offload", pointer["key"].as_str().unwrap())).unwrap()
                }
                None => body,
            };
            (a["source_id"].clone(), a["stage"].clone(), a["kind"].clone(), a["reason"].clone(), body)
        })
        .collect();
    let mut filed: Vec<Letter> = lines(&w.dir.path().join("rejected.jsonl"))
        .into_iter()
        .map(|l| {
            let original = if l["original"].is_null() { &l["record"] } else { &l["original"] };
            let body = original["body"].as_str().unwrap();
            let body = if body.is_empty() { l["source_id"].as_str().unwrap() } else { body };
            let text = |f: &str| l[f].as_str().unwrap().to_string();
            (text("source_id"), text("stage"), text("kind"), text("reason"), body.to_string())
        })
        .collect();
    queued.sort();
    filed.sort();
    assert_eq!(filed, queued, "the same letters, reasons and bodies");
    let long = &filed.iter().find(|l| l.0 == "src-b").unwrap().3;
    assert!(long.len() <= 4096 + 3 && long.ends_with('…'), "a long reason is cut the same way in both");
}
