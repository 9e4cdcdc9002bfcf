//! Reading fields out of a record's JSON body, as every sink does the same way.

use rust_decimal::Decimal;
use serde_json::Value;

/// A key attribute's value as text, if the body has a usable one.
pub(crate) fn key_value(body: &Value, field: &str) -> Option<String> {
    match body.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An exact decimal from a JSON number (or numeric string).
pub(crate) fn number(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::from_str_exact(&text).or_else(|_| Decimal::from_scientific(&text)).ok()
        }
        Value::String(s) => Decimal::from_str_exact(s.trim()).ok(),
        _ => None,
    }
}
