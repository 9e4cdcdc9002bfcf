//! Per-stage resource limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one stage's plugin may use. Each limit is enforced by the host and has a test that hits
/// it; a record that trips one is rejected with the matching [`RejectKind`](crate::RejectKind)
/// and the rest of its batch goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory a plugin instance may grow to, in MiB.
    pub memory_mib: u32,
    /// Wall time for one `transform` call (one batch, or one record when the host isolates a
    /// culprit), in milliseconds. Enforced by epoch interruption, to within a few milliseconds.
    pub time_ms: u64,
    /// Bytes one input record may produce (bodies and attributes of all its outputs).
    pub max_output_bytes: u64,
    /// Records one input record may produce.
    pub max_outputs_per_record: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mib: 128, time_ms: 2_000, max_output_bytes: 1 << 20, max_outputs_per_record: 1_000 }
    }
}

impl Limits {
    /// Largest memory limit a stage may ask for (MiB); wasm32 cannot address more than 4 GiB.
    pub const MAX_MEMORY_MIB: u32 = 4_096;

    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib.min(Self::MAX_MEMORY_MIB) as usize) << 20
    }

    /// The time limit.
    pub fn time(&self) -> Duration {
        Duration::from_millis(self.time_ms)
    }

    /// Checks the limits are usable; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=Self::MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(format!("memory_mib must be 1..={}, got {}", Self::MAX_MEMORY_MIB, self.memory_mib));
        }
        if !(1..=900_000).contains(&self.time_ms) {
            return Err(format!("time_ms must be 1..=900000 (15 minutes), got {}", self.time_ms));
        }
        if self.max_output_bytes == 0 {
            return Err("max_output_bytes must be at least 1".into());
        }
        if self.max_outputs_per_record == 0 {
            return Err("max_outputs_per_record must be at least 1".into());
        }
        Ok(())
    }
}
