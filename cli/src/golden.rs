//! `weir test`: golden tests for one plugin.
//!
//! Every input line of `--input` (JSON Lines) yields, in order: its outputs (one canonical JSON
//! line each), `{"$reject": "<reason>"}` if the plugin rejected it, or `{"$filtered": true}` if
//! it emitted nothing. The result is compared with `--expect`; a mismatch prints a unified diff
//! and exits 1. `--update` writes the actual result to the expect file instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use similar::TextDiff;
use weir_host::source::{SourceItem, SourceLimits, json::read_lines};
use weir_host::stage::StageResult;
use weir_host::{Engine, Plugin, Stage, StageSpec};

#[derive(clap::Args)]
pub struct Args {
    /// The plugin: a .wasm file or a plugin crate directory (built first).
    plugin: PathBuf,
    /// Input records, JSON Lines.
    #[arg(long)]
    input: PathBuf,
    /// Expected results (see `weir test --help`).
    #[arg(long)]
    expect: PathBuf,
    /// Stage config entries, `key=value`.
    #[arg(long = "config", short = 'c', value_parser = parse_kv)]
    config: Vec<(String, String)>,
    /// Write the actual results to the expect file.
    #[arg(long)]
    update: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not key=value"))
}

/// Canonical text of a JSON value (object keys sorted).
fn canonical(v: &Value) -> String {
    v.to_string()
}

/// Runs the plugin and renders the golden lines.
pub fn actual(plugin: Plugin, config: &[(String, String)], input: &Path) -> anyhow::Result<String> {
    let mut spec = StageSpec::new("test", plugin);
    for (k, v) in config {
        spec = spec.config(k, v);
    }
    let mut stage = Stage::new(spec)?;
    let file = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mut records = Vec::new();
    for item in
        read_lines(std::io::BufReader::new(file), input.display().to_string(), SourceLimits::default().max_record_bytes)
    {
        match item {
            SourceItem::Record(r) => records.push(r),
            SourceItem::Unreadable(u) | SourceItem::Failed(u) => anyhow::bail!("{}: {}", u.id, u.reason),
        }
    }
    let mut out = String::new();
    for result in stage.process(&records) {
        match result {
            StageResult::Emit(records) if records.is_empty() => out.push_str(&canonical(&json!({"$filtered": true}))),
            StageResult::Emit(records) => {
                let lines: Vec<String> = records
                    .iter()
                    .map(|r| {
                        serde_json::from_str::<Value>(&r.body).map(|v| canonical(&v)).unwrap_or_else(|_| r.body.clone())
                    })
                    .collect();
                out.push_str(&lines.join("\n"));
            }
            StageResult::Rejected { kind, reason } => {
                let v = if kind.is_fault() {
                    json!({"$reject": reason, "$kind": kind.as_str()})
                } else {
                    json!({"$reject": reason})
                };
                out.push_str(&canonical(&v));
            }
        }
        out.push('\n');
    }
    Ok(out)
}

fn normalize_expected(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => out.push_str(&canonical(&v)),
            Err(_) => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let wasm = if args.plugin.is_dir() { crate::plugins::build_crate(&args.plugin)? } else { args.plugin.clone() };
    let engine = Engine::new()?;
    let plugin = Plugin::from_file(&engine, &wasm, None)?;
    let actual = actual(plugin, &args.config, &args.input)?;
    if args.update {
        std::fs::write(&args.expect, &actual).with_context(|| format!("writing {}", args.expect.display()))?;
        println!("updated {}", args.expect.display());
        return Ok(ExitCode::SUCCESS);
    }
    let expected_text =
        std::fs::read_to_string(&args.expect).with_context(|| format!("reading {}", args.expect.display()))?;
    let expected = normalize_expected(&expected_text);
    if expected == actual {
        println!("ok: {} results match {}", actual.lines().count(), args.expect.display());
        return Ok(ExitCode::SUCCESS);
    }
    let diff = TextDiff::from_lines(&expected, &actual);
    println!("golden test failed: {} differs from what the plugin produced", args.expect.display());
    print!(
        "{}",
        diff.unified_diff().context_radius(2).header(&format!("expected: {}", args.expect.display()), "actual")
    );
    println!("(run with --update to accept the actual results)");
    Ok(ExitCode::FAILURE)
}
