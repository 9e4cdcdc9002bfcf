//! `weir.toml`: the pipeline file.
//!
//! Parsed in two steps, like a compiler's front end: [`RawPipeline`] mirrors the file
//! (serde, `deny_unknown_fields`, so a typo is an error that lists the allowed keys), then
//! [`Pipeline::from_raw`] checks what types cannot (unique names, required fields per mode,
//! well-formed templates) and resolves paths relative to the file. Every error names the file,
//! the field path (`stages[1].limits.memory_mib`) and what is allowed.
//!
//! ```toml
//! name = "orders"
//! batch_size = 100
//!
//! [[stages]]
//! name = "validate"
//! plugin = "../../plugins/validate-order"   # a crate to build, a .wasm file, or s3://bucket/key
//! # sha256 = "…"                            # optional pin of the wasm
//! [stages.config]
//! tax_rate = "0.2"
//! [stages.limits]
//! memory_mib = 64
//!
//! [[sinks.table]]
//! name = "orders"
//! key = ["pk"]
//! mode = "put"                              # put | put-if-absent | aggregate
//! order_by = "updated_at"                   # put: a redelivered older record never overwrites a newer one
//!
//! [[sinks.table]]
//! name = "user_stats"
//! key = ["user_id"]
//! mode = "aggregate"
//! group_by = "user_id"
//! counters = [{ name = "orders", op = "count" }, { name = "spend_cents", op = "sum", field = "amount_cents" }]
//!
//! [sinks.notify]
//! topic = "big-orders"
//! when = { field = "total", op = "gt", value = 100 }
//! attributes = ["currency"]
//!
//! [sinks.objects]
//! bucket = "orders-processed"
//! prefix = "orders/"
//! partition = "dt={date}/"
//! format = "jsonl"                          # jsonl | csv
//!
//! [dead_letter]
//! queue = "orders-rejects"
//! # offload_bucket = "orders-rejects-large"   # letters over 256 KB go here, a pointer to SQS
//! # offload_prefix = "dead-letters/"
//!
//! [source]                                  # which objects S3 events may name
//! prefix = "incoming/"
//! suffixes = [".csv", ".csv.gz", ".jsonl"]
//! # max_record_bytes = 1048576              # a longer CSV row or JSON line is unreadable
//! # max_expansion = 200                     # a .gz expanding more (past 256 MiB) is cut off
//! # max_object_bytes = 10737418240          # a larger object is dead-lettered unread
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::limits::Limits;
use crate::source::SourceLimits;
// The sinks' own configuration types, validated here from the raw file.
pub use crate::sink::dead_letter::DeadLetterConfig;
pub use crate::sink::notify::{NotifyConfig, Predicate, PredicateOp};
pub use crate::sink::objects::{ObjectFormat, ObjectsConfig, PartitionTemplate};
pub use crate::sink::table::{Counter, CounterOp, TableConfig, TableMode};

/// A pipeline file could not be used. Displays as `file: field.path: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the offending field (`stages[0].limits`), empty for file-level problems.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.path, self.message)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Step 1: the file as written.

/// The pipeline file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub name: String,
    #[serde(default)]
    pub batch_size: Option<usize>,
    pub stages: Vec<RawStage>,
    #[serde(default)]
    pub sinks: RawSinks,
    #[serde(default)]
    pub dead_letter: Option<RawDeadLetter>,
    #[serde(default)]
    pub source: RawSource,
}

/// Which S3 objects the pipeline reads, when S3 events name them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Only keys starting with this.
    #[serde(default)]
    pub prefix: String,
    /// Only keys ending with one of these (e.g. `[".csv", ".csv.gz"]`); empty = any.
    #[serde(default)]
    pub suffixes: Vec<String>,
    /// The longest record read (a CSV row, a JSON Lines line), in bytes; default 1 MiB.
    #[serde(default)]
    pub max_record_bytes: Option<u64>,
    /// How many times its size a compressed object may expand (past 256 MiB); default 200.
    #[serde(default)]
    pub max_expansion: Option<u64>,
    /// The largest object read (stored, or decompressed), in bytes; default 10 GiB.
    #[serde(default)]
    pub max_object_bytes: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub name: String,
    pub plugin: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
    #[serde(default)]
    pub limits: Limits,
}

