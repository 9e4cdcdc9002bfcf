//! The Lambda handler end to end, in process, against moto server (S3, SQS, SNS, DynamoDB on
//! the AWS wire protocol): `weir_lambda::function_handler` is invoked with `LambdaEvent`s the
//! way `lambda_runtime` invokes it, while plugin versions are published, tampered with and
//! rolled back in the plugins bucket.
//!
//! - publish v1 -> outputs from v1; publish v2 -> the same warm host's next batch runs v2;
//!   a tampered artifact, a non-weir component, a plugin whose init fails -> refused
//!   (logged, `PluginRefusals` metric), v2 keeps running; rollback -> v1 again;
//! - signatures: with keys configured, unsigned and wrongly signed versions are refused;
//! - partial batch failure: `batchItemFailures` is exactly the messages that failed;
//! - direct S3 events; an object cut off by the invocation deadline is failed, and its
//!   redelivery completes it with no duplicate effect; with the input queue bound, it goes on
//!   in continuation messages instead, over as many invocations as it needs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use weir_host::aws::Aws;
use weir_host::manifest::{self, Artifact, Manifest, ManifestStore};
use weir_host::pipeline::deployment::Deployment;
use weir_host::sink::table::dynamodb::from_attribute;
use weir_lambda::{Emf, Host, Settings, function_handler};
use weir_test_artifacts as wasm;
use weir_test_artifacts::emulators::{self, Process};

const PIPELINE: &str = "orders";
const PLUGINS: &str = "weir-plugins";
const INPUT: &str = "weir-input";
const OUTPUT: &str = "weir-output";
const RESULTS: &str = "weir-results";
const AGGREGATES: &str = "weir-aggregates";
const BINDINGS: &str = "pipelines/orders/bindings.json";

/// The pipeline file published with every version: `tax_rate` is the enrich stage's config.
fn definition(tax_rate: &str) -> String {
    format!(
        r#"
name = "orders"
batch_size = 10

[[stages]]
name = "validate"
plugin = "validate-order.wasm"

[[stages]]
name = "enrich"
plugin = "enrich-order.wasm"
[stages.config]
tax_rate = "{tax_rate}"

[[sinks.table]]
name = "orders"
key = ["pk"]
mode = "put-if-absent"

[[sinks.table]]
name = "user_stats"
key = ["user_id"]
mode = "aggregate"
group_by = "user_id"
counters = [{{ name = "orders", op = "count" }}]

[sinks.notify]
topic = "big-orders"
when = {{ field = "total", op = "gt", value = 300 }}
attributes = ["currency"]

[dead_letter]
queue = "orders-rejects"
"#
    )
}

struct World {
    rt: tokio::runtime::Runtime,
    endpoint: String,
    aws: Aws,
    store: ManifestStore,
    rejects_url: String,
    cache: tempfile::TempDir,
    _moto: Process,
}

/// The pipeline file with one more table, `currency_stats`, keyed by currency.
fn with_currency_table() -> String {
    format!("{}\n[[sinks.table]]\nname = \"currency_stats\"\nkey = [\"currency\"]\nmode = \"put\"\n", definition("0"))
}

fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The same component with a custom section appended: a new artifact (new sha256) that behaves
/// the same, as a rebuilt plugin would.
fn rebuilt(path: &str, tag: &str) -> Vec<u8> {
    let mut wasm = bytes(path);
    let name = b"weir-test-build";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(tag.as_bytes());
    assert!(section.len() < 128);
    wasm.push(0); // custom section id
    wasm.push(section.len() as u8);
    wasm.extend(section);
    wasm
}

fn order(i: usize) -> Value {
    let currency = if i % 7 == 3 { "XYZ" } else { ["USD", "EUR", "GBP"][i % 3] };
    json!({
        "order_id": format!("o-{i:04}"),
        "user_id": format!("u-{}", i % 4),
        "amount": 100 + (i * 37) % 400,
        "currency": currency,
        "timestamp": "2024-05-01T10:00:00Z",
        "channel": "web",
        "email": format!("c{i}@example.com"),
    })
}

fn sqs_batch(range: std::ops::Range<usize>) -> Value {
    let records: Vec<Value> = range
        .map(|i| json!({"messageId": format!("m-{i:04}"), "body": order(i).to_string(), "eventSource": "aws:sqs", "messageAttributes": {}}))
        .collect();
    json!({ "Records": records })
}

fn s3_notification(bucket: &str, key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T10:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "EXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE"},
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": 1, "eTag": "0", "sequencer": "0"}}
    }]})
}

