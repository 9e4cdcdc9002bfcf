//! `[[sinks.table]]`: records as items of a table, keyed by one or two of their fields.
//!
//! Three modes: `put` (last write wins, or with `order_by` the record latest by that field, so
//! that a redelivered older record never overwrites a newer one), `put-if-absent` (the first
//! write of a key wins; a redelivery is a no-op) and `aggregate` (counters per group, each
//! record id counted once).
//! Two backends with the same semantics: [`sqlite`] (the embedded local default) and
//! [`dynamodb`], applying the same [`rules`].

pub mod dynamodb;
pub mod rules;
pub mod sqlite;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq)]
pub enum TableMode {
    /// Last write wins; with `order_by`, the write of the record whose field is greatest wins
    /// (a number by value, a string by its UTF-8 bytes; equal rewrites, so a redelivery of the
    /// same record is a no-op in effect), and an item without the field is overwritten.
    Put { order_by: Option<String> },
    /// The first write of a key wins; later ones (redeliveries) are no-ops.
    PutIfAbsent,
    /// Counters per group, each record counted once (idempotent on record id).
    Aggregate { group_by: String, counters: Vec<Counter> },
}

impl TableMode {
    /// The mode as `weir.toml` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            TableMode::Put { .. } => "put",
            TableMode::PutIfAbsent => "put-if-absent",
            TableMode::Aggregate { .. } => "aggregate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub op: CounterOp,
    /// The field summed (for `sum`).
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableConfig {
    pub name: String,
    /// Partition key attribute, and optional sort key attribute.
    pub key: Vec<String>,
    pub mode: TableMode,
}

/// How an aggregate counter changes per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CounterOp {
    /// +1 per record.
    Count,
    /// + the record's numeric field.
    Sum,
}
