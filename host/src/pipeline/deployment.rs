//! A deployment's bindings document: where each sink a pipeline file names lives in one
//! deployed stack, and the check that a pipeline file fits it.
//!
//! Terraform creates what a pipeline's [`Plan`](super::plan::Plan) asks for and writes this
//! document to `pipelines/<pipeline>/bindings.json` in the plugins bucket (the function finds it
//! through `WEIR_BINDINGS_KEY`). Both readers use [`Deployment::bind`]: `weir publish` refuses a
//! pipeline file the deployment cannot run before anything is written, and the function refuses
//! to install one (the last good chain keeps running), each naming every missing or mismatched
//! sink and the fix.
//!
//! ```json
//! {
//!   "weir_bindings": 1,
//!   "pipeline": "orders",
//!   "tables":  { "orders": { "name": "weir-orders-orders", "arn": "arn:aws:dynamodb:…", "hash_key": "pk", "range_key": null } },
//!   "topics":  { "big-orders": { "arn": "arn:aws:sns:…:weir-orders-big-orders" } },
//!   "objects": { "orders-processed": { "bucket": "weir-output-…", "prefix": "orders/orders/" } },
//!   "dead_letter": { "queue_url": "https://sqs.…/weir-orders-rejects", "queue_arn": "arn:aws:sqs:…",
//!                    "offload_bucket": "weir-output-…", "offload_prefix": "weir-dead-letters/orders/" },
//!   "checkpoints": { "bucket": "weir-output-…", "prefix": "weir-checkpoints/orders/" },
//!   "input": { "queue_url": "https://sqs.…/weir-orders-input", "queue_arn": "arn:aws:sqs:…:weir-orders-input" }
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Pipeline;
use super::bindings::Bindings;
use super::config::{ConfigError, DeadLetterConfig};
use super::plan::{DEFAULT_DEAD_LETTER_QUEUE, Plan};
use crate::aws::CallError;

/// The version of the bindings document this weir reads.
pub const BINDINGS_FORMAT: u32 = 1;

/// The logical bucket name dead-letter offloads use in a deployed pipeline (bound to the
/// document's `offload_bucket`).
const OFFLOAD_BUCKET: &str = "weir-dead-letter-offload";

/// Where a pipeline's bindings document is kept in the plugins bucket, by default.
pub fn default_key(pipeline: &str) -> String {
    format!("pipelines/{pipeline}/bindings.json")
}

/// One deployed stack's resources for one pipeline: its bindings document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub weir_bindings: u32,
    pub pipeline: String,
    #[serde(default)]
    pub tables: BTreeMap<String, TableBinding>,
    #[serde(default)]
    pub topics: BTreeMap<String, TopicBinding>,
    #[serde(default)]
    pub objects: BTreeMap<String, ObjectsBinding>,
    pub dead_letter: DeadLetterBinding,
    pub checkpoints: Location,
    /// The queue the function consumes, where an object cut off by the deadline is continued
    /// (absent: such an object's message is redelivered instead).
    #[serde(default)]
    pub input: Option<InputBinding>,
}

/// The function's input queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputBinding {
    pub queue_url: String,
    pub queue_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableBinding {
    /// The table's name.
    pub name: String,
    #[serde(default)]
    pub arn: Option<String>,
    pub hash_key: String,
    #[serde(default)]
    pub range_key: Option<String>,
}

impl TableBinding {
    /// The key schema, partition key first.
    pub fn key(&self) -> Vec<String> {
        std::iter::once(self.hash_key.clone()).chain(self.range_key.clone()).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicBinding {
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectsBinding {
    pub bucket: String,
    /// The whole key prefix inside the bucket (ends with `/`), replacing the file's `prefix`.
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterBinding {
    pub queue_url: String,
    #[serde(default)]
    pub queue_arn: Option<String>,
    /// Letters over SQS's 256 KB go here, a pointer to SQS.
    pub offload_bucket: String,
    pub offload_prefix: String,
}

/// A bucket and a key prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub bucket: String,
    pub prefix: String,
}

/// One way a pipeline file does not fit a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The file is another pipeline's.
    Pipeline { file: String, deployed: String },
    /// A sink the file names has no resource in the deployment.
    Missing { kind: &'static str, name: String, deployed: Vec<String> },
    /// A table exists with another key schema.
    Key { table: String, resource: String, file: Vec<String>, deployed: Vec<String> },
    /// The document names a table that does not exist (DescribeTable).
    Absent { table: String, resource: String },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Pipeline { file, deployed } => {
                write!(f, "the pipeline file is pipeline {file:?}, the deployment runs {deployed:?}")
            }
            Mismatch::Missing { kind, name, deployed } => {
                let has = if deployed.is_empty() { "none".to_string() } else { deployed.join(", ") };
                write!(f, "{kind} {name:?}: the deployment has no such {kind} (it has: {has})")
            }
            Mismatch::Key { table, resource, file, deployed } => write!(
                f,
                "table {table:?}: the file keys it by [{}], the deployed table {resource} by [{}]",
                file.join(", "),
                deployed.join(", ")
            ),
            Mismatch::Absent { table, resource } => {
                write!(f, "table {table:?}: the deployed table {resource} does not exist")
            }
        }
    }
}

/// A pipeline file the deployment cannot run: every mismatch, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}: does not fit the deployment ({origin}): {}; fix: add the pipeline's plan (`weir plan {file}`) to \
     terraform's `pipelines` and apply, then publish again",
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
)]
pub struct DeploymentError {
    pub file: String,
    /// Where the bindings came from (`s3://bucket/pipelines/orders/bindings.json`).
    pub origin: String,
    pub problems: Vec<Mismatch>,
}

