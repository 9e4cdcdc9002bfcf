//! `weir:transform@0.1.0`: generated bindings, batch packing, and the `log` import.
//!
//! A batch crosses the boundary as one text buffer plus flat lists of spans, so a call costs a
//! handful of copies instead of three string copies per record (see BENCHMARKS.md).

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use super::{PluginOutcome, check_json, merge_attributes, output_id};
use crate::limits::Limits;
use crate::record::Record;
use crate::report::RejectKind;
use crate::sandbox::Sandbox;

wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
    world: "weir:transform/plugin@0.1.0",
});

use weir::transform::types::{Attribute, Batch, InputRecord, Level, Outcome, OutputBatch, Span};

/// The package this module binds.
pub const PACKAGE: &str = "weir:transform@0.1.0";
/// The interface a plugin must export.
pub const EXPORT: &str = "weir:transform/transformer@0.1.0";

/// A linked, ready-to-instantiate plugin.
pub type Pre = PluginPre<Sandbox>;

/// A live instance.
pub struct Instance {
    bindings: Plugin,
}

/// Adds the host side of the contract (the `log` import) to a linker.
pub fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    Plugin::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |s| s)
}

impl weir::transform::types::Host for Sandbox {}

impl weir::transform::log::Host for Sandbox {
    fn log(&mut self, level: Level, record: Option<u32>, message: String) {
        let level = match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        };
        self.logs.push(level, record, message);
    }
}

impl Instance {
    /// Instantiates `pre` in `store`.
    pub fn new(pre: &Pre, store: &mut Store<Sandbox>) -> wasmtime::Result<Self> {
        Ok(Instance { bindings: pre.instantiate(store)? })
    }

    /// Calls the plugin's `init`.
    pub fn init(
        &self,
        store: &mut Store<Sandbox>,
        config: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        self.bindings.weir_transform_transformer().call_init(store, config)
    }

    /// Calls `transform` on a packed batch.
    pub fn transform(&self, store: &mut Store<Sandbox>, batch: &Batch) -> wasmtime::Result<OutputBatch> {
        self.bindings.weir_transform_transformer().call_transform(store, batch)
    }
}

fn span(start: usize, len: usize) -> Result<Span, String> {
    let too_big = |_| "batch text exceeds 4 GiB".to_string();
    Ok(Span { start: u32::try_from(start).map_err(too_big)?, len: u32::try_from(len).map_err(too_big)? })
}

fn push(text: &mut String, s: &str) -> Result<Span, String> {
    let start = text.len();
    text.push_str(s);
    span(start, s.len())
}

/// Packs records into one batch. Fails only past 4 GiB of text.
pub fn pack(records: &[Record]) -> Result<Batch, String> {
    let size: usize = records.iter().map(Record::size).sum();
    let mut text = String::with_capacity(size);
    let mut packed = Vec::with_capacity(records.len());
    let mut attributes = Vec::new();
    for r in records {
        let id = push(&mut text, &r.id)?;
        let body = push(&mut text, &r.body)?;
        let first_attribute = u32::try_from(attributes.len()).map_err(|_| "too many attributes".to_string())?;
        for (k, v) in &r.attributes {
            let key = push(&mut text, k)?;
            let value = push(&mut text, v)?;
            attributes.push(Attribute { key, value });
        }
        let attribute_count = u32::try_from(r.attributes.len()).map_err(|_| "too many attributes".to_string())?;
        packed.push(InputRecord { id, body, first_attribute, attribute_count });
    }
    Ok(Batch { text, records: packed, attributes })
}

fn slice(text: &str, s: Span) -> Result<&str, String> {
    let start = s.start as usize;
    start.checked_add(s.len as usize).and_then(|end| text.get(start..end)).ok_or_else(|| {
        format!("span {}+{} is outside the output text ({} bytes) or splits a character", s.start, s.len, text.len())
    })
}

/// Reads a plugin's answer for `inputs`.
///
/// `Err` means the answer as a whole breaks the contract (wrong number of outcomes, spans out of
/// range, more output than the limits allow for the whole batch); the caller cannot tell which
/// record caused it. Problems confined to one record become that record's
/// [`PluginOutcome::Reject`].
pub fn unpack(
    inputs: &[Record],
    out: OutputBatch,
    limits: &Limits,
) -> Result<Vec<PluginOutcome>, (RejectKind, String)> {
    let invalid = |reason: String| (RejectKind::InvalidOutput, reason);
    if out.outcomes.len() != inputs.len() {
        return Err(invalid(format!(
            "returned {} outcomes for {} records (must be one per record, in order)",
            out.outcomes.len(),
            inputs.len()
        )));
    }
    let budget = (limits.max_output_bytes as u128) * (inputs.len() as u128);
    if out.text.len() as u128 > budget {
        return Err((
            RejectKind::OutputLimit,
            format!("output of {} bytes exceeds {} bytes per record", out.text.len(), limits.max_output_bytes),
        ));
    }
    let emitted: u64 = out.outcomes.iter().map(|o| if let Outcome::Emit(n) = o { u64::from(*n) } else { 0 }).sum();
    if emitted != out.records.len() as u64 {
        return Err(invalid(format!("outcomes emit {emitted} records but {} were returned", out.records.len())));
    }
    let text = out.text.as_str();
    let mut next = 0usize;
    let mut results = Vec::with_capacity(inputs.len());
    for (input, outcome) in inputs.iter().zip(out.outcomes) {
        let n = match outcome {
            Outcome::Reject(reason) => {
                results.push(PluginOutcome::Reject { kind: RejectKind::PluginReject, reason });
                continue;
            }
            Outcome::Emit(n) => n as usize,
        };
        let mine = &out.records[next..next + n];
        next += n;
        if n > limits.max_outputs_per_record as usize {
            results.push(PluginOutcome::Reject {
                kind: RejectKind::OutputLimit,
                reason: format!("emitted {n} records, limit {}", limits.max_outputs_per_record),
            });
            continue;
        }
        results.push(read_outputs(input, mine, &out.attributes, text, limits).map_err(invalid)?);
    }
    Ok(results)
}