/// A stage config value: plugins receive strings; numbers and booleans are written as such.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a string, number or boolean (plugins receive their config as strings)")]
pub enum ConfigValue {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::String(s) => f.write_str(s),
            ConfigValue::Integer(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSinks {
    #[serde(default)]
    pub table: Vec<RawTable>,
    #[serde(default)]
    pub notify: Option<RawNotify>,
    #[serde(default)]
    pub objects: Option<RawObjects>,
}

/// One or two key attribute names.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a key attribute name, or a list of one or two names (partition, sort)")]
pub enum RawKey {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    pub name: String,
    pub key: RawKey,
    #[serde(default)]
    pub mode: TableModeName,
    #[serde(default)]
    pub group_by: Option<String>,
    #[serde(default)]
    pub counters: Vec<RawCounter>,
    /// mode = "put": the field that orders a key's records (an update time, a version).
    #[serde(default)]
    pub order_by: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableModeName {
    #[default]
    Put,
    PutIfAbsent,
    Aggregate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCounter {
    pub name: String,
    pub op: CounterOp,
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub topic: String,
    #[serde(default)]
    pub when: RawWhen,
    #[serde(default)]
    pub attributes: Vec<String>,
    #[serde(default)]
    pub group_by: Option<String>,
}

/// Which records to notify about: `"all"`, or a predicate on a field.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected \"all\" or { field = \"...\", op = \"eq|ne|gt|gte|lt|lte|exists\", value = ... }"
)]
pub enum RawWhen {
    All(AllMarker),
    Field(Predicate),
}

impl Default for RawWhen {
    fn default() -> Self {
        RawWhen::All(AllMarker::All)
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllMarker {
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjects {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub partition: String,
    #[serde(default)]
    pub format: ObjectFormat,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadLetter {
    pub queue: String,
    #[serde(default)]
    pub offload_bucket: Option<String>,
    #[serde(default)]
    pub offload_prefix: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Step 2: validated.

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: PathBuf,
    pub name: String,
    pub batch_size: usize,
    pub stages: Vec<StageConfig>,
    pub tables: Vec<TableConfig>,
    pub notify: Option<NotifyConfig>,
    pub objects: Option<ObjectsConfig>,
    pub dead_letter: Option<DeadLetterConfig>,
    pub source: SourceConfig,
}

/// Which S3 objects are read (see [`crate::source::objects::ObjectFilter`]), and how much of an
/// input is held at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceConfig {
    pub prefix: String,
    pub suffixes: Vec<String>,
    pub limits: SourceLimits,
}

/// Where a stage's plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A built component.
    Wasm(PathBuf),
    /// A plugin crate to build for wasm32-wasip2.
    Crate(PathBuf),
    /// An object in S3.
    S3 { bucket: String, key: String },
    /// Deployed: the pipeline's manifest names the stage's artifact (`weir publish`); see
    /// [`Pipeline::parse_deployed`].
    Published,
}

#[derive(Debug, Clone)]
pub struct StageConfig {
    pub name: String,
    pub plugin: PluginSource,
    pub sha256: Option<String>,
    pub config: BTreeMap<String, String>,
    pub limits: Limits,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Pipeline {
    /// Reads and validates a pipeline file.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            path: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(file, &text)
    }

    /// Parses and validates pipeline text; `file` names it in errors and anchors relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw = parse_raw(file, text)?;
        Self::from_raw(file, raw)
    }

    /// Parses a pipeline file as deployed with `weir publish` (the manifest's `definition`):
    /// validated like [`Pipeline::parse`], except that stage plugins are not resolved (the
    /// manifest names each stage's artifact; the paths in the file are the author's).
    pub fn parse_deployed(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw = parse_raw(file, text)?;
        Self::from_raw_with(file, raw, false)
    }

    /// Step 2: checks and resolves a raw pipeline.
    pub fn from_raw(file: &Path, raw: RawPipeline) -> Result<Self, ConfigError> {
        Self::from_raw_with(file, raw, true)
    }

    fn from_raw_with(file: &Path, raw: RawPipeline, resolve_plugins: bool) -> Result<Self, ConfigError> {
        let in_file = |p: Problem| ConfigError { file: file.to_path_buf(), path: p.path, message: p.message };
        let base = file.parent().unwrap_or(Path::new("."));
        if !valid_name(&raw.name) {
            return Err(in_file(Problem::new("name", format!("{:?} {NAME_RULE}", raw.name))));
        }
        let batch_size = raw.batch_size.unwrap_or(100);
        if !(1..=10_000).contains(&batch_size) {
            return Err(in_file(Problem::new("batch_size", format!("must be 1..=10000, got {batch_size}"))));
        }
        let plugins = if resolve_plugins { Some(base) } else { None };
        let stages = stages(raw.stages, plugins).map_err(in_file)?;
        let mut tables = Vec::new();
        let mut table_names = BTreeSet::new();
        for (i, t) in raw.sinks.table.into_iter().enumerate() {
            if !table_names.insert(t.name.clone()) {
                return Err(in_file(Problem::new(
                    format!("sinks.table[{i}].name"),
                    format!("duplicate table {:?}", t.name),
                )));
            }
            tables.push(table(i, t).map_err(in_file)?);
        }
        Ok(Pipeline {
            file: file.to_path_buf(),
            name: raw.name,
            batch_size,
            stages,
            tables,
            notify: raw.sinks.notify.map(notify).transpose().map_err(in_file)?,
            objects: raw.sinks.objects.map(objects).transpose().map_err(in_file)?,
            dead_letter: raw.dead_letter.map(dead_letter).transpose().map_err(in_file)?,
            source: source(raw.source).map_err(in_file)?,
        })
    }
}

/// What a name may be (pipelines, stages, tables, counters).
const NAME_RULE: &str = "must be 1-64 letters, digits, `-` or `_`";

/// A field of the file that is not valid: its dotted path and what is wrong (what is allowed).
/// [`Pipeline::from_raw`] adds the file.
#[derive(Debug)]
struct Problem {
    path: String,
    message: String,
}

impl Problem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { path: path.into(), message: message.into() }
    }
}

/// `[[stages]]`: at least one, unique valid names, plugins resolved against `plugins` (the
/// file's directory) unless deployed (`None`: the manifest names the artifacts).
fn stages(raw: Vec<RawStage>, plugins: Option<&Path>) -> Result<Vec<StageConfig>, Problem> {
    if raw.is_empty() {
        return Err(Problem::new("stages", "a pipeline needs at least one stage ([[stages]])"));
    }
    let mut seen = BTreeSet::new();
    let mut stages = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("stages[{i}].{field}");
        if !valid_name(&s.name) {
            return Err(Problem::new(at("name"), format!("{:?} {NAME_RULE}", s.name)));
        }
        if !seen.insert(s.name.clone()) {
            return Err(Problem::new(
                at("name"),
                format!("duplicate stage name {:?}; stage names must be unique", s.name),
            ));
        }
        let plugin = match plugins {
            Some(base) => parse_plugin_source(base, &s.plugin).map_err(|m| Problem::new(at("plugin"), m))?,
            None => PluginSource::Published,
        };
        if let Some(sha) = &s.sha256
            && (sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(Problem::new(at("sha256"), format!("{sha:?} is not a sha256 (64 hex digits)")));
        }
        s.limits.validate().map_err(|m| Problem::new(at("limits"), m))?;
        stages.push(StageConfig {
            name: s.name,
            plugin,
            sha256: s.sha256.map(|h| h.to_ascii_lowercase()),
            config: s.config.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
            limits: s.limits,
        });
    }
    Ok(stages)
}

