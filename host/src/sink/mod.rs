//! Sinks: where results go.
//!
//! A [`Sink`] takes the records that reached the end of the chain, batch by batch; a
//! [`DeadLetterSink`] takes what could not be processed, with the reason. Sinks that cannot
//! write one record (a missing key attribute, say) return it as [`Unwritable`]; the runner
//! sends it to the dead-letter destination, so it is still accounted for. An `Err` means the
//! sink failed as a whole for this batch: nothing of the batch may be assumed written.
//!
//! One folder per kind of sink, each with its configuration, the rules its backends share, and
//! two backends: the embedded local twin (no AWS account) and the AWS service.
//!
//! | kind | local | AWS |
//! |---|---|---|
//! | [`table`] | [`table::sqlite`] (`weir.db`) | [`table::dynamodb`] |
//! | [`notify`] | [`notify::file`] (`notifications.jsonl`) | [`notify::sns`] |
//! | [`objects`] | [`objects::file`] (`objects/<bucket>/…`) | [`objects::s3`] |
//! | [`dead_letter`] | [`dead_letter::file`] (`rejected.jsonl`) | [`dead_letter::sqs`] |
//!
//! [`crate::pipeline::build`] picks the backends for a pipeline.

pub mod dead_letter;
mod fields;
pub mod notify;
pub mod objects;
pub mod table;

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use crate::report::Emitted;

pub use dead_letter::{DeadLetter, DeadLetterSink};

/// One batch handed to a sink.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub emitted: &'a [Emitted],
    /// The chain version that produced the batch (`stage=plugin@sha,...`).
    pub chain: &'a str,
    /// How the batch groups into objects files.
    pub parts: Parts,
}

/// How an objects sink groups a delivery into files ([`objects::plan_objects`]). Either way a
/// redelivery writes the same files, never copies beside them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Parts {
    /// A file per partition for the whole batch: the batch is a fixed slice of one input stream
    /// (an object's or a local file's rows, `batch_size` records at a time from its start, and
    /// a resumed object starts at a batch boundary), so a redelivery forms the same batches.
    #[default]
    Batch,
    /// A file per input and partition: the batch holds separate SQS messages, which share it
    /// by chance of delivery; a redelivered message is batched with others.
    PerInput,
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

/// A sink failed as a whole: nothing of the batch may be assumed written. The runner fails the
/// batch's inputs, and they are retried. Per-record problems are not errors: they are the
/// [`SinkReport`]'s `unwritable` and `failed` entries.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink `{sink}`: {path}: {source}")]
    Io { sink: String, path: PathBuf, source: std::io::Error },
    #[error("sink `{sink}`: local database: {source}")]
    Database { sink: String, source: rusqlite::Error },
    #[error("sink `{sink}`: encoding: {source}")]
    Encode { sink: String, source: serde_json::Error },
    #[error("sink `{sink}`: building a request: {source}")]
    Request { sink: String, source: aws_sdk_dynamodb::error::BuildError },
    /// The invocation's deadline came before the write was over (see
    /// [`crate::pipeline::Runner::set_write_deadline`]).
    #[error(
        "sink `{sink}`: the invocation's deadline came before the write was over; retried (what reached AWS is not written twice)"
    )]
    Deadline { sink: String },
}

impl SinkError {
    /// The sink that failed (`table:orders`, `notify:big-orders`).
    pub fn sink(&self) -> &str {
        match self {
            SinkError::Io { sink, .. }
            | SinkError::Database { sink, .. }
            | SinkError::Encode { sink, .. }
            | SinkError::Request { sink, .. }
            | SinkError::Deadline { sink } => sink,
        }
    }
}

/// What a sink's write (or a dead-letter sink's send) returns: a future the runner drives, with
/// the other sinks' writes, on the runtime their clients live on (see [`crate::pipeline::Io`]).
pub type SinkFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SinkError>> + 'a>>;

/// Takes emitted records.
pub trait Sink: Send {
    /// Names the sink in reports (`table:orders`, `notify:big-orders`).
    fn name(&self) -> String;
    /// Writes one batch. Must be idempotent where the mode promises it (redeliveries). Every
    /// record of the delivery is accounted for in the report, or the whole batch failed (`Err`).
    fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport>;
}

/// Opens a file for appending, creating it and its directory.
pub(crate) fn append_file(path: &Path, sink: &str) -> Result<BufWriter<File>, SinkError> {
    let err = |source| SinkError::Io { sink: sink.into(), path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    Ok(BufWriter::new(OpenOptions::new().create(true).append(true).open(path).map_err(err)?))
}