/// The outputs of one input; a bad span is a batch-level error, a bad body or size is this
/// record's rejection.
fn read_outputs(
    input: &Record,
    records: &[weir::transform::types::OutputRecord],
    attributes: &[Attribute],
    text: &str,
    limits: &Limits,
) -> Result<PluginOutcome, String> {
    let n = records.len();
    let mut bytes = 0u64;
    let mut out = Vec::with_capacity(n);
    for (k, r) in records.iter().enumerate() {
        let body = slice(text, r.body)?;
        let first = r.first_attribute as usize;
        let attrs = attributes
            .get(first..first.saturating_add(r.attribute_count as usize))
            .ok_or_else(|| format!("attribute range {first}+{} is out of bounds", r.attribute_count))?;
        let mut set = Vec::with_capacity(attrs.len());
        for a in attrs {
            set.push((slice(text, a.key)?.to_string(), slice(text, a.value)?.to_string()));
        }
        bytes += body.len() as u64 + set.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>();
        if bytes > limits.max_output_bytes {
            return Ok(PluginOutcome::Reject {
                kind: RejectKind::OutputLimit,
                reason: format!("outputs exceed {} bytes", limits.max_output_bytes),
            });
        }
        if let Err(e) = check_json(body) {
            let preview: String = body.chars().take(80).collect();
            return Ok(PluginOutcome::Reject {
                kind: RejectKind::InvalidOutput,
                reason: format!("output {k} is not JSON ({e}): {preview:?}"),
            });
        }
        out.push(Record {
            id: output_id(&input.id, k, n),
            body: body.to_string(),
            attributes: merge_attributes(&input.attributes, set),
        });
    }
    Ok(PluginOutcome::Emit(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::transform::types::OutputRecord;

    /// A released contract is frozen: plugins built against it must keep loading. A change is a
    /// new version in its own folder (`wit/v0.2.0/`) with its own module here.
    #[test]
    fn the_released_contract_is_unchanged() {
        use sha2::Digest;
        let wit = include_bytes!("../../../wit/v0.1.0/transform.wit");
        assert_eq!(
            hex::encode(sha2::Sha256::digest(wit)),
            "a05a0726cb14e3754010c4bcc670cf2e8bf63d04803a9e7ec4020a3cb8d0353c",
            "wit/v0.1.0 was edited; add a new version instead"
        );
    }

    fn out(text: &str, body: Span, first_attribute: u32, attribute_count: u32) -> OutputBatch {
        OutputBatch {
            text: text.into(),
            records: vec![OutputRecord { body, first_attribute, attribute_count }],
            attributes: vec![],
            outcomes: vec![Outcome::Emit(1)],
        }
    }

    #[test]
    fn pack_then_spans_name_each_field() {
        let records = [Record::new("a", "{}").with_attribute("k", "v"), Record::new("bé", "[1]")];
        let b = pack(&records).unwrap();
        let get = |s: Span| &b.text[s.start as usize..(s.start + s.len) as usize];
        assert_eq!((get(b.records[1].id), get(b.records[1].body)), ("bé", "[1]"));
        assert_eq!((get(b.attributes[0].key), get(b.attributes[0].value)), ("k", "v"));
        assert_eq!(
            (b.records[0].first_attribute, b.records[0].attribute_count, b.records[1].attribute_count),
            (0, 1, 0)
        );
    }

    #[test]
    fn malformed_answers_are_invalid_output_not_panics() {
        let input = [Record::new("a", "{}")];
        let limits = Limits::default();
        let cases = [
            out("{}", Span { start: 0, len: 3 }, 0, 0),               // past the end
            out("{}", Span { start: u32::MAX, len: u32::MAX }, 0, 0), // overflow
            out("\"é\"", Span { start: 0, len: 2 }, 0, 0),            // splits a character
            out("{}", Span { start: 0, len: 2 }, 5, 1),               // attributes out of range
        ];
        for case in cases {
            let err = unpack(&input, case, &limits).unwrap_err();
            assert_eq!(err.0, RejectKind::InvalidOutput, "{}", err.1);
        }
        let ok = unpack(&input, out("{}", Span { start: 0, len: 2 }, 0, 0), &limits).unwrap();
        assert_eq!(ok, vec![PluginOutcome::Emit(vec![Record::new("a", "{}")])]);
        let mut extra = out("{}", Span { start: 0, len: 2 }, 0, 0);
        extra.outcomes = vec![Outcome::Emit(2)];
        assert!(unpack(&input, extra, &limits).unwrap_err().1.contains("emit 2 records but 1 were returned"));
    }
}
