//! SQS dead-letter sink: the production twin of [`local::RejectedFile`](super::local::RejectedFile).
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

use super::{DeadLetter, DeadLetterSink};
use crate::aws::retry::{Backoff, BatchLimits, EntryResult, FailedEntry, entry_results, send_in_batches};
use crate::sink::{Failed, SinkFuture};

/// SQS's limit on a message, and on a whole `SendMessageBatch` call.
pub const MAX_BATCH_BYTES: usize = 262_144;
/// SQS's limit on entries per `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The longest `reason` attribute sent.
pub const MAX_REASON_BYTES: usize = 4096;

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

/// One dead-letter message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub body: String,
    pub attributes: BTreeMap<&'static str, String>,
}

impl Message {
    /// Bytes SQS counts against its limits (body, attribute names, types and values).
    pub fn size(&self) -> usize {
        self.body.len() + self.attributes.iter().map(|(k, v)| k.len() + "String".len() + v.len()).sum::<usize>()
    }
}

/// Characters SQS accepts in a message (XML 1.0's).
pub fn sqs_safe(text: &str) -> bool {
    text.chars().all(
        |c| matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..),
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!("{}…", &text[..text.floor_char_boundary(max)])
}

/// The message for a dead letter (before any offload).
pub fn message(letter: &DeadLetter) -> Message {
    let original = letter.original.as_ref().unwrap_or(&letter.record);
    let body = if original.body.is_empty() { letter.source_id.clone() } else { original.body.clone() };
    let mut attributes = BTreeMap::new();
    attributes.insert("stage", letter.stage.clone());
    attributes.insert("kind", letter.kind.clone());
    attributes.insert("reason", truncate(&letter.reason, MAX_REASON_BYTES));
    attributes.insert("source_id", letter.source_id.clone());
    attributes.insert("record_id", letter.record.id.clone());
    if !letter.chain.is_empty() {
        attributes.insert("chain", letter.chain.clone());
    }
    // Attribute values must be non-empty and SQS-safe.
    attributes.retain(|_, v| !v.is_empty());
    for v in attributes.values_mut() {
        if !sqs_safe(v) {
            *v = v.chars().map(|c| if sqs_safe(c.encode_utf8(&mut [0; 4])) { c } else { '\u{FFFD}' }).collect();
        }
    }
    Message { body, attributes }
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>, offload: Option<Offload>) -> Self {
        SqsDeadLetters { client, queue_url: queue_url.into(), offload, backoff: Backoff::default() }
    }

    /// Puts an oversized or unsafe body in S3 and points at it.
    async fn offload(&self, m: &mut Message) -> Result<(), String> {
        let Some(o) = &self.offload else {
            return Err(format!(
                "dead letter of {} bytes cannot be sent to SQS and no dead_letter.offload_bucket is configured",
                m.size()
            ));
        };
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
            if (m.size() > MAX_BATCH_BYTES || !sqs_safe(&m.body))
                && let Err(reason) = self.offload(&mut m).await
            {
                failed.push(Failed { index, reason });
                continue;
            }
            messages.insert(index, m);
        }
        let sizes: Vec<(usize, usize)> = messages.iter().map(|(i, m)| (*i, m.size())).collect();
        let limits = BatchLimits { max_entries: MAX_BATCH_ENTRIES, max_bytes: MAX_BATCH_BYTES };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    #[test]
    fn letters_become_messages_with_reason_attributes() {
        let letter = DeadLetter {
            stage: "validate".into(),
            kind: "plugin-reject".into(),
            reason: "x".repeat(10_000),
            record: Record::new("m-1", r#"{"changed":true}"#),
            source_id: "m-1".into(),
            original: Some(Record::new("m-1", r#"{"a":1}"#)),
            chain: "validate=v@abc".into(),
        };
        let m = message(&letter);
        assert_eq!(m.body, r#"{"a":1}"#, "the body is the original record");
        assert_eq!(m.attributes["stage"], "validate");
        assert_eq!(m.attributes["kind"], "plugin-reject");
        assert!(m.attributes["reason"].len() <= MAX_REASON_BYTES + 3);
        assert_eq!(m.attributes["source_id"], "m-1");
        let unreadable = DeadLetter {
            stage: "source".into(),
            kind: "unreadable".into(),
            reason: "empty".into(),
            record: Record::new("s3://b/k", ""),
            source_id: "s3://b/k".into(),
            original: None,
            chain: String::new(),
        };
        let m = message(&unreadable);
        assert_eq!(m.body, "s3://b/k");
        assert!(!m.attributes.contains_key("chain"));
        assert!(sqs_safe("héllo\n\t") && !sqs_safe("a\u{1}b") && !sqs_safe("\u{FFFF}"));
        // Cut on a character boundary, marked; short text untouched.
        assert_eq!(truncate("aé", 2), "a…");
        assert_eq!(truncate("aé", 3), "aé");
    }
}
