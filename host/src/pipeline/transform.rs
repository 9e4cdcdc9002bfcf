//! The seam between the run loop and what transforms records: the plugin [`Chain`] in
//! production, a native fake in the run loop's own tests (so deadlines, drains, checkpoints and
//! conservation are tested without wasm).

use crate::chain::Chain;
use crate::record::Record;
use crate::report::BatchReport;

/// Runs batches of records. Never fails: a record's fault is a rejected record in the report.
pub trait Transform: Send {
    /// Every input accounted for in the report (see [`BatchReport::check_conservation`]).
    fn run(&mut self, batch: Vec<Record>) -> BatchReport;
}

impl Transform for Chain {
    fn run(&mut self, batch: Vec<Record>) -> BatchReport {
        Chain::run(self, batch)
    }
}
