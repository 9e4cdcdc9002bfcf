//! Native test support: run a [`Transform`] on records without wasm, through the same batch
//! loop the component uses.

use crate::wire::{self, Outcome};
use crate::{Config, Emitter, Record, Reject, Transform, Value};

/// One emitted record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// JSON text.
    pub body: String,
    /// Attributes in emission order.
    pub attributes: Vec<(String, String)>,
}

impl Output {
    /// The body parsed as JSON. Panics on invalid JSON: this is a test helper.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("output is not JSON ({e}): {}", self.body))
    }
}

/// An initialised transform under test.
pub struct Harness<T: Transform> {
    plugin: T,
}

impl<T: Transform> Harness<T> {
    /// Initialises the transform with config pairs, as the host would.
    pub fn new(config: &[(&str, &str)]) -> Result<Self, String> {
        let config = Config::from_pairs(config.iter().copied());
        Ok(Harness { plugin: T::init(&config)? })
    }

    /// Runs one record with this body (id `test#1`, no attributes).
    pub fn run(&mut self, body: &str) -> Result<Vec<Output>, Reject> {
        self.run_record(Record::new("test#1", body))
    }

    /// Runs one record.
    pub fn run_record(&mut self, record: Record<'_>) -> Result<Vec<Output>, Reject> {
        self.run_batch(vec![record]).pop().unwrap_or_else(|| Err(Reject::new("no outcome")))
    }

    /// Runs a batch; one result per input, in order.
    pub fn run_batch(&mut self, records: Vec<Record<'_>>) -> Vec<Result<Vec<Output>, Reject>> {
        let mut out = Emitter::default();
        let outcomes = wire::run_batch(&mut self.plugin, records.into_iter().map(Ok), &mut out);
        let text = String::from_utf8_lossy(&out.text).into_owned();
        let slice = |s: wire::Span| s.get(&text).unwrap_or_default().to_string();
        let mut emitted = out.records.iter();
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Reject(reason) => Err(Reject::new(reason)),
                Outcome::Emit(n) => Ok(emitted
                    .by_ref()
                    .take(n as usize)
                    .map(|r| Output {
                        body: slice(r.body),
                        attributes: out.attributes[r.first_attribute as usize..][..r.attribute_count as usize]
                            .iter()
                            .map(|a| (slice(a.key), slice(a.value)))
                            .collect(),
                    })
                    .collect()),
            })
            .collect()
    }

    /// The transform itself.
    pub fn plugin(&mut self) -> &mut T {
        &mut self.plugin
    }
}
