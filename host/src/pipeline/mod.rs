//! A pipeline run: a source's items, in batches, through the chain, into the sinks.
//!
//! The [`Runner`] is the one loop both the CLI's local runner and the Lambda drive. For every
//! batch it accounts for each input exactly once: records that reach the end go to every sink;
//! rejected records, unreadable inputs and records a sink cannot write go to the dead-letter
//! sink with stage, kind and reason; filtered records are counted. [`RunStats`] keeps the
//! totals and [`RunStats::is_conserved`] checks them.

pub mod config;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chain::Chain;
use crate::metrics::MetricsSnapshot;
use crate::record::Record;
use crate::report::BatchReport;
use crate::sink::{DeadLetter, DeadLetterSink, Delivery, Sink, SinkError, SinkReport};
use crate::source::SourceItem;

pub use config::{ConfigError, Pipeline};

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

/// Drives a chain over a source into sinks.
pub struct Runner {
    chain: Chain,
    sinks: Vec<Box<dyn Sink>>,
    dead_letter: Box<dyn DeadLetterSink>,
    batch_size: usize,
    stats: RunStats,
    failures: BTreeMap<String, String>,
    /// Whether to stop starting batches (the invocation's deadline is near).
    out_of_time: Option<Box<dyn Fn() -> bool + Send>>,
    /// Where progress through an object cut off by the deadline is kept.
    checkpoints: Option<Box<dyn Checkpoints>>,
}

/// Progress through long inputs (an S3 object's rows) kept between runs, so that an object cut
/// off by the deadline resumes where it stopped instead of starting over (the Lambda keeps
/// them in S3). A checkpoint only ever counts rows all of whose effects were completed, so a
/// lost or stale one costs repeated work, never a lost row: the sinks absorb repeats.
pub trait Checkpoints: Send {
    /// How many leading items of `id` are done (0 when unknown).
    fn done(&self, id: &str) -> u64;
    /// Records that the first `done` items of `id` are done.
    fn save(&self, id: &str, done: u64);
    /// `id` is finished: forget its checkpoint.
    fn clear(&self, id: &str);
}

/// What [`Runner::run_items`] does with the rest of its items when time runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Report each remaining item failed (they are records already in memory).
    Each,
    /// Stop reading (an object stream) and report one failure under [`DEADLINE_ID`].
    Abandon,
}

/// The failure key of an abandoned object stream.
pub const DEADLINE_ID: &str = "(deadline)";

/// The failure reason of inputs not finished because the invocation ran out of time.
pub const DEADLINE_REASON: &str = "the invocation's deadline came before this input was finished; it is retried \
     (what was already written is not written twice)";

impl Runner {
    pub fn new(
        chain: Chain,
        sinks: Vec<Box<dyn Sink>>,
        dead_letter: Box<dyn DeadLetterSink>,
        batch_size: usize,
    ) -> Self {
        Runner {
            chain,
            sinks,
            dead_letter,
            batch_size: batch_size.max(1),
            stats: RunStats::default(),
            failures: BTreeMap::new(),
            out_of_time: None,
            checkpoints: None,
        }
    }

    /// Keeps progress through objects cut off by the deadline (see [`Checkpoints`]).
    pub fn set_checkpoints(&mut self, checkpoints: Option<Box<dyn Checkpoints>>) {
        self.checkpoints = checkpoints;
    }

