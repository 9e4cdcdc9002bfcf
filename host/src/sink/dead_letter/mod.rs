//! `[dead_letter]`: records that could not be processed, with the stage, kind and reason.
//! Backends: [`file`] (`rejected.jsonl`, local) and [`sqs`] (a queue, with letters over SQS's
//! limit offloaded to S3).

pub mod file;
pub mod sqs;

use std::collections::BTreeMap;

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

/// SQS's limit on a message, and on a whole `SendMessageBatch` call.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// The longest `reason` attribute sent.
pub const MAX_REASON_BYTES: usize = 4096;

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

/// The message for a dead letter (before any offload), by the rules both twins follow: the body
/// is the record as it entered the chain (for an unreadable input, its raw text, or its source
/// id when there is none); the attributes say what happened, the reason cut to
/// [`MAX_REASON_BYTES`], characters SQS does not accept replaced.
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

/// Whether a message must go to S3, with a pointer sent instead: over SQS's size limit, or a
/// body with characters SQS does not accept.
pub fn must_offload(m: &Message) -> bool {
    m.size() > MAX_MESSAGE_BYTES || !sqs_safe(&m.body)
}

/// Why a letter that must be offloaded fails without an offload bucket (its input is retried,
/// and ends in the source queue's own redrive queue), in both twins.
pub fn no_offload(m: &Message) -> String {
    format!("dead letter of {} bytes cannot be sent to SQS and no dead_letter.offload_bucket is configured", m.size())
}

/// Takes dead letters.
pub trait DeadLetterSink: Send {
    /// Sends the letters; returns the indexes of those that could not be sent (their inputs
    /// are then failed and retried). `Err` means none may be assumed sent.
    fn send<'a>(&'a mut self, letters: &'a [DeadLetter]) -> SinkFuture<'a, Vec<Failed>>;
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
