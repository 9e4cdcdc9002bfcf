//! Per-stage counters and batch latency.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::report::RejectKind;

/// What one stage has done since it started.
#[derive(Debug, Clone)]
pub struct StageMetrics {
    /// Batches processed.
    pub batches: u64,
    /// Records that entered the stage.
    pub records_in: u64,
    /// Records the stage emitted (fan-out counts each).
    pub records_out: u64,
    /// Inputs that emitted at least one record.
    pub passed: u64,
    /// Inputs that emitted nothing.
    pub filtered: u64,
    /// Inputs rejected, by kind.
    pub rejected: BTreeMap<RejectKind, u64>,
    /// Batches that faulted and were re-run record by record to find the culprit.
    pub isolations: u64,
    /// Instances discarded after a fault and replaced.
    pub restarts: u64,
    latency_us: Histogram<u64>,
}

impl Default for StageMetrics {
    fn default() -> Self {
        StageMetrics {
            batches: 0,
            records_in: 0,
            records_out: 0,
            passed: 0,
            filtered: 0,
            rejected: BTreeMap::new(),
            isolations: 0,
            restarts: 0,
            // 1 us .. 1 h at 3 significant figures.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid"),
        }
    }
}

/// A serializable snapshot of [`StageMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    pub batches: u64,
    pub records_in: u64,
    pub records_out: u64,
    pub passed: u64,
    pub filtered: u64,
    pub rejected: BTreeMap<RejectKind, u64>,
    pub isolations: u64,
    pub restarts: u64,
    pub batch_p50_us: u64,
    pub batch_p99_us: u64,
}

impl StageMetrics {
    pub(crate) fn record_batch(&mut self, elapsed: Duration) {
        self.batches += 1;
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_us.saturating_record(us);
    }

    pub(crate) fn reject(&mut self, kind: RejectKind) {
        *self.rejected.entry(kind).or_default() += 1;
    }

    /// Total rejected inputs.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Every input left exactly once: passed, filtered or rejected.
    pub fn is_conserved(&self) -> bool {
        self.records_in == self.passed + self.filtered + self.rejected_total()
    }

    /// Batch latency at quantile `q` (0..=1).
    pub fn batch_latency(&self, q: f64) -> Duration {
        Duration::from_micros(self.latency_us.value_at_quantile(q))
    }

    /// A snapshot for reports.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            batches: self.batches,
            records_in: self.records_in,
            records_out: self.records_out,
            passed: self.passed,
            filtered: self.filtered,
            rejected: self.rejected.clone(),
            isolations: self.isolations,
            restarts: self.restarts,
            batch_p50_us: self.latency_us.value_at_quantile(0.5),
            batch_p99_us: self.latency_us.value_at_quantile(0.99),
        }
    }
}
