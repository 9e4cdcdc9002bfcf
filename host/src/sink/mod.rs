//! Sinks: where results go.
//!
//! A [`Sink`] takes the records that reached the end of the chain, batch by batch; a
//! [`DeadLetterSink`] takes what could not be processed, with the reason. Sinks that cannot
//! write one record (a missing key attribute, say) return it as [`Unwritable`]; the runner
//! sends it to the dead-letter destination, so it is still accounted for. An `Err` means the
//! sink failed as a whole for this batch: nothing of the batch may be assumed written.
//!
//! The embedded default (no AWS account) is [`local`]: SQLite for tables, JSON Lines files for
//! notifications and dead letters, and a directory tree for objects.

pub mod dynamodb;
pub mod local;
pub mod s3;
pub mod sns;
pub mod sqs;

use serde::Serialize;

use crate::record::Record;
use crate::report::Emitted;

/// One batch handed to a sink.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub emitted: &'a [Emitted],
    /// The chain version that produced the batch (`stage=plugin@sha,...`).
    pub chain: &'a str,
}

/// One record of a delivery and what went wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordIssue {
    /// Index into [`Delivery::emitted`].
    pub index: usize,
    pub reason: String,
}

/// A record a sink can never write (a missing key, an item over the size limit): it goes to the
/// dead-letter destination.
pub type Unwritable = RecordIssue;
/// A record a sink could not write this time (throttled past every retry, a service error):
/// the input it came from must be retried.
pub type Failed = RecordIssue;

/// What a sink did with a batch. Every record lands in exactly one of the four.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Records written (or counted) now.
    pub written: usize,
    /// Records that changed nothing: a duplicate delivery, a predicate that did not match.
    pub unchanged: usize,
    pub unwritable: Vec<Unwritable>,
    pub failed: Vec<Failed>,
}

/// A sink failed as a whole.
#[derive(Debug, thiserror::Error)]
#[error("sink `{sink}`: {message}")]
pub struct SinkError {
    pub sink: String,
    pub message: String,
}

/// Takes emitted records.
pub trait Sink: Send {
    /// Names the sink in reports (`table:orders`, `notify:big-orders`).
    fn name(&self) -> String;
    /// Writes one batch. Must be idempotent where the mode promises it (redeliveries).
    fn write(&mut self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError>;
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
    fn send(&mut self, letters: &[DeadLetter]) -> Result<Vec<Failed>, SinkError>;
}

/// Packs entries of the given sizes, in order, into requests of at most `max_entries` entries
/// and `max_bytes` bytes (SNS `PublishBatch`, SQS `SendMessageBatch`). An entry larger than
/// `max_bytes` on its own is not packed: the caller must have dealt with it.
pub fn pack(sizes: &[(usize, usize)], max_entries: usize, max_bytes: usize) -> Vec<Vec<usize>> {
    let mut requests: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for &(index, size) in sizes {
        if size > max_bytes {
            continue;
        }
        if current.len() == max_entries || bytes + size > max_bytes {
            requests.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(index);
        bytes += size;
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

/// How a batch entry fared, for sinks that send in batches with per-entry results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    Sent,
    /// The service refused it for what it is (`SenderFault`): retrying cannot help.
    Refused(String),
    /// It failed this time.
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_by_count_and_bytes() {
        let sizes: Vec<(usize, usize)> = (0..23).map(|i| (i, 10)).collect();
        let packed = pack(&sizes, 10, 1000);
        assert_eq!(packed.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        let sizes = [(0, 100_000), (1, 100_000), (2, 100_000), (3, 300_000), (4, 162_144), (5, 1)];
        let packed = pack(&sizes, 10, 262_144);
        assert_eq!(packed, vec![vec![0, 1], vec![2, 4], vec![5]]);
    }
}
