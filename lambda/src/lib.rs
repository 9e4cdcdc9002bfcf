//! The weir Lambda function: SQS and S3 events through the pipeline's published plugin chain
//! into DynamoDB, SNS, S3 and the dead-letter queue, picking up new plugin versions from S3
//! while warm.
//!
//! The binary (`bootstrap`, `src/main.rs`) is thin: it reads [`Settings`] once, builds the AWS
//! clients once, reads the deployment's bindings document once (where each sink of the
//! pipeline lives: [`Deployment`]), and hands every event to one [`Host`] on a blocking
//! thread. The host:
//!
//! 1. refreshes the chain from the pipeline manifest ([`weir_host::live::LiveChain`]): at most
//!    every `WEIR_REFRESH_SECONDS`, a conditional GET; a new version is verified, compiled
//!    and swapped in *before* the event runs, so one event runs on one chain. A refused
//!    version is logged and counted (`Weir/PluginRefusals`), and the last good chain runs on.
//!    A version whose pipeline file does not fit the deployment (a sink the bindings lack, a
//!    table keyed otherwise, checked against the document and with `DescribeTable`) is
//!    refused the same way;
//! 2. runs the event, read as its `aws_lambda_events` type by the host
//!    ([`Event`](weir_host::source::lambda::Event)); the answer is a typed `SqsBatchResponse`:
//!    - **SQS batch**: every message (records, S3 notifications, SNS-wrapped ones) through
//!      [`Runner::run_sqs_event`](weir_host::pipeline::Runner::run_sqs_event); the answer's
//!      `batchItemFailures` lists exactly the messages whose effects could not be completed,
//!      and SQS redelivers just those. Rejected records went to the dead-letter queue: done.
//!    - **S3 notification** (direct, asynchronous invoke): its objects' rows; if any effect
//!      failed the invocation fails, and Lambda's retry re-reads the objects (the sinks are
//!      idempotent, so rows already written are not written twice);
//!    - **SNS notification** (of S3 events): the same as S3.
//! 3. stops starting batches when the invocation's deadline is near ([`safety_margin`]), and
//!    abandons a batch's writes still running just before it ([`answer_reserve`]):
//!    unfinished messages are failed and redelivered, and an object being read is
//!    checkpointed ([`S3Checkpoints`](weir_host::pipeline::checkpoints::S3Checkpoints)) so that
//!    its retry resumes after the rows already done (with a ranged GET for plain CSV and JSON
//!    Lines). An object message from a standard input queue that made progress is instead
//!    continued in a new message ([`continuation`]), so that it does not spend a receive;
//!    see the README's failure policy.
//! 4. writes per-stage and per-invocation metrics as CloudWatch EMF ([`emf`]).

pub mod continuation;
pub mod emf;
pub mod settings;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::BatchItemFailure;
use serde_json::Value;
use weir_host::aws::Aws;
use weir_host::cache::ArtifactCache;
use weir_host::live::{LiveChain, Refresh};
use weir_host::manifest::{Manifest, ManifestStore};
use weir_host::metrics::MetricsSnapshot;
use weir_host::pipeline::build::WireError;
use weir_host::pipeline::checkpoints::S3Checkpoints;
use weir_host::pipeline::deployment::InputBinding;
use weir_host::pipeline::deployment::{DeployError, Deployment};
use weir_host::pipeline::{Bindings, Pipeline, RunStats, Runner, build};
use weir_host::source::lambda::{Event, EventError, SqsBatchResponse, s3_event_id, s3_items, sns_event_id, sns_items};
use weir_host::source::objects::Objects;
use weir_host::source::resume::by_count;
use weir_host::{Chain, Engine};

pub use emf::Emf;
pub use settings::{Settings, SettingsError};