/// `[[sinks.table]]` number `i`.
fn table(i: usize, t: RawTable) -> Result<TableConfig, Problem> {
    let at = |field: &str| format!("sinks.table[{i}].{field}");
    if !valid_name(&t.name) {
        return Err(Problem::new(at("name"), format!("{:?} {NAME_RULE}", t.name)));
    }
    let key = match t.key {
        RawKey::One(k) => vec![k],
        RawKey::Many(k) => k,
    };
    if key.is_empty() || key.len() > 2 || key.iter().any(|k| k.is_empty()) {
        return Err(Problem::new(at("key"), "must name one or two attributes: [partition] or [partition, sort]"));
    }
    let mode = match t.mode {
        TableModeName::Put | TableModeName::PutIfAbsent => {
            if t.group_by.is_some() || !t.counters.is_empty() {
                return Err(Problem::new(at("mode"), "`group_by` and `counters` need mode = \"aggregate\""));
            }
            match (t.mode, t.order_by) {
                (TableModeName::Put, Some(o)) if o.is_empty() => {
                    return Err(Problem::new(at("order_by"), "must name a field (e.g. \"updated_at\")"));
                }
                (TableModeName::Put, order_by) => TableMode::Put { order_by },
                (_, Some(_)) => {
                    return Err(Problem::new(at("order_by"), "`order_by` needs mode = \"put\""));
                }
                (_, None) => TableMode::PutIfAbsent,
            }
        }
        TableModeName::Aggregate => {
            if t.order_by.is_some() {
                return Err(Problem::new(at("order_by"), "`order_by` needs mode = \"put\""));
            }
            let group_by = t.group_by.ok_or_else(|| {
                Problem::new(at("group_by"), "mode = \"aggregate\" needs `group_by` (the field to group on)")
            })?;
            if key.len() != 1 {
                return Err(Problem::new(at("key"), "an aggregate table has one key attribute (holding the group)"));
            }
            TableMode::Aggregate { group_by, counters: counters(i, &key[0], t.counters)? }
        }
    };
    Ok(TableConfig { name: t.name, key, mode })
}

