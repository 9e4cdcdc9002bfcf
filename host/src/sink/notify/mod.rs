//! `[sinks.notify]`: records that match a predicate, published as notifications with message
//! attributes (for subscription filter policies). Backends: [`file`] (`notifications.jsonl`,
//! local) and [`sns`].

pub mod file;
pub mod sns;

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use sha2::{Digest, Sha256};

use crate::sink::fields::{key_value, number};

#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub topic: String,
    pub when: Option<Predicate>,
    /// Fields sent as message attributes (for subscription filter policies).
    pub attributes: Vec<String>,
    /// FIFO topics: the field whose value is the message group (default: the pipeline name).
    pub group_by: Option<String>,
}

/// A test on one top-level field of a record's body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    pub field: String,
    pub op: PredicateOp,
    #[serde(default)]
    pub value: Option<toml::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredicateOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Exists,
}

/// Whether a record body matches a notify predicate.
pub fn matches(predicate: &Predicate, body: &Value) -> bool {
    let field = body.get(&predicate.field);
    if predicate.op == PredicateOp::Exists {
        return field.is_some_and(|v| !v.is_null());
    }
    let (Some(field), Some(value)) = (field, &predicate.value) else { return false };
    let ordering = match (field, value) {
        (Value::Number(n), toml::Value::Integer(_) | toml::Value::Float(_)) => {
            let lhs = number(&Value::Number(n.clone()));
            let rhs = match value {
                toml::Value::Integer(i) => Some(Decimal::from(*i)),
                toml::Value::Float(f) => Decimal::try_from(*f).ok(),
                _ => None,
            };
            match (lhs, rhs) {
                (Some(l), Some(r)) => l.cmp(&r),
                _ => return false,
            }
        }
        (Value::String(s), toml::Value::String(v)) => s.as_str().cmp(v.as_str()),
        (Value::Bool(b), toml::Value::Boolean(v)) => b.cmp(v),
        _ => return predicate.op == PredicateOp::Ne,
    };
    use std::cmp::Ordering::*;
    match predicate.op {
        PredicateOp::Eq => ordering == Equal,
        PredicateOp::Ne => ordering != Equal,
        PredicateOp::Gt => ordering == Greater,
        PredicateOp::Gte => ordering != Less,
        PredicateOp::Lt => ordering == Less,
        PredicateOp::Lte => ordering != Greater,
        PredicateOp::Exists => true,
    }
}

/// SNS's limit on a message (body plus attributes), and on a whole `PublishBatch` call.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// SNS's limit on message attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;

/// One notification, as both twins send it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub body: String,
    /// Name -> (SNS data type, value).
    pub attributes: BTreeMap<String, (&'static str, String)>,
    /// FIFO topics only.
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

impl Message {
    /// Bytes SNS counts against its limits.
    pub fn size(&self) -> usize {
        self.body.len() + self.attributes.iter().map(|(k, (t, v))| k.len() + t.len() + v.len()).sum::<usize>()
    }
}

/// The notification for a record, by the rules both twins follow: `Ok(None)` when the
/// predicate does not match; `Err(reason)` when it can never be sent (over SNS's size limit,
/// counted as SNS counts it).
///
/// It carries a String attribute `pipeline`, one per configured field (Number for numbers,
/// String for non-empty strings and booleans; absent, null and empty fields are left out, as
/// SNS refuses empty values), and `weir_chain` (the chain that produced it) where SNS's 10
/// attributes allow. FIFO topics (`fifo`) get a message group (the `group_by` field, else the
/// pipeline name) and a deduplication id derived from the record id.
pub fn message(
    config: &NotifyConfig,
    pipeline: &str,
    fifo: bool,
    record: &crate::Record,
    chain: &str,
) -> Result<Option<Message>, String> {
    let value: Value = serde_json::from_str(&record.body).unwrap_or(Value::Null);
    if let Some(p) = &config.when
        && !matches(p, &value)
    {
        return Ok(None);
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
    if attributes.len() < MAX_ATTRIBUTES && !chain.is_empty() {
        attributes.insert("weir_chain".to_string(), ("String", chain.to_string()));
    }
    let (group_id, dedup_id) = if fifo {
        let group = config.group_by.as_ref().and_then(|f| key_value(&value, f)).unwrap_or_else(|| pipeline.to_string());
        (Some(group), Some(hex::encode(Sha256::digest(record.id.as_bytes()))))
    } else {
        (None, None)
    };
    let m = Message { body: record.body.clone(), attributes, group_id, dedup_id };
    if m.size() > MAX_MESSAGE_BYTES {
        return Err(format!("notification is {} bytes, over SNS's {MAX_MESSAGE_BYTES}-byte limit", m.size()));
    }
    Ok(Some(m))
}

/// Whether a topic is a FIFO topic (by its name or ARN).
pub fn is_fifo(topic: &str) -> bool {
    topic.ends_with(".fifo")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record;

    #[test]
    fn messages_carry_typed_attributes_and_fifo_ids() {
        let config = NotifyConfig {
            topic: "t".into(),
            when: Some(Predicate { field: "total".into(), op: PredicateOp::Gt, value: Some(toml::Value::Integer(10)) }),
            attributes: vec!["currency".into(), "total".into(), "missing".into(), "empty".into()],
            group_by: Some("user".into()),
        };
        let record = |body: &str| Record::new("r1", body);
        assert_eq!(message(&config, "orders", false, &record(r#"{"total":5}"#), "c"), Ok(None));
        let body = r#"{"total":12.5,"currency":"EUR","user":"u1","empty":""}"#;
        let m = message(&config, "orders", false, &record(body), "c").unwrap().unwrap();
        assert_eq!(m.attributes["pipeline"], ("String", "orders".to_string()));
        assert_eq!(m.attributes["total"], ("Number", "12.5".to_string()));
        assert_eq!(m.attributes["currency"], ("String", "EUR".to_string()));
        assert_eq!(m.attributes["weir_chain"], ("String", "c".to_string()));
        assert!(!m.attributes.contains_key("missing") && !m.attributes.contains_key("empty"));
        assert_eq!((m.group_id, m.dedup_id), (None, None));
        let f = message(&config, "orders", true, &record(r#"{"total":12.5,"user":"u1"}"#), "c").unwrap().unwrap();
        assert_eq!(f.group_id.as_deref(), Some("u1"));
        assert_eq!(f.dedup_id.as_ref().map(String::len), Some(64));
        let big = format!(r#"{{"total":11,"blob":"{}"}}"#, "x".repeat(MAX_MESSAGE_BYTES));
        let err = message(&config, "orders", false, &record(&big), "c").unwrap_err();
        assert!(err.contains("over SNS's 262144-byte limit"), "{err}");
    }
}
