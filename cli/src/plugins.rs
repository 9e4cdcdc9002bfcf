//! Building plugin crates for wasm32-wasip2 and loading plugins for a pipeline.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use weir_host::pipeline::config::{PluginSource, StageConfig};
use weir_host::{ArtifactCache, Engine, Plugin, StageSpec};

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Plugin crate directories (default: the current directory).
    dirs: Vec<PathBuf>,
}

pub fn build_command(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let dirs = if args.dirs.is_empty() { vec![PathBuf::from(".")] } else { args.dirs };
    let engine = Engine::new().context("starting wasmtime")?;
    let cache = ArtifactCache::open(crate::cache_dir()).ok();
    let mut failed = 0;
    for dir in &dirs {
        match build_crate(dir).and_then(|wasm| {
            let plugin = Plugin::from_file(&engine, &wasm, cache.as_ref())?;
            Ok((wasm, plugin))
        }) {
            Ok((wasm, plugin)) => println!("ok    {}  {}  sha256 {}", plugin.name(), wasm.display(), plugin.sha256()),
            Err(e) => {
                failed += 1;
                println!("FAIL  {}: {e:#}", dir.display());
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Builds the plugin crate in `dir` (release, wasm32-wasip2) and returns its `.wasm`.
pub fn build_crate(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!("{} has no Cargo.toml", dir.display());
    }
    let manifest = manifest.canonicalize()?;
    crate::toolchain::ensure_wasm_target(dir)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    let mut wasm = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let ours = msg["manifest_path"].as_str().map(|p| Path::new(p) == manifest).unwrap_or(false);
        let cdylib = msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if ours && cdylib {
            wasm = msg["filenames"]
                .as_array()
                .and_then(|f| f.iter().filter_map(|f| f.as_str()).find(|f| f.ends_with(".wasm")))
                .map(PathBuf::from);
        }
    }
    if !output.status.success() {
        bail!(
            "cargo build failed for {} (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)",
            dir.display()
        );
    }
    wasm.with_context(|| {
        format!("{} built no cdylib .wasm; set `crate-type = [\"cdylib\"]` under [lib]", dir.display())
    })
}

/// Resolves and loads every stage's plugin.
pub fn load_stages(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    stages: &[StageConfig],
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Vec<StageSpec>> {
    let mut specs = Vec::new();
    for stage in stages {
        progress(&stage.name);
        let wasm = match &stage.plugin {
            PluginSource::Wasm(path) => path.clone(),
            PluginSource::Crate(dir) => build_crate(dir).with_context(|| format!("stage `{}`", stage.name))?,
            PluginSource::S3 { bucket, key } => bail!(
                "stage `{}`: plugin s3://{bucket}/{key}: `weir run` loads plugins from a .wasm file or a crate; \
                 deployed pipelines get theirs from the manifest `weir publish` writes",
                stage.name
            ),
            PluginSource::Published => bail!(
                "stage `{}`: this pipeline file came from a manifest; its stages are published artifacts",
                stage.name
            ),
        };
        let name = wasm.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| stage.name.clone());
        let bytes =
            std::fs::read(&wasm).with_context(|| format!("stage `{}`: reading {}", stage.name, wasm.display()))?;
        let plugin = match &stage.sha256 {
            Some(pin) => Plugin::from_bytes_pinned(engine, &name, &bytes, pin, cache),
            None => Plugin::from_bytes(engine, &name, &bytes, cache),
        }
        .with_context(|| format!("stage `{}`", stage.name))?;
        let mut spec = StageSpec::new(stage.name.clone(), plugin).limits(stage.limits);
        spec.config = stage.config.clone();
        specs.push(spec);
    }
    Ok(specs)
}
