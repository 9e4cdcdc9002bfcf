//! `weir-plugin`: write a weir record transform in plain Rust.
//!
//! A transform is a type implementing [`Transform`]: [`Transform::init`] receives the stage's
//! configuration once per instance, [`Transform::transform`] receives one [`Record`] at a time and
//! either emits 0..n records through the [`Emitter`] (filter, pass, fan out) or returns a
//! [`Reject`] with a reason. [`export_transform!`] turns the type into a WebAssembly component
//! export of the `weir:transform@0.1.0` world; the SDK unpacks each batch the host sends, loops
//! over it, and packs the outputs, so the plugin never sees the wire format.
//!
//! ```
//! use weir_plugin::{Config, Emitter, Record, Reject, Transform};
//!
//! /// Drops records whose `amount` is zero.
//! struct DropZero;
//!
//! impl Transform for DropZero {
//!     fn init(_config: &Config) -> Result<Self, String> {
//!         Ok(DropZero)
//!     }
//!     fn transform(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Reject> {
//!         let order = record.json_object()?;
//!         if order.get("amount").and_then(|a| a.as_f64()) != Some(0.0) {
//!             out.emit(record.body);
//!         }
//!         Ok(())
//!     }
//! }
//! weir_plugin::export_transform!(DropZero);
//!
//! // The same logic, tested natively:
//! let mut plugin = weir_plugin::testing::Harness::<DropZero>::new(&[]).unwrap();
//! assert_eq!(plugin.run(r#"{"amount":0}"#).unwrap().len(), 0);
//! assert_eq!(plugin.run(r#"{"amount":3}"#).unwrap().len(), 1);
//! assert!(plugin.run("not json").is_err());
//! ```
//!
//! Off wasm (`cargo test` on the host), the export macro expands to nothing and [`log`] writes to
//! stderr, so a plugin's logic is unit-tested like any Rust library.

use std::collections::BTreeMap;
use std::fmt;

pub use serde_json::{self, Map, Number, Value, json};

pub mod log;
pub mod testing;
mod wire;

#[doc(hidden)]
pub mod __private;

/// A record transform.
///
/// One value of the implementing type lives per plugin instance; the host may create several
/// instances (and discards an instance after it traps), so keep no state that must survive them.
pub trait Transform: Sized + 'static {
    /// Builds the transform from the stage's configuration. An `Err` refuses the configuration;
    /// the message is shown to the person who wrote the pipeline file, so name the key and what
    /// is allowed.
    fn init(config: &Config) -> Result<Self, String>;

    /// Transforms one record: emit 0..n records through `out`, or reject the record. Records a
    /// rejected call emitted before returning `Err` are discarded.
    fn transform(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Reject>;
}

/// One input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Where the record came from: an SQS message id, `s3://bucket/key#line` or `file#line`.
    pub id: &'a str,
    /// The record: JSON text.
    pub body: &'a str,
    /// String pairs that came with the record (SQS message attributes, CSV metadata).
    pub attributes: Vec<(&'a str, &'a str)>,
}

impl<'a> Record<'a> {
    /// A record with no attributes.
    pub fn new(id: &'a str, body: &'a str) -> Self {
        Record { id, body, attributes: Vec::new() }
    }

    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&'a str> {
        self.attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Parses the body as `T`; a parse failure is a [`Reject`] naming the problem.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Reject> {
        serde_json::from_str(self.body).map_err(|e| Reject::new(format!("body is not valid JSON: {e}")))
    }

    /// Parses the body as a JSON object.
    pub fn json_object(&self) -> Result<Map<String, Value>, Reject> {
        match self.json::<Value>()? {
            Value::Object(map) => Ok(map),
            other => Err(Reject::new(format!("body must be a JSON object, got {}", kind_of(&other)))),
        }
    }
}

/// Names a JSON value's type for error messages: `string`, `number`, ...
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Why a record was rejected. The reason travels with the record to the dead-letter destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    reason: String,
}

impl Reject {
    /// A rejection with a reason meant for people: name the field and what was expected.
    pub fn new(reason: impl Into<String>) -> Self {
        Reject { reason: reason.into() }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Reject {}

/// The stage's configuration: the string map under the stage's `config` in the pipeline file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    entries: BTreeMap<String, String>,
}

impl Config {
    /// Builds a configuration from pairs (later pairs win).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Config { entries: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The value of `key` parsed as `T`, or `default` when absent. The error names the key,
    /// the value and the expected type.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, String>
    where
        T: std::str::FromStr,
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| format!("config `{key}`: cannot parse {raw:?} as {}: {e}", std::any::type_name::<T>())),
        }
    }

    /// A comma-separated list under `key` (empty items dropped); empty when absent.
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.get(key).map(|raw| raw.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
    }

    /// Fails with a message naming every key not in `known`, so typos are caught at init.
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), String> {
        let unknown: Vec<&str> = self.entries.keys().map(String::as_str).filter(|k| !known.contains(k)).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!("unknown config key(s) {}; allowed: {}", unknown.join(", "), known.join(", ")))
        }
    }

    /// Iterates over all entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Collects the records a transform emits for the current input record.
///
/// Outputs are written straight into the batch's output buffer, so emitting costs one copy.
#[derive(Debug, Default)]
pub struct Emitter {
    pub(crate) text: Vec<u8>,
    pub(crate) records: Vec<wire::OutRecord>,
    pub(crate) attributes: Vec<wire::Attr>,
}

impl Emitter {
    /// Emits a record whose body is already JSON text. The host checks it parses; a body that
    /// does not is reported as `invalid-output` against this record.
    pub fn emit(&mut self, body: &str) {
        self.emit_with_attributes(body, &[]);
    }

    /// Emits a record with attributes.
    pub fn emit_with_attributes(&mut self, body: &str, attributes: &[(&str, &str)]) {
        let body = self.push_text(body.as_bytes());
        self.push_record(body, attributes);
    }

    /// Serializes `value` as the body of a new record.
    pub fn emit_json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Reject> {
        self.emit_json_with_attributes(value, &[])
    }

    /// Serializes `value` as the body of a new record with attributes.
    pub fn emit_json_with_attributes<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
        attributes: &[(&str, &str)],
    ) -> Result<(), Reject> {
        let start = self.text.len();
        if let Err(e) = serde_json::to_writer(&mut self.text, value) {
            self.text.truncate(start);
            return Err(Reject::new(format!("cannot serialize output: {e}")));
        }
        let body = wire::Span::new(start, self.text.len() - start);
        self.push_record(body, attributes);
        Ok(())
    }

    fn push_text(&mut self, bytes: &[u8]) -> wire::Span {
        let start = self.text.len();
        self.text.extend_from_slice(bytes);
        wire::Span::new(start, bytes.len())
    }

    fn push_record(&mut self, body: wire::Span, attributes: &[(&str, &str)]) {
        let first_attribute = self.attributes.len();
        for (k, v) in attributes {
            let key = self.push_text(k.as_bytes());
            let value = self.push_text(v.as_bytes());
            self.attributes.push(wire::Attr { key, value });
        }
        self.records.push(wire::OutRecord {
            body,
            first_attribute: wire::to_u32(first_attribute),
            attribute_count: wire::to_u32(attributes.len()),
        });
    }

    pub(crate) fn mark(&self) -> wire::Mark {
        wire::Mark { text: self.text.len(), records: self.records.len(), attributes: self.attributes.len() }
    }

    pub(crate) fn rollback(&mut self, mark: wire::Mark) {
        self.text.truncate(mark.text);
        self.records.truncate(mark.records);
        self.attributes.truncate(mark.attributes);
    }
}
