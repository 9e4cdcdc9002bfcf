//! The rules a table's two backends share, so that a local run predicts production: which
//! records make items, what a key and a group may be, what a counter adds, how large an item
//! may be. [`sqlite`](super::sqlite) and [`dynamodb`](super::dynamodb) both apply exactly these;
//! `host/tests/all/tables.rs` runs one suite of cases against both.

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::{Counter, CounterOp};

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The attribute that names the chain version that wrote an item (`put` and `put-if-absent`).
pub const CHAIN_ATTRIBUTE: &str = "weir_chain";

/// A record's body as a table item: a JSON object whose key attributes are non-empty strings or
/// numbers (DynamoDB's key types; `1` and `"1"` are different keys), no larger than DynamoDB
/// allows once the chain attribute is added.
pub fn item(body: &str, key: &[String], chain: &str) -> Result<Map<String, Value>, String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
        return Err("a table item must be a JSON object".into());
    };
    for (i, k) in key.iter().enumerate() {
        let value = key_part(&map, k)
            .ok_or_else(|| format!("key attribute `{k}` is missing, empty, or not a string or number"))?;
        let limit = if i == 0 { MAX_PARTITION_KEY_BYTES } else { MAX_SORT_KEY_BYTES };
        key_size(k, value, limit)?;
    }
    let size = item_size(&map) + if chain.is_empty() { 0 } else { CHAIN_ATTRIBUTE.len() + chain.len() };
    if size > MAX_ITEM_BYTES {
        return Err(format!("item is {size} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte limit"));
    }
    Ok(map)
}

/// `put` with `order_by`: the record's ordering value, a string or a number.
pub fn order_value<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a Value, String> {
    match map.get(field) {
        Some(v @ (Value::String(_) | Value::Number(_))) => Ok(v),
        _ => Err(format!("ordering field `{field}` (order_by) is missing or not a string or number")),
    }
}

/// Whether a record whose ordering value is `new` replaces an item whose value is `stored`
/// (`None`: the item has none): DynamoDB's `attribute_not_exists(#o) OR #o <= :o`. Numbers
/// compare by value, strings by their UTF-8 bytes; a number and a string do not compare, so
/// the stored item stays.
pub fn replaces(new: &Value, stored: Option<&Value>) -> bool {
    let decimal = |n: &serde_json::Number| {
        let text = n.to_string();
        Decimal::from_str_exact(&text).or_else(|_| Decimal::from_scientific(&text)).ok()
    };
    match (stored, new) {
        (None, _) => true,
        (Some(Value::String(old)), Value::String(new)) => old.as_bytes() <= new.as_bytes(),
        (Some(Value::Number(old)), Value::Number(new)) => match (decimal(old), decimal(new)) {
            (Some(old), Some(new)) => old <= new,
            _ => old.as_f64().zip(new.as_f64()).is_some_and(|(o, n)| o <= n),
        },
        (Some(_), _) => false,
    }
}

