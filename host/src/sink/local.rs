//! The embedded default sinks, all under one output directory:
//!
//! - `weir.db` (SQLite): one table per `[[sinks.table]]`, with DynamoDB's semantics: `put`
//!   (last write wins), `put-if-absent` (first write wins; a redelivery is a no-op), and
//!   `aggregate` (counters per group, each record id counted once, so replaying a file changes
//!   nothing). A batch is one transaction.
//! - `notifications.jsonl`: what would be published to the topic, with message attributes.
//! - `objects/<bucket>/<prefix><partition>part-<digest>.jsonl|csv`: one file per batch and
//!   partition, named by a digest of its record ids, so a replay rewrites the same file.
//! - `rejected.jsonl`: dead letters (record, stage, kind, reason, source id).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{DeadLetter, DeadLetterSink, Delivery, Failed, Sink, SinkError, SinkReport, Unwritable};
use crate::pipeline::config::{
    CounterOp, NotifyConfig, ObjectFormat, ObjectsConfig, Predicate, PredicateOp, TableConfig, TableMode,
};

/// The SQLite database shared by the table sinks of one output directory.
#[derive(Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Database {
    /// Opens (creating) `<dir>/weir.db`.
    pub fn open(dir: &Path) -> Result<Self, SinkError> {
        let err = |e: &dyn std::fmt::Display| SinkError { sink: "database".into(), message: e.to_string() };
        fs::create_dir_all(dir).map_err(|e| err(&e))?;
        let path = dir.join("weir.db");
        let conn = Connection::open(&path).map_err(|e| err(&e))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;").map_err(|e| err(&e))?;
        Ok(Database { conn: Arc::new(Mutex::new(conn)), path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn quote_ident(prefix: &str, name: &str) -> String {
    // Names are validated to [A-Za-z0-9_-]; quoting keeps `-` legal.
    format!("\"{prefix}{}\"", name.replace('"', ""))
}

/// A key attribute's value as text, if the body has a usable one.
fn key_value(body: &Value, field: &str) -> Option<String> {
    match body.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A table sink on the local database.
pub struct TableSink {
    db: Database,
    config: TableConfig,
}

impl TableSink {
    /// Creates the table if needed.
    pub fn new(db: Database, config: TableConfig) -> Result<Self, SinkError> {
        let sink = TableSink { db, config };
        let ddl = match &sink.config.mode {
            TableMode::Put | TableMode::PutIfAbsent => format!(
                "CREATE TABLE IF NOT EXISTS {} (pk TEXT NOT NULL, sk TEXT NOT NULL DEFAULT '', item TEXT NOT NULL, \
                 record_id TEXT NOT NULL, chain TEXT NOT NULL, PRIMARY KEY (pk, sk))",
                quote_ident("t_", &sink.config.name)
            ),
            TableMode::Aggregate { .. } => format!(
                "CREATE TABLE IF NOT EXISTS {} (grp TEXT PRIMARY KEY, counters TEXT NOT NULL); \
                 CREATE TABLE IF NOT EXISTS {} (record_id TEXT PRIMARY KEY)",
                quote_ident("a_", &sink.config.name),
                quote_ident("seen_", &sink.config.name)
            ),
        };
        sink.db.lock().execute_batch(&ddl).map_err(|e| sink.error(e))?;
        Ok(sink)
    }

    fn error(&self, e: impl std::fmt::Display) -> SinkError {
        SinkError { sink: self.name(), message: e.to_string() }
    }
}

impl Sink for TableSink {
    fn name(&self) -> String {
        format!("table:{}", self.config.name)
    }

    fn write(&mut self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError> {
        let mut report = SinkReport::default();
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| self.error(e))?;
        for (index, emitted) in delivery.emitted.iter().enumerate() {
            let body: Value = match serde_json::from_str(&emitted.record.body) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    report.unwritable.push(Unwritable { index, reason: "a table item must be a JSON object".into() });
                    continue;
                }
            };
            match &self.config.mode {
                TableMode::Put | TableMode::PutIfAbsent => {
                    let mut keys = Vec::with_capacity(2);
                    for field in &self.config.key {
                        match key_value(&body, field) {
                            Some(v) => keys.push(v),
                            None => break,
                        }
                    }
                    if keys.len() != self.config.key.len() {
                        let missing = &self.config.key[keys.len()];
                        report.unwritable.push(Unwritable {
                            index,
                            reason: format!("key attribute `{missing}` is missing or empty"),
                        });
                        continue;
                    }
                    let sk = keys.get(1).cloned().unwrap_or_default();
                    let conflict = if self.config.mode == TableMode::Put {
                        "DO UPDATE SET item = excluded.item, record_id = excluded.record_id, chain = excluded.chain"
                    } else {
                        "DO NOTHING"
                    };
                    let sql = format!(
                        "INSERT INTO {} (pk, sk, item, record_id, chain) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (pk, sk) {conflict}",
                        quote_ident("t_", &self.config.name)
                    );
                    let changed = tx
                        .execute(&sql, params![keys[0], sk, emitted.record.body, emitted.record.id, delivery.chain])
                        .map_err(|e| self.error(e))?;
                    if changed == 0 { report.unchanged += 1 } else { report.written += 1 }
                }
                TableMode::Aggregate { group_by, counters } => {
                    let Some(group) = key_value(&body, group_by) else {
                        report.unwritable.push(Unwritable {
                            index,
                            reason: format!("group field `{group_by}` is missing or empty"),
                        });
                        continue;
                    };
                    let mut deltas = Vec::with_capacity(counters.len());
                    let mut bad = None;
                    for c in counters {
                        match (c.op, &c.field) {
                            (CounterOp::Count, _) => deltas.push((c.name.as_str(), Decimal::ONE)),
                            (CounterOp::Sum, Some(field)) => match body.get(field).and_then(number) {
                                Some(d) => deltas.push((c.name.as_str(), d)),
                                None => {
                                    bad = Some(format!(
                                        "counter `{}` sums `{field}`, which is missing or not a number",
                                        c.name
                                    ));
                                    break;
                                }
                            },
                            (CounterOp::Sum, None) => bad = Some(format!("counter `{}` has no field", c.name)),
                        }
                    }
                    if let Some(reason) = bad {
                        report.unwritable.push(Unwritable { index, reason });
                        continue;
                    }
                    let seen = tx
                        .execute(
                            &format!(
                                "INSERT OR IGNORE INTO {} (record_id) VALUES (?1)",
                                quote_ident("seen_", &self.config.name)
                            ),
                            params![emitted.record.id],
                        )
                        .map_err(|e| self.error(e))?;
                    if seen == 0 {
                        report.unchanged += 1; // already counted: a redelivery
                        continue;
                    }
                    let table = quote_ident("a_", &self.config.name);
                    let current: Option<String> = tx
                        .query_row(&format!("SELECT counters FROM {table} WHERE grp = ?1"), params![group], |r| {
                            r.get(0)
                        })
                        .optional()
                        .map_err(|e| self.error(e))?;
                    let mut values: BTreeMap<String, Decimal> = current
                        .as_deref()
                        .and_then(|c| serde_json::from_str::<BTreeMap<String, String>>(c).ok())
                        .map(|m| m.into_iter().filter_map(|(k, v)| Some((k, Decimal::from_str(&v).ok()?))).collect())
                        .unwrap_or_default();
                    for (name, delta) in deltas {
                        *values.entry(name.to_string()).or_default() += delta;
                    }
                    let encoded: BTreeMap<&String, String> =
                        values.iter().map(|(k, v)| (k, v.normalize().to_string())).collect();
                    let encoded = serde_json::to_string(&encoded).map_err(|e| self.error(e))?;
                    tx.execute(
                        &format!("INSERT INTO {table} (grp, counters) VALUES (?1, ?2) ON CONFLICT (grp) DO UPDATE SET counters = excluded.counters"),
                        params![group, encoded],
                    )
                    .map_err(|e| self.error(e))?;
                    report.written += 1;
                }
            }
        }
        tx.commit().map_err(|e| self.error(e))?;
        Ok(report)
    }
}

/// An exact decimal from a JSON number (or numeric string).
fn number(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::from_str_exact(&text).or_else(|_| Decimal::from_scientific(&text)).ok()
        }
        Value::String(s) => Decimal::from_str_exact(s.trim()).ok(),
        _ => None,
    }
}