impl World {
    fn new() -> Option<World> {
        let moto = emulators::moto()?;
        let rt = tokio::runtime::Runtime::new().expect("tokio");
        let aws = rt.block_on(async {
            Aws::from_config(emulators::sdk_config(&moto.endpoint(), 3).await, true, rt.handle().clone())
        });
        let (rejects_url, topic_arn) = rt.block_on(async {
            for bucket in [PLUGINS, INPUT, OUTPUT] {
                aws.s3.create_bucket().bucket(bucket).send().await.expect("bucket");
            }
            for (table, key) in [(RESULTS, "pk"), (AGGREGATES, "user_id")] {
                emulators::create_table(&aws.dynamodb, table, key).await;
            }
            let q = aws.sqs.create_queue().queue_name("rejects").send().await.expect("queue");
            let t = aws.sns.create_topic().name("notify").send().await.expect("topic");
            (q.queue_url().unwrap().to_string(), t.topic_arn().unwrap().to_string())
        });
        // What terraform writes for this pipeline: where each sink of `definition` lives.
        let bindings = json!({
            "weir_bindings": 1,
            "pipeline": PIPELINE,
            "tables": {
                "orders": {"name": RESULTS, "arn": null, "hash_key": "pk", "range_key": null},
                "user_stats": {"name": AGGREGATES, "arn": null, "hash_key": "user_id", "range_key": null},
            },
            "topics": {"big-orders": {"arn": &topic_arn}},
            "objects": {},
            "dead_letter": {"queue_url": &rejects_url, "queue_arn": null, "offload_bucket": OUTPUT,
                            "offload_prefix": "weir-dead-letters/orders/"},
            "checkpoints": {"bucket": OUTPUT, "prefix": "weir-checkpoints/orders/"},
        });
        rt.block_on(
            aws.s3.put_object().bucket(PLUGINS).key(BINDINGS).body(bindings.to_string().into_bytes().into()).send(),
        )
        .expect("bindings");
        let store = ManifestStore::new(aws.s3.clone(), PLUGINS, PIPELINE);
        let endpoint = moto.endpoint();
        Some(World { rt, endpoint, aws, store, rejects_url, cache: tempfile::tempdir().unwrap(), _moto: moto })
    }

    /// The function's environment (`lambda/env-vars.json`) for these resources.
    fn env(&self, keys: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("WEIR_PIPELINE", PIPELINE.to_string()),
            ("WEIR_PLUGINS_BUCKET", PLUGINS.into()),
            ("WEIR_MANIFEST_KEY", self.store.key.clone()),
            ("WEIR_BINDINGS_KEY", BINDINGS.into()),
            ("WEIR_REFRESH_SECONDS", "0".into()),
            ("WEIR_SIGNING_KEYS", keys.into()),
            ("WEIR_CACHE_DIR", self.cache.path().display().to_string()),
            ("RUST_LOG", "info".into()),
        ])
    }

    fn settings(&self, keys: &str, refresh_seconds: &str) -> Settings {
        let mut env = self.env(keys);
        env.insert("WEIR_REFRESH_SECONDS", refresh_seconds.into());
        Settings::from_lookup(|k| env.get(k).cloned()).expect("settings")
    }

    /// A warm function instance checking the manifest on every invocation; its EMF lines go
    /// to the returned buffer.
    fn host(&self, keys: &str) -> (Arc<Mutex<Host>>, Arc<Mutex<Vec<u8>>>) {
        self.host_refreshing(keys, "0")
    }

    fn host_refreshing(&self, keys: &str, refresh_seconds: &str) -> (Arc<Mutex<Host>>, Arc<Mutex<Vec<u8>>>) {
        let metrics = Arc::new(Mutex::new(Vec::new()));
        let emf = Emf::to(metrics.clone(), PIPELINE);
        let settings = self.settings(keys, refresh_seconds);
        let deployment = self
            .rt
            .block_on(Deployment::read(&self.aws.s3, &settings.plugins_bucket, &settings.bindings_key))
            .expect("the bindings document");
        let host = Host::new(settings, deployment, self.aws.clone(), emf).expect("host");
        (Arc::new(Mutex::new(host)), metrics)
    }

    fn invoke(&self, host: &Arc<Mutex<Host>>, payload: Value) -> Result<Value, String> {
        let mut context = lambda_runtime::Context::default();
        context.request_id = "test-request".into();
        context.deadline = (std::time::SystemTime::now() + std::time::Duration::from_secs(120))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let event = lambda_runtime::LambdaEvent::new(payload, context);
        let response = self.rt.block_on(function_handler(host.clone(), event)).map_err(|e| e.to_string())?;
        Ok(serde_json::to_value(response).expect("the answer is JSON"))
    }

    fn upload(&self, wasm: &[u8]) -> Artifact {
        let (key, sha256) = self.rt.block_on(self.store.upload_artifact(wasm)).expect("upload");
        Artifact { key, sha256 }
    }

    /// Publishes `artifacts` (stage -> bytes) with the pipeline file for `tax_rate`.
    fn publish(&self, artifacts: &[(&str, &[u8])], tax_rate: &str, key: Option<&SigningKey>) -> Manifest {
        self.publish_file(artifacts, &definition(tax_rate), key, "test")
    }

    /// Publishes `artifacts` (stage -> bytes) with this pipeline file.
    fn publish_file(&self, artifacts: &[(&str, &[u8])], text: &str, key: Option<&SigningKey>, note: &str) -> Manifest {
        let artifacts: BTreeMap<String, Artifact> =
            artifacts.iter().map(|(stage, wasm)| (stage.to_string(), self.upload(wasm))).collect();
        let file = std::path::Path::new("weir.toml");
        self.rt
            .block_on(self.store.publish(|current| {
                manifest::draft(current, Some((file, text.to_string())), &artifacts, key, PIPELINE, note.into())
            }))
            .expect("publish")
    }

    /// Rewrites the deployment's bindings document (as a terraform apply would).
    fn edit_bindings(&self, edit: impl FnOnce(&mut Value)) {
        let text = self.rt.block_on(self.aws.s3.get_object().bucket(PLUGINS).key(BINDINGS).send()).expect("bindings");
        let text = self.rt.block_on(text.body.collect()).expect("body").into_bytes();
        let mut doc: Value = serde_json::from_slice(&text).unwrap();
        edit(&mut doc);
        let body = doc.to_string().into_bytes();
        self.rt.block_on(self.aws.s3.put_object().bucket(PLUGINS).key(BINDINGS).body(body.into()).send()).expect("put");
    }

    fn item(&self, order_id: &str, user: &str) -> Option<Value> {
        let out = self
            .rt
            .block_on(
                self.aws
                    .dynamodb
                    .get_item()
                    .table_name(RESULTS)
                    .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("{user}#{order_id}")))
                    .consistent_read(true)
                    .send(),
            )
            .expect("get item");
        out.item().map(|i| Value::Object(i.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect()))
    }

    fn count(&self, table: &str) -> usize {
        let out = self.rt.block_on(self.aws.dynamodb.scan().table_name(table).send()).expect("scan");
        out.items().iter().filter(|i| !matches!(i.get("user_id"), Some(aws_sdk_dynamodb::types::AttributeValue::S(s)) if s.starts_with("weir-seen#"))).count()
    }

    fn user_orders(&self) -> BTreeMap<String, u64> {
        let out = self.rt.block_on(self.aws.dynamodb.scan().table_name(AGGREGATES).send()).expect("scan");
        out.items()
            .iter()
            .filter_map(|i| {
                let Some(aws_sdk_dynamodb::types::AttributeValue::S(user)) = i.get("user_id") else { return None };
                if user.starts_with("weir-seen#") {
                    return None;
                }
                let n = from_attribute(i.get("orders")?).to_string().parse::<f64>().ok()? as u64;
                Some((user.clone(), n))
            })
            .collect()
    }

    fn rejects(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let out = self
                .rt
                .block_on(
                    self.aws
                        .sqs
                        .receive_message()
                        .queue_url(&self.rejects_url)
                        .max_number_of_messages(10)
                        .message_attribute_names("All")
                        .send(),
                )
                .expect("receive");
            let messages = out.messages().to_vec();
            if messages.is_empty() {
                return all;
            }
            for m in &messages {
                self.rt
                    .block_on(
                        self.aws
                            .sqs
                            .delete_message()
                            .queue_url(&self.rejects_url)
                            .receipt_handle(m.receipt_handle().unwrap())
                            .send(),
                    )
                    .expect("delete");
            }
            all.extend(messages);
        }
    }

    fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self.rt.block_on(self.aws.s3.list_objects_v2().bucket(bucket).prefix(prefix).send()).expect("list");
        out.contents().iter().filter_map(|o| o.key().map(String::from)).collect()
    }

    fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.rt
            .block_on(self.aws.s3.put_object().bucket(bucket).key(key).body(ByteStream::from(body)).send())
            .expect("put object");
    }
}

