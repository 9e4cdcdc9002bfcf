//! Wiring: a validated [`Pipeline`] and where its outputs live become its sinks, its
//! dead-letter sink and (on AWS) the object store its S3 events are read from.
//!
//! This is the one place that decides what a pipeline's `[sinks]` and `[dead_letter]` turn
//! into, for every caller: `weir run` (embedded local sinks in an output directory, or AWS with
//! `--aws`), the Lambda function (AWS, its resources bound by its environment) and the tests.
//!
//! - [`local`]: SQLite tables, `notifications.jsonl`, `objects/<bucket>/…` and `rejected.jsonl`
//!   under one directory;
//! - [`aws`]: DynamoDB tables, an SNS topic, S3 objects and an SQS dead-letter queue, each
//!   logical name resolved through [`Bindings`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bindings::Bindings;
use super::{Io, Outputs, Pipeline};
use crate::aws::{Aws, AwsError};
use crate::sink::dead_letter::file::RejectedFile;
use crate::sink::dead_letter::sqs::{Offload, SqsDeadLetters};
use crate::sink::notify::file::NotifyFile;
use crate::sink::notify::sns::SnsTopic;
use crate::sink::objects::file::ObjectFiles;
use crate::sink::objects::s3::S3Objects as S3Sink;
use crate::sink::table::dynamodb::DynamoTable;
use crate::sink::table::sqlite::{Database, TableSink};
use crate::sink::{Sink, SinkError};
use crate::source::objects::{ObjectFilter, Objects, S3Objects};

/// A pipeline's outputs, ready for a [`Runner`](super::Runner).
pub struct Wired {
    pub outputs: Outputs,
    /// Local only: the database the table sinks write, and the dead-letter file.
    pub database: Option<Database>,
    pub rejected_file: Option<PathBuf>,
}

/// Why a pipeline's outputs could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Local(#[from] SinkError),
    #[error("creating the output directory {dir}: {source}")]
    OutputDir { dir: PathBuf, source: std::io::Error },
    #[error("starting the runtime the sinks write on: {0}")]
    Runtime(std::io::Error),
    #[error("{file}: dead_letter: a pipeline run on AWS needs a dead-letter queue ([dead_letter] queue = \"...\")")]
    NoDeadLetterQueue { file: PathBuf },
}

/// The embedded outputs under `dir`: what `weir run` uses without an AWS account.
pub fn local(pipeline: &Pipeline, dir: &Path) -> Result<Wired, WireError> {
    std::fs::create_dir_all(dir).map_err(|source| WireError::OutputDir { dir: dir.to_path_buf(), source })?;
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let mut database = None;
    if !pipeline.tables.is_empty() {
        let db = Database::open(dir)?;
        for table in &pipeline.tables {
            sinks.push(Box::new(TableSink::new(db.clone(), table.clone())?));
        }
        database = Some(db);
    }
    if let Some(n) = &pipeline.notify {
        sinks.push(Box::new(NotifyFile::new(dir, &pipeline.name, n.clone())));
    }
    if let Some(o) = &pipeline.objects {
        sinks.push(Box::new(ObjectFiles::new(dir, o.clone())));
    }
    let queue = pipeline.dead_letter.as_ref().map(|d| d.queue.clone()).unwrap_or_else(|| "rejected".into());
    let rejected = RejectedFile::new(dir, queue);
    let rejected_file = Some(rejected.path().to_path_buf());
    let io = Io::own().map_err(WireError::Runtime)?;
    Ok(Wired { outputs: Outputs { sinks, dead_letter: Box::new(rejected), io }, database, rejected_file })
}

/// The AWS outputs, each logical name resolved through `bindings` (a topic or queue name that is
/// not an ARN or URL is looked up). Their writes run on the clients' runtime ([`Io::Shared`]):
/// run the runner from a thread outside it.
pub async fn aws(pipeline: &Pipeline, aws: &Aws, bindings: &Bindings) -> Result<Wired, WireError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for t in &pipeline.tables {
        let table = DynamoTable::new(aws.dynamodb.clone(), bindings.table(&t.name), t.clone());
        sinks.push(Box::new(table));
    }
    if let Some(n) = &pipeline.notify {
        let arn = aws.topic_arn(bindings.topic(&n.topic)).await?;
        sinks.push(Box::new(SnsTopic::new(aws.sns.clone(), arn, &pipeline.name, n.clone())));
    }
    if let Some(o) = &pipeline.objects {
        let bucket = bindings.bucket(&o.bucket);
        sinks.push(Box::new(S3Sink::new(aws.s3.clone(), bucket, o.clone())));
    }
    let Some(d) = &pipeline.dead_letter else {
        return Err(WireError::NoDeadLetterQueue { file: pipeline.file.clone() });
    };
    let url = aws.queue_url(bindings.queue(&d.queue)).await?;
    let offload = d.offload_bucket.as_ref().map(|b| Offload {
        client: aws.s3.clone(),
        bucket: bindings.bucket(b).to_string(),
        prefix: d.offload_prefix.clone(),
    });
    let dead_letter = Box::new(SqsDeadLetters::new(aws.sqs.clone(), url, offload));
    let io = Io::Shared(aws.runtime.clone());
    Ok(Wired { outputs: Outputs { sinks, dead_letter, io }, database: None, rejected_file: None })
}

/// Where the objects that S3 events name are read on AWS: S3, through [`object_filter`]. (A
/// local run reads them from a directory, `--s3-root`.)
pub fn aws_objects(pipeline: &Pipeline, aws: &Aws, bindings: &Bindings) -> Objects {
    let store = Arc::new(S3Objects { client: aws.s3.clone(), runtime: aws.runtime.clone() });
    Objects { store, filter: object_filter(pipeline, bindings), limits: pipeline.source.limits }
}

/// Which objects S3 events may name: the pipeline's `[source]` prefix and suffixes, and never
/// anything under its own output prefix, so a pipeline writing into the bucket it reads from
/// cannot trigger itself.
pub fn object_filter(pipeline: &Pipeline, bindings: &Bindings) -> ObjectFilter {
    let mut filter = ObjectFilter {
        prefix: pipeline.source.prefix.clone(),
        suffixes: pipeline.source.suffixes.clone(),
        exclude: Vec::new(),
    };
    if let Some(o) = &pipeline.objects {
        filter.exclude.push((bindings.bucket(&o.bucket).to_string(), o.prefix.clone()));
    }
    filter
}
