//! A plugin built against a future contract version, `weir:transform@0.2.0`: the host must
//! refuse it by version, not with a linker error.
wit_bindgen::generate!({ path: "wit", world: "weir:transform/plugin@0.2.0" });

use exports::weir::transform::transformer::Guest;
use weir::transform::types::{Batch, OutputBatch};

struct Future;

impl Guest for Future {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }
    fn transform(_batch: Batch) -> OutputBatch {
        OutputBatch { text: String::new(), records: vec![], attributes: vec![], outcomes: vec![] }
    }
}

export!(Future);
