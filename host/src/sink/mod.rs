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

/// A record a sink could not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwritable {
    /// Index into [`Delivery::emitted`].
    pub index: usize,
    pub reason: String,
}

/// What a sink did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Records written (or counted) now.
    pub written: usize,
    /// Records that changed nothing: a duplicate delivery, a predicate that did not match.
    pub unchanged: usize,
    pub unwritable: Vec<Unwritable>,
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
    fn send(&mut self, letters: &[DeadLetter]) -> Result<(), SinkError>;
}