fn refusals(metrics: &Arc<Mutex<Vec<u8>>>) -> usize {
    let text = String::from_utf8(metrics.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("EMF lines are JSON"))
        .filter(|l| l.get("PluginRefusals").is_some())
        .count()
}

/// `Inputs` of the invocation whose metrics are in the buffer.
fn invocation_inputs(metrics: &Arc<Mutex<Vec<u8>>>) -> u64 {
    let text = String::from_utf8(metrics.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|l| l.get("Inputs").and_then(Value::as_u64))
        .sum()
}

fn running(host: &Arc<Mutex<Host>>) -> (String, u64) {
    host.lock().unwrap().running().expect("a chain is running")
}

fn no_failures(response: &Value) {
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
}

#[test]
fn publish_hot_swap_refuse_and_roll_back_on_a_warm_host() {
    let Some(w) = World::new() else { return };
    let validate = bytes(wasm::VALIDATE_ORDER);
    let enrich_v1 = bytes(wasm::ENRICH_ORDER);
    let enrich_v2 = rebuilt(wasm::ENRICH_ORDER, "v2");
    let v1 = w.publish(&[("validate", &validate), ("enrich", &enrich_v1)], "0", None);
    assert_eq!(v1.version, 1);

    // v1: totals without tax; every output carries the chain it ran on.
    let (host, metrics) = w.host("");
    no_failures(&w.invoke(&host, sqs_batch(0..7)).expect("invoke"));
    let (chain_v1, version) = running(&host);
    assert_eq!(version, 1);
    assert!(chain_v1.contains(&enrich_v1_sha(&v1)[..12]), "{chain_v1}");
    let o0 = w.item("o-0000", "u-0").expect("o-0000 written");
    assert_eq!(o0["total"].to_string().parse::<f64>().unwrap(), 100.0);
    assert_eq!(o0["weir_chain"], chain_v1.as_str());
    let rejects = w.rejects();
    assert_eq!(rejects.len(), 1, "o-0003 (currency XYZ) rejected by validate");
    let attrs = rejects[0].message_attributes().unwrap();
    assert_eq!(attrs["stage"].string_value(), Some("validate"));
    assert!(attrs["reason"].string_value().unwrap().contains("XYZ"), "{:?}", attrs["reason"]);

    // v2: the same warm host's next batch runs it, with its config (tax 50 %).
    let v2 = w.publish(&[("enrich", &enrich_v2)], "0.5", None);
    assert_eq!(v2.version, 2);
    no_failures(&w.invoke(&host, sqs_batch(7..14)).expect("invoke"));
    let (chain_v2, version) = running(&host);
    assert_eq!(version, 2);
    assert_ne!(chain_v2, chain_v1);
    let o7 = w.item("o-0007", "u-3").expect("o-0007 written");
    assert_eq!(o7["weir_chain"], chain_v2.as_str());
    assert_eq!(o7["total"].to_string().parse::<f64>().unwrap(), (100 + 7 * 37) as f64 * 1.5);
    assert_eq!(refusals(&metrics), 0);

    // A tampered artifact: the manifest's sha256 no longer matches the object -> refused.
    let enrich_v3 = rebuilt(wasm::ENRICH_ORDER, "v3");
    let v3 = w.publish(&[("enrich", &enrich_v3)], "0.5", None);
    let enrich = v3.stages.iter().find(|s| s.name == "enrich").unwrap();
    w.put_object(PLUGINS, &enrich.artifact, rebuilt(wasm::ENRICH_ORDER, "evil"));
    no_failures(&w.invoke(&host, sqs_batch(14..21)).expect("the last good chain runs"));
    assert_eq!(running(&host), (chain_v2.clone(), 2), "v3 refused, v2 keeps running");
    assert_eq!(w.item("o-0014", "u-2").expect("written")["weir_chain"], chain_v2.as_str());
    assert_eq!(refusals(&metrics), 1, "the refusal is counted once, not on every check");
    no_failures(&w.invoke(&host, sqs_batch(21..22)).expect("invoke"));
    assert_eq!(refusals(&metrics), 1, "a refused version is not retried until the manifest changes");

    // Not a weir component; then a plugin whose init refuses its config (tax_rate 99).
    w.publish(&[("enrich", &bytes(wasm::NOT_WEIR))], "0.5", None);
    no_failures(&w.invoke(&host, sqs_batch(22..23)).expect("invoke"));
    assert_eq!(refusals(&metrics), 2);
    w.publish(&[("enrich", &enrich_v2)], "99", None);
    no_failures(&w.invoke(&host, sqs_batch(23..24)).expect("invoke"));
    assert_eq!(refusals(&metrics), 3);
    assert_eq!(running(&host), (chain_v2.clone(), 2));

    // Rollback to v1: a new version with v1's stages and pipeline file.
    let back = w.rt.block_on(w.store.rollback(Some(1))).expect("rollback");
    assert_eq!(back.stages, v1.stages);
    assert_eq!(back.note, "rollback to 1");
    no_failures(&w.invoke(&host, sqs_batch(24..31)).expect("invoke"));
    let (chain, version) = running(&host);
    assert_eq!((chain.as_str(), version), (chain_v1.as_str(), back.version));
    let o25 = w.item("o-0025", "u-1").expect("written");
    assert_eq!(o25["weir_chain"], chain_v1.as_str());
    assert_eq!(o25["total"].to_string().parse::<f64>().unwrap(), (100 + (25 * 37) % 400) as f64);

    // Every version is in the history.
    let history = w.rt.block_on(w.store.history()).expect("history");
    assert_eq!(history.iter().map(|m| m.version).collect::<Vec<_>>(), (1..=back.version).collect::<Vec<_>>());

    // Two publishes racing: another publisher completes between this one's read of the
    // manifest and its writes. This one fails with Conflict; the other's version stays live.
    let endpoint = w.endpoint.clone();
    let raced = w.rt.block_on(w.store.publish(|current| {
        let current = current.expect("a live version").clone();
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let other = ManifestStore::new(s3_client(&endpoint).await, PLUGINS, PIPELINE);
                    other
                        .publish(|live| {
                            let live = live.unwrap();
                            Ok(manifest::Draft {
                                stages: live.stages.clone(),
                                note: "the winner".into(),
                                definition: live.definition.clone(),
                                signature: None,
                            })
                        })
                        .await
                        .expect("the other publish")
                })
            })
            .join()
            .unwrap()
        });
        Ok(manifest::Draft {
            stages: current.stages,
            note: "the loser".into(),
            definition: current.definition,
            signature: None,
        })
    }));
    assert!(matches!(raced, Err(manifest::ManifestError::Conflict { .. })), "{raced:?}");
    assert!(raced.unwrap_err().to_string().contains("nothing of this publish is live"));
    let live = w.rt.block_on(w.store.current()).unwrap().unwrap().0;
    assert_eq!((live.version, live.note.as_str()), (back.version + 1, "the winner"));
}

