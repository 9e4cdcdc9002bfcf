//! A pipeline run: a source's items, in batches, through the chain, into the sinks.
//!
//! [`config`] reads `weir.toml`, [`bindings`] maps its logical names to deployed resources,
//! [`build`] turns both into the sinks (local or AWS); this module runs batches through them.
//!
//! The [`Runner`] is the one loop both the CLI's local runner and the Lambda drive. For every
//! batch it accounts for each input exactly once: records that reach the end go to every sink;
//! rejected records, unreadable inputs and records a sink cannot write go to the dead-letter
//! sink with stage, kind and reason; filtered records are counted. [`RunStats`] keeps the
//! totals and [`RunStats::is_conserved`] checks them.

pub mod bindings;
pub mod build;
pub mod checkpoints;
pub mod config;
pub mod deployment;
pub mod plan;
pub mod transform;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chain::Chain;
use crate::metrics::MetricsSnapshot;
use crate::record::Record;
use crate::report::BatchReport;
use crate::sink::{DeadLetter, DeadLetterSink, Delivery, Parts, Sink, SinkError, SinkReport};
use crate::source::SourceItem;

use crate::source::Items;
use crate::source::resume::{Marks, Resume};
pub use bindings::{BindingError, Bindings};
pub use checkpoints::Checkpoints;

/// How a unit of objects ended ([`Runner::run_resumable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Its first failure (the id of the item and why), if it is to be retried.
    pub failure: Option<(String, String)>,
    /// Where it goes on, if the deadline cut it off after some progress: a continuation
    /// message can carry this instead of the unit being redelivered.
    pub cut: Option<Resume>,
}

/// What came of an SQS batch ([`Runner::run_sqs_event`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqsOutcome {
    /// The messages (by messageId) some effect of which could not be completed, with the
    /// first reason: the ones to report as `batchItemFailures`.
    pub failed: BTreeMap<String, String>,
    /// Those of them the deadline cut off after progress, with where to go on.
    pub cut: BTreeMap<String, Resume>,
}
pub use config::{ConfigError, Pipeline};
pub use transform::Transform;

/// A run stopped. Never a record's fault (those are dead letters or failed inputs): a host bug
/// that would otherwise lose or double-count records.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("record accounting broke in a batch of {inputs} input(s): {detail}")]
    Conservation { inputs: usize, detail: String },
}

/// What became of one input; when its paths differ, the greatest wins (one failed effect fails
/// the input, else one output delivers it, else one rejected path rejects it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    /// Every path was filtered.
    Filtered,
    Rejected,
    Delivered,
    /// Some effect could not be completed: the input is retried.
    Failed,
}

/// Totals of a run, by input record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunStats {
    /// Items the source yielded (records and unreadable inputs).
    pub inputs: u64,
    /// Inputs that could not be read as records.
    pub unreadable: u64,
    /// Records that reached the end of the chain (fan-out counts each).
    pub outputs: u64,
    /// Inputs all of whose paths were filtered.
    pub filtered: u64,
    /// Inputs with at least one output.
    pub delivered: u64,
    /// Inputs with at least one rejected path (and no output).
    pub rejected: u64,
    /// Inputs some effect of which could not be completed (a sink or the object store failed
    /// past its retries): to be retried. See [`Runner::failures`].
    pub failed: u64,
    /// Dead letters by `stage/kind`.
    pub dead_letters: BTreeMap<String, u64>,
    /// Outputs a sink could not write (also dead letters).
    pub unwritable: u64,
    pub batches: u64,
    #[serde(serialize_with = "as_secs")]
    pub elapsed: Duration,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl RunStats {
    /// Every input left exactly once: unreadable, delivered, filtered, rejected or failed.
    pub fn is_conserved(&self) -> bool {
        self.inputs == self.unreadable + self.delivered + self.filtered + self.rejected + self.failed
    }

    /// Input records per second.
    pub fn records_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.inputs as f64 / secs } else { 0.0 }
    }
}

/// Per-stage counters of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub name: String,
    pub plugin: String,
    #[serde(flatten)]
    pub metrics: MetricsSnapshot,
}

/// What became of one batch.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    pub report: BatchReport,
    /// Inputs (by source id) whose effects could not all be completed, with the first reason:
    /// the caller must not acknowledge them (they are redelivered; sinks are idempotent).
    pub failed: BTreeMap<String, String>,
}

/// Where the sinks' futures run.
pub enum Io {
    /// The runner's own single-threaded runtime: for sinks that need no particular one (local
    /// files, tests).
    Own(tokio::runtime::Runtime),
    /// The runtime the sinks' AWS clients were built on. It must be this one: a pooled
    /// connection belongs to the runtime that opened it, and the same clients serve other work
    /// (manifest checks) between batches. Blocked on from a thread outside it (the Lambda runs
    /// the runner under `spawn_blocking`).
    Shared(tokio::runtime::Handle),
}

impl Io {
    /// A runtime of the runner's own.
    pub fn own() -> std::io::Result<Io> {
        Ok(Io::Own(tokio::runtime::Builder::new_current_thread().enable_all().build()?))
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match self {
            Io::Own(runtime) => runtime.block_on(future),
            Io::Shared(handle) => handle.block_on(future),
        }
    }
}

/// A run's outputs: the sinks, the dead-letter sink, and where their writes run. See
/// [`build`] for how a pipeline gets them.
pub struct Outputs {
    pub sinks: Vec<Box<dyn Sink>>,
    pub dead_letter: Box<dyn DeadLetterSink>,
    pub io: Io,
}

/// Drives a chain (any [`Transform`]; the plugin [`Chain`] unless a test says otherwise) over a
/// source into sinks.
pub struct Runner<T = Chain> {
    chain: T,
    sinks: Vec<Box<dyn Sink>>,
    dead_letter: Box<dyn DeadLetterSink>,
    io: Io,
    batch_size: usize,
    stats: RunStats,
    failures: BTreeMap<String, String>,
    /// Whether to stop starting batches (the invocation's deadline is near).
    out_of_time: Option<Box<dyn Fn() -> bool + Send>>,
    /// Where progress through an object cut off by the deadline is kept.
    checkpoints: Option<Box<dyn Checkpoints>>,
    /// How the batches being run group into objects files (set per kind of input).
    parts: Parts,
    /// When every write of a batch must be over (the invocation's deadline, less the time to
    /// answer): a write still running then is abandoned and its records fail.
    write_deadline: Option<Instant>,
}

