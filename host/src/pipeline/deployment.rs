//! A pipeline file in its deployed shape: its sinks bound to the resources of the function that
//! runs it (the `WEIR_*` environment terraform sets, see `lambda/env-vars.json`).
//!
//! The function has one results table, one aggregates table, one topic, one dead-letter queue
//! and one output bucket: the file's `put`/`put-if-absent` table (at most one) is the results
//! table, its `aggregate` table (at most one) the aggregates table, its topic the notify topic,
//! its dead-letter queue the rejects queue (letters over 256 KB offloaded to the output bucket
//! under [`OFFLOAD_PREFIX`]), and its objects sink writes under `<output prefix>/` (the Glue
//! table's location). A file without `[dead_letter]` gets one: rejects always reach the rejects
//! queue.

use std::path::Path;

use super::Pipeline;
use super::bindings::Bindings;
use super::config::{ConfigError, DeadLetterConfig, TableConfig, TableMode};

/// The logical bucket name dead-letter offloads use in a deployed pipeline (bound to the output
/// bucket), and their prefix there (terraform lets the function write it).
const OFFLOAD_BUCKET: &str = "weir-dead-letter-offload";
pub const OFFLOAD_PREFIX: &str = "weir-dead-letters/";

/// The resources one deployed function writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub results_table: String,
    pub aggregates_table: String,
    pub notify_topic_arn: String,
    pub rejects_queue_url: String,
    pub output_bucket: String,
    /// No leading or trailing `/`.
    pub output_prefix: String,
}

/// A pipeline file needs more of a resource than the deployment has.
#[derive(Debug, thiserror::Error)]
#[error(
    "sinks.table: the function has one {what} table ({variable}), the pipeline file has {count} {modes} tables \
     ({names}); allowed: at most one"
)]
pub struct DeploymentError {
    pub what: &'static str,
    pub variable: &'static str,
    pub modes: &'static str,
    pub count: usize,
    pub names: String,
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
}

impl Deployment {
    /// Parses a published pipeline file (`file` names where it came from, for messages) and
    /// binds it ([`Deployment::bind`]).
    pub fn load(&self, file: &Path, definition: Option<&str>) -> Result<(Pipeline, Bindings), DeployError> {
        let text = definition.ok_or(DeployError::NoDefinition)?;
        Ok(self.bind(Pipeline::parse_deployed(file, text)?)?)
    }

    /// The pipeline as this deployment runs it, and where its logical names point.
    pub fn bind(&self, mut pipeline: Pipeline) -> Result<(Pipeline, Bindings), DeploymentError> {
        let mut bindings = Bindings::default();
        let (aggregates, plain): (Vec<&TableConfig>, Vec<&TableConfig>) =
            pipeline.tables.iter().partition(|t| matches!(t.mode, TableMode::Aggregate { .. }));
        let at_most_one = |tables: &[&TableConfig], what, variable, modes| {
            if tables.len() <= 1 {
                return Ok(());
            }
            let names = tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
            Err(DeploymentError { what, variable, modes, count: tables.len(), names })
        };
        at_most_one(&plain, "results", "WEIR_RESULTS_TABLE", "put/put-if-absent")?;
        at_most_one(&aggregates, "aggregates", "WEIR_AGGREGATES_TABLE", "aggregate")?;
        for t in plain {
            bindings.bind("table", &t.name, &self.results_table);
        }
        for t in aggregates {
            bindings.bind("table", &t.name, &self.aggregates_table);
        }
        if let Some(n) = &pipeline.notify {
            bindings.bind("topic", &n.topic, &self.notify_topic_arn);
        }
        // Dead letters over SQS's 256 KB go to the output bucket, outside the Glue table's location.
        let dead_letter = pipeline.dead_letter.get_or_insert_with(|| DeadLetterConfig {
            queue: "rejects".into(),
            offload_bucket: None,
            offload_prefix: String::new(),
        });
        dead_letter.offload_bucket = Some(OFFLOAD_BUCKET.into());
        dead_letter.offload_prefix = OFFLOAD_PREFIX.into();
        bindings.bind("queue", &dead_letter.queue, &self.rejects_queue_url);
        bindings.bind("bucket", OFFLOAD_BUCKET, &self.output_bucket);
        if let Some(o) = &mut pipeline.objects {
            bindings.bind("bucket", &o.bucket, &self.output_bucket);
            o.prefix = format!("{}/", self.output_prefix);
        }
        Ok((pipeline, bindings))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn deployment() -> Deployment {
        Deployment {
            results_table: "prod-results".into(),
            aggregates_table: "prod-aggregates".into(),
            notify_topic_arn: "arn:aws:sns:us-east-1:123456789012:notify".into(),
            rejects_queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/rejects".into(),
            output_bucket: "prod-output".into(),
            output_prefix: "records".into(),
        }
    }

    #[test]
    fn the_example_pipeline_binds_to_the_function_resources_or_says_why_not() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orders/weir.toml");
        let text = std::fs::read_to_string(&example).unwrap();
        let pipeline = Pipeline::parse_deployed(&example, &text).unwrap();
        // Two aggregate tables, one aggregates table: refused, naming them and the limit.
        let err = deployment().bind(pipeline.clone()).unwrap_err().to_string();
        assert!(err.contains("user_stats, currency_stats") && err.contains("at most one"), "{err}");
        assert!(err.contains("WEIR_AGGREGATES_TABLE"), "{err}");

        let mut one = pipeline;
        one.tables.retain(|t| t.name != "currency_stats");
        let (deployed, bindings) = deployment().bind(one).unwrap();
        assert_eq!(bindings.table("orders"), "prod-results");
        assert_eq!(bindings.table("user_stats"), "prod-aggregates");
        assert_eq!(bindings.topic("big-orders"), "arn:aws:sns:us-east-1:123456789012:notify");
        assert_eq!(bindings.queue("orders-rejects"), "https://sqs.us-east-1.amazonaws.com/123456789012/rejects");
        assert_eq!(bindings.bucket("orders-processed"), "prod-output");
        let objects = deployed.objects.as_ref().unwrap();
        assert_eq!(objects.prefix, "records/", "under the Glue table's location");
        let dead_letter = deployed.dead_letter.as_ref().unwrap();
        assert_eq!(bindings.bucket(dead_letter.offload_bucket.as_deref().unwrap()), "prod-output");
        assert_eq!(dead_letter.offload_prefix, OFFLOAD_PREFIX);
    }
}