async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = emulators::sdk_config(endpoint, 3).await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build())
}

fn enrich_v1_sha(m: &Manifest) -> String {
    m.stages.iter().find(|s| s.name == "enrich").unwrap().sha256.clone()
}

#[test]
fn with_keys_configured_only_versions_signed_by_one_of_them_load() {
    let Some(w) = World::new() else { return };
    let key = SigningKey::from_bytes(&[42; 32]);
    let other = SigningKey::from_bytes(&[43; 32]);
    let keys = manifest::public_key_text(&key.verifying_key());
    let validate = bytes(wasm::VALIDATE_ORDER);
    let enrich = bytes(wasm::ENRICH_ORDER);

    w.publish(&[("validate", &validate), ("enrich", &enrich)], "0", None);
    let (host, metrics) = w.host(&keys);
    let err = w.invoke(&host, sqs_batch(0..3)).expect_err("nothing may run unsigned");
    assert!(err.contains("no version"), "{err}");
    assert_eq!(refusals(&metrics), 1);

    w.publish(&[("validate", &validate), ("enrich", &enrich)], "0", Some(&other));
    assert!(w.invoke(&host, sqs_batch(0..3)).is_err(), "signed by a key the host does not trust");
    assert_eq!(refusals(&metrics), 2);

    let signed = w.publish(&[("validate", &validate), ("enrich", &enrich)], "0", Some(&key));
    no_failures(&w.invoke(&host, sqs_batch(0..3)).expect("signed by a trusted key"));
    assert_eq!(running(&host).1, signed.version);

    // The signature covers the config: the same artifacts with another config, unsigned, are refused.
    w.publish(&[], "0.5", None);
    no_failures(&w.invoke(&host, sqs_batch(3..4)).expect("the signed version keeps running"));
    assert_eq!(running(&host).1, signed.version);
    assert_eq!(refusals(&metrics), 3);

    // And the chain: dropping a signed stage (each remaining stage still validly signed) is refused.
    w.rt.block_on(w.store.publish(|_| {
        Ok(manifest::Draft {
            stages: signed.stages.iter().filter(|s| s.name != "validate").cloned().collect(),
            note: "validation dropped".into(),
            definition: signed.definition.clone(),
            signature: signed.signature.clone(),
        })
    }))
    .expect("publish");
    no_failures(&w.invoke(&host, sqs_batch(4..5)).expect("the signed version keeps running"));
    assert_eq!(running(&host).1, signed.version);
    assert_eq!(refusals(&metrics), 4);

    // A rollback to the signed version needs no key: the same chain keeps its signature.
    let back = w.rt.block_on(w.store.rollback(Some(signed.version))).expect("rollback");
    no_failures(&w.invoke(&host, sqs_batch(5..6)).expect("invoke"));
    assert_eq!(running(&host).1, back.version);
    assert_eq!(refusals(&metrics), 4);

    // A manifest that is not one at all: refused once, the running version runs on.
    w.put_object(PLUGINS, &w.store.key, b"{ not json".to_vec());
    no_failures(&w.invoke(&host, sqs_batch(6..7)).expect("invoke"));
    no_failures(&w.invoke(&host, sqs_batch(7..8)).expect("invoke"));
    assert_eq!(running(&host).1, back.version);
    assert_eq!(refusals(&metrics), 5, "counted once, not on every check");
}

