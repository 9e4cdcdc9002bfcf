//! SQS dead-letter sink: the production twin of [`file::RejectedFile`](super::file::RejectedFile).
//!
//! Each dead letter is one message, sent with `SendMessageBatch` (10 entries, 256 KB per call):
//! the body is the original record (as it entered the chain; for an unreadable input, its raw
//! text, or its source id when there is none), and the message attributes say what happened:
//! `stage`, `kind`, `reason` (at most 4 KB), `source_id`, `record_id` and `chain`. A message
//! over 256 KB, or a body with characters SQS does not accept, is offloaded: the body is put in
//! S3 under the offload prefix, named by its sha256, and the message body becomes a pointer
//! `{"weir_offloaded":{"bucket":…,"key":…,"bytes":…,"sha256":…}}` with an `offloaded`
//! attribute. Without an offload bucket such a letter fails (its input is retried, and ends in
//! the source queue's own redrive queue), never truncated.

use std::collections::BTreeMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use sha2::{Digest, Sha256};

use super::{DeadLetter, DeadLetterSink, MAX_MESSAGE_BYTES, Message, message, must_offload, no_offload};
use crate::aws::retry::{Backoff, BatchLimits, EntryResult, FailedEntry, entry_results, send_in_batches};
use crate::sink::{Failed, SinkFuture};

/// SQS's limit on entries per `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Where oversized dead letters go.
#[derive(Debug, Clone)]
pub struct Offload {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

/// Sends dead letters to an SQS queue.
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
    offload: Option<Offload>,
    pub backoff: Backoff,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>, offload: Option<Offload>) -> Self {
        SqsDeadLetters { client, queue_url: queue_url.into(), offload, backoff: Backoff::default() }
    }

    /// Puts an oversized or unsafe body in S3 and points at it.
    async fn offload(&self, m: &mut Message) -> Result<(), String> {
        let Some(o) = &self.offload else { return Err(no_offload(m)) };
        let sha = hex::encode(Sha256::digest(m.body.as_bytes()));
        let key = format!("{}{sha}", o.prefix);
        o.client
            .put_object()
            .bucket(&o.bucket)
            .key(&key)
            .body(aws_sdk_s3::primitives::ByteStream::from(m.body.clone().into_bytes()))
            .send()
            .await
            .map_err(|e| format!("offloading to s3://{}/{key}: {}", o.bucket, crate::aws::describe(&e)))?;
        let pointer = serde_json::json!({
            "weir_offloaded": { "bucket": o.bucket, "key": key, "bytes": m.body.len(), "sha256": sha }
        });
        m.body = pointer.to_string();
        m.attributes.insert("offloaded", format!("s3://{}/{key}", o.bucket));
        Ok(())
    }

    async fn send_batch(&self, entries: &[(usize, &Message)]) -> Vec<(usize, EntryResult)> {
        let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
        for (index, m) in entries {
            let mut entry = SendMessageBatchRequestEntry::builder().id(index.to_string()).message_body(&m.body);
            for (name, value) in &m.attributes {
                match MessageAttributeValue::builder().data_type("String").string_value(value).build() {
                    Ok(a) => entry = entry.message_attributes(*name, a),
                    Err(e) => return entries.iter().map(|(i, _)| (*i, EntryResult::Refused(e.to_string()))).collect(),
                }
            }
            match entry.build() {
                Ok(e) => request = request.entries(e),
                Err(e) => return entries.iter().map(|(i, _)| (*i, EntryResult::Refused(e.to_string()))).collect(),
            }
        }
        let indexes: Vec<usize> = entries.iter().map(|(i, _)| *i).collect();
        let answer = request.send().await.map_err(|e| format!("SendMessageBatch: {}", crate::aws::describe(&e)));
        let failed = answer.as_ref().map(|out| out.failed().iter().map(FailedEntry::from));
        entry_results(&indexes, failed.map_err(Clone::clone))
    }

    async fn send_async(&self, letters: &[DeadLetter]) -> Vec<Failed> {
        let mut failed = Vec::new();
        let mut messages: BTreeMap<usize, Message> = BTreeMap::new();
        for (index, letter) in letters.iter().enumerate() {
            let mut m = message(letter);
            if must_offload(&m)
                && let Err(reason) = self.offload(&mut m).await
            {
                failed.push(Failed { index, reason });
                continue;
            }
            messages.insert(index, m);
        }
        let sizes: Vec<(usize, usize)> = messages.iter().map(|(i, m)| (*i, m.size())).collect();
        let limits = BatchLimits { max_entries: MAX_BATCH_ENTRIES, max_bytes: MAX_MESSAGE_BYTES };
        let outcome = send_in_batches(&sizes, limits, self.backoff, |request| {
            let entries: Vec<(usize, &Message)> = request.iter().map(|i| (*i, &messages[i])).collect();
            async move { self.send_batch(&entries).await }
        })
        .await;
        // A dead letter that cannot be sent fails its input, which is retried: never lost.
        failed
            .extend(outcome.refused.into_iter().chain(outcome.failed).map(|(index, reason)| Failed { index, reason }));
        failed
    }
}

impl DeadLetterSink for SqsDeadLetters {
    fn send<'a>(&'a mut self, letters: &'a [DeadLetter]) -> SinkFuture<'a, Vec<Failed>> {
        Box::pin(async move { Ok(if letters.is_empty() { Vec::new() } else { self.send_async(letters).await }) })
    }
}
