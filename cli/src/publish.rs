//! `weir publish`, `weir rollback`, `weir status`, `weir keygen`: plugin versions of a deployed
//! pipeline, in its plugins bucket (see `weir_host::manifest` for the layout and the
//! concurrency rules). The running Lambda picks a new version up on its next manifest check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use weir_host::manifest::{self, Artifact, Manifest, ManifestStore};
use weir_host::pipeline::Pipeline;
use weir_host::pipeline::config::PluginSource;
use weir_host::pipeline::deployment::{self, Deployment};
use weir_host::{ArtifactCache, Chain, Engine, Plugin, StageSpec};

/// Which pipeline, in which bucket.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The deployed pipeline's name (terraform's `pipeline`).
    #[arg(long)]
    pipeline: String,
    /// The plugins bucket (terraform output `plugins_bucket`).
    #[arg(long, env = "WEIR_PLUGINS_BUCKET")]
    bucket: String,
    /// The live manifest's key (default: pipelines/<pipeline>/manifest.json, as terraform sets it).
    #[arg(long)]
    manifest_key: Option<String>,
    #[command(flatten)]
    aws: crate::aws::AwsArgs,
}

impl Target {
    fn connect(&self) -> anyhow::Result<(tokio::runtime::Runtime, ManifestStore)> {
        let (runtime, aws) = self.aws.connect()?;
        let mut store = ManifestStore::new(aws.s3.clone(), &self.bucket, &self.pipeline);
        if let Some(key) = &self.manifest_key {
            store.key = key.clone();
        }
        Ok((runtime, store))
    }
}

#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// The plugin: a .wasm component or a plugin crate directory (built for wasm32-wasip2).
    /// Without it, every stage of --definition is published (a first deploy).
    plugin: Option<PathBuf>,
    /// The stage the plugin runs as (a stage of the pipeline file).
    #[arg(long, requires = "plugin")]
    stage: Option<String>,
    /// The pipeline file (weir.toml): stage order, config, limits, sinks. Needed on the first
    /// publish; later ones keep the live one unless given.
    #[arg(long, value_name = "WEIR_TOML")]
    definition: Option<PathBuf>,
    /// Sign every stage with this ed25519 key (a file written by `weir keygen`); required when
    /// the function is configured with public keys.
    #[arg(long, value_name = "KEY_FILE", env = "WEIR_SIGNING_KEY_FILE")]
    sign: Option<PathBuf>,
    /// What this version does, for `weir status`.
    #[arg(long)]
    note: Option<String>,
    /// Publish without checking the pipeline file against the deployment's bindings document
    /// (`pipelines/<pipeline>/bindings.json` in the bucket, written by terraform): only for a
    /// bucket that no weir deployment reads. The function still refuses what does not fit it.
    #[arg(long)]
    skip_deployment_check: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The version to go back to (default: the one before the live one).
    #[arg(long)]
    to: Option<u64>,
    /// Roll back without checking that version's pipeline file against the deployment's
    /// bindings document (the function still refuses what does not fit it).
    #[arg(long)]
    skip_deployment_check: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print JSON (the live manifest and the history).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the private key (base64 seed, mode 0600); refuses to overwrite.
    #[arg(long, value_name = "KEY_FILE")]
    out: PathBuf,
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(message);
    bar
}

/// A stage to publish: its name, its wasm and the config and limits it will run with.
struct Candidate {
    stage: String,
    bytes: Vec<u8>,
    spec: weir_host::pipeline::config::StageConfig,
}

fn wasm_of(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_dir() { crate::plugins::build_crate(path) } else { Ok(path.to_path_buf()) }
}

