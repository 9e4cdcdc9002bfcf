//! Echo through the record-shaped interface (`wit/bench.wit`): the benchmark compares its
//! boundary cost with the same echo through weir's packed batch (the hostile plugin's default).
wit_bindgen::generate!({ path: "wit", world: "weir:bench-record-shaped/plugin@0.1.0" });

use exports::weir::bench_record_shaped::transformer::{Guest, Outcome, Rec};

struct Echo;

impl Guest for Echo {
    fn transform(batch: Vec<Rec>) -> Vec<Outcome> {
        batch.into_iter().map(|r| Outcome::Emit(vec![r])).collect()
    }
}

export!(Echo);