#[test]
fn partial_batch_failure_names_exactly_the_failed_messages() {
    let Some(w) = World::new() else { return };
    w.publish(&[("validate", &bytes(wasm::VALIDATE_ORDER)), ("enrich", &bytes(wasm::ENRICH_ORDER))], "0", None);
    let (host, _) = w.host("");
    let lines: String = (100..105).map(|i| format!("{}\n", order(i))).collect();
    w.put_object(INPUT, "in/orders.jsonl", lines.into_bytes());
    let mut batch = sqs_batch(0..6);
    let records = batch["Records"].as_array_mut().unwrap();
    let object_message = |id: &str, bucket: &str, key: &str| json!({"messageId": id, "eventSource": "aws:sqs", "body": s3_notification(bucket, key).to_string()});
    records.insert(2, object_message("m-missing-bucket", "no-such-bucket", "in/orders.jsonl"));
    records.push(object_message("m-object", INPUT, "in/orders.jsonl"));
    records.push(object_message("m-other-missing-bucket", "also-missing", "x.jsonl"));

    let response = w.invoke(&host, batch).expect("invoke");
    let mut failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    failed.sort();
    assert_eq!(failed, ["m-missing-bucket", "m-other-missing-bucket"], "{response}");
    // Everything else is done: the plain orders (one rejected) and the object's rows.
    for i in (0..6).chain(100..105).filter(|i| i % 7 != 3) {
        let o = order(i);
        assert!(w.item(o["order_id"].as_str().unwrap(), o["user_id"].as_str().unwrap()).is_some(), "order {i} written");
    }
    assert_eq!(w.rejects().len(), (0..6).chain(100..105).filter(|i| i % 7 == 3).count());

    // Not an event this function takes: a clear error, nothing half done.
    let err = w.invoke(&host, json!({"detail-type": "Scheduled Event"})).expect_err("unknown event");
    assert!(err.contains("expected an SQS, S3 or SNS event"), "{err}");
}