pub fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let key = match &args.sign {
        Some(file) => {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("reading the signing key {}", file.display()))?;
            Some(manifest::signing_key(&text).with_context(|| format!("{}", file.display()))?)
        }
        None => None,
    };
    let definition = match &args.definition {
        Some(file) => {
            Some((file.clone(), std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?))
        }
        None => None,
    };
    let (runtime, store) = args.target.connect()?;
    let current = runtime.block_on(store.current())?.map(|(m, _)| m);

    // The pipeline file this version will run: the given one or the live one.
    let (def_file, def_text) = match (&definition, &current) {
        (Some((f, t)), _) => (f.clone(), t.clone()),
        (None, Some(Manifest { definition: Some(t), .. })) => (PathBuf::from("(live manifest)"), t.clone()),
        _ => bail!(
            "pipeline {:?} has no pipeline file yet: pass --definition weir.toml (its sinks, dead letter and stage config are what the deployed function runs)",
            args.target.pipeline
        ),
    };

    // Refuse here what the deployment cannot run, before anything is built or written: every
    // table, topic and objects sink of the file must be one the stack has, keyed as the file says.
    if !args.skip_deployment_check {
        fits_deployment(&runtime, &store, &def_file, &def_text)
            .context("nothing was published (--skip-deployment-check publishes anyway)")?;
    }

    // What to publish: one plugin as one stage, or every stage of the file.
    let mut candidates = Vec::new();
    if let Some(plugin) = &args.plugin {
        let def = Pipeline::parse_deployed(&def_file, &def_text)?;
        let names: Vec<&str> = def.stages.iter().map(|s| s.name.as_str()).collect();
        let stage = match &args.stage {
            Some(s) => s.clone(),
            None if names.len() == 1 => names[0].to_string(),
            None => bail!("--stage: name the stage this plugin runs as (one of: {})", names.join(", ")),
        };
        let Some(spec) = def.stages.iter().find(|s| s.name == stage).cloned() else {
            bail!("--stage {stage:?}: {} has no such stage (its stages: {})", def_file.display(), names.join(", "));
        };
        let bar = spinner(format!("building {}", plugin.display()));
        let wasm = wasm_of(plugin);
        bar.finish_and_clear();
        let wasm = wasm?;
        let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
        candidates.push(Candidate { stage, bytes, spec });
    } else {
        let Some((file, _)) = &definition else {
            bail!("give a plugin (.wasm or crate) and --stage, or --definition weir.toml to publish every stage");
        };
        // The author's file: plugin paths resolve next to it.
        let def = Pipeline::load(file)?;
        for spec in def.stages {
            let bar = spinner(format!("building stage {}", spec.name));
            let wasm = match &spec.plugin {
                PluginSource::Wasm(p) => Ok(p.clone()),
                PluginSource::Crate(dir) => crate::plugins::build_crate(dir),
                PluginSource::S3 { bucket, key } => {
                    Err(anyhow::anyhow!("plugin s3://{bucket}/{key}: publish a .wasm or a crate, not an S3 object"))
                }
                PluginSource::Published => Err(anyhow::anyhow!("no plugin source")),
            };
            bar.finish_and_clear();
            let wasm = wasm.with_context(|| format!("stage `{}`", spec.name))?;
            let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            candidates.push(Candidate { stage: spec.name.clone(), bytes, spec });
        }
    }

    // Refuse here what the function would refuse: not a weir component, or an init that fails
    // with the stage's config.
    let engine = Engine::new().context("starting wasmtime")?;
    let cache = ArtifactCache::open(crate::cache_dir()).ok();
    for c in &candidates {
        let bar = spinner(format!("checking stage {}", c.stage));
        let checked = Plugin::from_bytes(&engine, &c.stage, &c.bytes, cache.as_ref())
            .map_err(anyhow::Error::from)
            .and_then(|plugin| {
                let mut spec = StageSpec::new(c.stage.clone(), plugin).limits(c.spec.limits);
                spec.config = c.spec.config.clone();
                Chain::new(vec![spec]).map_err(anyhow::Error::from)
            });
        bar.finish_and_clear();
        checked.with_context(|| format!("stage `{}` does not load, so it is not published", c.stage))?;
    }

    let mut artifacts = BTreeMap::new();
    for c in &candidates {
        let bar = spinner(format!("uploading stage {} ({} KB)", c.stage, c.bytes.len() / 1024));
        let uploaded = runtime.block_on(store.upload_artifact(&c.bytes));
        bar.finish_and_clear();
        let (key, sha256) = uploaded?;
        artifacts.insert(c.stage.clone(), Artifact { key, sha256 });
    }
    let stages: Vec<&str> = candidates.iter().map(|c| c.stage.as_str()).collect();
    let note = args.note.clone().unwrap_or_else(|| format!("publish {}", stages.join(", ")));
    let pipeline = args.target.pipeline.clone();
    let published = runtime.block_on(store.publish(|current| {
        manifest::draft(
            current,
            definition.as_ref().map(|(f, t)| (f.as_path(), t.clone())),
            &artifacts,
            key.as_ref(),
            &pipeline,
            note,
        )
    }))?;
    println!(
        "published {} version {}: {}{}",
        published.pipeline,
        published.version,
        published.describe(),
        if key.is_some() { " (signed)" } else { "" }
    );
    println!("the running function loads it on its next manifest check (WEIR_REFRESH_SECONDS, default 30 s)");
    Ok(ExitCode::SUCCESS)
}