/// The counters of aggregate table `i`, whose key attribute is `key`.
fn counters(i: usize, key: &str, raw: Vec<RawCounter>) -> Result<Vec<Counter>, Problem> {
    if raw.is_empty() {
        return Err(Problem::new(
            format!("sinks.table[{i}].counters"),
            "mode = \"aggregate\" needs at least one counter, e.g. { name = \"orders\", op = \"count\" }",
        ));
    }
    let mut names = BTreeSet::new();
    let mut counters = Vec::new();
    for (j, c) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("sinks.table[{i}].counters[{j}].{field}");
        if !valid_name(&c.name) || c.name == key {
            return Err(Problem::new(
                at("name"),
                format!("{:?} must be a name (letters, digits, -, _) other than the key", c.name),
            ));
        }
        if !names.insert(c.name.clone()) {
            return Err(Problem::new(at("name"), format!("duplicate counter {:?}", c.name)));
        }
        match (c.op, &c.field) {
            (CounterOp::Sum, None) => {
                return Err(Problem::new(at("field"), "op = \"sum\" needs `field` (the numeric field to add)"));
            }
            (CounterOp::Count, Some(_)) => return Err(Problem::new(at("field"), "op = \"count\" takes no `field`")),
            _ => {}
        }
        counters.push(Counter { name: c.name, op: c.op, field: c.field });
    }
    Ok(counters)
}

/// `[sinks.notify]`.
fn notify(n: RawNotify) -> Result<NotifyConfig, Problem> {
    if n.topic.trim().is_empty() {
        return Err(Problem::new("sinks.notify.topic", "must not be empty"));
    }
    let when = match n.when {
        RawWhen::All(_) => None,
        RawWhen::Field(p) => {
            if p.op != PredicateOp::Exists && p.value.is_none() {
                let message = format!("op = \"{:?}\" needs a `value`", p.op).to_lowercase();
                return Err(Problem::new("sinks.notify.when.value", message));
            }
            Some(p)
        }
    };
    // SNS allows 10 message attributes; weir sends `pipeline` itself.
    if n.attributes.len() > 9 {
        return Err(Problem::new(
            "sinks.notify.attributes",
            format!(
                "at most 9 fields (SNS allows 10 message attributes, one is `pipeline`), got {}",
                n.attributes.len()
            ),
        ));
    }
    if let Some(a) = n.attributes.iter().find(|a| a.as_str() == "pipeline" || a.is_empty()) {
        return Err(Problem::new(
            "sinks.notify.attributes",
            format!("{a:?} is reserved or empty; weir sends the `pipeline` attribute itself"),
        ));
    }
    Ok(NotifyConfig { topic: n.topic, when, attributes: n.attributes, group_by: n.group_by })
}

/// `[sinks.objects]`.
fn objects(o: RawObjects) -> Result<ObjectsConfig, Problem> {
    if o.bucket.trim().is_empty() {
        return Err(Problem::new("sinks.objects.bucket", "must not be empty"));
    }
    let partition = PartitionTemplate::parse(&o.partition).map_err(|m| Problem::new("sinks.objects.partition", m))?;
    Ok(ObjectsConfig { bucket: o.bucket, prefix: o.prefix, partition, format: o.format })
}

/// `[dead_letter]`.
fn dead_letter(d: RawDeadLetter) -> Result<DeadLetterConfig, Problem> {
    if d.queue.trim().is_empty() {
        return Err(Problem::new("dead_letter.queue", "must not be empty"));
    }
    if d.offload_bucket.as_ref().is_some_and(|b| b.trim().is_empty()) {
        return Err(Problem::new("dead_letter.offload_bucket", "must not be empty when given"));
    }
    Ok(DeadLetterConfig {
        queue: d.queue,
        offload_bucket: d.offload_bucket,
        offload_prefix: d.offload_prefix.unwrap_or_else(|| "dead-letters/".into()),
    })
}

