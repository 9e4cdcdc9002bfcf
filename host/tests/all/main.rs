//! Integration tests of the weir host, one binary (see ../../../shared/STYLE.md): real
//! components built from `plugins/` and `tests/plugins/` by `weir-test-artifacts`.

mod cache;
mod config;
mod dynamodb;
mod examples;
mod flows;
mod hostile;
mod loading;
mod pipeline;
mod props;
mod soak;
mod twins;

use std::path::Path;
use std::sync::OnceLock;

use weir_host::{BatchReport, Chain, Engine, Plugin, Record, StageSpec};

/// One engine for the whole test binary, as in production (one per process).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().expect("engine"))
}

pub fn load(path: &str) -> Plugin {
    Plugin::from_file(engine(), Path::new(path), None).unwrap_or_else(|e| panic!("{e}"))
}

pub fn chain(specs: Vec<StageSpec>) -> Chain {
    Chain::new(specs).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a batch and checks conservation, both on the report and on every stage's counters.
pub fn run(chain: &mut Chain, records: Vec<Record>) -> BatchReport {
    let report = chain.run(records);
    report.check_conservation().unwrap_or_else(|e| panic!("conservation broken: {e}\n{report:#?}"));
    for stage in chain.stages() {
        assert!(stage.metrics().is_conserved(), "stage {} counters: {:?}", stage.name(), stage.metrics().snapshot());
    }
    report
}

pub fn records(bodies: &[&str]) -> Vec<Record> {
    bodies.iter().enumerate().map(|(i, b)| Record::new(format!("test#{}", i + 1), *b)).collect()
}