/// Why an invocation failed as a whole (Lambda retries it, or SQS redelivers the batch).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(
        "no plugin chain is loaded, so nothing can run: pipeline {pipeline:?}: no version of s3://{bucket}/{key} \
         has loaded (see the refusal logged above)"
    )]
    NoChain { pipeline: String, bucket: String, key: String },
    #[error("unsupported event: {0}")]
    UnknownEvent(#[from] EventError),
    #[error("{count} input(s) could not be completed and are retried; first: {first}")]
    Failed { count: usize, first: String },
    #[error("pipeline version {version}: {source}")]
    Install { version: u64, source: InstallError },
    #[error("host error: {0}")]
    Host(#[from] weir_host::pipeline::RunError),
}

/// Errors building the host at cold start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("wasm engine: {0}")]
    Engine(#[source] weir_host::engine::EngineError),
}

/// Why a version that passed its checks could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// The running pipeline: its runner (chain + sinks) and where S3 events are read.
struct Active {
    runner: Runner,
    objects: Objects,
    /// The input queue, where objects cut off by the deadline are continued.
    input: Option<InputBinding>,
    /// The pipeline file the sinks were built from.
    definition: String,
    version: u64,
}

/// One warm function instance's state.
pub struct Host {
    settings: Settings,
    deployment: Arc<Deployment>,
    aws: Aws,
    live: LiveChain,
    active: Option<Active>,
    emf: Emf,
}

/// The time kept in reserve before the deadline: no batch starts with less left. A fifth of
/// the invocation's time, at most 5 s.
pub fn safety_margin(remaining: Duration) -> Duration {
    (remaining / 5).min(Duration::from_secs(5))
}

/// The time kept to answer after the last write: a batch's writes still running this close to
/// the deadline are abandoned and its records reported failed (a fifth of the safety margin).
pub fn answer_reserve(remaining: Duration) -> Duration {
    safety_margin(remaining) / 5
}

/// Parses a manifest's pipeline file as the function deploys it, bound to the deployment.
fn deployed(
    manifest: &Manifest,
    settings: &Settings,
    deployment: &Deployment,
) -> Result<(Pipeline, Bindings), DeployError> {
    let file = PathBuf::from(format!("s3://{}/{} (definition)", settings.plugins_bucket, settings.manifest_key));
    deployment.load(&file, manifest.definition.as_deref(), &bindings_source(settings))
}

/// Where the bindings document is, for messages.
fn bindings_source(settings: &Settings) -> String {
    format!("s3://{}/{}", settings.plugins_bucket, settings.bindings_key)
}

impl Host {
    /// Builds the host: the wasm engine, the precompiled cache and the manifest follower, for
    /// the deployment's resources (its bindings document, [`Deployment::read`]). No I/O beyond
    /// the cache directory; the first [`Host::refresh`] loads the chain.
    pub fn new(settings: Settings, deployment: Deployment, aws: Aws, emf: Emf) -> Result<Host, InitError> {
        let engine = Engine::new().map_err(InitError::Engine)?;
        let cache = match ArtifactCache::open(&settings.cache_dir) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "no precompiled-plugin cache; plugins compile on every cold start");
                None
            }
        };
        let mut store = ManifestStore::new(aws.s3.clone(), &settings.plugins_bucket, &settings.pipeline);
        store.key = settings.manifest_key.clone();
        let deployment = Arc::new(deployment);
        let (check_settings, check_deployment) = (settings.clone(), deployment.clone());
        let live = LiveChain::new(store, engine, cache, settings.signing_keys.clone(), settings.refresh).with_check(
            Box::new(move |m| deployed(m, &check_settings, &check_deployment).map(|_| ()).map_err(Into::into)),
        );
        Ok(Host { settings, deployment, aws, live, active: None, emf })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The running chain's version (`stage=plugin@sha` list) and manifest version.
    pub fn running(&self) -> Option<(String, u64)> {
        self.active.as_ref().map(|a| (a.runner.chain().version().to_string(), a.version))
    }

    /// Checks the manifest (if due) and swaps in a new version that passes every check.
    /// Blocks: call it from a blocking thread.
    pub fn refresh(&mut self) {
        let refresh = self.aws.runtime.clone().block_on(self.live.refresh(Instant::now()));
        match refresh {
            Refresh::NotDue | Refresh::Unchanged => {}
            Refresh::Loaded { manifest, chain } => {
                if let Err(e) = self.install(&manifest, *chain) {
                    // The pipeline file fit the bindings; the deployed tables or an AWS lookup did
                    // not. Tried again on the next manifest check: the stack may be fixed by then.
                    tracing::error!(version = manifest.version, error = %e, "cannot build the sinks of a new version; the last good chain keeps running, and the version is tried again on the next check");
                    self.live.not_installed();
                    self.emf.refusal();
                }
            }
            Refresh::Unavailable { reason } => match self.running() {
                Some((_, version)) => tracing::warn!(
                    pipeline = %self.settings.pipeline, reason = %reason, running = version,
                    "cannot check the pipeline manifest; the running chain stays"
                ),
                None => {
                    tracing::error!(pipeline = %self.settings.pipeline, reason = %reason, "no pipeline version can be loaded yet")
                }
            },
            Refresh::Refused { version, reason } => {
                let running = self.running().map(|(c, v)| format!("{v}: {c}"));
                match version {
                    Some(version) => tracing::error!(
                        pipeline = %self.settings.pipeline, version, reason = %reason, running = ?running,
                        "refused a pipeline version; the last good chain keeps running"
                    ),
                    None => tracing::error!(
                        pipeline = %self.settings.pipeline, reason = %reason,
                        "refused a manifest; the last good chain keeps running"
                    ),
                }
                self.emf.refusal();
            }
        }
    }

    fn install(&mut self, manifest: &Manifest, chain: Chain) -> Result<(), HandlerError> {
        let definition = manifest.definition.clone().unwrap_or_default();
        if let Some(active) = &mut self.active
            && active.definition == definition
        {
            active.runner.replace_chain(chain);
            active.version = manifest.version;
            return Ok(());
        }
        let install = |source: InstallError| HandlerError::Install { version: manifest.version, source };
        let (pipeline, bindings) =
            deployed(manifest, &self.settings, &self.deployment).map_err(|e| install(e.into()))?;
        let source = bindings_source(&self.settings);
        let checked = self.aws.runtime.block_on(self.deployment.check_tables(&pipeline, &self.aws.dynamodb, &source));
        checked.map_err(|e| install(e.into()))?;
        let wired =
            self.aws.runtime.block_on(build::aws(&pipeline, &self.aws, &bindings)).map_err(|e| install(e.into()))?;
        let objects = build::aws_objects(&pipeline, &self.aws, &bindings);
        let mut runner = Runner::new(chain, wired.outputs, pipeline.batch_size);
        let (s3, runtime) = (self.aws.s3.clone(), self.aws.runtime.clone());
        let at = &self.deployment.checkpoints;
        let checkpoints = S3Checkpoints::new(s3, runtime, &at.bucket, &at.prefix);
        runner.set_checkpoints(Some(Box::new(checkpoints)));
        let input = self.deployment.input.clone();
        self.active = Some(Active { runner, objects, input, definition, version: manifest.version });
        Ok(())
    }

    /// Runs one event (see the crate docs). `out_of_time` says when no new batch may start;
    /// `writes_end` is when every write of a batch must be over (its records fail otherwise).
    /// Blocks: call it from a blocking thread.
    pub fn handle(
        &mut self,
        payload: Value,
        out_of_time: Option<Box<dyn Fn() -> bool + Send>>,
        writes_end: Option<Instant>,
    ) -> Result<SqsBatchResponse, HandlerError> {
        self.refresh();
        let Some(active) = &mut self.active else {
            return Err(HandlerError::NoChain {
                pipeline: self.settings.pipeline.clone(),
                bucket: self.settings.plugins_bucket.clone(),
                key: self.settings.manifest_key.clone(),
            });
        };
        active.runner.set_deadline(out_of_time);
        active.runner.set_write_deadline(writes_end);
        let before = (active.runner.stats().clone(), stage_snapshots(&active.runner));
        let result = run_event(active, &self.aws, payload);
        active.runner.set_deadline(None);
        active.runner.set_write_deadline(None);
        let after = (active.runner.stats().clone(), stage_snapshots(&active.runner));
        emit_metrics(&self.emf, &before, &after);
        result
    }
}

