//! A stage: one plugin with its config and limits, and the fault isolation around it.
//!
//! A stage keeps one plugin instance and reuses it batch after batch (a fresh instance per batch
//! costs 25-35 % throughput). When a call faults (trap, timeout, memory limit, or an answer
//! that breaks the contract as a whole) the host cannot tell which record did it, and a trapped
//! instance cannot be entered again. So the stage discards the instance and re-runs the batch
//! record by record on a fresh one: the culprit is rejected with the fault's kind, every other
//! record gets its real outcome, and the stage carries on.

use std::collections::BTreeMap;
use std::time::Instant;

use wasmtime::{Store, Trap};

use crate::contract::{self, PluginOutcome};
use crate::engine::Engine;
use crate::error::StageError;
use crate::limits::Limits;
use crate::metrics::StageMetrics;
use crate::plugin::Plugin;
use crate::record::Record;
use crate::report::RejectKind;
use crate::sandbox::{LimitHit, Sandbox};

/// Everything needed to build a [`Stage`].
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// The stage's name in the pipeline (unique within a chain).
    pub name: String,
    pub plugin: Plugin,
    /// Passed to the plugin's `init`.
    pub config: BTreeMap<String, String>,
    pub limits: Limits,
}

impl StageSpec {
    /// A stage with default limits and no config.
    pub fn new(name: impl Into<String>, plugin: Plugin) -> Self {
        StageSpec { name: name.into(), plugin, config: BTreeMap::new(), limits: Limits::default() }
    }

    /// Sets a config entry.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// What became of one record in one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageResult {
    /// Emitted 0..n records (0 = filtered).
    Emit(Vec<Record>),
    Rejected {
        kind: RejectKind,
        reason: String,
    },
}

/// A fault during one call: the whole call's results are unusable.
#[derive(Debug, Clone)]
struct Fault {
    kind: RejectKind,
    reason: String,
}

struct Live {
    store: Store<Sandbox>,
    instance: contract::Instance,
}

/// A running stage.
pub struct Stage {
    spec: StageSpec,
    config: Vec<(String, String)>,
    live: Option<Live>,
    metrics: StageMetrics,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage").field("name", &self.spec.name).field("plugin", &self.spec.plugin).finish()
    }
}

impl Stage {
    /// Builds the stage and starts one instance, so a refused config or a plugin that cannot
    /// start is reported now rather than on the first batch.
    pub fn new(spec: StageSpec) -> Result<Self, StageError> {
        spec.limits.validate().map_err(|message| StageError::Limits { stage: spec.name.clone(), message })?;
        let config = spec.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut stage = Stage { spec, config, live: None, metrics: StageMetrics::default() };
        let live = stage.start()?;
        stage.live = Some(live);
        Ok(stage)
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The stage's plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.spec.plugin
    }

    /// The stage's limits.
    pub fn limits(&self) -> &Limits {
        &self.spec.limits
    }

    /// Counters since the stage started.
    pub fn metrics(&self) -> &StageMetrics {
        &self.metrics
    }

    fn start(&self) -> Result<Live, StageError> {
        let plugin = &self.spec.plugin;
        let err = |message: String| StageError::Instantiate {
            stage: self.spec.name.clone(),
            plugin: plugin.label(),
            message,
        };
        let mut store = Store::new(plugin.engine().wasmtime(), Sandbox::new(self.spec.limits.memory_bytes()));
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(Engine::ticks_for(self.spec.limits.time()));
        let instance = match plugin.pre() {
            contract::Pre::V0_1_0(pre) => contract::v0_1_0::Instance::new(pre, &mut store)
                .map(contract::Instance::V0_1_0)
                .map_err(|e| err(describe_error(&e, &mut store, None)))?,
        };
        let refused = match &instance {
            contract::Instance::V0_1_0(i) => i.init(&mut store, &self.config),
        };
        self.flush_logs(&mut store, &[]);
        match refused {
            Ok(Ok(())) => Ok(Live { store, instance }),
            Ok(Err(message)) => {
                Err(StageError::InitRefused { stage: self.spec.name.clone(), plugin: plugin.label(), message })
            }
            Err(e) => {
                let reason = describe_error(&e, &mut store, None);
                Err(err(format!("init failed: {reason}")))
            }
        }
    }

    /// Runs a batch through the stage: exactly one result per input, in order.
    pub fn process(&mut self, records: &[Record]) -> Vec<StageResult> {
        if records.is_empty() {
            return Vec::new();
        }
        let started = Instant::now();
        let results = match self.call(records) {
            Ok(outcomes) => outcomes.into_iter().map(StageResult::from).collect(),
            Err(fault) if records.len() == 1 => vec![fault.into()],
            Err(fault) => {
                self.metrics.isolations += 1;
                tracing::warn!(
                    stage = %self.spec.name,
                    plugin = %self.spec.plugin.label(),
                    kind = %fault.kind,
                    reason = %fault.reason,
                    records = records.len(),
                    "batch faulted; re-running record by record to isolate the culprit"
                );
                records
                    .iter()
                    .map(|r| match self.call(std::slice::from_ref(r)) {
                        Ok(mut one) => one.pop().map(StageResult::from).unwrap_or_else(|| StageResult::Rejected {
                            kind: RejectKind::InvalidOutput,
                            reason: "no outcome".into(),
                        }),
                        Err(fault) => fault.into(),
                    })
                    .collect()
            }
        };
        self.account(records, &results);
        self.metrics.record_batch(started.elapsed());
        results
    }