/// One aggregate group read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    pub key: String,
    pub counters: BTreeMap<String, String>,
}

/// Reads an aggregate table back: every group, sorted by key.
pub fn read_aggregates(db: &Database, table: &str) -> Result<Vec<Group>, SinkError> {
    let err = |e: rusqlite::Error| SinkError { sink: format!("table:{table}"), message: e.to_string() };
    let conn = db.lock();
    let mut stmt =
        conn.prepare(&format!("SELECT grp, counters FROM {} ORDER BY grp", quote_ident("a_", table))).map_err(err)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(err)?;
    let mut groups = Vec::new();
    for row in rows {
        let (key, counters) = row.map_err(err)?;
        groups.push(Group { key, counters: serde_json::from_str(&counters).unwrap_or_default() });
    }
    Ok(groups)
}

/// Lists the aggregate tables in a database.
pub fn aggregate_tables(db: &Database) -> Result<Vec<String>, SinkError> {
    let err = |e: rusqlite::Error| SinkError { sink: "database".into(), message: e.to_string() };
    let conn = db.lock();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'a\\_%' ESCAPE '\\' ORDER BY name")
        .map_err(err)?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
    names.map(|n| n.map(|n| n[2..].to_string()).map_err(err)).collect()
}

/// Counts rows of an item table (put / put-if-absent).
pub fn count_items(db: &Database, table: &str) -> Result<u64, SinkError> {
    let conn = db.lock();
    conn.query_row(&format!("SELECT COUNT(*) FROM {}", quote_ident("t_", table)), [], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
        .map_err(|e| SinkError { sink: format!("table:{table}"), message: e.to_string() })
}

/// Reads one item of an item table.
pub fn get_item(db: &Database, table: &str, pk: &str, sk: &str) -> Result<Option<String>, SinkError> {
    let conn = db.lock();
    conn.query_row(
        &format!("SELECT item FROM {} WHERE pk = ?1 AND sk = ?2", quote_ident("t_", table)),
        params![pk, sk],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| SinkError { sink: format!("table:{table}"), message: e.to_string() })
}

fn append_file(path: &Path, sink: &str) -> Result<BufWriter<File>, SinkError> {
    let err = |e: std::io::Error| SinkError { sink: sink.into(), message: format!("{}: {e}", path.display()) };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    Ok(BufWriter::new(OpenOptions::new().create(true).append(true).open(path).map_err(err)?))
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

/// `notifications.jsonl`.
pub struct NotifyFile {
    path: PathBuf,
    config: NotifyConfig,
}

impl NotifyFile {
    pub fn new(dir: &Path, config: NotifyConfig) -> Self {
        NotifyFile { path: dir.join("notifications.jsonl"), config }
    }
}

impl Sink for NotifyFile {
    fn name(&self) -> String {
        format!("notify:{}", self.config.topic)
    }

    fn write(&mut self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError> {
        let mut report = SinkReport::default();
        let mut out = append_file(&self.path, &self.name())?;
        for e in delivery.emitted {
            let body: Value = serde_json::from_str(&e.record.body).unwrap_or(Value::Null);
            if let Some(p) = &self.config.when
                && !matches(p, &body)
            {
                report.unchanged += 1;
                continue;
            }
            let line = serde_json::json!({
                "topic": self.config.topic,
                "record_id": e.record.id,
                "attributes": message_attributes(&self.config.attributes, &body),
                "message": body,
                "chain": delivery.chain,
            });
            writeln!(out, "{line}").map_err(|err| SinkError { sink: self.name(), message: err.to_string() })?;
            report.written += 1;
        }
        out.flush().map_err(|err| SinkError { sink: self.name(), message: err.to_string() })?;
        Ok(report)
    }
}

/// Object files under `objects/`.
pub struct ObjectFiles {
    root: PathBuf,
    config: ObjectsConfig,
}

impl ObjectFiles {
    pub fn new(dir: &Path, config: ObjectsConfig) -> Self {
        ObjectFiles { root: dir.join("objects"), config }
    }

    /// The relative key of each file of a batch; see [`plan_objects`].
    pub fn plan(&self, delivery: &Delivery<'_>) -> BTreeMap<String, Vec<(usize, Value)>> {
        plan_objects(&self.config, delivery)
    }
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

impl Sink for ObjectFiles {
    fn name(&self) -> String {
        format!("objects:{}", self.config.bucket)
    }

    fn write(&mut self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError> {
        let err = |e: &dyn std::fmt::Display| SinkError {
            sink: format!("objects:{}", self.config.bucket),
            message: e.to_string(),
        };
        let mut report = SinkReport::default();
        for (key, rows) in self.plan(delivery) {
            let path = self.root.join(&self.config.bucket).join(&key);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|e| err(&e))?;
            }
            let bytes = render_rows(self.config.format, &rows).map_err(|e| err(&e))?;
            // Write-then-rename: a crash never leaves half a file under the final name.
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, bytes).map_err(|e| err(&e))?;
            fs::rename(&tmp, &path).map_err(|e| err(&e))?;
            report.written += rows.len();
        }
        Ok(report)
    }
}

/// `rejected.jsonl`.
pub struct RejectedFile {
    path: PathBuf,
    queue: String,
}

impl RejectedFile {
    pub fn new(dir: &Path, queue: impl Into<String>) -> Self {
        RejectedFile { path: dir.join("rejected.jsonl"), queue: queue.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DeadLetterSink for RejectedFile {
    fn send(&mut self, letters: &[DeadLetter]) -> Result<Vec<Failed>, SinkError> {
        if letters.is_empty() {
            return Ok(Vec::new());
        }
        let sink = format!("dead-letter:{}", self.queue);
        let mut out = append_file(&self.path, &sink)?;
        for l in letters {
            let line =
                serde_json::to_string(l).map_err(|e| SinkError { sink: sink.clone(), message: e.to_string() })?;
            writeln!(out, "{line}").map_err(|e| SinkError { sink: sink.clone(), message: e.to_string() })?;
        }
        out.flush().map_err(|e| SinkError { sink, message: e.to_string() })?;
        Ok(Vec::new())
    }
}