/// Why a published pipeline file cannot run on a deployment.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("the manifest has no pipeline file (`definition`): publish with `weir publish --definition weir.toml`")]
    NoDefinition,
    #[error(transparent)]
    Definition(#[from] ConfigError),
    #[error(transparent)]
    Binding(#[from] DeploymentError),
    /// The deployed tables could not be looked at.
    #[error(transparent)]
    Describe(CallError),
}

/// A bindings document that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BindingsError {
    #[error("the deployment's bindings {source_name}: {source}")]
    Read { source_name: String, source: CallError },
    #[error(
        "no bindings document at {source_name}: terraform writes it for each pipeline in its `pipelines` variable \
         (is the pipeline deployed, and under this name?)"
    )]
    Absent { source_name: String },
    #[error("the deployment's bindings {source_name}: {source}")]
    Parse { source_name: String, source: serde_json::Error },
    #[error(
        "the deployment's bindings {source_name}: weir_bindings {found}; this weir reads version {BINDINGS_FORMAT}"
    )]
    Format { source_name: String, found: u32 },
}

impl Deployment {
    /// Parses a bindings document; `source_name` says where it came from, for messages.
    pub fn parse(source_name: &str, text: &str) -> Result<Deployment, BindingsError> {
        let doc: Deployment = serde_json::from_str(text)
            .map_err(|source| BindingsError::Parse { source_name: source_name.into(), source })?;
        if doc.weir_bindings != BINDINGS_FORMAT {
            return Err(BindingsError::Format { source_name: source_name.into(), found: doc.weir_bindings });
        }
        Ok(doc)
    }

