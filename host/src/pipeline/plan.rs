//! What a pipeline needs from a deployment: every sink its file names, as the resources that
//! must exist for it (tables with their key schema and mode, topics, object outputs, the
//! dead-letter queue) and which objects its S3 input may name.
//!
//! `weir plan weir.toml` prints a [`Plan`] as JSON; terraform's `pipelines` variable takes it
//! (`plan = jsondecode(file("plan.json"))`) and creates exactly those resources per pipeline,
//! then writes the pipeline's bindings document ([`super::deployment`]) that maps each of these
//! names to what it created. The plan is derived from the pipeline file alone, so a file and
//! its deployment cannot drift apart unnoticed: the function and `weir publish` check the
//! bindings against the file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Pipeline;
use crate::sink::objects::ObjectFormat;

/// The version of the plan document this weir writes.
pub const PLAN_FORMAT: u32 = 1;

/// A pipeline's needs, as `weir plan` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub weir_plan: u32,
    pub pipeline: String,
    pub tables: BTreeMap<String, TablePlan>,
    pub topics: BTreeMap<String, TopicPlan>,
    pub objects: BTreeMap<String, ObjectsPlan>,
    pub dead_letter: DeadLetterPlan,
    pub source: SourcePlan,
}

/// A DynamoDB table: its key schema (string attributes) and how it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablePlan {
    /// `put`, `put-if-absent` or `aggregate`.
    pub mode: String,
    pub hash_key: String,
    pub range_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicPlan {
    /// A FIFO topic (its name ends in `.fifo`).
    pub fifo: bool,
}

/// An objects sink: where its files go inside the bucket, and their layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectsPlan {
    pub prefix: String,
    pub partition: String,
    /// `jsonl` or `csv`.
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterPlan {
    pub queue: String,
}

/// Which objects S3 events may name (the input bucket's notification filter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePlan {
    pub prefix: String,
    pub suffixes: Vec<String>,
}

/// The dead-letter queue of a file without `[dead_letter]`: deployed, rejects always go somewhere.
pub const DEFAULT_DEAD_LETTER_QUEUE: &str = "rejects";

impl Plan {
    /// What `pipeline` needs.
    pub fn of(pipeline: &Pipeline) -> Plan {
        let tables = pipeline
            .tables
            .iter()
            .map(|t| {
                let table = TablePlan {
                    mode: t.mode.name().to_string(),
                    hash_key: t.key[0].clone(),
                    range_key: t.key.get(1).cloned(),
                };
                (t.name.clone(), table)
            })
            .collect();
        let topics =
            pipeline.notify.iter().map(|n| (n.topic.clone(), TopicPlan { fifo: n.topic.ends_with(".fifo") })).collect();
        let objects = pipeline
            .objects
            .iter()
            .map(|o| {
                let format = match o.format {
                    ObjectFormat::Jsonl => "jsonl",
                    ObjectFormat::Csv => "csv",
                };
                let plan =
                    ObjectsPlan { prefix: o.prefix.clone(), partition: o.partition.to_string(), format: format.into() };
                (o.bucket.clone(), plan)
            })
            .collect();
        let queue = pipeline.dead_letter.as_ref().map_or(DEFAULT_DEAD_LETTER_QUEUE, |d| d.queue.as_str());
        Plan {
            weir_plan: PLAN_FORMAT,
            pipeline: pipeline.name.clone(),
            tables,
            topics,
            objects,
            dead_letter: DeadLetterPlan { queue: queue.to_string() },
            source: SourcePlan { prefix: pipeline.source.prefix.clone(), suffixes: pipeline.source.suffixes.clone() },
        }
    }

    /// The plan as `weir plan` prints it (2-space indented JSON, one trailing newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_orders_example_plan_is_committed_beside_it() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orders");
        let file = dir.join("weir.toml");
        let pipeline = Pipeline::parse_deployed(&file, &std::fs::read_to_string(&file).unwrap()).unwrap();
        let plan = Plan::of(&pipeline);
        assert_eq!(plan.tables["orders"].mode, "put-if-absent");
        assert_eq!(plan.tables["user_stats"].hash_key, "user_id");
        assert_eq!(plan.objects["orders-processed"].partition, "dt={date}/");
        assert_eq!(plan.dead_letter.queue, "orders-rejects");
        // terraform deploys from the committed file: it must be what `weir plan` prints today.
        let committed = std::fs::read_to_string(dir.join("plan.json")).unwrap();
        assert_eq!(
            committed,
            plan.to_json(),
            "regenerate: weir plan examples/orders/weir.toml > examples/orders/plan.json"
        );
        let back: Plan = serde_json::from_str(&committed).unwrap();
        assert_eq!(back, plan);
    }
}
