//! `weir send`: a load generator. Writes SQS-event payload files (what Lambda receives from an
//! SQS event source mapping) full of generated orders, a share of them deliberately bad.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Args {
    /// Messages (orders) in all.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Messages per event (SQS delivers up to 10 per batch without a batching window, up to 10000 with one).
    #[arg(long, default_value_t = 10)]
    batch_size: u64,
    /// Pad each event to about this many KiB (0 = no padding; SQS messages are at most 256 KiB).
    #[arg(long, default_value_t = 0)]
    target_kb: u64,
    /// Events per second (0 = as fast as possible).
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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.batch_size == 0 || args.batch_size > 10_000 {
        bail!("--batch-size must be 1..=10000");
    }
    if !(0.0..=1.0).contains(&args.bad_share) {
        bail!("--bad-share must be between 0 and 1");
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut rng = Rng::new(args.seed);
    let events = args.count.div_ceil(args.batch_size);
    let bar = ProgressBar::new(events);
    let started = Instant::now();
    let mut written = 0u64;
    for e in 0..events {
        let n = args.batch_size.min(args.count - e * args.batch_size);
        let pad = if args.target_kb > 0 { (args.target_kb * 1024 / n.max(1)) as usize } else { 0 };
        let mut records = Vec::with_capacity(n as usize);
        for k in 0..n {
            let i = e * args.batch_size + k;
            let bad = if rng.chance(args.bad_share) { 1 + rng.below(5) } else { 0 };
            let mut o = order(&mut rng, i, bad);
            if pad > 0 {
                let size = o.to_string().len();
                o["note"] = json!("x".repeat(pad.saturating_sub(size + 12)));
            }
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
        if args.rate > 0.0 {
            let due = Duration::from_secs_f64((e + 1) as f64 / args.rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    bar.finish_and_clear();
    println!("wrote {written} messages in {events} SQS events to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