/// What [`Runner::run_items`] does with the rest of its items when time runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Report each remaining item failed (they are records already in memory).
    Each,
    /// Stop reading (an object stream) and report one failure under [`DEADLINE_ID`].
    Abandon,
}

/// `future`, or `None` when `deadline` comes first (the future is dropped).
async fn until<F: std::future::Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(at) => tokio::time::timeout_at(tokio::time::Instant::from_std(at), future).await.ok(),
        None => Some(future.await),
    }
}

/// The SQS attribute of a FIFO queue's message: its message group.
const MESSAGE_GROUP_ID: &str = "MessageGroupId";

/// The failure key of an abandoned object stream.
pub const DEADLINE_ID: &str = "(deadline)";

/// The failure reason of inputs not finished because the invocation ran out of time.
pub const DEADLINE_REASON: &str = "the invocation's deadline came before this input was finished; it is retried \
     (what was already written is not written twice)";

impl<T: Transform> Runner<T> {
    pub fn new(chain: T, outputs: Outputs, batch_size: usize) -> Self {
        let Outputs { sinks, dead_letter, io } = outputs;
        Runner {
            chain,
            sinks,
            dead_letter,
            io,
            batch_size: batch_size.max(1),
            stats: RunStats::default(),
            failures: BTreeMap::new(),
            out_of_time: None,
            checkpoints: None,
            parts: Parts::Batch,
            write_deadline: None,
        }
    }

    /// Keeps progress through objects cut off by the deadline (see [`Checkpoints`]).
    pub fn set_checkpoints(&mut self, checkpoints: Option<Box<dyn Checkpoints>>) {
        self.checkpoints = checkpoints;
    }

    /// Runs one long input (the rows of a message's objects, as one unit) under `id`: `read`
    /// opens it at a [`Resume`] (or its start) and marks each item's place. It resumes at the
    /// checkpoint saved for `id` (looked up only when `redelivered`: a first delivery cannot
    /// have one), else at `carried` (where a continuation message says to go on); when the
    /// deadline cuts it off or a row fails, it saves how far it got (the place after the
    /// leading items whose every effect completed). See [`Unit`] for the answer.
    pub fn run_resumable(
        &mut self,
        id: &str,
        read: impl FnOnce(Option<Resume>, Marks) -> Items,
        redelivered: bool,
        carried: Option<Resume>,
    ) -> Result<Unit, RunError> {
        let saved = match &self.checkpoints {
            Some(c) if redelivered => c.done(id),
            _ => None,
        };
        let from = saved.clone().or(carried);
        if let Some(r) = &from {
            tracing::info!(input = %id, object = r.object, items = r.items, offset = ?r.at.as_ref().map(|a| a.offset), "resuming after the items done before");
        }
        let marks = Marks::default();
        let items = read(from, marks.clone());
        let confirm = |n: u64| marks.confirm(n);
        let (failures, _) = self.run_stream(items, Drain::Abandon, |_| {}, &confirm)?;
        let progress = marks.resume();
        if let Some(c) = &self.checkpoints {
            if marks.is_stale() || (failures.is_empty() && saved.is_some()) {
                c.clear(id);
            } else if let (false, Some(at)) = (failures.is_empty(), &progress) {
                // Cut off by the deadline, or failed for now (a sink past its retries, a dropped
                // download): the leading items done stay done, and the retry resumes after them.
                c.save(id, at);
            }
        }
        let cut = progress.filter(|_| failures.contains_key(DEADLINE_ID));
        Ok(Unit { failure: failures.into_iter().next(), cut })
    }

    /// Forgets the checkpoint of `id` (its unit goes on elsewhere: a continuation message).
    pub fn clear_checkpoint(&self, id: &str) {
        if let Some(c) = &self.checkpoints {
            c.clear(id);
        }
    }

    /// Sets the test for running out of time, checked before every batch (the Lambda: less
    /// than a safety margin left before the invocation's deadline). Once it says so, no new
    /// batch starts: records already in memory are reported failed unprocessed, and an object
    /// being read is abandoned and its message failed; the redelivery runs them again, and the
    /// sinks' idempotence absorbs what was written before the deadline. `None` removes it.
    pub fn set_deadline(&mut self, out_of_time: Option<Box<dyn Fn() -> bool + Send>>) {
        self.out_of_time = out_of_time;
    }

    /// Sets when the sinks' writes of a batch must be over (see [`Runner::set_deadline`] for
    /// when batches stop starting): a write still running then (throttled and backing off, a
    /// slow answer) is abandoned, and its batch's records are reported failed, to be retried,
    /// instead of the whole invocation timing out and every message of it coming back.
    pub fn set_write_deadline(&mut self, at: Option<Instant>) {
        self.write_deadline = at;
    }

    fn out_of_time(&self) -> bool {
        self.out_of_time.as_ref().is_some_and(|f| f())
    }

    /// Runs every item of `items`; `on_batch` sees the totals after each batch (progress).
    /// Inputs whose effects could not be completed are counted as failed and listed in
    /// [`Runner::failures`]; the run goes on. `Err` only for a host bug (a conservation check).
    pub fn run(
        &mut self,
        items: impl Iterator<Item = SourceItem>,
        on_batch: impl FnMut(&RunStats),
    ) -> Result<(), RunError> {
        let failed = self.run_items(items, Drain::Each, on_batch)?;
        for (id, reason) in failed {
            self.failures.entry(id).or_insert(reason);
        }
        Ok(())
    }