    /// Reads the bindings document at `s3://bucket/key`.
    pub async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Deployment, BindingsError> {
        let source_name = format!("s3://{bucket}/{key}");
        let out = match s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(BindingsError::Absent { source_name });
            }
            Err(e) => {
                return Err(BindingsError::Read {
                    source: CallError::sdk(format!("reading {source_name}"), e),
                    source_name,
                });
            }
        };
        let body = match out.body.collect().await {
            Ok(b) => b.into_bytes(),
            Err(e) => {
                return Err(BindingsError::Read {
                    source: CallError::body(format!("reading {source_name}"), e),
                    source_name,
                });
            }
        };
        let text = String::from_utf8_lossy(&body);
        Deployment::parse(&source_name, &text)
    }

    /// Parses a published pipeline file (`file` names where it came from, for messages) and
    /// binds it ([`Deployment::bind`]).
    pub fn load(
        &self,
        file: &Path,
        definition: Option<&str>,
        source: &str,
    ) -> Result<(Pipeline, Bindings), DeployError> {
        let text = definition.ok_or(DeployError::NoDefinition)?;
        Ok(self.bind(Pipeline::parse_deployed(file, text)?, source)?)
    }

    /// Every way `plan` does not fit this deployment (empty: it fits).
    pub fn mismatches(&self, plan: &Plan) -> Vec<Mismatch> {
        let mut problems = Vec::new();
        if plan.pipeline != self.pipeline {
            problems.push(Mismatch::Pipeline { file: plan.pipeline.clone(), deployed: self.pipeline.clone() });
        }
        for (name, t) in &plan.tables {
            let file: Vec<String> = std::iter::once(t.hash_key.clone()).chain(t.range_key.clone()).collect();
            match self.tables.get(name) {
                None => problems.push(Mismatch::Missing {
                    kind: "table",
                    name: name.clone(),
                    deployed: self.tables.keys().cloned().collect(),
                }),
                Some(b) if b.key() != file => problems.push(Mismatch::Key {
                    table: name.clone(),
                    resource: b.name.clone(),
                    file,
                    deployed: b.key(),
                }),
                Some(_) => {}
            }
        }
        for name in plan.topics.keys().filter(|n| !self.topics.contains_key(*n)) {
            problems.push(Mismatch::Missing {
                kind: "topic",
                name: name.clone(),
                deployed: self.topics.keys().cloned().collect(),
            });
        }
        for name in plan.objects.keys().filter(|n| !self.objects.contains_key(*n)) {
            problems.push(Mismatch::Missing {
                kind: "objects bucket",
                name: name.clone(),
                deployed: self.objects.keys().cloned().collect(),
            });
        }
        problems
    }

    /// The pipeline as this deployment runs it, and where its logical names point: every table,
    /// topic and objects sink of the file must be in the document with the file's key schema
    /// (else [`DeploymentError`] lists each one that is not). Objects are written under the
    /// document's prefix, dead letters go to its queue (a file without `[dead_letter]` gets
    /// one: deployed, rejects always reach a queue) with large ones offloaded where it says.
    pub fn bind(&self, mut pipeline: Pipeline, source: &str) -> Result<(Pipeline, Bindings), DeploymentError> {
        let problems = self.mismatches(&Plan::of(&pipeline));
        if !problems.is_empty() {
            return Err(DeploymentError { file: pipeline.file.display().to_string(), origin: source.into(), problems });
        }
        let mut bindings = Bindings::default();
        for t in &pipeline.tables {
            bindings.bind("table", &t.name, &self.tables[&t.name].name);
        }
        if let Some(n) = &pipeline.notify {
            bindings.bind("topic", &n.topic, &self.topics[&n.topic].arn);
        }
        if let Some(o) = &mut pipeline.objects {
            let deployed = &self.objects[&o.bucket];
            bindings.bind("bucket", &o.bucket, &deployed.bucket);
            o.prefix = deployed.prefix.clone();
        }
        let dead_letter = pipeline.dead_letter.get_or_insert_with(|| DeadLetterConfig {
            queue: DEFAULT_DEAD_LETTER_QUEUE.into(),
            offload_bucket: None,
            offload_prefix: String::new(),
        });
        dead_letter.offload_bucket = Some(OFFLOAD_BUCKET.into());
        dead_letter.offload_prefix = self.dead_letter.offload_prefix.clone();
        bindings.bind("queue", &dead_letter.queue, &self.dead_letter.queue_url);
        bindings.bind("bucket", OFFLOAD_BUCKET, &self.dead_letter.offload_bucket);
        Ok((pipeline, bindings))
    }
}