/// `put` with `order_by`: which records of a batch another record of the same key supersedes
/// (by [`replaces`], a tie going to the later record). Only the rest are written, each under
/// its condition; the superseded ones count as unchanged. `records` are (index, item) pairs of
/// valid items, in batch order.
pub fn superseded(records: &[(usize, &Map<String, Value>)], key: &[String], field: &str) -> Vec<usize> {
    let mut best: std::collections::HashMap<Vec<(&'static str, String)>, (usize, &Value)> =
        std::collections::HashMap::new();
    let mut out = Vec::new();
    for &(index, map) in records {
        let Ok(value) = order_value(map, field) else { continue };
        let id: Vec<(&'static str, String)> =
            key.iter().filter_map(|k| map.get(k)).map(|v| (key_type(v), key_text(v))).collect();
        match best.get(&id) {
            Some(&(_, kept)) if !replaces(value, Some(kept)) => out.push(index),
            Some(&(earlier, _)) => {
                out.push(earlier);
                best.insert(id, (index, value));
            }
            None => {
                best.insert(id, (index, value));
            }
        }
    }
    out.sort_unstable();
    out
}

/// DynamoDB's limits on a key attribute's value: 2048 bytes for a partition key, 1024 for a
/// sort key. A record over them is unwritable, in both backends alike.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
pub const MAX_SORT_KEY_BYTES: usize = 1024;

fn key_size(field: &str, value: &Value, limit: usize) -> Result<(), String> {
    match value {
        Value::String(s) if s.len() > limit => {
            Err(format!("key attribute `{field}` is {} bytes, over DynamoDB's {limit}-byte limit", s.len()))
        }
        _ => Ok(()),
    }
}

/// A key (or group) attribute: a non-empty string or a number.
pub fn key_part<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    match map.get(field) {
        Some(v @ Value::String(s)) if !s.is_empty() => Some(v),
        Some(v @ Value::Number(_)) => Some(v),
        _ => None,
    }
}

/// The group of an aggregate record and what each counter adds: `count` one, `sum` the field,
/// which must be a JSON number (not a numeric string) of at most 28 significant digits.
pub fn deltas<'a>(
    map: &'a Map<String, Value>,
    group_by: &str,
    counters: &[Counter],
) -> Result<(&'a Value, Vec<Decimal>), String> {
    let group = key_part(map, group_by).ok_or_else(|| format!("group field `{group_by}` is missing or empty"))?;
    key_size(group_by, group, MAX_PARTITION_KEY_BYTES)?;
    let mut values = Vec::with_capacity(counters.len());
    for c in counters {
        match (c.op, &c.field) {
            (CounterOp::Count, _) => values.push(Decimal::ONE),
            (CounterOp::Sum, Some(f)) => match map.get(f) {
                Some(Value::Number(n)) => {
                    let text = n.to_string();
                    let d =
                        Decimal::from_str_exact(&text).or_else(|_| Decimal::from_scientific(&text)).map_err(|_| {
                            format!(
                                "counter `{}` sums `{f}` = {text}, which does not fit 28 significant digits",
                                c.name
                            )
                        })?;
                    values.push(d);
                }
                _ => return Err(format!("counter `{}` sums `{f}`, which is missing or not a number", c.name)),
            },
            (CounterOp::Sum, None) => return Err(format!("counter `{}` has no field", c.name)),
        }
    }
    Ok((group, values))
}

/// A group or key value as the text both backends file it under (strings as they are, numbers
/// in their JSON text). Which type it was is kept apart: see [`key_type`].
pub fn key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// DynamoDB's type letter of a key value (`S` or `N`): with [`key_text`], what identifies a key.
pub fn key_type(value: &Value) -> &'static str {
    if value.is_number() { "N" } else { "S" }
}

