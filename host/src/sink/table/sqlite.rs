//! The local twin of a DynamoDB table: `weir.db` (SQLite) in the output directory, one SQL
//! table per `[[sinks.table]]`, with DynamoDB's semantics for each mode. A batch is one
//! transaction.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;

use super::{TableConfig, TableMode, rules};
use crate::sink::{Delivery, Sink, SinkError, SinkFuture, SinkReport, Unwritable};

/// The SQLite database shared by the table sinks of one output directory.
#[derive(Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Database {
    /// Opens (creating) `<dir>/weir.db`.
    pub fn open(dir: &Path) -> Result<Self, SinkError> {
        let sink = || "database".to_string();
        fs::create_dir_all(dir).map_err(|source| SinkError::Io { sink: sink(), path: dir.to_path_buf(), source })?;
        let path = dir.join("weir.db");
        let db = |source| SinkError::Database { sink: sink(), source };
        let conn = Connection::open(&path).map_err(db)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;").map_err(db)?;
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
            TableMode::Put { .. } | TableMode::PutIfAbsent => format!(
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

    fn error(&self, source: rusqlite::Error) -> SinkError {
        SinkError::Database { sink: self.name(), source }
    }
}

impl Sink for TableSink {
    fn name(&self) -> String {
        format!("table:{}", self.config.name)
    }

    fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport> {
        // Local files: quick, synchronous work, done when called; the future is already complete.
        Box::pin(std::future::ready(self.write_now(delivery)))
    }
}

impl TableSink {
    fn write_now(&mut self, delivery: &Delivery<'_>) -> Result<SinkReport, SinkError> {
        let mut report = SinkReport::default();
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| self.error(e))?;
        // `put` with `order_by`: the records of a key that a later or newer one supersedes.
        let superseded: std::collections::HashSet<usize> = match &self.config.mode {
            TableMode::Put { order_by: Some(field) } => {
                let maps: Vec<(usize, serde_json::Map<String, serde_json::Value>)> = (delivery.emitted.iter())
                    .enumerate()
                    .filter_map(|(i, e)| {
                        rules::item(&e.record.body, &self.config.key, delivery.chain).ok().map(|m| (i, m))
                    })
                    .collect();
                let refs: Vec<_> = maps.iter().map(|(i, m)| (*i, m)).collect();
                rules::superseded(&refs, &self.config.key, field).into_iter().collect()
            }
            _ => Default::default(),
        };
        for (index, emitted) in delivery.emitted.iter().enumerate() {
            let aggregate = matches!(self.config.mode, TableMode::Aggregate { .. });
            let chain = if aggregate { "" } else { delivery.chain };
            let body = match rules::item(&emitted.record.body, &self.config.key, chain) {
                Ok(map) => map,
                Err(reason) => {
                    report.unwritable.push(Unwritable { index, reason });
                    continue;
                }
            };
            match &self.config.mode {
                TableMode::Put { .. } | TableMode::PutIfAbsent => {
                    // rules::item checked every key attribute.
                    let keys: Vec<String> =
                        self.config.key.iter().filter_map(|k| body.get(k)).map(rules::key_text).collect();
                    let sk = keys.get(1).cloned().unwrap_or_default();
                    if let TableMode::Put { order_by: Some(field) } = &self.config.mode {
                        let new = match rules::order_value(&body, field) {
                            Ok(v) => v,
                            Err(reason) => {
                                report.unwritable.push(Unwritable { index, reason });
                                continue;
                            }
                        };
                        if superseded.contains(&index) {
                            report.unchanged += 1;
                            continue;
                        }
                        let stored: Option<String> = tx
                            .query_row(
                                &format!(
                                    "SELECT item FROM {} WHERE pk = ?1 AND sk = ?2",
                                    quote_ident("t_", &self.config.name)
                                ),
                                params![keys[0], sk],
                                |r| r.get(0),
                            )
                            .optional()
                            .map_err(|e| self.error(e))?;
                        let stored: Option<serde_json::Value> =
                            stored.as_deref().and_then(|text| serde_json::from_str(text).ok());
                        if let Some(item) = &stored
                            && !rules::replaces(new, item.get(field))
                        {
                            report.unchanged += 1; // an older record than the item's: a redelivery
                            continue;
                        }
                    }
                    let conflict = if matches!(self.config.mode, TableMode::Put { .. }) {
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
                    let (group, deltas) = match rules::deltas(&body, group_by, counters) {
                        Ok((group, values)) => {
                            let names = counters.iter().map(|c| c.name.as_str());
                            (rules::key_text(group), names.zip(values).collect::<Vec<_>>())
                        }
                        Err(reason) => {
                            report.unwritable.push(Unwritable { index, reason });
                            continue;
                        }
                    };
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
                    let encoded = serde_json::to_string(&encoded)
                        .map_err(|source| SinkError::Encode { sink: self.name(), source })?;
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

/// One aggregate group read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    pub key: String,
    pub counters: BTreeMap<String, String>,
}

/// Reads an aggregate table back: every group, sorted by key.
pub fn read_aggregates(db: &Database, table: &str) -> Result<Vec<Group>, SinkError> {
    let err = |source| SinkError::Database { sink: format!("table:{table}"), source };
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
    let err = |source| SinkError::Database { sink: "database".into(), source };
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
        .map_err(|source| SinkError::Database { sink: format!("table:{table}"), source })
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
    .map_err(|source| SinkError::Database { sink: format!("table:{table}"), source })
}