fn stage_snapshots(runner: &Runner) -> BTreeMap<String, MetricsSnapshot> {
    runner.stages().into_iter().map(|s| (s.name, s.metrics)).collect()
}

fn run_event(active: &mut Active, aws: &Aws, payload: Value) -> Result<SqsBatchResponse, HandlerError> {
    let failures: BTreeMap<String, String> = match Event::from_value(payload)? {
        Event::Empty => BTreeMap::new(),
        Event::Sqs(event) => {
            let outcome = active.runner.run_sqs_event(&event.records, &active.objects)?;
            let mut failed = outcome.failed;
            for (id, at) in outcome.cut {
                let message = event.records.iter().find(|m| m.message_id.as_deref() == Some(id.as_str()));
                let (Some(input), Some(message)) = (&active.input, message) else { continue };
                if !continuation::applies(input, message) {
                    continue;
                }
                match aws.runtime.block_on(continuation::send(&aws.sqs, input, message, &at)) {
                    Ok(next) => {
                        tracing::info!(message = %id, continuation = %next, object = at.object, items = at.items, "cut off by the deadline; continued in a new message");
                        active.runner.clear_checkpoint(&id);
                        failed.remove(&id);
                    }
                    Err(e) => {
                        tracing::warn!(message = %id, error = %e, "cannot send the continuation; the message is redelivered and resumes at its checkpoint")
                    }
                }
            }
            for (id, reason) in &failed {
                tracing::warn!(message = %id, reason = %reason, "message not completed; reported for redelivery");
            }
            return Ok(batch_response(failed.into_keys()));
        }
        Event::S3(event) => {
            // One unit, resumable: identified by its objects and their versions.
            let (id, objects) = (s3_event_id(&event.records), active.objects.clone());
            let read = |from, marks| s3_items(&id, &event, objects, from, marks);
            active.runner.run_resumable(&id, read, true, None)?.failure.into_iter().collect()
        }
        Event::Sns(event) => {
            // One unit, resumable by count: identified by its SNS message ids.
            let items = sns_items(&event.records, &active.objects);
            let read = |from: Option<_>, marks| by_count(items, from.as_ref(), &marks);
            active.runner.run_resumable(&sns_event_id(&event.records), read, true, None)?.failure.into_iter().collect()
        }
    };
    match failures.iter().next() {
        None => Ok(SqsBatchResponse::default()),
        Some((id, reason)) => Err(HandlerError::Failed { count: failures.len(), first: format!("{id}: {reason}") }),
    }
}