fn source(s: RawSource) -> Result<SourceConfig, Problem> {
    let defaults = SourceLimits::default();
    let max_record_bytes = s.max_record_bytes.unwrap_or(defaults.max_record_bytes);
    if !(1024..=SourceLimits::MAX_RECORD_BYTES).contains(&max_record_bytes) {
        let allowed = format!("must be 1024..={} (256 MiB), got {max_record_bytes}", SourceLimits::MAX_RECORD_BYTES);
        return Err(Problem::new("source.max_record_bytes", allowed));
    }
    let max_expansion = s.max_expansion.unwrap_or(defaults.max_expansion);
    if max_expansion < 10 {
        let allowed = format!("must be at least 10 (real data compresses 5 to 20 times), got {max_expansion}");
        return Err(Problem::new("source.max_expansion", allowed));
    }
    let max_object_bytes = s.max_object_bytes.unwrap_or(defaults.max_object_bytes);
    if max_object_bytes < SourceLimits::MIN_OBJECT_BYTES {
        let allowed = format!("must be at least {} (1 MiB), got {max_object_bytes}", SourceLimits::MIN_OBJECT_BYTES);
        return Err(Problem::new("source.max_object_bytes", allowed));
    }
    let limits = SourceLimits { max_record_bytes, max_expansion, max_object_bytes };
    Ok(SourceConfig { prefix: s.prefix, suffixes: s.suffixes, limits })
}

fn parse_plugin_source(base: &Path, raw: &str) -> Result<PluginSource, String> {
    if let Some(rest) = raw.strip_prefix("s3://") {
        return match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                Ok(PluginSource::S3 { bucket: bucket.into(), key: key.into() })
            }
            _ => Err(format!("{raw:?} is not s3://bucket/key")),
        };
    }
    if raw.trim().is_empty() {
        return Err("must be a .wasm file, a plugin crate directory, or s3://bucket/key".into());
    }
    let path = base.join(raw);
    if raw.ends_with(".wasm") {
        Ok(PluginSource::Wasm(path))
    } else if path.join("Cargo.toml").is_file() {
        Ok(PluginSource::Crate(path))
    } else {
        Err(format!(
            "{raw:?} is neither a .wasm file nor a directory with a Cargo.toml (resolved to {})",
            path.display()
        ))
    }
}

/// Step 1: the raw file, with the failing field's path in errors.
fn parse_raw(file: &Path, text: &str) -> Result<RawPipeline, ConfigError> {
    let err = |path: String, message: String| ConfigError { file: file.to_path_buf(), path, message };
    let de = toml::Deserializer::parse(text).map_err(|e| err(String::new(), toml_message(text, &e)))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        err(path, toml_message(text, e.inner()))
    })
}

/// A toml error as one line: the message and, when known, where.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
            format!("{message} (line {line}, column {column})")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_templates() {
        let t = PartitionTemplate::parse("dt={date}/cur={currency}/").unwrap();
        let v = serde_json::json!({"date": "2024-05-01", "currency": "a/b"});
        assert_eq!(t.render(&v), "dt=2024-05-01/cur=a_b/");
        assert_eq!(t.to_string(), "dt={date}/cur={currency}/", "displays as written");
        assert_eq!(t.render(&serde_json::json!({})), "dt=__HIVE_DEFAULT_PARTITION__/cur=__HIVE_DEFAULT_PARTITION__/");
        assert!(PartitionTemplate::parse("dt={date").unwrap_err().contains("unclosed"));
        assert!(PartitionTemplate::parse("dt={da te}").unwrap_err().contains("not a field name"));
        assert!(PartitionTemplate::parse("dt=}").unwrap_err().contains("unmatched"));
    }

    #[test]
    fn order_by_is_a_field_of_a_put_table() {
        let raw =
            |extra: &str| -> RawTable { toml::from_str(&format!("name = \"t\"\nkey = [\"pk\"]\n{extra}")).unwrap() };
        let put = table(0, raw("order_by = \"updated_at\"")).unwrap();
        assert_eq!(put.mode, TableMode::Put { order_by: Some("updated_at".into()) });
        let err = table(0, raw("mode = \"put-if-absent\"\norder_by = \"at\"")).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("sinks.table[0].order_by", "`order_by` needs mode = \"put\"")
        );
        assert!(table(0, raw("order_by = \"\"")).is_err());
    }
}
