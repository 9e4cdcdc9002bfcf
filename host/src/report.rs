//! What became of each record of a batch.
//!
//! Every record that enters a chain leaves it exactly once per path it takes: as an emitted
//! record at the end of the chain, filtered by a stage, or rejected by a stage with a kind and a
//! reason. Fan-out makes one input several paths; [`BatchReport::check_conservation`] verifies
//! the accounting.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::record::Record;

/// Why a stage rejected a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectKind {
    /// The plugin said the record is invalid (data, not a fault).
    PluginReject,
    /// The plugin trapped (panic, stack overflow, `unreachable`, ...) on this record.
    Trap,
    /// The plugin ran past the stage's time limit on this record.
    Timeout,
    /// The plugin tried to grow its memory past the stage's limit on this record.
    Memory,
    /// The record's outputs exceeded the stage's count or byte limit.
    OutputLimit,
    /// The plugin broke the contract: wrong number of outcomes, malformed spans, non-JSON body.
    InvalidOutput,
}

impl RejectKind {
    /// All kinds, in report order.
    pub const ALL: [RejectKind; 6] = [
        RejectKind::PluginReject,
        RejectKind::Trap,
        RejectKind::Timeout,
        RejectKind::Memory,
        RejectKind::OutputLimit,
        RejectKind::InvalidOutput,
    ];

    /// The kebab-case name used in reports, logs and dead-letter attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::PluginReject => "plugin-reject",
            RejectKind::Trap => "trap",
            RejectKind::Timeout => "timeout",
            RejectKind::Memory => "memory",
            RejectKind::OutputLimit => "output-limit",
            RejectKind::InvalidOutput => "invalid-output",
        }
    }

    /// Whether the plugin, rather than the record, is at fault.
    pub fn is_fault(self) -> bool {
        self != RejectKind::PluginReject
    }
}

impl fmt::Display for RejectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that reached the end of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emitted {
    /// Index of the input record it descends from.
    pub origin: usize,
    pub record: Record,
}

/// A record a stage filtered out (emitted nothing for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filtered {
    pub origin: usize,
    pub stage: String,
    pub record_id: String,
}

/// A record a stage rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub origin: usize,
    pub stage: String,
    pub kind: RejectKind,
    pub reason: String,
    /// The record as the rejecting stage received it.
    pub record: Record,
}

/// The result of running one batch through a chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReport {
    /// Number of input records.
    pub inputs: usize,
    pub emitted: Vec<Emitted>,
    pub filtered: Vec<Filtered>,
    pub rejected: Vec<Rejected>,
    /// The chain that ran the batch, as `stage=plugin@sha256-prefix` entries.
    pub chain: String,
}

impl BatchReport {
    /// Checks that every input is accounted for: each origin appears at least once among the
    /// emitted, filtered and rejected records, and no entry names an origin that was not input.
    pub fn check_conservation(&self) -> Result<(), String> {
        let mut seen = vec![false; self.inputs];
        let origins = self
            .emitted
            .iter()
            .map(|e| e.origin)
            .chain(self.filtered.iter().map(|f| f.origin))
            .chain(self.rejected.iter().map(|r| r.origin));
        for origin in origins {
            match seen.get_mut(origin) {
                Some(s) => *s = true,
                None => return Err(format!("origin {origin} is not an input (inputs: {})", self.inputs)),
            }
        }
        match seen.iter().position(|s| !s) {
            Some(lost) => Err(format!("input {lost} left the chain neither emitted, filtered nor rejected")),
            None => Ok(()),
        }
    }

    /// Rejected records of one kind.
    pub fn rejected_of(&self, kind: RejectKind) -> impl Iterator<Item = &Rejected> {
        self.rejected.iter().filter(move |r| r.kind == kind)
    }
}