    /// Runs one SQS batch as Lambda delivers it (`Records` of an SQS event): each message is a
    /// record (id = messageId), or, when it carries an S3 event (directly or inside an SNS
    /// notification), the rows of the objects it names; `s3:TestEvent` messages are done.
    /// Returns the messages (by messageId) some effect of which could not be completed, with
    /// the first reason: exactly the ones to report as `batchItemFailures` so SQS redelivers
    /// them. Every other message is done: delivered, filtered, or in the dead-letter queue.
    /// Object messages the deadline cut off after progress are also listed with where they go
    /// on ([`SqsOutcome::cut`]), for the caller to continue them without a redelivery.
    pub fn run_sqs_event(
        &mut self,
        messages: &[crate::source::lambda::SqsMessage],
        objects: &crate::source::objects::Objects,
    ) -> Result<SqsOutcome, RunError> {
        use crate::source::lambda::{Message, message};
        use crate::source::objects::read_unit;
        if messages.iter().any(|m| m.attributes.contains_key(MESSAGE_GROUP_ID)) {
            return Ok(SqsOutcome { failed: self.run_fifo(messages, objects)?, cut: BTreeMap::new() });
        }
        let mut failed = BTreeMap::new();
        // Records first (in memory, quick), then the objects, one message at a time.
        let mut plain = Vec::new();
        let mut object_messages = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match message(i, m) {
                Message::Item(item) => plain.push(item),
                Message::Objects { id, refs, redelivered, resume } => {
                    object_messages.push((id, refs, redelivered, resume))
                }
                Message::Skip { id } => tracing::debug!(message = %id, "skipping s3:TestEvent message"),
            }
        }
        let mut cut = BTreeMap::new();
        if !plain.is_empty() {
            // Separate messages, batched together by chance: an objects file per message.
            self.parts = Parts::PerInput;
            let plain_failed = self.run_items(plain.into_iter(), Drain::Each, |_| {});
            self.parts = Parts::Batch;
            failed.extend(plain_failed?);
        }
        for (id, refs, redelivered, resume) in object_messages {
            // The rows of its objects, as one unit: any failed row fails the message (a
            // redelivery resumes after the rows done; the sinks absorb any repeat).
            if self.out_of_time() {
                failed.insert(id, DEADLINE_REASON.to_string());
                continue;
            }
            let read = |from, marks| read_unit(refs, objects.clone(), from, marks);
            let unit = self.run_resumable(&id, read, redelivered, resume)?;
            if let Some((row, reason)) = unit.failure {
                failed.insert(id.clone(), format!("{row}: {reason}"));
            }
            if let Some(at) = unit.cut {
                cut.insert(id, at);
            }
        }
        Ok(SqsOutcome { failed, cut })
    }

    /// A batch from a FIFO queue: each message group's messages in order, and a failure stops
    /// its group, as AWS requires of partial batch responses from FIFO queues: the group's later
    /// messages in the batch are not processed and are reported failed, so that SQS redelivers
    /// them after the one that failed, in order. The batch runs in rounds: round `r` processes
    /// the `r`th message of every group still going, together (one chain batch for the records
    /// among them; an object message on its own, as in a standard batch).
    fn run_fifo(
        &mut self,
        messages: &[crate::source::lambda::SqsMessage],
        objects: &crate::source::objects::Objects,
    ) -> Result<BTreeMap<String, String>, RunError> {
        use std::collections::VecDeque;

        use crate::source::lambda::{Message, message, message_id};
        use crate::source::objects::read_unit;
        // The groups in the order they first appear, each with its messages in batch order.
        let mut groups: Vec<(String, VecDeque<usize>)> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let group = m.attributes.get(MESSAGE_GROUP_ID).cloned().unwrap_or_default();
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, queue)) => queue.push_back(i),
                None => groups.push((group, VecDeque::from([i]))),
            }
        }
        let mut failed = BTreeMap::new();
        loop {
            let round: Vec<(usize, usize)> =
                groups.iter_mut().enumerate().filter_map(|(g, (_, q))| q.pop_front().map(|i| (g, i))).collect();
            if round.is_empty() {
                break;
            }
            let mut plain = Vec::new();
            let mut object_messages = Vec::new();
            for &(g, i) in &round {
                match message(i, &messages[i]) {
                    Message::Item(item) => plain.push((g, item)),
                    Message::Objects { id, refs, redelivered, resume } => {
                        object_messages.push((g, id, refs, redelivered, resume))
                    }
                    Message::Skip { id } => tracing::debug!(message = %id, "skipping s3:TestEvent message"),
                }
            }
            let mut stopped: Vec<(usize, String)> = Vec::new();
            if !plain.is_empty() {
                let ids: Vec<(usize, String)> = plain.iter().map(|(g, item)| (*g, item.id().to_string())).collect();
                self.parts = Parts::PerInput;
                let round_failed = self.run_items(plain.into_iter().map(|(_, item)| item), Drain::Each, |_| {});
                self.parts = Parts::Batch;
                let round_failed = round_failed?;
                for (g, id) in ids {
                    if let Some(reason) = round_failed.get(&id) {
                        failed.insert(id.clone(), reason.clone());
                        stopped.push((g, id));
                    }
                }
            }
            for (g, id, refs, redelivered, resume) in object_messages {
                // No continuation in a FIFO queue (it would go behind the group's later
                // messages): a cut message is redelivered, resuming at its checkpoint.
                let reason = if self.out_of_time() {
                    Some(DEADLINE_REASON.to_string())
                } else {
                    let read = |from, marks| read_unit(refs, objects.clone(), from, marks);
                    let unit = self.run_resumable(&id, read, redelivered, resume)?;
                    unit.failure.map(|(row, reason)| format!("{row}: {reason}"))
                };
                if let Some(reason) = reason {
                    failed.insert(id.clone(), reason);
                    stopped.push((g, id));
                }
            }
            for (g, culprit) in stopped {
                let (group, queue) = &mut groups[g];
                for i in queue.drain(..) {
                    let reason = format!(
                        "not processed: message {culprit} before it in FIFO message group {group:?} failed, and a \
                         group's messages are processed in order"
                    );
                    failed.insert(message_id(i, &messages[i]), reason);
                    self.stats.inputs += 1;
                    self.stats.failed += 1;
                }
            }
        }
        Ok(failed)
    }

    /// [`Runner::run`], returning the inputs that failed in this run. `drain` says what to do
    /// with the rest of `items` when time runs out (see [`Runner::set_deadline`]).
    pub fn run_items(
        &mut self,
        items: impl Iterator<Item = SourceItem>,
        drain: Drain,
        on_batch: impl FnMut(&RunStats),
    ) -> Result<BTreeMap<String, String>, RunError> {
        Ok(self.run_stream(items, drain, on_batch, &|_| {})?.0)
    }

    /// [`Runner::run_items`], also returning how many leading items were done (every effect
    /// completed) before the first failure or the deadline: a checkpoint. `confirm` hears of
    /// each batch of them as it is done.
    fn run_stream(
        &mut self,
        items: impl Iterator<Item = SourceItem>,
        drain: Drain,
        mut on_batch: impl FnMut(&RunStats),
        confirm: &dyn Fn(u64),
    ) -> Result<(BTreeMap<String, String>, u64), RunError> {
        let mut failures = BTreeMap::new();
        let mut done = 0u64;
        let (started, before) = (Instant::now(), self.stats.elapsed);
        let mut records = Vec::with_capacity(self.batch_size);
        let mut letters = Vec::new();
        let mut items = items.peekable();
        while items.peek().is_some() {
            if self.out_of_time() {
                match drain {
                    Drain::Each => {
                        for item in items.by_ref() {
                            let id = match item {
                                SourceItem::Record(r) => r.id,
                                SourceItem::Unreadable(u) | SourceItem::Failed(u) => u.id,
                            };
                            self.stats.inputs += 1;
                            self.stats.failed += 1;
                            failures.entry(id).or_insert_with(|| DEADLINE_REASON.to_string());
                        }
                    }
                    Drain::Abandon => {
                        failures.entry(DEADLINE_ID.to_string()).or_insert_with(|| DEADLINE_REASON.to_string());
                    }
                }
                break;
            }
            records.clear();
            let mut pulled = 0u64;
            while records.len() < self.batch_size {
                let next = items.next();
                pulled += u64::from(next.is_some());
                match next {
                    None => break,
                    Some(SourceItem::Record(r)) => records.push(r),
                    Some(SourceItem::Unreadable(u)) => letters.push(DeadLetter {
                        stage: "source".into(),
                        kind: "unreadable".into(),
                        reason: u.reason,
                        record: Record::new(u.id.clone(), u.raw),
                        source_id: u.id,
                        original: None,
                        chain: String::new(),
                    }),
                    Some(SourceItem::Failed(u)) => {
                        self.stats.inputs += 1;
                        self.stats.failed += 1;
                        failures.entry(u.id).or_insert(u.reason);
                        if drain == Drain::Abandon {
                            break;
                        }
                    }
                }
            }
            if drain == Drain::Abandon && !failures.is_empty() {
                // An object stream that failed to read mid-batch: the rows of this batch are not
                // written. The retry reads the whole batch again, and the part of it written now
                // would be a different objects file than the retry's (files are named by batch).
                let dropped = (records.len() + letters.len()) as u64;
                self.stats.inputs += dropped;
                self.stats.failed += dropped;
                records.clear();
                letters.clear();
                break;
            }
            let batch = std::mem::take(&mut records);
            let outcome = self.process(batch, std::mem::take(&mut letters))?;
            for (id, reason) in outcome.failed {
                failures.entry(id).or_insert(reason);
            }
            if failures.is_empty() {
                done += pulled;
                confirm(pulled);
            }
            self.stats.elapsed = before + started.elapsed();
            on_batch(&self.stats);
            if drain == Drain::Abandon && !failures.is_empty() {
                // An object whose batch failed is retried from its checkpoint (the leading rows
                // done): running its later rows now would only be done again.
                break;
            }
        }
        self.stats.elapsed = before + started.elapsed();
        Ok((failures, done))
    }

    /// Runs one batch of records through the chain and into the sinks. `unreadable` are
    /// source-level dead letters (inputs that could not be read as records) to send along.
    pub fn process(&mut self, batch: Vec<Record>, unreadable: Vec<DeadLetter>) -> Result<BatchOutcome, RunError> {
        let inputs = batch.clone(); // for dead letters: the record as it entered
        let report = if batch.is_empty() { BatchReport::default() } else { self.chain.run(batch) };
        let original = |origin: usize, seen: &Record| {
            let input = &inputs[origin];
            (input != seen).then(|| input.clone())
        };
        if let Err(e) = report.check_conservation() {
            // A host bug, not a plugin's: fail loudly rather than lose records.
            return Err(RunError::Conservation { inputs: inputs.len(), detail: e });
        }
        self.stats.batches += u64::from(!inputs.is_empty());
        self.stats.outputs += report.emitted.len() as u64;

        // Each input's fate: failed if any of its effects could not be completed, else
        // delivered if any path reached the end, else rejected if any path was rejected, else
        // filtered. Letters carry the input they came from (`None`: a source-level letter).
        let mut fate = vec![Fate::Filtered; report.inputs];
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        let mut letters: Vec<DeadLetter> = Vec::with_capacity(unreadable.len() + report.rejected.len());
        let mut letter_origin: Vec<Option<usize>> = Vec::with_capacity(letters.capacity());
        for l in unreadable {
            letters.push(l);
            letter_origin.push(None);
        }
        for r in &report.rejected {
            fate[r.origin] = fate[r.origin].max(Fate::Rejected);
            letters.push(DeadLetter {
                stage: r.stage.clone(),
                kind: r.kind.to_string(),
                reason: r.reason.clone(),
                record: r.record.clone(),
                source_id: inputs[r.origin].id.clone(),
                original: original(r.origin, &r.record),
                chain: report.chain.clone(),
            });
            letter_origin.push(Some(r.origin));
        }
        for e in &report.emitted {
            fate[e.origin] = fate[e.origin].max(Fate::Delivered);
        }

        if !report.emitted.is_empty() {
            let delivery = Delivery { emitted: &report.emitted, chain: &report.chain, parts: self.parts };
            // Every sink writes the batch at once (a batch's latency is the slowest sink's, not
            // their sum); the runner blocks here, once.
            let writes = self.sinks.iter_mut().map(|sink| sink.write(&delivery));
            let results = self.io.block_on(until(self.write_deadline, futures_util::future::join_all(writes)));
            let results = results.unwrap_or_else(|| {
                // Cut off by the deadline: nothing of the batch counts as written (what reached
                // AWS is absorbed by the sinks' idempotence when the inputs are retried).
                tracing::warn!(
                    records = report.emitted.len(),
                    "the invocation's deadline came during the batch's writes"
                );
                self.sinks.iter().map(|sink| Err(SinkError::Deadline { sink: sink.name() })).collect()
            });
            for (sink, result) in self.sinks.iter().zip(results) {
                let written = match result {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(sink = %sink.name(), error = %e, "sink failed for the whole batch");
                        SinkReport {
                            failed: (0..report.emitted.len())
                                .map(|index| crate::sink::Failed { index, reason: e.to_string() })
                                .collect(),
                            ..SinkReport::default()
                        }
                    }
                };
                for f in written.failed {
                    let origin = report.emitted[f.index].origin;
                    fate[origin] = Fate::Failed;
                    failed
                        .entry(inputs[origin].id.clone())
                        .or_insert_with(|| format!("sink:{}: {}", sink.name(), f.reason));
                }
                for u in written.unwritable {
                    self.stats.unwritable += 1;
                    let e = &report.emitted[u.index];
                    letters.push(DeadLetter {
                        stage: format!("sink:{}", sink.name()),
                        kind: "unwritable".into(),
                        reason: u.reason,
                        record: e.record.clone(),
                        source_id: inputs[e.origin].id.clone(),
                        original: original(e.origin, &e.record),
                        chain: report.chain.clone(),
                    });
                    letter_origin.push(Some(e.origin));
                }
            }
        }

        // Dead letters: one that cannot be sent fails its input.
        let mut unsent = vec![false; letters.len()];
        if !letters.is_empty() {
            let sent = self.io.block_on(until(self.write_deadline, self.dead_letter.send(&letters)));
            let failures =
                sent.unwrap_or(Err(SinkError::Deadline { sink: "dead-letter".into() })).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "dead-letter sink failed for the whole batch");
                    (0..letters.len()).map(|index| crate::sink::Failed { index, reason: e.to_string() }).collect()
                });
            for f in failures {
                if let Some(flag) = unsent.get_mut(f.index) {
                    *flag = true;
                    let l = &letters[f.index];
                    failed.entry(l.source_id.clone()).or_insert_with(|| format!("dead-letter: {}", f.reason));
                    if let Some(origin) = letter_origin[f.index] {
                        fate[origin] = Fate::Failed;
                    }
                }
            }
        }
        for (l, (origin, unsent)) in letters.iter().zip(letter_origin.iter().zip(&unsent)) {
            if origin.is_none() {
                self.stats.inputs += 1;
                if *unsent { self.stats.failed += 1 } else { self.stats.unreadable += 1 }
            }
            if !unsent {
                *self.stats.dead_letters.entry(format!("{}/{}", l.stage, l.kind)).or_default() += 1;
            }
        }
        self.stats.inputs += report.inputs as u64;
        for f in &fate {
            match f {
                Fate::Failed => self.stats.failed += 1,
                Fate::Delivered => self.stats.delivered += 1,
                Fate::Rejected => self.stats.rejected += 1,
                Fate::Filtered => self.stats.filtered += 1,
            }
        }
        Ok(BatchOutcome { report, failed })
    }

    /// Inputs (by source id) that failed so far, with the first reason; see [`BatchOutcome`].
    pub fn failures(&self) -> &BTreeMap<String, String> {
        &self.failures
    }

    /// Totals so far.
    pub fn stats(&self) -> &RunStats {
        &self.stats
    }
}

