//! `weir run`: a whole pipeline on this machine, on the embedded default sinks, or with `--aws`
//! on the AWS sinks the same `weir.toml` names (DynamoDB, SNS, S3, the dead-letter queue), with
//! objects named by S3 events read from S3.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir_host::pipeline::build::{self, Wired};
use weir_host::pipeline::deployment::Deployment;
use weir_host::pipeline::{Bindings, Pipeline, RunStats, Runner, StageSummary};
use weir_host::source::{self, OpenOptions, Progress};
use weir_host::{ArtifactCache, Chain, Engine};

#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file.
    #[arg(default_value = "weir.toml")]
    pipeline: PathBuf,
    /// Input files: .csv, .jsonl, .json (array, SQS event or S3 event).
    #[arg(long, short, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// Output directory (the embedded database, notifications, objects, rejects).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Where objects named by S3 events are found: <root>/<bucket>/<key> (default: the event file's directory).
    #[arg(long)]
    s3_root: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 if any record was rejected.
    #[arg(long)]
    fail_on_reject: bool,
    /// Write to AWS (DynamoDB, SNS, S3, the dead-letter queue) instead of the output directory,
    /// and read objects named by S3 events from S3.
    #[arg(long)]
    aws: bool,
    /// Map a name in weir.toml to a deployed resource: KIND.NAME=RESOURCE with KIND one of
    /// table, topic, queue, bucket (e.g. table.orders=prod-orders). Unbound names stand for themselves.
    #[arg(long = "bind", value_name = "KIND.NAME=RESOURCE", requires = "aws")]
    bind: Vec<String>,
    /// Run on a deployed stack's resources: its bindings document
    /// (s3://<plugins bucket>/pipelines/<pipeline>/bindings.json, written by terraform), checked
    /// against the pipeline file exactly as the deployed function checks it.
    #[arg(long, value_name = "S3_URL", requires = "aws", conflicts_with = "bind")]
    deployment: Option<String>,
    #[command(flatten)]
    aws_args: crate::aws::AwsArgs,
}

