//! `weir send`: a load generator. Generated orders, a share of them deliberately bad, either
//! written as SQS-event payload files (what Lambda receives from an SQS event source mapping), or
//! with `--queue-url` sent to a real queue with `SendMessageBatch` (up to 10 per call), failed
//! entries retried.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use indicatif::ProgressBar;
use serde_json::{Value, json};
use weir_host::aws::describe;
use weir_host::aws::retry::{Backoff, BatchLimits, FailedEntry, entry_results, send_in_batches};

#[derive(clap::Args)]
pub struct Args {
    /// Messages (orders) in all.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Messages per event file (SQS delivers up to 10 per batch without a batching window, up to
    /// 10000 with one), or per SendMessageBatch call with --queue-url (at most 10).
    #[arg(long, default_value_t = 10)]
    batch_size: u64,
    /// Pad each event (or each SendMessageBatch call) to about this many KiB (0 = no padding;
    /// SQS takes at most 256 KiB per message and per call).
    #[arg(long, default_value_t = 0)]
    target_kb: u64,
    /// Events (or SendMessageBatch calls) per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Share of deliberately bad orders (0..1).
    #[arg(long, default_value_t = 0.05)]
    bad_share: f64,
    /// Seed for the generator (the same seed gives the same orders).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Directory for the event files.
    #[arg(long, default_value = "events")]
    out: PathBuf,
    /// Send the orders to this SQS queue instead of writing event files.
    #[arg(long)]
    queue_url: Option<String>,
    #[command(flatten)]
    aws: crate::aws::AwsArgs,
}

/// SplitMix64: small, fast, reproducible; plenty for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "JPY", "CHF", "usd", "eur"];

/// One generated order; `bad` selects a defect (0 = none).
pub fn order(rng: &mut Rng, i: u64, bad: u64) -> Value {
    let cents = 100 + rng.below(30_000);
    let channel = ["web", "app", "store"][rng.below(3) as usize];
    let mut o = json!({
        "order_id": format!("ord-{i:07}"),
        "user_id": format!("user-{:04}", rng.below(500)),
        "amount": serde_json::Number::from_f64(cents as f64 / 100.0).map(Value::Number).unwrap_or(Value::Null),
        "currency": CURRENCIES[rng.below(CURRENCIES.len() as u64) as usize],
        "timestamp": format!("2024-05-{:02}T{:02}:{:02}:{:02}Z", 1 + rng.below(28), rng.below(24), rng.below(60), rng.below(60)),
        "channel": channel,
        "email": format!("customer{}@example.com", rng.below(10_000)),
    });
    match bad {
        1 => o["currency"] = json!("XYZ"),
        2 => o["amount"] = json!(-5),
        3 => o["user_id"] = json!(""),
        4 => o["timestamp"] = json!("yesterday"),
        5 => o["amount"] = json!("12,50"),
        _ => {}
    }
    o
}

/// The orders of batch `e` (of `n` messages), each padded so the batch is about `target_kb`.
fn batch(args: &Args, rng: &mut Rng, e: u64, n: u64) -> Vec<(u64, Value)> {
    let pad = if args.target_kb > 0 { (args.target_kb * 1024 / n.max(1)) as usize } else { 0 };
    (0..n)
        .map(|k| {
            let i = e * args.batch_size + k;
            let bad = if rng.chance(args.bad_share) { 1 + rng.below(5) } else { 0 };
            let mut o = order(rng, i, bad);
            if pad > 0 {
                let size = o.to_string().len();
                o["note"] = json!("x".repeat(pad.saturating_sub(size + 12)));
            }
            (i, o)
        })
        .collect()
}