    fn account(&mut self, records: &[Record], results: &[StageResult]) {
        self.metrics.records_in += records.len() as u64;
        for (record, result) in records.iter().zip(results) {
            match result {
                StageResult::Emit(out) if out.is_empty() => self.metrics.filtered += 1,
                StageResult::Emit(out) => {
                    self.metrics.passed += 1;
                    self.metrics.records_out += out.len() as u64;
                }
                StageResult::Rejected { kind, reason } => {
                    self.metrics.reject(*kind);
                    if kind.is_fault() {
                        tracing::warn!(
                            stage = %self.spec.name,
                            plugin = %self.spec.plugin.label(),
                            record = %record.id,
                            kind = %kind,
                            reason = %reason,
                            "plugin fault contained to one record"
                        );
                    }
                }
            }
        }
    }

    /// One `transform` call on the live instance (starting one if needed).
    fn call(&mut self, records: &[Record]) -> Result<Vec<PluginOutcome>, Fault> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => {
                self.metrics.restarts += 1;
                self.start()
                    .map_err(|e| Fault { kind: RejectKind::Trap, reason: format!("cannot restart plugin: {e}") })?
            }
        };
        let batch = match &live.instance {
            contract::Instance::V0_1_0(_) => {
                contract::v0_1_0::pack(records).map_err(|reason| Fault { kind: RejectKind::OutputLimit, reason })?
            }
        };
        live.store.set_epoch_deadline(Engine::ticks_for(self.spec.limits.time()));
        live.store.data_mut().limiter.hit = None;
        let answer = match &live.instance {
            contract::Instance::V0_1_0(i) => i.transform(&mut live.store, &batch),
        };
        drop(batch);
        self.flush_logs(&mut live.store, records);
        match answer {
            Err(e) => {
                // The instance trapped (or ran out of time or memory): it cannot be entered again.
                let kind = classify(&e, &live.store);
                let reason = describe_error(&e, &mut live.store, Some(&self.spec.limits));
                Err(Fault { kind, reason })
            }
            Ok(out) => {
                // Drain captured stdio so the next call's trap report shows only its own output.
                live.store.data().output.take();
                let unpacked = contract::v0_1_0::unpack(records, out, &self.spec.limits);
                self.live = Some(live);
                unpacked.map_err(|(kind, reason)| Fault { kind, reason })
            }
        }
    }

    /// Reports the plugin's log lines of the last call, tagged with stage, plugin and record.
    fn flush_logs(&self, store: &mut Store<Sandbox>, records: &[Record]) {
        let logs = std::mem::take(&mut store.data_mut().logs);
        let plugin = self.spec.plugin.label();
        for line in logs.lines {
            let record = line.record.and_then(|i| records.get(i as usize)).map(|r| r.id.as_str()).unwrap_or("");
            let (stage, message) = (self.spec.name.as_str(), line.message.as_str());
            match line.level {
                tracing::Level::ERROR => tracing::error!(target: "weir::plugin", stage, plugin, record, "{message}"),
                tracing::Level::WARN => tracing::warn!(target: "weir::plugin", stage, plugin, record, "{message}"),
                tracing::Level::INFO => tracing::info!(target: "weir::plugin", stage, plugin, record, "{message}"),
                tracing::Level::DEBUG => tracing::debug!(target: "weir::plugin", stage, plugin, record, "{message}"),
                _ => tracing::trace!(target: "weir::plugin", stage, plugin, record, "{message}"),
            }
        }
        if logs.dropped > 0 {
            tracing::warn!(target: "weir::plugin", stage = %self.spec.name, plugin, dropped = logs.dropped, "plugin log lines dropped (limit per call)");
        }
    }
}

impl From<PluginOutcome> for StageResult {
    fn from(o: PluginOutcome) -> Self {
        match o {
            PluginOutcome::Emit(records) => StageResult::Emit(records),
            PluginOutcome::Reject { kind, reason } => StageResult::Rejected { kind, reason },
        }
    }
}

impl From<Fault> for StageResult {
    fn from(f: Fault) -> Self {
        StageResult::Rejected { kind: f.kind, reason: f.reason }
    }
}

fn classify(e: &wasmtime::Error, store: &Store<Sandbox>) -> RejectKind {
    if store.data().limiter.hit.is_some() {
        return RejectKind::Memory;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => RejectKind::Timeout,
        _ => RejectKind::Trap,
    }
}

/// A one-paragraph reason for a fault: what happened, and the tail of what the plugin printed
/// (a Rust panic prints its message to stderr before trapping).
fn describe_error(e: &wasmtime::Error, store: &mut Store<Sandbox>, limits: Option<&Limits>) -> String {
    let hit = store.data_mut().limiter.hit.take();
    let printed = store.data().output.take();
    let mut reason = match (hit, e.downcast_ref::<Trap>()) {
        (Some(LimitHit::Memory { desired, limit }), _) => {
            format!("memory limit exceeded: tried to grow to {} MiB, limit {} MiB", desired >> 20, limit >> 20)
        }
        (Some(LimitHit::Table { desired, limit }), _) => format!("table limit exceeded: {desired} > {limit} elements"),
        (None, Some(Trap::Interrupt)) => match limits {
            Some(l) => format!("time limit exceeded ({} ms)", l.time_ms),
            None => "time limit exceeded".into(),
        },
        (None, Some(Trap::StackOverflow)) => "stack overflow (call stack exhausted)".into(),
        (None, Some(trap)) => format!("trap: {trap}"),
        (None, None) => format!("{e:#}").lines().next().unwrap_or("error").to_string(),
    };
    let printed = printed.trim();
    if !printed.is_empty() {
        let tail: String = {
            let chars: Vec<char> = printed.chars().collect();
            chars[chars.len().saturating_sub(500)..].iter().collect()
        };
        reason.push_str("; plugin output: ");
        reason.push_str(&tail);
    }
    reason
}