#[test]
fn direct_s3_events_and_objects_cut_off_by_the_deadline_resume_on_redelivery() {
    let Some(w) = World::new() else { return };
    w.publish(&[("validate", &bytes(wasm::VALIDATE_ORDER)), ("enrich", &bytes(wasm::ENRICH_ORDER))], "0", None);
    let (host, metrics) = w.host("");

    // A direct S3 notification: the object's rows, the answer `{}`.
    let lines: String = (0..20).map(|i| format!("{}\n", order(i))).collect();
    w.put_object(INPUT, "in/a.jsonl", lines.into_bytes());
    no_failures(&w.invoke(&host, s3_notification(INPUT, "in/a.jsonl")).expect("invoke"));
    let good_a = (0..20).filter(|i| i % 7 != 3).count();
    assert_eq!(w.count(RESULTS), good_a);

    // 40 rows in batches of 10; the deadline comes after the first batch.
    let lines: String = (1000..1040).map(|i| format!("{}\n", order(i))).collect();
    w.put_object(INPUT, "in/b.jsonl", lines.into_bytes());
    let body = s3_notification(INPUT, "in/b.jsonl").to_string();
    let delivery = |receives: u32| {
        json!({"Records": [{"messageId": "m-big", "eventSource": "aws:sqs", "body": body,
                            "attributes": {"ApproximateReceiveCount": receives.to_string()}}]})
    };
    let batch = delivery(1);
    let checks = Arc::new(AtomicUsize::new(0));
    let seen = checks.clone();
    // Checked before the message, then before each batch: the third check says "out of time".
    let out_of_time = Box::new(move || seen.fetch_add(1, Ordering::SeqCst) >= 2);
    let response = host.lock().unwrap().handle(batch.clone(), Some(out_of_time), None).expect("handled");
    let response = serde_json::to_value(response).unwrap();
    assert_eq!(response["batchItemFailures"], json!([{"itemIdentifier": "m-big"}]), "{response}");
    let partial = w.count(RESULTS) - good_a;
    assert!(partial > 0 && partial < 40, "the first batch was written before the deadline ({partial})");

    // Its progress is checkpointed: the first batch of 10 rows is done.
    let checkpoints = w.list(OUTPUT, "weir-checkpoints/orders/");
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");

    // Redelivered with time to spare: it resumes after those 10 rows, every row ends up
    // exactly once, each order counted once, and the checkpoint is gone.
    metrics.lock().unwrap().clear();
    let batch = delivery(2);
    no_failures(&w.invoke(&host, batch.clone()).expect("invoke"));
    assert_eq!(invocation_inputs(&metrics), 30, "resumed after the checkpoint");
    assert!(w.list(OUTPUT, "weir-checkpoints/").is_empty());
    let good_b = (1000..1040).filter(|i| i % 7 != 3).count();
    assert_eq!(w.count(RESULTS), good_a + good_b);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in (0..20).chain(1000..1040).filter(|i| i % 7 != 3) {
        *expected.entry(format!("u-{}", i % 4)).or_default() += 1;
    }
    assert_eq!(w.user_orders(), expected);
    // And once more (SQS at-least-once): all of it again, still no duplicate effect.
    metrics.lock().unwrap().clear();
    no_failures(&w.invoke(&host, batch).expect("invoke"));
    assert_eq!(invocation_inputs(&metrics), 40);
    assert_eq!(w.user_orders(), expected);
    assert_eq!(w.count(RESULTS), good_a + good_b);
}