/// The size DynamoDB counts for an item written from this JSON object (attribute names plus
/// values; a number's decimal digits at two per byte plus one).
pub fn item_size(map: &Map<String, Value>) -> usize {
    fn value_size(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Number(n) => n.to_string().len().div_ceil(2) + 1,
            Value::Bool(_) | Value::Null => 1,
            Value::Array(items) => 3 + items.iter().map(|i| 1 + value_size(i)).sum::<usize>(),
            Value::Object(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        }
    }
    map.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Vec<String> {
        vec!["pk".into()]
    }

    #[test]
    fn keys_are_non_empty_strings_or_numbers() {
        assert!(item(r#"{"pk":"a"}"#, &key(), "").is_ok());
        assert!(item(r#"{"pk":7}"#, &key(), "").is_ok());
        for bad in [r#"{"pk":""}"#, r#"{"pk":true}"#, r#"{"pk":null}"#, r#"{"pk":[1]}"#, r#"{"x":1}"#, "[1]", "nope"] {
            assert!(item(bad, &key(), "").is_err(), "{bad}");
        }
        assert_ne!((key_type(&Value::from(1)), key_text(&Value::from(1))), (key_type(&Value::from("1")), "1".into()));
    }

    #[test]
    fn a_record_replaces_an_item_only_when_it_is_not_older() {
        let v = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert!(replaces(&v("2"), None), "an item without the field is overwritten");
        assert!(replaces(&v("10"), Some(&v("9"))), "numbers by value, not by text");
        assert!(!replaces(&v("9"), Some(&v("10"))));
        assert!(replaces(&v("1.50"), Some(&v("1.5"))), "equal: the redelivery rewrites the same");
        assert!(replaces(&v(r#""2025-06-02T00:00:00Z""#), Some(&v(r#""2025-06-01T23:59:59Z""#))));
        assert!(!replaces(&v(r#""2025-06-01""#), Some(&v(r#""2025-06-02""#))));
        assert!(!replaces(&v(r#""9""#), Some(&v("1"))), "a string and a number do not compare");
        let map = serde_json::from_str::<Map<String, Value>>(r#"{"pk":"a","at":true}"#).unwrap();
        assert!(order_value(&map, "at").is_err() && order_value(&map, "missing").is_err());
    }

    #[test]
    fn in_a_batch_the_latest_record_of_a_key_supersedes_the_others() {
        let maps: Vec<Map<String, Value>> = [
            r#"{"pk":"a","at":2}"#,
            r#"{"pk":"a","at":1}"#,
            r#"{"pk":"b","at":1}"#,
            r#"{"pk":"a","at":2}"#,
            r#"{"pk":1,"at":0}"#,
            r#"{"pk":"b","at":"x"}"#,
        ]
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
        let records: Vec<(usize, &Map<String, Value>)> = maps.iter().enumerate().collect();
        // a: 0 and 1 lose to 3 (a tie goes to the later); b: the string does not compare with 1;
        // the number key 1 is not the string "1"'s.
        assert_eq!(superseded(&records, &key(), "at"), [0, 1, 5]);
    }

    #[test]
    fn keys_over_dynamodb_limits_are_refused() {
        let long = |n: usize| format!(r#"{{"pk":"{}","sk":"{}"}}"#, "p".repeat(n), "s".repeat(n / 2));
        assert!(item(&long(2048), &["pk".into(), "sk".into()], "").is_ok());
        let err = item(&long(2049), &key(), "").unwrap_err();
        assert!(err.contains("`pk` is 2049 bytes, over DynamoDB's 2048-byte limit"), "{err}");
        assert!(item(&long(2050), &["pk".into(), "sk".into()], "").unwrap_err().contains("`pk`"));
        let sort = format!(r#"{{"pk":"a","sk":"{}"}}"#, "s".repeat(1025));
        assert!(item(&sort, &["pk".into(), "sk".into()], "").unwrap_err().contains("`sk` is 1025 bytes"));
    }

    #[test]
    fn sums_take_json_numbers_only() {
        let counters = [Counter { name: "spend".into(), op: CounterOp::Sum, field: Some("amount".into()) }];
        let map = |body: &str| serde_json::from_str::<Map<String, Value>>(body).unwrap();
        assert_eq!(deltas(&map(r#"{"g":"a","amount":2.5}"#), "g", &counters).unwrap().1, [Decimal::new(25, 1)]);
        assert!(deltas(&map(r#"{"g":"a","amount":"2.5"}"#), "g", &counters).is_err(), "a numeric string");
        assert!(deltas(&map(r#"{"g":true,"amount":1}"#), "g", &counters).is_err(), "a boolean group");
    }

    #[test]
    fn the_size_limit_counts_the_chain_attribute() {
        let pad = MAX_ITEM_BYTES - "pk".len() - 1 - "v".len();
        let body = format!(r#"{{"pk":"a","v":"{}"}}"#, "x".repeat(pad));
        assert!(item(&body, &key(), "").is_ok());
        assert!(item(&body, &key(), "enrich=enrich@abc").unwrap_err().contains("over DynamoDB's"));
    }
}
