//! SNS notification sink: the production twin of [`local::NotifyFile`](super::local::NotifyFile).
//!
//! Records that match the configured predicate are published with `PublishBatch`: at most 10
//! entries and 256 KB (262,144 bytes, bodies plus attributes) per call. Every message carries a
//! String attribute `pipeline` and one attribute per configured field (Number for numbers,
//! String otherwise; absent or null fields are left out), so subscription filter policies can
//! route on them. FIFO topics (`.fifo`) get a message group id (the configured `group_by`
//! field, else the pipeline name) and a deduplication id derived from the record id, so a
//! redelivery within SNS's five-minute window is dropped; standard topics are at-least-once.
//! Entries SNS refuses as the sender's fault are unwritable (dead-letter destination with the
//! reason); other per-entry failures are retried with backoff, then failed.

use std::collections::BTreeMap;

use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{NotifyConfig, matches};
use crate::aws::retry::{Backoff, BatchLimits, EntryResult, FailedEntry, entry_results, send_in_batches};
use crate::sink::{Delivery, Failed, Sink, SinkFuture, SinkReport, Unwritable};

/// SNS's limit on a message, and on a whole `PublishBatch` call.
pub const MAX_BATCH_BYTES: usize = 262_144;
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

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub body: String,
    /// Name -> (data type, value).
    pub attributes: BTreeMap<String, (&'static str, String)>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

impl Message {
    /// Bytes SNS counts against its limits.
    pub fn size(&self) -> usize {
        self.body.len() + self.attributes.iter().map(|(k, (t, v))| k.len() + t.len() + v.len()).sum::<usize>()
    }
}

/// The message for a record, or `None` when the predicate does not match.
pub fn message(config: &NotifyConfig, pipeline: &str, fifo: bool, record_id: &str, body: &str) -> Option<Message> {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if let Some(p) = &config.when
        && !matches(p, &value)
    {
        return None;
    }
    let mut attributes = BTreeMap::new();
    attributes.insert("pipeline".to_string(), ("String", pipeline.to_string()));
    for field in &config.attributes {
        match value.get(field) {
            Some(Value::Number(n)) => attributes.insert(field.clone(), ("Number", n.to_string())),
            Some(Value::String(s)) if !s.is_empty() => attributes.insert(field.clone(), ("String", s.clone())),
            Some(Value::Bool(b)) => attributes.insert(field.clone(), ("String", b.to_string())),
            _ => None,
        };
    }
    let (group_id, dedup_id) = if fifo {
        let group = config
            .group_by
            .as_ref()
            .and_then(|f| match value.get(f) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| pipeline.to_string());
        (Some(group), Some(hex::encode(Sha256::digest(record_id.as_bytes()))))
    } else {
        (None, None)
    };
    Some(Message { body: body.to_string(), attributes, group_id, dedup_id })
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
        let fifo = self.topic_arn.ends_with(".fifo");
        let mut messages: BTreeMap<usize, Message> = BTreeMap::new();
        for (index, e) in delivery.emitted.iter().enumerate() {
            let Some(mut m) = message(&self.config, &self.pipeline, fifo, &e.record.id, &e.record.body) else {
                report.unchanged += 1;
                continue;
            };
            // Traceability: the chain that produced it, where SNS's 10 attributes allow. Added
            // before the size check, which must see the message as it is sent.
            if m.attributes.len() < 10 && !delivery.chain.is_empty() {
                m.attributes.insert("weir_chain".to_string(), ("String", delivery.chain.to_string()));
            }
            if m.size() > MAX_BATCH_BYTES {
                let reason = format!("notification is {} bytes, over SNS's {MAX_BATCH_BYTES}-byte limit", m.size());
                report.unwritable.push(Unwritable { index, reason });
                continue;
            }
            messages.insert(index, m);
        }
        let sizes: Vec<(usize, usize)> = messages.iter().map(|(i, m)| (*i, m.size())).collect();
        let limits = BatchLimits { max_entries: MAX_BATCH_ENTRIES, max_bytes: MAX_BATCH_BYTES };
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
        format!("sns:{}", self.topic_arn.rsplit(':').next().unwrap_or(&self.topic_arn))
    }

    fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport> {
        Box::pin(async move { Ok(self.write_async(delivery).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::notify::{Predicate, PredicateOp};

    #[test]
    fn messages_carry_typed_attributes_and_fifo_ids() {
        let config = NotifyConfig {
            topic: "t".into(),
            when: Some(Predicate { field: "total".into(), op: PredicateOp::Gt, value: Some(toml::Value::Integer(10)) }),
            attributes: vec!["currency".into(), "total".into(), "missing".into()],
            group_by: Some("user".into()),
        };
        assert_eq!(message(&config, "orders", false, "r1", r#"{"total":5}"#), None);
        let m = message(&config, "orders", false, "r1", r#"{"total":12.5,"currency":"EUR","user":"u1"}"#).unwrap();
        assert_eq!(m.attributes["pipeline"], ("String", "orders".to_string()));
        assert_eq!(m.attributes["total"], ("Number", "12.5".to_string()));
        assert_eq!(m.attributes["currency"], ("String", "EUR".to_string()));
        assert!(!m.attributes.contains_key("missing"));
        assert_eq!((m.group_id, m.dedup_id), (None, None));
        let f = message(&config, "orders", true, "r1", r#"{"total":12.5,"user":"u1"}"#).unwrap();
        assert_eq!(f.group_id.as_deref(), Some("u1"));
        assert_eq!(f.dedup_id.as_ref().map(String::len), Some(64));
    }
}