    /// Runs one long input (an object's rows, as one unit) under `id`: resumes after the
    /// checkpointed rows, and when the deadline cuts it off, saves how far it got. Returns the
    /// first failure (the unit is to be retried), if any. `redelivered: false` says this is a
    /// first delivery, which cannot have a checkpoint: no lookup is made.
    pub fn run_resumable(
        &mut self,
        id: &str,
        items: impl Iterator<Item = SourceItem>,
        redelivered: bool,
    ) -> Result<Option<(String, String)>, SinkError> {
        let skip = match &self.checkpoints {
            Some(c) if redelivered => c.done(id),
            _ => 0,
        };
        if skip > 0 {
            tracing::info!(input = %id, rows = skip, "resuming after the rows done before the last deadline");
        }
        let (failures, done) = self.run_stream(items.skip(skip as usize), Drain::Abandon, |_| {})?;
        if let Some(c) = &self.checkpoints {
            if failures.contains_key(DEADLINE_ID) && done > 0 {
                c.save(id, skip + done);
            } else if failures.is_empty() && skip > 0 {
                c.clear(id);
            }
        }
        Ok(failures.into_iter().next())
    }

    /// Sets the test for running out of time, checked before every batch (the Lambda: less
    /// than a safety margin left before the invocation's deadline). Once it says so, no new
    /// batch starts: records already in memory are reported failed unprocessed, and an object
    /// being read is abandoned and its message failed; the redelivery runs them again, and the
    /// sinks' idempotence absorbs what was written before the deadline. `None` removes it.
    pub fn set_deadline(&mut self, out_of_time: Option<Box<dyn Fn() -> bool + Send>>) {
        self.out_of_time = out_of_time;
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
    ) -> Result<(), SinkError> {
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
    pub fn run_sqs_event(
        &mut self,
        records: &[serde_json::Value],
        objects: &crate::source::objects::Objects,
    ) -> Result<BTreeMap<String, String>, SinkError> {
        use crate::source::lambda::{Envelope, envelope, read_objects, sqs_records};
        let mut failed = BTreeMap::new();
        // Records first (in memory, quick), then the objects, one message at a time.
        let mut plain = Vec::new();
        let mut object_messages = Vec::new();
        for (i, m) in records.iter().enumerate() {
            let id = m.get("messageId").and_then(serde_json::Value::as_str).map(String::from);
            let id = id.unwrap_or_else(|| format!("sqs#{}", i + 1));
            match m.get("body").and_then(serde_json::Value::as_str).map(envelope) {
                Some(Envelope::S3(refs)) => {
                    // SQS counts receives: on the first, no checkpoint can exist yet.
                    let receives = m.pointer("/attributes/ApproximateReceiveCount").and_then(serde_json::Value::as_str);
                    let redelivered = receives.and_then(|n| n.parse::<u32>().ok()).is_none_or(|n| n > 1);
                    object_messages.push((id, refs, redelivered))
                }
                Some(Envelope::TestEvent) => tracing::debug!(message = %id, "skipping s3:TestEvent message"),
                Some(Envelope::Notification(message)) => {
                    let mut m = m.clone();
                    m["body"] = serde_json::Value::String(message);
                    plain.push(m);
                }
                _ => plain.push(m.clone()),
            }
        }
        if !plain.is_empty() {
            failed.extend(self.run_items(sqs_records(&plain).into_iter(), Drain::Each, |_| {})?);
        }
        for (id, refs, redelivered) in object_messages {
            // The rows of its objects, as one unit: any failed row fails the message (a
            // redelivery re-reads the object; the sinks absorb what was already done).
            if self.out_of_time() {
                failed.insert(id, DEADLINE_REASON.to_string());
                continue;
            }
            if let Some((row, reason)) = self.run_resumable(&id, read_objects(refs, objects.clone()), redelivered)? {
                failed.insert(id, format!("{row}: {reason}"));
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
    ) -> Result<BTreeMap<String, String>, SinkError> {
        Ok(self.run_stream(items, drain, on_batch)?.0)
    }

    /// [`Runner::run_items`], also returning how many leading items were done (every effect
    /// completed) before the first failure or the deadline: a checkpoint.
    fn run_stream(
        &mut self,
        items: impl Iterator<Item = SourceItem>,
        drain: Drain,
        mut on_batch: impl FnMut(&RunStats),
    ) -> Result<(BTreeMap<String, String>, u64), SinkError> {
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
                    }
                }
            }
            let batch = std::mem::take(&mut records);
            let outcome = self.process(batch, std::mem::take(&mut letters))?;
            for (id, reason) in outcome.failed {
                failures.entry(id).or_insert(reason);
            }
            if failures.is_empty() {
                done += pulled;
            }
            self.stats.elapsed = before + started.elapsed();
            on_batch(&self.stats);
        }
        self.stats.elapsed = before + started.elapsed();
        Ok((failures, done))
    }

    /// Runs one batch of records through the chain and into the sinks. `unreadable` are
    /// source-level dead letters (inputs that could not be read as records) to send along.
    pub fn process(&mut self, batch: Vec<Record>, unreadable: Vec<DeadLetter>) -> Result<BatchOutcome, SinkError> {
        let inputs = batch.clone(); // for dead letters: the record as it entered
        let report = if batch.is_empty() { BatchReport::default() } else { self.chain.run(batch) };
        let original = |origin: usize, seen: &Record| {
            let input = &inputs[origin];
            (input != seen).then(|| input.clone())
        };
        if let Err(e) = report.check_conservation() {
            // A host bug, not a plugin's: fail loudly rather than lose records.
            return Err(SinkError { sink: "chain".into(), message: format!("conservation check failed: {e}") });
        }
        self.stats.batches += u64::from(!inputs.is_empty());
        self.stats.outputs += report.emitted.len() as u64;

        // Each input's fate: failed if any of its effects could not be completed, else
        // delivered if any path reached the end, else rejected if any path was rejected, else
        // filtered. Letters carry the input they came from (`None`: a source-level letter).
        const FILTERED: u8 = 0;
        const REJECTED: u8 = 1;
        const DELIVERED: u8 = 2;
        const FAILED: u8 = 3;
        let mut fate = vec![FILTERED; report.inputs];
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        let mut letters: Vec<DeadLetter> = Vec::with_capacity(unreadable.len() + report.rejected.len());
        let mut letter_origin: Vec<Option<usize>> = Vec::with_capacity(letters.capacity());
        for l in unreadable {
            letters.push(l);
            letter_origin.push(None);
        }
        for r in &report.rejected {
            fate[r.origin] = fate[r.origin].max(REJECTED);
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
            fate[e.origin] = fate[e.origin].max(DELIVERED);
        }

        if !report.emitted.is_empty() {
            let delivery = Delivery { emitted: &report.emitted, chain: &report.chain };
            for sink in &mut self.sinks {
                let written = match sink.write(&delivery) {
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
                    fate[origin] = FAILED;
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
            let failures = self.dead_letter.send(&letters).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "dead-letter sink failed for the whole batch");
                (0..letters.len()).map(|index| crate::sink::Failed { index, reason: e.to_string() }).collect()
            });
            for f in failures {
                if let Some(flag) = unsent.get_mut(f.index) {
                    *flag = true;
                    let l = &letters[f.index];
                    failed.entry(l.source_id.clone()).or_insert_with(|| format!("dead-letter: {}", f.reason));
                    if let Some(origin) = letter_origin[f.index] {
                        fate[origin] = FAILED;
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
            match *f {
                FAILED => self.stats.failed += 1,
                DELIVERED => self.stats.delivered += 1,
                REJECTED => self.stats.rejected += 1,
                _ => self.stats.filtered += 1,
            }
        }
        Ok(BatchOutcome { report, failed })
    }

    /// Swaps in another chain (a hot reload), between batches; returns the old one.
    pub fn replace_chain(&mut self, chain: Chain) -> Chain {
        std::mem::replace(&mut self.chain, chain)
    }

    /// Inputs (by source id) that failed so far, with the first reason; see [`BatchOutcome`].
    pub fn failures(&self) -> &BTreeMap<String, String> {
        &self.failures
    }

    /// Totals so far.
    pub fn stats(&self) -> &RunStats {
        &self.stats
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
