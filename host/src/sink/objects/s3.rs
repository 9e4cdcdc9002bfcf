//! S3 objects sink: the production twin of [`file::ObjectFiles`](super::file::ObjectFiles).
//!
//! Each batch becomes one file per partition, `<prefix><partition>part-<hash>.<ext>`, JSON
//! Lines or CSV with a header, under a Hive-style template such as `dt={date}/`, so Glue and
//! Athena read the tree as a partitioned table. The name hashes the batch's record ids: a
//! redelivered batch overwrites its own files rather than adding copies. Files are written
//! with bounded concurrency; a file that cannot be written fails its records (they are
//! retried with their inputs).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use futures_util::stream::StreamExt;

use super::{ObjectFormat, ObjectsConfig, plan_objects, render_rows};
use crate::sink::{Delivery, Failed, Sink, SinkFuture, SinkReport, Unwritable};

/// Writes batches as objects in a bucket.
pub struct S3Objects {
    client: Client,
    /// The bucket written (the pipeline's bucket unless bound to another).
    bucket: String,
    config: ObjectsConfig,
    /// Files in flight at once.
    pub concurrency: usize,
}

impl S3Objects {
    pub fn new(client: Client, bucket: impl Into<String>, config: ObjectsConfig) -> Self {
        S3Objects { client, bucket: bucket.into(), config, concurrency: 8 }
    }

    async fn write_async(&self, delivery: &Delivery<'_>) -> SinkReport {
        let mut report = SinkReport::default();
        let content_type = match self.config.format {
            ObjectFormat::Jsonl => "application/x-ndjson",
            ObjectFormat::Csv => "text/csv",
        };
        let mut files = Vec::new();
        for (key, rows) in plan_objects(&self.config, delivery) {
            match render_rows(self.config.format, &rows) {
                Ok(bytes) => files.push((key, rows.into_iter().map(|(i, _)| i).collect::<Vec<_>>(), bytes)),
                Err(e) => report.unwritable.extend(
                    rows.iter()
                        .map(|(index, _)| Unwritable { index: *index, reason: format!("cannot render CSV: {e}") }),
                ),
            }
        }
        let chain = delivery.chain;
        let puts = files.into_iter().map(|(key, indexes, bytes)| async move {
            let result = self
                .client
                .put_object()
                .metadata("weir-chain", chain)
                .bucket(&self.bucket)
                .key(&key)
                .content_type(content_type)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| format!("PutObject s3://{}/{key}: {}", self.bucket, crate::aws::describe(&e)));
            (indexes, result)
        });
        let results: Vec<_> =
            futures_util::stream::iter(puts).buffer_unordered(self.concurrency.max(1)).collect().await;
        for (indexes, result) in results {
            match result {
                Ok(_) => report.written += indexes.len(),
                Err(reason) => {
                    report.failed.extend(indexes.into_iter().map(|index| Failed { index, reason: reason.clone() }))
                }
            }
        }
        report
    }
}

impl Sink for S3Objects {
    fn name(&self) -> String {
        format!("objects:{}", self.config.bucket)
    }

    fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport> {
        Box::pin(async move { Ok(self.write_async(delivery).await) })
    }
}