/// Waits until batch `e` is due at `rate` per second.
fn pace(rate: f64, started: Instant, e: u64) {
    if rate > 0.0 {
        let due = Duration::from_secs_f64((e + 1) as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.batch_size == 0 || args.batch_size > 10_000 {
        bail!("--batch-size must be 1..=10000");
    }
    if !(0.0..=1.0).contains(&args.bad_share) {
        bail!("--bad-share must be between 0 and 1");
    }
    match args.queue_url.clone() {
        Some(url) => to_queue(&args, &url),
        None => to_files(&args),
    }
}

fn to_queue(args: &Args, queue_url: &str) -> anyhow::Result<ExitCode> {
    if args.batch_size > 10 {
        bail!("--batch-size must be 1..=10 with --queue-url (SendMessageBatch takes at most 10 messages)");
    }
    if args.target_kb > 256 {
        bail!("--target-kb must be at most 256 with --queue-url (SendMessageBatch takes at most 256 KiB)");
    }
    let (runtime, aws) = args.aws.connect()?;
    let mut rng = Rng::new(args.seed);
    let batches = args.count.div_ceil(args.batch_size);
    let bar = ProgressBar::new(args.count);
    let started = Instant::now();
    let (mut sent, mut failed) = (0u64, Vec::new());
    for e in 0..batches {
        let n = args.batch_size.min(args.count - e * args.batch_size);
        let orders = batch(args, &mut rng, e, n);
        let entries: Vec<SendMessageBatchRequestEntry> = orders
            .iter()
            .enumerate()
            .map(|(position, (_, o))| {
                let channel = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(o["channel"].as_str().unwrap_or("unknown"))
                    .build()?;
                Ok(SendMessageBatchRequestEntry::builder()
                    .id(position.to_string())
                    .message_body(o.to_string())
                    .message_attributes("channel", channel)
                    .build()?)
            })
            .collect::<anyhow::Result<_>>()?;
        // Whole-request errors are the SDK's to retry; failed entries are retried here, alone.
        let sizes: Vec<(usize, usize)> = entries.iter().enumerate().map(|(i, e)| (i, e.message_body().len())).collect();
        let outcome = runtime.block_on(send_in_batches(&sizes, LIMITS, Backoff::default(), |request| {
            let batch: Vec<SendMessageBatchRequestEntry> = request.iter().map(|i| entries[*i].clone()).collect();
            let call = aws.sqs.send_message_batch().queue_url(queue_url).set_entries(Some(batch));
            async move {
                let answer = call.send().await.map_err(|e| format!("SendMessageBatch: {}", describe(&e)));
                let failed = answer.as_ref().map(|out| out.failed().iter().map(FailedEntry::from));
                entry_results(&request, failed.map_err(Clone::clone))
            }
        }));
        sent += outcome.sent.len() as u64;
        bar.inc(outcome.sent.len() as u64);
        for (i, reason) in outcome.refused.into_iter().chain(outcome.failed) {
            failed.push(format!("{}: {reason}", entries[i].id()));
        }
        pace(args.rate, started, e);
    }
    bar.finish_and_clear();
    println!(
        "sent {sent} messages in {batches} SendMessageBatch calls to {queue_url} ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("not sent: {f}");
        }
        eprintln!("error: {} message(s) were not sent", failed.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// SQS's `SendMessageBatch` limits.
const LIMITS: BatchLimits = BatchLimits { max_entries: 10, max_bytes: 262_144 };

fn to_files(args: &Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut rng = Rng::new(args.seed);
    let events = args.count.div_ceil(args.batch_size);
    let bar = ProgressBar::new(events);
    let started = Instant::now();
    let mut written = 0u64;
    for e in 0..events {
        let n = args.batch_size.min(args.count - e * args.batch_size);
        let mut records = Vec::with_capacity(n as usize);
        for (i, o) in batch(args, &mut rng, e, n) {
            records.push(json!({
                "messageId": format!("{:08x}-0000-4000-8000-{:012x}", args.seed as u32, i),
                "receiptHandle": format!("AQEB{i}"),
                "body": o.to_string(),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1714557600000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1714557600001"
                },
                "messageAttributes": {
                    "channel": {"stringValue": o["channel"], "stringListValues": [], "binaryListValues": [], "dataType": "String"}
                },
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:weir-input",
                "awsRegion": "us-east-1"
            }));
        }
        let event = json!({ "Records": records });
        let path = args.out.join(format!("event-{:05}.json", e + 1));
        std::fs::write(&path, serde_json::to_vec(&event)?).with_context(|| format!("writing {}", path.display()))?;
        written += n;
        bar.inc(1);
        pace(args.rate, started, e);
    }
    bar.finish_and_clear();
    println!("wrote {written} messages in {events} SQS events to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