/// An object that needs several invocations goes on in continuation messages: each invocation
/// the deadline cuts off answers no failure, sends one new message to the input queue carrying
/// where to go on (a byte offset: the next one reads on with a ranged GET), and that message is
/// a first receive; the object finishes with every row written once and no checkpoint left.
#[test]
fn a_large_object_goes_on_in_continuation_messages_without_spending_receives() {
    let Some(w) = World::new() else { return };
    let (input_url, input_arn) = w.rt.block_on(async {
        let q = w.aws.sqs.create_queue().queue_name("input").send().await.expect("queue");
        let url = q.queue_url().unwrap().to_string();
        let name = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
        let attrs = w.aws.sqs.get_queue_attributes().queue_url(&url).attribute_names(name.clone()).send();
        let arn = attrs.await.expect("attributes").attributes().unwrap()[&name].clone();
        (url, arn)
    });
    w.edit_bindings(|doc| doc["input"] = json!({"queue_url": input_url, "queue_arn": input_arn}));
    w.publish(&[("validate", &bytes(wasm::VALIDATE_ORDER)), ("enrich", &bytes(wasm::ENRICH_ORDER))], "0", None);
    let (host, metrics) = w.host("");

    // 60 rows in batches of 10; each invocation has time for two batches.
    let lines: String = (2000..2060).map(|i| format!("{}\n", order(i))).collect();
    w.put_object(INPUT, "in/big.jsonl", lines.into_bytes());
    let mut message = json!({"messageId": "m-first", "eventSource": "aws:sqs", "eventSourceARN": &input_arn,
                             "body": s3_notification(INPUT, "in/big.jsonl").to_string(),
                             "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}});
    let mut offsets = Vec::new();
    for invocation in 1.. {
        assert!(invocation <= 3, "60 rows at 20 an invocation take 3 invocations");
        metrics.lock().unwrap().clear();
        let checks = Arc::new(AtomicUsize::new(0));
        let seen = checks.clone();
        let out_of_time = Box::new(move || seen.fetch_add(1, Ordering::SeqCst) >= 3);
        let response = host.lock().unwrap().handle(json!({"Records": [message]}), Some(out_of_time), None);
        no_failures(&serde_json::to_value(response.expect("handled")).unwrap());
        assert_eq!(invocation_inputs(&metrics), 20, "invocation {invocation} read on where the last one stopped");
        let out = w.rt.block_on(
            w.aws
                .sqs
                .receive_message()
                .queue_url(&input_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send(),
        );
        let received = out.expect("receive").messages().to_vec();
        let Some(next) = received.first() else { break };
        assert_eq!(received.len(), 1, "one continuation per cut");
        let count = next.attributes().unwrap()
            [&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount]
            .clone();
        assert_eq!(count, "1", "a continuation is a new message: no receive of the object's was spent");
        let resume = next.message_attributes().unwrap()["weir-resume"].string_value().unwrap().to_string();
        let at: Value = serde_json::from_str(&resume).unwrap();
        offsets.push(at["at"]["offset"].as_u64().expect("JSON Lines resume at a byte offset"));
        w.rt.block_on(
            w.aws.sqs.delete_message().queue_url(&input_url).receipt_handle(next.receipt_handle().unwrap()).send(),
        )
        .expect("delete");
        message = json!({"messageId": next.message_id().unwrap(), "eventSource": "aws:sqs", "eventSourceARN": &input_arn,
                         "body": next.body().unwrap(), "attributes": {"ApproximateReceiveCount": "1"},
                         "messageAttributes": {"weir-resume": {"stringValue": resume, "dataType": "String"}}});
    }
    assert_eq!(offsets.len(), 2, "two cuts, each continued");
    assert!(offsets[0] > 0 && offsets[1] > offsets[0], "{offsets:?}");
    let good = (2000..2060).filter(|i| i % 7 != 3).count();
    assert_eq!(w.count(RESULTS), good, "every row once");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in (2000..2060).filter(|i| i % 7 != 3) {
        *expected.entry(format!("u-{}", i % 4)).or_default() += 1;
    }
    assert_eq!(w.user_orders(), expected, "each order counted once");
    assert!(w.list(OUTPUT, "weir-checkpoints/").is_empty(), "no checkpoint is left behind");
}

#[test]
fn a_warm_host_checks_the_manifest_at_most_once_per_refresh_interval() {
    let Some(w) = World::new() else { return };
    let validate = bytes(wasm::VALIDATE_ORDER);
    w.publish(&[("validate", &validate), ("enrich", &bytes(wasm::ENRICH_ORDER))], "0", None);
    let (host, _) = w.host_refreshing("", "3600");
    no_failures(&w.invoke(&host, sqs_batch(0..2)).expect("invoke"));
    assert_eq!(running(&host).1, 1);
    w.publish(&[("enrich", &rebuilt(wasm::ENRICH_ORDER, "v2"))], "0.5", None);
    no_failures(&w.invoke(&host, sqs_batch(2..4)).expect("invoke"));
    assert_eq!(running(&host).1, 1, "not due for an hour: v1 keeps running, no S3 request made");
    // A fresh instance (a cold start) loads the newest version.
    let (cold, _) = w.host_refreshing("", "3600");
    no_failures(&w.invoke(&cold, sqs_batch(4..6)).expect("invoke"));
    assert_eq!(running(&cold).1, 2);
}

#[test]
fn a_host_with_nothing_published_fails_the_invocation_and_says_why() {
    let Some(w) = World::new() else { return };
    let (host, metrics) = w.host("");
    let err = w.invoke(&host, sqs_batch(0..2)).expect_err("nothing to run");
    assert!(err.contains("no version"), "{err}");
    assert_eq!(refusals(&metrics), 0, "nothing published is not a bad publish: no refusal is counted");
    // Once something is published, the same instance loads it on its next invocation.
    w.publish(&[("validate", &bytes(wasm::VALIDATE_ORDER)), ("enrich", &bytes(wasm::ENRICH_ORDER))], "0", None);
    no_failures(&w.invoke(&host, sqs_batch(0..2)).expect("invoke"));
    assert_eq!(running(&host).1, 1);
}

/// The deployment decides what can run: a version whose pipeline file names a sink the
/// bindings document lacks is refused by the warm host (the last good chain runs on), and a
/// cold host whose document names a table keyed otherwise than the file (DescribeTable) loads
/// nothing rather than writing items DynamoDB would refuse one by one.
#[test]
fn versions_that_do_not_fit_the_deployment_are_refused() {
    let Some(w) = World::new() else { return };
    let stages = [("validate", bytes(wasm::VALIDATE_ORDER)), ("enrich", bytes(wasm::ENRICH_ORDER))];
    let stages: Vec<(&str, &[u8])> = stages.iter().map(|(s, b)| (*s, b.as_slice())).collect();
    w.publish(&stages, "0", None);
    let (host, metrics) = w.host("");
    no_failures(&w.invoke(&host, sqs_batch(0..2)).expect("invoke"));
    assert_eq!(running(&host).1, 1);

    // v2 adds a table the stack does not have.
    w.publish_file(&stages, &with_currency_table(), None, "extra table");
    no_failures(&w.invoke(&host, sqs_batch(2..4)).expect("the last good chain runs on"));
    assert_eq!(running(&host).1, 1, "v2 refused");
    assert_eq!(refusals(&metrics), 1);

    // The document says `orders` is keyed by pk; the table it names is keyed by id.
    w.rt.block_on(emulators::create_table(&w.aws.dynamodb, "weir-wrong-key", "id"));
    w.edit_bindings(|doc| doc["tables"]["orders"]["name"] = json!("weir-wrong-key"));
    // Back to v1's file (a rollback), on a cold host reading the changed document.
    w.rt.block_on(w.store.rollback(Some(1))).expect("rollback");
    let (cold, cold_metrics) = w.host("");
    let err = w.invoke(&cold, sqs_batch(4..6)).expect_err("no version fits");
    assert!(err.contains("no plugin chain is loaded"), "{err}");
    assert_eq!(refusals(&cold_metrics), 1);
}

/// A version whose sinks the stack cannot build yet (a table its bindings name is not there) is
/// not refused for good: the last good chain runs on, and the version is tried again on every
/// manifest check, so that it goes live once the table exists.
#[test]
fn a_version_the_stack_cannot_run_yet_goes_live_once_it_can() {
    let Some(w) = World::new() else { return };
    // The document names a third table, which terraform has not created yet.
    w.edit_bindings(|doc| {
        doc["tables"]["currency_stats"] =
            json!({"name": "weir-currency-stats", "arn": null, "hash_key": "currency", "range_key": null})
    });

    let stages = [("validate", bytes(wasm::VALIDATE_ORDER)), ("enrich", bytes(wasm::ENRICH_ORDER))];
    let stages: Vec<(&str, &[u8])> = stages.iter().map(|(s, b)| (*s, b.as_slice())).collect();
    w.publish(&stages, "0", None);
    let (host, metrics) = w.host("");
    no_failures(&w.invoke(&host, sqs_batch(0..2)).expect("invoke"));
    assert_eq!(running(&host).1, 1);

    // v2 writes that table.
    w.publish_file(&stages, &with_currency_table(), None, "currency table");
    for range in [2..4, 4..6] {
        no_failures(&w.invoke(&host, sqs_batch(range)).expect("the last good chain runs on"));
        assert_eq!(running(&host).1, 1, "v2 cannot run without its table");
    }
    assert_eq!(refusals(&metrics), 2, "tried on every check, counted each time");

    // Terraform creates the table: the next check puts v2 to work.
    w.rt.block_on(emulators::create_table(&w.aws.dynamodb, "weir-currency-stats", "currency"));
    no_failures(&w.invoke(&host, sqs_batch(6..8)).expect("invoke"));
    assert_eq!(running(&host).1, 2, "v2 live once its table exists");
    let items = w.rt.block_on(w.aws.dynamodb.scan().table_name("weir-currency-stats").send()).expect("scan");
    assert!(items.count() > 0, "v2 wrote its table");
}

/// cargo-lambda on PATH, or where `tests/run.sh` installs it.
fn cargo_lambda() -> Option<std::path::PathBuf> {
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-cargo-lambda/bin/cargo-lambda");
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("cargo-lambda")).find(|p| p.is_file()))
}

/// Kills a child process when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_bootstrap_binary_under_cargo_lambda_watch_and_invoke() {
    let Some(cargo_lambda) = cargo_lambda() else {
        emulators::skipped(
            "cargo-lambda is not installed (pip install cargo-lambda; tests/run.sh puts it in \
             .venv-cargo-lambda): the bootstrap binary was not run under `cargo lambda watch`",
        );
        return;
    };
    let Some(w) = World::new() else { return };
    let validate = bytes(wasm::VALIDATE_ORDER);
    w.publish(&[("validate", &validate), ("enrich", &bytes(wasm::ENRICH_ORDER))], "0", None);

    // The runtime API emulator; our own build of `bootstrap` runs against it, as in Lambda.
    let port = free_port();
    let logs = tempfile::tempdir().unwrap();
    let watch_log = std::fs::File::create(logs.path().join("watch.log")).unwrap();
    let _watch = Child(
        std::process::Command::new(&cargo_lambda)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--timeout",
                "120",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .stdout(watch_log.try_clone().unwrap())
            .stderr(watch_log)
            .spawn()
            .expect("cargo lambda watch"),
    );
    // The function starts once the runtime API listens (as Lambda starts it after its own).
    let listening = (0..240).any(|_| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || {
            std::thread::sleep(std::time::Duration::from_millis(250));
            false
        }
    });
    assert!(listening, "cargo lambda watch did not listen on {port}: {}", read(&logs.path().join("watch.log")));
    let mut function = std::process::Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    function
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
        .env("AWS_ENDPOINT_URL", &w.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "fake")
        .env("AWS_SECRET_ACCESS_KEY", "fake");
    for (k, v) in w.env("") {
        function.env(k, v);
    }
    let function_log = logs.path().join("function.log");
    let out = std::fs::File::create(&function_log).unwrap();
    let _function = Child(function.stdout(out.try_clone().unwrap()).stderr(out).spawn().expect("bootstrap"));

    let invoke = |payload: &Value| -> Value {
        let file = logs.path().join("event.json");
        std::fs::write(&file, payload.to_string()).unwrap();
        // Bounded: a function that died would leave the invoke waiting forever.
        let mut child = std::process::Command::new(&cargo_lambda)
            .args(["lambda", "invoke", "-A", "127.0.0.1", "-P", &port.to_string(), "-o", "json", "-F"])
            .arg(&file)
            .arg("_")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("cargo lambda invoke");
        let started = std::time::Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if started.elapsed() > std::time::Duration::from_secs(120) {
                let _ = child.kill();
                panic!("cargo lambda invoke got no answer in 120 s\nfunction log:\n{}", read(&function_log));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = child.wait_with_output().expect("invoke output");
        assert!(
            out.status.success(),
            "cargo lambda invoke failed: {}{}\nfunction log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            read(&function_log)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("invoke answered {:?}: {e}", String::from_utf8_lossy(&out.stdout)))
    };

    let ok = |response: Value| {
        assert_eq!(response["batchItemFailures"], json!([]), "{response}\nfunction log:\n{}", read(&function_log))
    };
    ok(invoke(&sqs_batch(0..5)));
    let v1 = w.item("o-0000", "u-0").expect("o-0000 written by the bootstrap binary");
    // v2, picked up by the running process on its next invocation (WEIR_REFRESH_SECONDS=0).
    w.publish(&[("enrich", &rebuilt(wasm::ENRICH_ORDER, "v2"))], "0.5", None);
    ok(invoke(&sqs_batch(5..10)));
    let v2 = w.item("o-0005", "u-1").expect("o-0005 written");
    assert_ne!(v1["weir_chain"], v2["weir_chain"], "hot reload inside the running process");
    assert_eq!(v2["total"].to_string().parse::<f64>().unwrap(), (100 + 5 * 37) as f64 * 1.5);
    let log = read(&function_log);
    assert!(log.lines().any(|l| l.contains("\"PluginRefusals\"") || l.contains("\"Inputs\"")), "EMF on stdout:\n{log}");
    assert!(
        log.lines().filter(|l| l.starts_with('{')).all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "every log line is JSON:\n{log}"
    );
}