/// What `--json` prints.
#[derive(serde::Serialize)]
struct Summary<'a> {
    pipeline: &'a str,
    chain: String,
    totals: &'a RunStats,
    records_per_sec: f64,
    conserved: bool,
    stages: Vec<StageSummary>,
    /// The output directory (local runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<&'a Path>,
    /// Inputs whose effects could not be completed, with the reason (to retry).
    failures: &'a std::collections::BTreeMap<String, String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut pipeline = Pipeline::load(&args.pipeline)?;
    let quiet = args.json;
    let engine = Engine::new().context("starting wasmtime")?;
    let cache =
        ArtifactCache::open(crate::cache_dir()).map_err(|e| tracing::warn!(error = %e, "no artifact cache")).ok();

    let spinner = if quiet { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    spinner.enable_steady_tick(Duration::from_millis(120));
    let specs = crate::plugins::load_stages(&engine, cache.as_ref(), &pipeline.stages, |stage| {
        spinner.set_message(format!("loading stage {stage}"));
    })?;
    spinner.finish_and_clear();
    let chain = Chain::new(specs)?;

    // On AWS: the clients' runtime lives as long as the run; the runner drives the sinks on it.
    let mut _runtime = None;
    let mut objects = None;
    let mut bindings = Bindings::parse(args.bind.iter().map(String::as_str))?;
    let wired = if args.aws {
        let (runtime, aws) = args.aws_args.connect()?;
        if let Some(url) = &args.deployment {
            let (bucket, key) = url
                .strip_prefix("s3://")
                .and_then(|rest| rest.split_once('/'))
                .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                .with_context(|| format!("--deployment {url:?}: expected s3://BUCKET/KEY"))?;
            let deployment = runtime.block_on(Deployment::read(&aws.s3, bucket, key))?;
            (pipeline, bindings) = deployment.bind(pipeline, url)?;
        }
        let wired = runtime.block_on(build::aws(&pipeline, &aws, &bindings))?;
        objects = Some(build::aws_objects(&pipeline, &aws, &bindings));
        _runtime = Some(runtime);
        wired
    } else {
        if args.aws_args.endpoint_url.is_some() || args.aws_args.dynamodb_endpoint_url.is_some() {
            tracing::info!("AWS endpoints are only used with --aws");
        }
        build::local(&pipeline, &args.out)?
    };
    let Wired { outputs, database: db, rejected_file: rejected_path } = wired;
    let mut runner = Runner::new(chain, outputs, pipeline.batch_size);

    let total_bytes: u64 = args.input.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{bar:30}] {msg} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    };
    let mut done_bytes = 0u64;
    for input in &args.input {
        let progress = Progress::default();
        let options = OpenOptions {
            s3_root: args.s3_root.clone(),
            objects: objects.clone(),
            progress: progress.clone(),
            limits: pipeline.source.limits,
        };
        let items = source::open_file(input, &options)?;
        let base = done_bytes;
        runner.run(items, |stats| {
            bar.set_position(base + progress.bytes());
            bar.set_message(format!("{} records, {:.0}/s", stats.inputs, stats.records_per_sec()));
        })?;
        done_bytes += std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
        bar.set_position(done_bytes);
    }
    bar.finish_and_clear();

    let stats = runner.stats().clone();
    let summary = Summary {
        pipeline: &pipeline.name,
        chain: runner.chain().version().to_string(),
        totals: &stats,
        records_per_sec: stats.records_per_sec(),
        conserved: stats.is_conserved(),
        stages: runner.stages(),
        out: (!args.aws).then_some(args.out.as_path()),
        failures: runner.failures(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, db.as_ref().map(|d| d.path()), rejected_path.as_deref(), &pipeline, &bindings);
    }
    if stats.failed > 0 {
        eprintln!(
            "error: {} input(s) could not be completed (listed above); nothing else was lost: run them again, \
             writes are idempotent",
            stats.failed
        );
        return Ok(ExitCode::from(1));
    }
    if !stats.is_conserved() {
        anyhow::bail!("record accounting does not add up: {stats:?}");
    }
    let rejected_any = stats.rejected + stats.unreadable + stats.unwritable + stats.failed > 0;
    Ok(if args.fail_on_reject && rejected_any { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn print_summary(
    s: &Summary<'_>,
    db: Option<&Path>,
    rejected: Option<&Path>,
    pipeline: &Pipeline,
    bindings: &Bindings,
) {
    let t = s.totals;
    println!(
        "pipeline {}  ({} batches, {:.2}s, {:.0} records/s)",
        s.pipeline,
        t.batches,
        t.elapsed.as_secs_f64(),
        s.records_per_sec
    );
    println!();
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>10}",
        "stage", "in", "out", "passed", "filtered", "rejected", "batch p50", "batch p99"
    );
    for st in &s.stages {
        let m = &st.metrics;
        let rejected: u64 = m.rejected.values().sum();
        println!(
            "{:<12} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}us {:>8}us",
            st.name, m.records_in, m.records_out, m.passed, m.filtered, rejected, m.batch_p50_us, m.batch_p99_us
        );
        for (kind, n) in &m.rejected {
            println!("{:<12}   {:>7} {kind}", "", n);
        }
    }
    println!();
    println!(
        "inputs {}  ->  delivered {}  filtered {}  rejected {}  unreadable {}  failed {}   (outputs {}, unwritable {})",
        t.inputs, t.delivered, t.filtered, t.rejected, t.unreadable, t.failed, t.outputs, t.unwritable
    );
    println!("every input accounted for: {}", if s.conserved { "yes" } else { "NO" });
    println!();
    let dead_letters = t.dead_letters.values().sum::<u64>();
    match s.out {
        Some(out) => {
            println!("results in {}:", out.display());
            if let Some(db) = db {
                let names: Vec<&str> = pipeline.tables.iter().map(|t| t.name.as_str()).collect();
                println!(
                    "  tables        {}  ({})   -> weir stats --out {}",
                    db.display(),
                    names.join(", "),
                    out.display()
                );
            }
            if pipeline.notify.is_some() {
                println!("  notifications {}", out.join("notifications.jsonl").display());
            }
            if let Some(o) = &pipeline.objects {
                println!("  objects       {}", out.join("objects").join(&o.bucket).display());
            }
            if let Some(rejected) = rejected {
                println!("  rejected      {}  ({dead_letters} dead letters)", rejected.display());
            }
        }
        None => {
            println!("results on AWS:");
            for table in &pipeline.tables {
                println!("  table         {}  ({})", bindings.table(&table.name), table.mode.name());
            }
            if let Some(n) = &pipeline.notify {
                println!("  notifications topic {}", bindings.topic(&n.topic));
            }
            if let Some(o) = &pipeline.objects {
                println!("  objects       s3://{}/{}", bindings.bucket(&o.bucket), o.prefix);
            }
            if let Some(d) = &pipeline.dead_letter {
                println!("  rejected      queue {}  ({dead_letters} dead letters)", bindings.queue(&d.queue));
            }
        }
    }
    if !s.failures.is_empty() {
        println!();
        println!("failed inputs (not done; retry them):");
        for (id, reason) in s.failures.iter().take(20) {
            println!("  {id}: {reason}");
        }
        if s.failures.len() > 20 {
            println!("  ... and {} more (see --json)", s.failures.len() - 20);
        }
    }
}
