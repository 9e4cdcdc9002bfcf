//! `[sinks.objects]`: records as files, one per batch and partition (`dt={date}/`) for an
//! object's or a file's rows, one per message and partition for SQS records ([`Parts`]), JSON
//! Lines or CSV. A file's name is a digest of its record ids, so a redelivery rewrites the same
//! file. Backends: [`file`] (a directory tree, local) and [`s3`].

pub mod file;
pub mod s3;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::sink::{Delivery, Parts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectsConfig {
    pub bucket: String,
    pub prefix: String,
    pub partition: PartitionTemplate,
    pub format: ObjectFormat,
}

/// A path template such as `dt={date}/`: `{field}` is replaced by that top-level field of the
/// record (Hive's `__HIVE_DEFAULT_PARTITION__` when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTemplate {
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Field(String),
}

impl PartitionTemplate {
    /// Parses a template; the error says what is wrong.
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Literal(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or_else(|| format!("unclosed `{{` in {template:?}"))? + open;
            let field = &rest[open + 1..close];
            if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!("`{{{field}}}` in {template:?} is not a field name (letters, digits, _ and -)"));
            }
            parts.push(TemplatePart::Field(field.to_string()));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("unmatched `}}` in {template:?}"));
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_string()));
        }
        Ok(PartitionTemplate { parts })
    }

    /// Renders the template for a record body (a JSON object).
    pub fn render(&self, body: &serde_json::Value) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Field(f) => {
                    let value = match body.get(f) {
                        Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                        Some(serde_json::Value::Number(n)) => n.to_string(),
                        Some(serde_json::Value::Bool(b)) => b.to_string(),
                        _ => "__HIVE_DEFAULT_PARTITION__".to_string(),
                    };
                    // Keep partitions one path segment each.
                    out.extend(value.chars().map(|c| if c == '/' || c == '\\' { '_' } else { c }));
                }
            }
        }
        out
    }
}

/// The template as written (`dt={date}/`).
impl std::fmt::Display for PartitionTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for part in &self.parts {
            match part {
                TemplatePart::Literal(s) => f.write_str(s)?,
                TemplatePart::Field(field) => write!(f, "{{{field}}}")?,
            }
        }
        Ok(())
    }
}

/// Output file format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectFormat {
    #[default]
    Jsonl,
    Csv,
}

/// Splits a batch into files: the key (`prefix/partition/part-<hash>.jsonl`) of each, with its
/// rows. The name hashes the record ids of the file, and a file holds a batch's records of one
/// partition ([`Parts::Batch`]) or one input's ([`Parts::PerInput`]), so that a redelivery
/// rewrites the same files instead of adding copies.
pub fn plan_objects(config: &ObjectsConfig, delivery: &Delivery<'_>) -> BTreeMap<String, Vec<(usize, Value)>> {
    let mut groups: BTreeMap<(String, usize), Vec<(usize, Value)>> = BTreeMap::new();
    for (i, e) in delivery.emitted.iter().enumerate() {
        let body: Value = serde_json::from_str(&e.record.body).unwrap_or(Value::Null);
        let partition = config.partition.render(&body);
        let unit = match delivery.parts {
            Parts::Batch => 0,
            Parts::PerInput => e.origin,
        };
        groups.entry((format!("{}{partition}", config.prefix), unit)).or_default().push((i, body));
    }
    let ext = match config.format {
        ObjectFormat::Jsonl => "jsonl",
        ObjectFormat::Csv => "csv",
    };
    groups
        .into_iter()
        .map(|((dir, _), rows)| {
            let mut h = Sha256::new();
            for (i, _) in &rows {
                h.update(delivery.emitted[*i].record.id.as_bytes());
                h.update([0]);
            }
            (format!("{dir}part-{}.{ext}", &hex::encode(h.finalize())[..16]), rows)
        })
        .collect()
}

/// A file's bytes: JSON Lines, or CSV with a header.
pub fn render_rows(format: ObjectFormat, rows: &[(usize, Value)]) -> Result<Vec<u8>, csv::Error> {
    match format {
        ObjectFormat::Jsonl => {
            let mut buf = Vec::new();
            for (_, v) in rows {
                buf.extend_from_slice(v.to_string().as_bytes());
                buf.push(b'\n');
            }
            Ok(buf)
        }
        ObjectFormat::Csv => to_csv(&rows.iter().map(|(_, v)| v).collect::<Vec<_>>()),
    }
}

/// Renders rows as CSV: columns in order of first appearance; strings raw, others as JSON.
pub fn to_csv(rows: &[&Value]) -> Result<Vec<u8>, csv::Error> {
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        if let Value::Object(map) = row {
            for k in map.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(&columns)?;
    for row in rows {
        let fields = columns.iter().map(|c| match row.get(c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        });
        w.write_record(fields)?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::report::Emitted;

    fn config() -> ObjectsConfig {
        let partition = PartitionTemplate::parse("dt={date}/").unwrap();
        ObjectsConfig { bucket: "out".into(), prefix: "orders/".into(), partition, format: ObjectFormat::Jsonl }
    }

    fn emitted(ids: &[&str]) -> Vec<Emitted> {
        let body = |id: &str| format!(r#"{{"id":"{id}","date":"2025-06-01"}}"#);
        ids.iter().enumerate().map(|(origin, id)| Emitted { origin, record: Record::new(*id, body(id)) }).collect()
    }

    fn keys(ids: &[&str], parts: Parts) -> Vec<(String, Vec<String>)> {
        let e = emitted(ids);
        let delivery = Delivery { emitted: &e, chain: "c", parts };
        plan_objects(&config(), &delivery)
            .into_iter()
            .map(|(k, rows)| (k, rows.iter().map(|(i, _)| e[*i].record.id.clone()).collect()))
            .collect()
    }

    #[test]
    fn a_message_redelivered_in_another_batch_rewrites_its_own_file() {
        // SQS records: a file per message, named by it alone, whatever shares the batch.
        let first = keys(&["m1", "m2"], Parts::PerInput);
        let again = keys(&["m3", "m1"], Parts::PerInput);
        assert_eq!(first.len(), 2);
        let m1 = |files: &[(String, Vec<String>)]| files.iter().find(|(_, ids)| ids == &["m1"]).unwrap().0.clone();
        assert_eq!(m1(&first), m1(&again));
        assert!(m1(&first).starts_with("orders/dt=2025-06-01/part-") && m1(&first).ends_with(".jsonl"));

        // An object's rows: one file for the batch, named by its rows (the same batch on a
        // redelivery, as batches are fixed slices of the object).
        let batch = keys(&["o#2", "o#3"], Parts::Batch);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch, keys(&["o#2", "o#3"], Parts::Batch));
        assert_ne!(batch[0].0, keys(&["o#2"], Parts::Batch)[0].0);
    }
}
