//! `[sinks.objects]`: records as files, one per batch and partition (`dt={date}/`), JSON Lines or
//! CSV. A file's name is a digest of its record ids, so a redelivered batch rewrites the same
//! file. Backends: [`file`] (a directory tree, local) and [`s3`].

pub mod file;
pub mod s3;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::sink::Delivery;

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
/// rows. The name hashes the record ids, so a redelivered batch rewrites the same files
/// instead of adding copies.
pub fn plan_objects(config: &ObjectsConfig, delivery: &Delivery<'_>) -> BTreeMap<String, Vec<(usize, Value)>> {
    let mut groups: BTreeMap<String, Vec<(usize, Value)>> = BTreeMap::new();
    for (i, e) in delivery.emitted.iter().enumerate() {
        let body: Value = serde_json::from_str(&e.record.body).unwrap_or(Value::Null);
        let partition = config.partition.render(&body);
        groups.entry(format!("{}{partition}", config.prefix)).or_default().push((i, body));
    }
    let ext = match config.format {
        ObjectFormat::Jsonl => "jsonl",
        ObjectFormat::Csv => "csv",
    };
    groups
        .into_iter()
        .map(|(dir, rows)| {
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
