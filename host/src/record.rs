//! The unit of data that flows through weir.

use serde::{Deserialize, Serialize};

/// One record: where it came from, its JSON body, and string attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Where the record came from: an SQS message id, `s3://bucket/key#line` or `file#line`.
    /// Sinks use it as the idempotency key, so it must be stable across redeliveries.
    pub id: String,
    /// The record: JSON text.
    pub body: String,
    /// String pairs that came with the record (SQS message attributes, CSV metadata).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
}

impl Record {
    /// A record without attributes.
    pub fn new(id: impl Into<String>, body: impl Into<String>) -> Self {
        Record { id: id.into(), body: body.into(), attributes: Vec::new() }
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((key.into(), value.into()));
        self
    }

    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Bytes this record occupies in a batch (id, body and attributes).
    pub fn size(&self) -> usize {
        self.id.len() + self.body.len() + self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

/// Checks that a record body is JSON text, without building a tree (sources check what they
/// read, the host what plugins emit).
pub(crate) fn check_json(body: &str) -> Result<(), String> {
    serde_json::from_str::<serde::de::IgnoredAny>(body).map(|_| ()).map_err(|e| e.to_string())
}