/// The SQS partial-batch answer: these messages are redelivered, the rest are done.
fn batch_response(ids: impl Iterator<Item = String>) -> SqsBatchResponse {
    SqsBatchResponse { batch_item_failures: ids.map(|id| BatchItemFailure { item_identifier: id }).collect() }
}

fn emit_metrics(
    emf: &Emf,
    before: &(RunStats, BTreeMap<String, MetricsSnapshot>),
    after: &(RunStats, BTreeMap<String, MetricsSnapshot>),
) {
    let (b, a) = (&before.0, &after.0);
    emf.put(
        &[],
        &[
            ("Inputs", a.inputs.saturating_sub(b.inputs)),
            ("Delivered", a.delivered.saturating_sub(b.delivered)),
            ("Filtered", a.filtered.saturating_sub(b.filtered)),
            ("Rejected", a.rejected.saturating_sub(b.rejected)),
            ("Unreadable", a.unreadable.saturating_sub(b.unreadable)),
            ("Failed", a.failed.saturating_sub(b.failed)),
            ("Outputs", a.outputs.saturating_sub(b.outputs)),
        ],
    );
    let zero = MetricsSnapshot::default();
    for (stage, a) in &after.1 {
        let b = before.1.get(stage).unwrap_or(&zero);
        emf.put(
            &[("Stage", stage)],
            &[
                ("RecordsIn", a.records_in.saturating_sub(b.records_in)),
                ("RecordsOut", a.records_out.saturating_sub(b.records_out)),
                ("Filtered", a.filtered.saturating_sub(b.filtered)),
                ("Rejected", rejected(a).saturating_sub(rejected(b))),
                ("Isolations", a.isolations.saturating_sub(b.isolations)),
                ("Restarts", a.restarts.saturating_sub(b.restarts)),
            ],
        );
    }
}

fn rejected(m: &MetricsSnapshot) -> u64 {
    m.rejected.values().sum()
}

/// How long an invocation has: from the context's deadline (ms since the epoch).
pub fn remaining(deadline_ms: u64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_millis(deadline_ms).saturating_sub(now)
}

/// The function: one event on the shared host, on a blocking thread (wasm and the sinks
/// block). Main passes this to `lambda_runtime::run`; tests call it with a `LambdaEvent`.
pub async fn function_handler(
    host: Arc<Mutex<Host>>,
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    let left = remaining(context.deadline);
    // A deadline already past when the invocation starts is not one Lambda gives (it is
    // milliseconds since the epoch, in the future); a local runtime emulator or a skewed clock
    // can. Running nothing would fail every message forever, so it counts as unknown.
    let (out_of_time, writes_end): (Option<Box<dyn Fn() -> bool + Send>>, _) = if left.is_zero() {
        tracing::warn!(
            deadline_ms = context.deadline,
            "the invocation's deadline is not in the future; running without one"
        );
        (None, None)
    } else {
        let now = Instant::now();
        let stop_at = now + left.saturating_sub(safety_margin(left));
        (Some(Box::new(move || Instant::now() >= stop_at)), Some(now + left.saturating_sub(answer_reserve(left))))
    };
    let request = context.request_id.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut host = host.lock().unwrap_or_else(|p| p.into_inner());
        host.handle(payload, out_of_time, writes_end)
    })
    .await
    .map_err(|e| format!("the handler thread failed: {e}"))?;
    match result {
        Ok(v) => Ok(v),
        Err(e) => {
            tracing::error!(request = %request, error = %e, "invocation failed");
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safety_margin_is_a_fifth_of_the_time_at_most_five_seconds() {
        assert_eq!(safety_margin(Duration::from_secs(3)), Duration::from_millis(600));
        assert_eq!(safety_margin(Duration::from_secs(900)), Duration::from_secs(5));
        assert_eq!(remaining(0), Duration::ZERO, "a deadline in the past leaves nothing");
        assert_eq!(
            answer_reserve(Duration::from_secs(900)),
            Duration::from_secs(1),
            "writes end 1 s before the deadline"
        );
    }
}
