//! `[dead_letter]`: records that could not be processed, with the stage, kind and reason.
//! Backends: [`file`] (`rejected.jsonl`, local) and [`sqs`] (a queue, with letters over SQS's
//! limit offloaded to S3).

pub mod file;
pub mod sqs;

use serde::Serialize;

use crate::record::Record;
use crate::sink::{Failed, SinkFuture};

/// Where dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterConfig {
    /// A queue name (or URL with `--aws`).
    pub queue: String,
    /// Where letters too large for SQS are put (S3), with a pointer sent instead.
    pub offload_bucket: Option<String>,
    pub offload_prefix: String,
}

/// A record that could not be processed, on its way to the dead-letter destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Where it failed: a stage name, `source`, or `sink:<name>`.
    pub stage: String,
    /// `plugin-reject`, `trap`, `timeout`, `memory`, `output-limit`, `invalid-output`,
    /// `unreadable` or `unwritable`.
    pub kind: String,
    pub reason: String,
    /// The record as the failing step saw it.
    pub record: Record,
    /// The id of the input it came from.
    pub source_id: String,
    /// The input as it entered the chain, when a stage before the failing one changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<Record>,
    pub chain: String,
}

/// Takes dead letters.
pub trait DeadLetterSink: Send {
    /// Sends the letters; returns the indexes of those that could not be sent (their inputs
    /// are then failed and retried). `Err` means none may be assumed sent.
    fn send<'a>(&'a mut self, letters: &'a [DeadLetter]) -> SinkFuture<'a, Vec<Failed>>;
}