impl Runner<Chain> {
    /// Swaps in another chain (a hot reload), between batches; returns the old one.
    pub fn replace_chain(&mut self, chain: Chain) -> Chain {
        std::mem::replace(&mut self.chain, chain)
    }

    /// Per-stage counters.
    pub fn stages(&self) -> Vec<StageSummary> {
        self.chain
            .stages()
            .iter()
            .map(|s| StageSummary {
                name: s.name().to_string(),
                plugin: s.plugin().label(),
                metrics: s.metrics().snapshot(),
            })
            .collect()
    }

    /// The chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
}

/// The run loop on its own: a native fake transform and in-memory sinks, no wasm, no I/O.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::report::{Emitted, Filtered, RejectKind, Rejected};
    use crate::sink::{Failed, SinkFuture, Unwritable};
    use crate::source::Unreadable;

    /// Decides by body: `filter` is filtered, `reject…` rejected, `fan` emits two records,
    /// anything else passes. Counts its batches; `broken` loses an input from its report.
    #[derive(Default)]
    struct Fake {
        batches: Arc<AtomicUsize>,
        broken: bool,
    }

    impl Transform for Fake {
        fn run(&mut self, batch: Vec<Record>) -> BatchReport {
            self.batches.fetch_add(1, Ordering::SeqCst);
            let mut report = BatchReport { inputs: batch.len(), chain: "fake@0".into(), ..Default::default() };
            for (origin, record) in batch.into_iter().enumerate() {
                match record.body.as_str() {
                    "filter" => report.filtered.push(Filtered { origin, stage: "fake".into(), record_id: record.id }),
                    b if b.starts_with("reject") => report.rejected.push(Rejected {
                        origin,
                        stage: "fake".into(),
                        kind: RejectKind::PluginReject,
                        reason: "bad".into(),
                        record,
                    }),
                    "fan" => {
                        let second = Record::new(format!("{}/2", record.id), "fan");
                        report.emitted.push(Emitted { origin, record });
                        report.emitted.push(Emitted { origin, record: second });
                    }
                    _ => report.emitted.push(Emitted { origin, record }),
                }
            }
            if self.broken {
                report.emitted.pop();
            }
            report
        }
    }

    /// Keeps what it is given; fails or refuses the record ids it is told to.
    #[derive(Default, Clone)]
    struct Memory {
        written: Arc<Mutex<Vec<String>>>,
        fail: BTreeSet<String>,
        refuse: BTreeSet<String>,
    }

    impl Sink for Memory {
        fn name(&self) -> String {
            "memory".into()
        }
        fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport> {
            let mut report = SinkReport::default();
            for (index, e) in delivery.emitted.iter().enumerate() {
                if self.fail.contains(&e.record.id) {
                    report.failed.push(Failed { index, reason: "throttled".into() });
                } else if self.refuse.contains(&e.record.id) {
                    report.unwritable.push(Unwritable { index, reason: "too big".into() });
                } else {
                    self.written.lock().unwrap().push(e.record.id.clone());
                    report.written += 1;
                }
            }
            Box::pin(std::future::ready(Ok(report)))
        }
    }

    #[derive(Default, Clone)]
    struct Letters {
        sent: Arc<Mutex<Vec<DeadLetter>>>,
        fail: BTreeSet<String>,
    }

    impl DeadLetterSink for Letters {
        fn send<'a>(&'a mut self, letters: &'a [DeadLetter]) -> SinkFuture<'a, Vec<Failed>> {
            let mut failed = Vec::new();
            for (index, l) in letters.iter().enumerate() {
                if self.fail.contains(&l.source_id) {
                    failed.push(Failed { index, reason: "queue unavailable".into() });
                } else {
                    self.sent.lock().unwrap().push(l.clone());
                }
            }
            Box::pin(std::future::ready(Ok(failed)))
        }
    }

    fn records(bodies: &[&str]) -> Vec<SourceItem> {
        bodies.iter().enumerate().map(|(i, b)| SourceItem::Record(Record::new(format!("r{i}"), *b))).collect()
    }

    fn outputs(sink: &Memory, letters: &Letters) -> Outputs {
        let io = Io::own().unwrap();
        Outputs { sinks: vec![Box::new(sink.clone())], dead_letter: Box::new(letters.clone()), io }
    }

    fn runner(sink: &Memory, letters: &Letters, batch_size: usize) -> Runner<Fake> {
        Runner::new(Fake::default(), outputs(sink, letters), batch_size)
    }

    #[test]
    fn every_input_leaves_exactly_once() {
        let (sink, letters) = (Memory::default(), Letters::default());
        let mut r = runner(&sink, &letters, 3);
        let mut items = records(&["a", "filter", "reject-me", "fan", "b"]);
        let bad = |id: &str| Unreadable { id: id.into(), raw: "{".into(), reason: "not JSON".into() };
        items.insert(2, SourceItem::Unreadable(bad("f#3")));
        items.push(SourceItem::Failed(bad("f#9")));
        r.run(items.into_iter(), |_| {}).unwrap();
        let s = r.stats();
        assert!(s.is_conserved(), "{s:?}");
        assert_eq!((s.inputs, s.delivered, s.filtered, s.rejected, s.unreadable, s.failed), (7, 3, 1, 1, 1, 1));
        assert_eq!(s.outputs, 4, "fan-out counts each output");
        assert_eq!(*sink.written.lock().unwrap(), ["r0", "r3", "r3/2", "r4"]);
        let sent = letters.sent.lock().unwrap();
        let kinds: Vec<(&str, &str, &str)> =
            sent.iter().map(|l| (l.source_id.as_str(), l.stage.as_str(), l.kind.as_str())).collect();
        assert_eq!(kinds, [("f#3", "source", "unreadable"), ("r2", "fake", "plugin-reject")]);
        assert_eq!(r.failures().keys().collect::<Vec<_>>(), ["f#9"]);
        assert_eq!(s.dead_letters.values().sum::<u64>(), 2);
    }

    #[test]
    fn a_sink_failure_fails_just_its_input_and_an_unwritable_record_is_dead_lettered() {
        let mut sink = Memory::default();
        sink.fail.insert("r1".into());
        sink.refuse.insert("r2".into());
        let letters = Letters::default();
        let mut r = runner(&sink, &letters, 10);
        r.run(records(&["a", "b", "c", "d"]).into_iter(), |_| {}).unwrap();
        let s = r.stats();
        assert!(s.is_conserved(), "{s:?}");
        assert_eq!((s.delivered, s.failed, s.unwritable), (3, 1, 1));
        assert_eq!(r.failures()["r1"], "sink:memory: throttled");
        let sent = letters.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].stage.as_str(), sent[0].kind.as_str(), sent[0].reason.as_str()),
            ("sink:memory", "unwritable", "too big")
        );
    }

    /// An SQS message of a FIFO queue (`group`) or a standard one (`None`).
    #[allow(clippy::field_reassign_with_default)] // the event type is non-exhaustive
    fn sqs(id: &str, group: Option<&str>, body: &str) -> crate::source::lambda::SqsMessage {
        let mut m = crate::source::lambda::SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        if let Some(g) = group {
            m.attributes.insert("MessageGroupId".into(), g.into());
        }
        m
    }

    #[test]
    fn a_failure_in_a_fifo_group_stops_its_later_messages_and_no_other_group() {
        let mut sink = Memory::default();
        sink.fail.insert("m2".into());
        let letters = Letters::default();
        let mut r = runner(&sink, &letters, 10);
        let batches = r.chain.batches.clone();
        let objects = crate::source::objects::Objects::local(std::env::temp_dir());
        let messages = [
            sqs("m1", Some("g1"), r#"{"n":1}"#),
            sqs("m2", Some("g1"), r#"{"n":2}"#),
            sqs("m3", Some("g1"), r#"{"n":3}"#),
            sqs("m4", Some("g2"), r#"{"n":4}"#),
            sqs("m5", Some("g2"), r#"{"n":5}"#),
            sqs("m6", Some("g1"), r#"{"n":6}"#),
        ];
        let failed = r.run_sqs_event(&messages, &objects).unwrap().failed;
        assert_eq!(failed.keys().collect::<Vec<_>>(), ["m2", "m3", "m6"], "{failed:?}");
        assert_eq!(failed["m2"], "sink:memory: throttled");
        assert!(failed["m3"].starts_with("not processed: message m2 before it in FIFO message group \"g1\" failed"));
        // m3 and m6 never reached the chain or a sink; g2 went on.
        let mut written = sink.written.lock().unwrap().clone();
        written.sort();
        assert_eq!(written, ["m1", "m4", "m5"]);
        assert_eq!(batches.load(Ordering::SeqCst), 2, "round 1 (m1, m4), round 2 (m2, m5); g1 stopped");
        let s = r.stats();
        assert!(s.is_conserved(), "{s:?}");
        assert_eq!((s.inputs, s.delivered, s.failed), (6, 3, 3));

        // A standard queue's batch: a failure fails just its message.
        let mut r = runner(&sink, &letters, 10);
        let standard = [sqs("s1", None, "{}"), sqs("m2", None, "{}"), sqs("s3", None, "{}")];
        let failed = r.run_sqs_event(&standard, &objects).unwrap().failed;
        assert_eq!(failed.keys().collect::<Vec<_>>(), ["m2"]);
    }

    #[test]
    fn a_dead_letter_that_cannot_be_sent_fails_its_input() {
        let sink = Memory::default();
        let mut letters = Letters::default();
        letters.fail.insert("r0".into());
        let mut r = runner(&sink, &letters, 10);
        r.run(records(&["reject", "reject"]).into_iter(), |_| {}).unwrap();
        let s = r.stats();
        assert!(s.is_conserved(), "{s:?}");
        assert_eq!((s.rejected, s.failed), (1, 1));
        assert!(r.failures()["r0"].starts_with("dead-letter: queue unavailable"));
    }

    #[test]
    fn at_the_deadline_the_remaining_records_fail_unprocessed() {
        let (sink, letters) = (Memory::default(), Letters::default());
        let mut r = runner(&sink, &letters, 2);
        let batches = r.chain.batches.clone();
        r.set_deadline(Some(Box::new(move || batches.load(Ordering::SeqCst) >= 1)));
        let failed = r.run_items(records(&["a", "b", "c", "d", "e"]).into_iter(), Drain::Each, |_| {}).unwrap();
        assert_eq!(failed.keys().collect::<Vec<_>>(), ["r2", "r3", "r4"]);
        assert!(failed.values().all(|reason| reason == DEADLINE_REASON));
        assert_eq!(*sink.written.lock().unwrap(), ["r0", "r1"]);
        assert!(r.stats().is_conserved(), "{:?}", r.stats());
    }

    /// Checkpoints kept in memory, counting lookups.
    #[derive(Default, Clone)]
    struct Progress {
        done: Arc<Mutex<BTreeMap<String, Resume>>>,
        lookups: Arc<AtomicUsize>,
    }

    impl Progress {
        fn items(&self, id: &str) -> u64 {
            self.done.lock().unwrap()[id].items
        }
    }

    /// A record stream as a unit resumed by count.
    fn counted(
        items: impl Iterator<Item = SourceItem> + Send + 'static,
    ) -> impl FnOnce(Option<Resume>, Marks) -> Items {
        move |from, marks| crate::source::resume::by_count(Box::new(items), from.as_ref(), &marks)
    }

    impl Checkpoints for Progress {
        fn done(&self, id: &str) -> Option<Resume> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.done.lock().unwrap().get(id).cloned()
        }
        fn save(&self, id: &str, at: &Resume) {
            self.done.lock().unwrap().insert(id.into(), at.clone());
        }
        fn clear(&self, id: &str) {
            self.done.lock().unwrap().remove(id);
        }
    }

    /// An object cut off by the deadline keeps how far it got; its redelivery skips that many
    /// rows and finishes, then forgets the checkpoint. A first delivery never looks one up.
    #[test]
    fn an_object_cut_off_by_the_deadline_resumes_after_its_done_rows() {
        let (sink, letters, progress) = (Memory::default(), Letters::default(), Progress::default());
        let rows = || records(&["a", "b", "c", "d", "e"]).into_iter();

        let mut first = runner(&sink, &letters, 2);
        first.set_checkpoints(Some(Box::new(progress.clone())));
        let batches = first.chain.batches.clone();
        first.set_deadline(Some(Box::new(move || batches.load(Ordering::SeqCst) >= 1)));
        let unit = first.run_resumable("s3://in/o.csv", counted(rows()), false, None).unwrap();
        assert_eq!(unit.failure.map(|(id, _)| id).as_deref(), Some(DEADLINE_ID));
        assert_eq!(unit.cut.map(|r| r.items), Some(2), "cut by the deadline after two rows");
        assert_eq!(progress.lookups.load(Ordering::SeqCst), 0, "a first delivery has no checkpoint to look up");
        assert_eq!(progress.items("s3://in/o.csv"), 2);

        let mut retry = runner(&sink, &letters, 2);
        retry.set_checkpoints(Some(Box::new(progress.clone())));
        let unit = retry.run_resumable("s3://in/o.csv", counted(rows()), true, None).unwrap();
        assert_eq!(unit, Unit { failure: None, cut: None });
        assert_eq!(progress.lookups.load(Ordering::SeqCst), 1);
        assert!(progress.done.lock().unwrap().is_empty(), "finished: the checkpoint is gone");
        assert_eq!(*sink.written.lock().unwrap(), ["r0", "r1", "r2", "r3", "r4"], "every row once");
    }

    /// Resuming skips exactly the rows done: a read failure among them fails the unit and keeps
    /// the checkpoint (it used to be skipped like a row, the stream ended, and the object was
    /// acknowledged with its remaining rows never read); an input shorter than its checkpoint is
    /// failed and started over.
    #[test]
    fn a_resume_never_skips_past_a_read_failure_or_the_end() {
        let (sink, letters, progress) = (Memory::default(), Letters::default(), Progress::default());
        progress.done.lock().unwrap().insert("s3://in/o.csv".into(), Resume { items: 3, ..Resume::default() });
        let failed = |id: &str| {
            SourceItem::Failed(Unreadable { id: id.into(), raw: String::new(), reason: "connection reset".into() })
        };
        let mut r = runner(&sink, &letters, 2);
        r.set_checkpoints(Some(Box::new(progress.clone())));
        // The re-read fails at its second row, before the three done rows were skipped.
        let broken = records(&["a"]).into_iter().chain([failed("s3://in/o.csv#2")]);
        let failure = r.run_resumable("s3://in/o.csv", counted(broken), true, None).unwrap().failure.expect("failed");
        assert!(failure.1.contains("connection reset"), "{failure:?}");
        assert_eq!(progress.items("s3://in/o.csv"), 3, "the checkpoint stays");
        assert!(sink.written.lock().unwrap().is_empty());

        // Two rows where three were done: failed, and the retry starts from the first row.
        let short = records(&["a", "b"]).into_iter();
        let failure = r.run_resumable("s3://in/o.csv", counted(short), true, None).unwrap().failure.expect("failed");
        assert!(failure.1.contains("has 2 items, fewer than the 3"), "{failure:?}");
        assert!(progress.done.lock().unwrap().is_empty());
        let again = counted(records(&["a", "b"]).into_iter());
        assert_eq!(r.run_resumable("s3://in/o.csv", again, true, None).unwrap().failure, None);
        assert_eq!(*sink.written.lock().unwrap(), ["r0", "r1"]);
    }

    #[test]
    fn an_object_that_fails_to_read_mid_batch_writes_nothing_of_that_batch() {
        let (sink, letters) = (Memory::default(), Letters::default());
        let mut r = runner(&sink, &letters, 2);
        let reset =
            SourceItem::Failed(Unreadable { id: "o#4".into(), raw: String::new(), reason: "connection reset".into() });
        let rows = records(&["a", "b", "c"]).into_iter().chain([reset]);
        let failure = r.run_resumable("s3://in/o.csv", counted(rows), false, None).unwrap().failure.expect("failed");
        assert!(failure.1.contains("connection reset"), "{failure:?}");
        // The first batch (r0, r1) was written; of the second only r2 was read before the
        // reset: not written, as the retry's second batch is r2 and r3 together.
        assert_eq!(*sink.written.lock().unwrap(), ["r0", "r1"]);
        let s = r.stats();
        assert!(s.is_conserved(), "{s:?}");
        assert_eq!((s.inputs, s.delivered, s.failed), (4, 2, 2));
    }

    #[test]
    fn an_object_stops_at_its_first_failed_batch_and_keeps_the_rows_before_it() {
        let (mut sink, letters, progress) = (Memory::default(), Letters::default(), Progress::default());
        sink.fail.insert("r3".into());
        let mut r = runner(&sink, &letters, 2);
        r.set_checkpoints(Some(Box::new(progress.clone())));
        let rows = records(&["a", "b", "c", "d", "e", "f"]).into_iter();
        let failure = r.run_resumable("s3://in/o.csv", counted(rows), false, None).unwrap().failure.expect("failed");
        assert_eq!(failure.0, "r3");
        // r0, r1 done; the batch of r2, r3 failed (r2 written, absorbed on the retry); r4, r5
        // not run: the retry runs them, after the checkpoint.
        assert_eq!(*sink.written.lock().unwrap(), ["r0", "r1", "r2"]);
        assert_eq!(progress.items("s3://in/o.csv"), 2);
        assert!(r.stats().is_conserved(), "{:?}", r.stats());
    }

    /// A sink whose every write takes `0` (throttled and backing off, or a slow answer).
    struct Slow(Duration);

    impl Sink for Slow {
        fn name(&self) -> String {
            "slow".into()
        }
        fn write<'a>(&'a mut self, delivery: &'a Delivery<'a>) -> SinkFuture<'a, SinkReport> {
            let (delay, written) = (self.0, delivery.emitted.len());
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(SinkReport { written, ..SinkReport::default() })
            })
        }
    }

    #[test]
    fn a_write_still_running_at_the_deadline_fails_its_records_instead_of_the_invocation() {
        let letters = Letters::default();
        let sinks: Vec<Box<dyn Sink>> = vec![Box::new(Slow(Duration::from_secs(60)))];
        let outputs = Outputs { sinks, dead_letter: Box::new(letters.clone()), io: Io::own().unwrap() };
        let mut r = Runner::new(Fake::default(), outputs, 10);
        r.set_write_deadline(Some(Instant::now() + Duration::from_millis(300)));
        let started = Instant::now();
        let failed = r.run_items(records(&["a", "b"]).into_iter(), Drain::Each, |_| {}).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "the write was abandoned at the deadline");
        assert_eq!(failed.keys().collect::<Vec<_>>(), ["r0", "r1"]);
        assert!(failed["r0"].contains("the invocation's deadline came before the write was over"), "{failed:?}");
        let s = r.stats();
        assert!(s.is_conserved(), "{s:?}");
        assert_eq!((s.inputs, s.failed), (2, 2));
    }

    #[test]
    fn a_transform_that_loses_a_record_stops_the_run() {
        let (sink, letters) = (Memory::default(), Letters::default());
        let mut r = Runner::new(Fake { broken: true, ..Fake::default() }, outputs(&sink, &letters), 10);
        let err = r.run(records(&["a", "b"]).into_iter(), |_| {}).unwrap_err();
        assert!(matches!(err, RunError::Conservation { inputs: 2, .. }), "{err}");
        assert!(sink.written.lock().unwrap().is_empty(), "nothing of a broken batch is written");
    }
}
