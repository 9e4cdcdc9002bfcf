//! `weir`: the plugin author's tool. Scaffold a plugin, build it, golden-test it, run a whole
//! pipeline locally on the embedded default sinks, generate load, read aggregates back, and
//! publish, roll back and inspect the plugin versions of a deployed pipeline.

mod aws;
mod golden;
mod new;
mod plan;
mod plugins;
mod publish;
mod run;
mod send;
mod stats;
mod toolchain;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "weir", version, about = "Ship record transforms to a running pipeline as WebAssembly components")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (e.g. `info`, `weir=debug`); also RUST_LOG.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "warn")]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Scaffold a plugin crate that builds and passes its tests unmodified.
    New(new::Args),
    /// Build plugin crates for wasm32-wasip2 and check each against the weir world.
    Build(plugins::BuildArgs),
    /// Run a pipeline: inputs -> chain -> embedded sinks in an output directory, or the AWS sinks with --aws.
    Run(run::Args),
    /// Golden-test a plugin: run it on inputs and diff against expected outputs.
    Test(golden::Args),
    /// Generate load: orders as SQS-event payload files, or sent to a real queue with --queue-url.
    Send(send::Args),
    /// Read aggregates back from a run's output directory.
    Stats(stats::Args),
    /// Print what a pipeline file needs deployed (tables and keys, topics, objects, dead letters) as JSON for terraform.
    Plan(plan::Args),
    /// Publish a plugin version to a deployed pipeline (uploads it, updates the manifest).
    Publish(publish::PublishArgs),
    /// Roll a deployed pipeline back to an earlier version (a new version with its stages).
    Rollback(publish::RollbackArgs),
    /// Show a deployed pipeline's live chain and its history.
    Status(publish::StatusArgs),
    /// Create an ed25519 signing key for `weir publish --sign`; prints the public key.
    Keygen(publish::KeygenArgs),
}

/// Where compiled plugins are cached: $WEIR_CACHE_DIR, else $XDG_CACHE_HOME/weir, else
/// ~/.cache/weir.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("weir").join("artifacts")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::New(a) => new::run(a),
        Command::Build(a) => plugins::build_command(a),
        Command::Run(a) => run::run(a),
        Command::Test(a) => golden::run(a),
        Command::Send(a) => send::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Publish(a) => publish::publish(a),
        Command::Rollback(a) => publish::rollback(a),
        Command::Status(a) => publish::status(a),
        Command::Keygen(a) => publish::keygen(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
