//! A chain: ordered stages, the outputs of stage n feeding stage n+1.

use crate::error::StageError;
use crate::record::Record;
use crate::report::{BatchReport, Emitted, Filtered, Rejected};
use crate::stage::{Stage, StageResult, StageSpec};

/// Ordered stages. Run a batch with [`Chain::run`]; one chain is used by one thread at a time
/// (build one per worker from the same [`Plugin`](crate::Plugin)s, which are shared).
#[derive(Debug)]
pub struct Chain {
    stages: Vec<Stage>,
    /// `stage=plugin@sha` list, fixed for the chain's life (computed once, stamped on every batch).
    version: String,
}

impl Chain {
    /// Builds every stage (starting one instance each); the first failure is returned.
    pub fn new(specs: Vec<StageSpec>) -> Result<Self, StageError> {
        let stages: Vec<Stage> = specs.into_iter().map(Stage::new).collect::<Result<_, _>>()?;
        let version =
            stages.iter().map(|s| format!("{}={}", s.name(), s.plugin().label())).collect::<Vec<_>>().join(",");
        Ok(Chain { stages, version })
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Identifies the exact code that runs: `stage=plugin@sha256-prefix` per stage, comma
    /// separated. Outputs carry it for traceability.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Runs a batch through every stage. Never fails: faults become rejected records.
    pub fn run(&mut self, records: Vec<Record>) -> BatchReport {
        let mut report = BatchReport { inputs: records.len(), chain: self.version.clone(), ..Default::default() };
        let mut origins: Vec<usize> = (0..records.len()).collect();
        let mut current = records;
        for stage in &mut self.stages {
            if current.is_empty() {
                break;
            }
            let results = stage.process(&current);
            let mut next = Vec::with_capacity(current.len());
            let mut next_origins = Vec::with_capacity(current.len());
            for ((record, origin), result) in current.into_iter().zip(origins).zip(results) {
                match result {
                    StageResult::Emit(out) if out.is_empty() => {
                        report.filtered.push(Filtered { origin, stage: stage.name().to_string(), record_id: record.id })
                    }
                    StageResult::Emit(out) => {
                        next_origins.extend(std::iter::repeat_n(origin, out.len()));
                        next.extend(out);
                    }
                    StageResult::Rejected { kind, reason } => {
                        report.rejected.push(Rejected { origin, stage: stage.name().to_string(), kind, reason, record })
                    }
                }
            }
            current = next;
            origins = next_origins;
        }
        report.emitted = current.into_iter().zip(origins).map(|(record, origin)| Emitted { origin, record }).collect();
        report
    }
}
