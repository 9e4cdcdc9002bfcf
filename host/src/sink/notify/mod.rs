//! `[sinks.notify]`: records that match a predicate, published as notifications with message
//! attributes (for subscription filter policies). Backends: [`file`] (`notifications.jsonl`,
//! local) and [`sns`].

pub mod file;
pub mod sns;

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

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

/// Message attributes from configured fields (strings, numbers and booleans as text).
pub fn message_attributes(fields: &[String], body: &Value) -> BTreeMap<String, String> {
    fields.iter().filter_map(|f| Some((f.clone(), key_value(body, f)?))).collect()
}
