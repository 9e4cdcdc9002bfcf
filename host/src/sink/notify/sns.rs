//! SNS notification sink: the production twin of [`file::NotifyFile`](super::file::NotifyFile).
//!
//! Records that match the configured predicate are published with `PublishBatch`: at most 10
//! entries and 256 KB (262,144 bytes, bodies plus attributes) per call. Each message is the
//! one both twins build ([`super::message`]: attributes for subscription filter policies, the
//! size limit). FIFO topics (`.fifo`) get a message group id (the configured `group_by`
//! field, else the pipeline name) and a deduplication id derived from the record id, so a
//! redelivery within SNS's five-minute window is dropped; standard topics are at-least-once.
//! Entries SNS refuses as the sender's fault are unwritable (dead-letter destination with the
//! reason); other per-entry failures are retried with backoff, then failed.

use std::collections::BTreeMap;

use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::{MAX_MESSAGE_BYTES, Message, NotifyConfig, message};
use crate::aws::retry::{Backoff, BatchLimits, EntryResult, FailedEntry, entry_results, send_in_batches};
use crate::sink::{Delivery, Failed, Sink, SinkFuture, SinkReport, Unwritable};

/// SNS's limit on entries per `PublishBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Publishes to an SNS topic.
pub struct SnsTopic {
    client: Client,
    topic_arn: String,
    pipeline: String,
    config: NotifyConfig,
    pub backoff: Backoff,
}

impl SnsTopic {
    pub fn new(
        client: Client,
        topic_arn: impl Into<String>,
        pipeline: impl Into<String>,
        config: NotifyConfig,
    ) -> Self {
        SnsTopic { client, topic_arn: topic_arn.into(), pipeline: pipeline.into(), config, backoff: Backoff::default() }
    }

    fn entry(id: usize, m: &Message) -> Result<PublishBatchRequestEntry, String> {
        let mut entry = PublishBatchRequestEntry::builder().id(id.to_string()).message(&m.body);
        for (name, (data_type, value)) in &m.attributes {
            let attr = MessageAttributeValue::builder()
                .data_type(*data_type)
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())?;
            entry = entry.message_attributes(name, attr);
        }
        entry
            .set_message_group_id(m.group_id.clone())
            .set_message_deduplication_id(m.dedup_id.clone())
            .build()
            .map_err(|e| e.to_string())
    }

    /// Publishes one request's worth; the result of each entry by its index.
    async fn publish(&self, entries: &[(usize, &Message)]) -> Vec<(usize, EntryResult)> {
        let mut request = self.client.publish_batch().topic_arn(&self.topic_arn);
        for (index, m) in entries {
            match Self::entry(*index, m) {
                Ok(e) => request = request.publish_batch_request_entries(e),
                Err(e) => return entries.iter().map(|(i, _)| (*i, EntryResult::Refused(e.clone()))).collect(),
            }
        }
        let indexes: Vec<usize> = entries.iter().map(|(i, _)| *i).collect();
        let answer = request.send().await.map_err(|e| format!("PublishBatch: {}", crate::aws::describe(&e)));
        let failed = answer.as_ref().map(|out| out.failed().iter().map(FailedEntry::from));
        entry_results(&indexes, failed.map_err(Clone::clone))
    }

    async fn write_async(&self, delivery: &Delivery<'_>) -> SinkReport {
        let mut report = SinkReport::default();
        let fifo = super::is_fifo(&self.topic_arn);
        let mut messages: BTreeMap<usize, Message> = BTreeMap::new();
        for (index, e) in delivery.emitted.iter().enumerate() {
            match message(&self.config, &self.pipeline, fifo, &e.record, delivery.chain) {
                Ok(Some(m)) => {
                    messages.insert(index, m);
                }
                Ok(None) => report.unchanged += 1,
                Err(reason) => report.unwritable.push(Unwritable { index, reason }),
            }
        }
        let sizes: Vec<(usize, usize)> = messages.iter().map(|(i, m)| (*i, m.size())).collect();
        let limits = BatchLimits { max_entries: MAX_BATCH_ENTRIES, max_bytes: MAX_MESSAGE_BYTES };
        let outcome = send_in_batches(&sizes, limits, self.backoff, |request| {
            let entries: Vec<(usize, &Message)> = request.iter().map(|i| (*i, &messages[i])).collect();
            async move { self.publish(&entries).await }
        })
        .await;
        report.written += outcome.sent.len();
        report.unwritable.extend(outcome.refused.into_iter().map(|(index, reason)| Unwritable { index, reason }));
        report.failed.extend(outcome.failed.into_iter().map(|(index, reason)| Failed { index, reason }));
        report
    }
}

impl Sink for SnsTopic {
    fn name(&self) -> String {
        format!("notify:{}", self.config.topic)
    }

    fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport> {
        Box::pin(async move { Ok(self.write_async(delivery).await) })
    }
}