impl Deployment {
    /// Checks the deployed tables themselves (DynamoDB `DescribeTable`): each table the bound
    /// `pipeline` writes exists and has the key schema its file says, so that a document that
    /// disagrees with its stack is refused at install, not discovered item by item.
    pub async fn check_tables(
        &self,
        pipeline: &Pipeline,
        dynamodb: &aws_sdk_dynamodb::Client,
        source: &str,
    ) -> Result<(), DeployError> {
        use aws_sdk_dynamodb::types::KeyType;
        let mut problems = Vec::new();
        for t in &pipeline.tables {
            // `bind` refused a table the document lacks.
            let Some(b) = self.tables.get(&t.name) else { continue };
            match dynamodb.describe_table().table_name(&b.name).send().await {
                Ok(out) => {
                    let schema = out.table().map(|d| d.key_schema()).unwrap_or_default();
                    let of = |kind: KeyType| {
                        schema.iter().find(|k| k.key_type() == &kind).map(|k| k.attribute_name().to_string())
                    };
                    let deployed: Vec<String> = of(KeyType::Hash).into_iter().chain(of(KeyType::Range)).collect();
                    if deployed != t.key {
                        problems.push(Mismatch::Key {
                            table: t.name.clone(),
                            resource: b.name.clone(),
                            file: t.key.clone(),
                            deployed,
                        });
                    }
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                    problems.push(Mismatch::Absent { table: t.name.clone(), resource: b.name.clone() });
                }
                Err(e) => return Err(DeployError::Describe(CallError::sdk(format!("DescribeTable {}", b.name), e))),
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        let file = pipeline.file.display().to_string();
        Err(DeploymentError { file, origin: format!("{source}, checked with DescribeTable"), problems }.into())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn example() -> Pipeline {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orders/weir.toml");
        Pipeline::parse_deployed(&file, &std::fs::read_to_string(&file).unwrap()).unwrap()
    }

    /// What terraform writes for the orders example.
    fn deployment() -> Deployment {
        let table = |name: &str, key: &str| TableBinding {
            name: format!("weir-orders-{name}"),
            arn: None,
            hash_key: key.into(),
            range_key: None,
        };
        Deployment {
            weir_bindings: 1,
            pipeline: "orders".into(),
            tables: BTreeMap::from([
                ("orders".into(), table("orders", "pk")),
                ("user_stats".into(), table("user_stats", "user_id")),
                ("currency_stats".into(), table("currency_stats", "currency")),
            ]),
            topics: BTreeMap::from([(
                "big-orders".into(),
                TopicBinding { arn: "arn:aws:sns:us-east-1:123456789012:weir-orders-big-orders".into() },
            )]),
            objects: BTreeMap::from([(
                "orders-processed".into(),
                ObjectsBinding { bucket: "prod-output".into(), prefix: "orders/orders/".into() },
            )]),
            dead_letter: DeadLetterBinding {
                queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/weir-orders-rejects".into(),
                queue_arn: None,
                offload_bucket: "prod-output".into(),
                offload_prefix: "weir-dead-letters/orders/".into(),
            },
            checkpoints: Location { bucket: "prod-output".into(), prefix: "weir-checkpoints/orders/".into() },
            input: None,
        }
    }

    #[test]
    fn the_example_pipeline_binds_every_sink_to_its_deployed_resource() {
        let (deployed, bindings) = deployment().bind(example(), "test").unwrap();
        assert_eq!(bindings.table("orders"), "weir-orders-orders");
        assert_eq!(bindings.table("user_stats"), "weir-orders-user_stats");
        assert_eq!(bindings.table("currency_stats"), "weir-orders-currency_stats");
        assert_eq!(bindings.topic("big-orders"), "arn:aws:sns:us-east-1:123456789012:weir-orders-big-orders");
        assert_eq!(
            bindings.queue("orders-rejects"),
            "https://sqs.us-east-1.amazonaws.com/123456789012/weir-orders-rejects"
        );
        assert_eq!(bindings.bucket("orders-processed"), "prod-output");
        assert_eq!(deployed.objects.as_ref().unwrap().prefix, "orders/orders/");
        let dead_letter = deployed.dead_letter.as_ref().unwrap();
        assert_eq!(bindings.bucket(dead_letter.offload_bucket.as_deref().unwrap()), "prod-output");
        assert_eq!(dead_letter.offload_prefix, "weir-dead-letters/orders/");
    }

    #[test]
    fn a_file_that_does_not_fit_is_refused_naming_every_sink_and_the_fix() {
        let mut d = deployment();
        d.tables.remove("currency_stats");
        d.tables.get_mut("user_stats").unwrap().hash_key = "pk".into();
        d.topics.clear();
        let err = d.bind(example(), "s3://plugins/pipelines/orders/bindings.json").unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        let text = err.to_string();
        for part in [
            "table \"currency_stats\": the deployment has no such table (it has: orders, user_stats)",
            "table \"user_stats\": the file keys it by [user_id], the deployed table weir-orders-user_stats by [pk]",
            "topic \"big-orders\": the deployment has no such topic (it has: none)",
            "s3://plugins/pipelines/orders/bindings.json",
            "weir plan",
        ] {
            assert!(text.contains(part), "{part:?} in {text}");
        }
        let mut other = deployment();
        other.pipeline = "events".into();
        let err = other.bind(example(), "test").unwrap_err().to_string();
        assert!(err.contains("the pipeline file is pipeline \"orders\", the deployment runs \"events\""), "{err}");
    }

    #[test]
    fn bindings_documents_are_checked_field_by_field() {
        let text = serde_json::to_string(&deployment()).unwrap();
        assert_eq!(Deployment::parse("d.json", &text).unwrap(), deployment());
        let err = Deployment::parse("d.json", &text.replace("\"checkpoints\"", "\"checkpoint\"")).unwrap_err();
        assert!(err.to_string().contains("d.json") && err.to_string().contains("checkpoint"), "{err}");
        let err = Deployment::parse("d.json", &text.replace("\"weir_bindings\":1", "\"weir_bindings\":2")).unwrap_err();
        assert!(err.to_string().contains("weir_bindings 2; this weir reads version 1"), "{err}");
    }
}