/// Checks a pipeline file against the deployment's bindings document (`weir_host::pipeline::deployment`):
/// every table, topic and objects sink it names must be one the stack has, keyed as the file says.
fn fits_deployment(
    runtime: &tokio::runtime::Runtime,
    store: &ManifestStore,
    def_file: &Path,
    def_text: &str,
) -> anyhow::Result<()> {
    let key = deployment::default_key(&store.pipeline);
    let source = format!("s3://{}/{key}", store.bucket);
    let bar = spinner(format!("checking the pipeline file against {source}"));
    let read = runtime.block_on(Deployment::read(&store.s3, &store.bucket, &key));
    bar.finish_and_clear();
    read?.bind(Pipeline::parse_deployed(def_file, def_text)?, &source)?;
    Ok(())
}

pub fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let (runtime, store) = args.target.connect()?;
    // The version to go back to, checked against the deployment as a publish is: the stack may
    // have changed since (a table dropped from the plan), and the function would refuse it.
    let history = runtime.block_on(store.history())?;
    let live = history.iter().map(|m| m.version).max().unwrap_or(0);
    let to = args.to.unwrap_or(live.saturating_sub(1));
    if !args.skip_deployment_check
        && let Some(text) = history.iter().find(|m| m.version == to).and_then(|m| m.definition.as_ref())
    {
        let file = PathBuf::from(format!("(version {to} of pipeline {})", store.pipeline));
        fits_deployment(&runtime, &store, &file, text).with_context(|| {
            format!("nothing was rolled back to version {to} (--skip-deployment-check rolls back anyway)")
        })?;
    }
    let m = runtime.block_on(store.rollback(Some(to)))?;
    println!("{} version {}: {} ({})", m.pipeline, m.version, m.describe(), m.note);
    Ok(ExitCode::SUCCESS)
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (runtime, store) = args.target.connect()?;
    let current = runtime.block_on(store.current())?;
    let history = runtime.block_on(store.history())?;
    if args.json {
        let out = serde_json::json!({
            "live": current.as_ref().map(|(m, _)| m),
            "history": history,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Some((live, _)) = current else {
        println!("pipeline {:?}: nothing published to s3://{}/{}", store.pipeline, store.bucket, store.key);
        return Ok(ExitCode::SUCCESS);
    };
    println!("pipeline {} — live version {} ({})", live.pipeline, live.version, live.note);
    for s in &live.stages {
        let limits = &s.limits;
        println!(
            "  {:<16} sha256 {}  {}  {} MiB, {} ms{}",
            s.name,
            s.sha256.chars().take(16).collect::<String>(),
            s.artifact,
            limits.memory_mib,
            limits.time_ms,
            if s.signature.is_some() { "  signed" } else { "" }
        );
    }
    println!("history (newest first):");
    for m in history.iter().rev() {
        println!("  {:>4}  {}  {:<24}  {}", m.version, when(m.published_at), m.note, m.describe());
    }
    Ok(ExitCode::SUCCESS)
}

/// `YYYY-MM-DD HH:MM` UTC of Unix seconds.
fn when(secs: u64) -> String {
    let stamp = i64::try_from(secs).ok().and_then(|s| jiff::Timestamp::from_second(s).ok());
    stamp.map_or_else(|| format!("@{secs}"), |t| t.strftime("%Y-%m-%d %H:%M").to_string())
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    use base64::Engine as _;
    writeln!(file, "{}", base64::engine::general_purpose::STANDARD.encode(seed))?;
    println!("private key written to {} (keep it secret; pass it to `weir publish --sign`)", args.out.display());
    println!("public key (terraform `signing_keys`, WEIR_SIGNING_KEYS):");
    println!("{}", manifest::public_key_text(&key.verifying_key()));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::when(0), "1970-01-01 00:00");
        assert_eq!(super::when(1_795_000_000), "2026-11-18 11:06");
    }
}
