//! The SDK's side of the packed batch format (see `wit/v0.1.0/transform.wit`): spans into one text
//! buffer, and the loop that runs a [`Transform`] over a batch. Target independent, so the
//! loop is unit-tested natively; `__private` adapts it to the generated wasm bindings.

use crate::{Emitter, Record, Reject, Transform};

/// A byte range in a text buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub(crate) fn new(start: usize, len: usize) -> Self {
        Span { start: to_u32(start), len: to_u32(len) }
    }

    /// The slice this span names, or `None` if it is out of range or not on char boundaries.
    pub(crate) fn get(self, text: &str) -> Option<&str> {
        let start = self.start as usize;
        text.get(start..start.checked_add(self.len as usize)?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attr {
    pub key: Span,
    pub value: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutRecord {
    pub body: Span,
    pub first_attribute: u32,
    pub attribute_count: u32,
}

/// What became of one input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Emit(u32),
    Reject(String),
}

/// Lengths of the emitter's buffers, to undo a rejected record's partial output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    pub text: usize,
    pub records: usize,
    pub attributes: usize,
}

/// Offsets cross the boundary as u32: wasm32 memory cannot hold more than 4 GiB, so a length
/// that does not fit cannot occur in a plugin; saturate rather than panic off-wasm.
pub(crate) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Runs `plugin` over a batch: exactly one outcome per input, in order.
pub(crate) fn run_batch<'t, T: Transform>(
    plugin: &mut T,
    records: impl Iterator<Item = Result<Record<'t>, String>>,
    out: &mut Emitter,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(records.size_hint().0);
    for (index, record) in records.enumerate() {
        CURRENT.set(Some(to_u32(index)));
        let outcome = match record {
            Err(reason) => Outcome::Reject(reason),
            Ok(record) => run_one(plugin, &record, out),
        };
        outcomes.push(outcome);
    }
    CURRENT.set(None);
    outcomes
}

thread_local! {
    /// Index of the record being transformed, so log lines can name it.
    static CURRENT: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// The index in the current batch of the record being transformed, if any.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn current_record() -> Option<u32> {
    CURRENT.get()
}

fn run_one<T: Transform>(plugin: &mut T, record: &Record<'_>, out: &mut Emitter) -> Outcome {
    let mark = out.mark();
    match plugin.transform(record, out) {
        Ok(()) => Outcome::Emit(to_u32(out.records.len() - mark.records)),
        Err(Reject { reason }) => {
            out.rollback(mark);
            Outcome::Reject(reason)
        }
    }
}

/// Resolves a packed record into a [`Record`]; a malformed span (a host bug) rejects just that
/// record instead of trapping.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn unpack<'t>(
    text: &'t str,
    id: Span,
    body: Span,
    attributes: impl Iterator<Item = Attr>,
) -> Result<Record<'t>, String> {
    let bad = || "malformed batch from host: span out of range".to_string();
    let id = id.get(text).ok_or_else(bad)?;
    let body = body.get(text).ok_or_else(bad)?;
    let attributes = attributes
        .map(|a| Ok((a.key.get(text).ok_or_else(bad)?, a.value.get(text).ok_or_else(bad)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Record { id, body, attributes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    struct FanOut;
    impl Transform for FanOut {
        fn init(_: &Config) -> Result<Self, String> {
            Ok(FanOut)
        }
        fn transform(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Reject> {
            let n: u32 = record.json()?;
            for i in 0..n {
                out.emit_json_with_attributes(&i, &[("i", &i.to_string())])?;
            }
            if n == 3 {
                return Err(Reject::new("three is rejected after emitting"));
            }
            Ok(())
        }
    }

    #[test]
    fn one_outcome_per_input_and_rejects_roll_back_their_outputs() {
        let mut out = Emitter::default();
        let bodies = ["0", "2", "3", "x", "1"];
        let outcomes = run_batch(&mut FanOut, bodies.iter().map(|b| Ok(Record::new("id", b))), &mut out);
        assert_eq!(outcomes.len(), 5);
        assert_eq!(outcomes[0], Outcome::Emit(0));
        assert_eq!(outcomes[1], Outcome::Emit(2));
        assert_eq!(outcomes[2], Outcome::Reject("three is rejected after emitting".into()));
        assert!(matches!(&outcomes[3], Outcome::Reject(r) if r.starts_with("body is not valid JSON")));
        assert_eq!(outcomes[4], Outcome::Emit(1));
        assert_eq!(out.records.len(), 3, "rolled-back outputs are gone");
        let text = std::str::from_utf8(&out.text).unwrap();
        let bodies: Vec<&str> = out.records.iter().map(|r| r.body.get(text).unwrap()).collect();
        assert_eq!(bodies, ["0", "1", "0"]);
        let last = out.records[2];
        let attr = out.attributes[last.first_attribute as usize];
        assert_eq!((attr.key.get(text), attr.value.get(text)), (Some("i"), Some("0")));
    }

    #[test]
    fn malformed_spans_reject_instead_of_panicking() {
        let text = "héllo";
        // Byte 2 is inside the two-byte 'é'.
        assert!(unpack(text, Span { start: 0, len: 2 }, Span { start: 0, len: 1 }, std::iter::empty()).is_err());
        assert!(unpack(text, Span { start: 4, len: 9 }, Span { start: 0, len: 1 }, std::iter::empty()).is_err());
        let rec = unpack(text, Span { start: 0, len: 1 }, Span { start: 1, len: 2 }, std::iter::empty()).unwrap();
        assert_eq!((rec.id, rec.body), ("h", "é"));
    }
}
