//! `weir new`: scaffold a plugin crate that builds and passes its tests as generated.
//!
//! The crate gets its own copy of the `weir-plugin` SDK this weir was built with
//! (`vendor/weir-plugin/`, with the contract it implements in `wit/`) and the lock file the
//! example plugins are tested with, so it builds wherever this weir binary came from (a
//! checkout, `cargo install --path cli`, a copied binary) and speaks exactly this host's contract.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::toolchain;

#[derive(clap::Args)]
pub struct Args {
    /// The plugin's name (a crate name: letters, digits, `-`, `_`).
    name: String,
    /// Parent directory (default: current directory).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Use the weir-plugin SDK at this path (e.g. a weir checkout's `plugins/sdk`) instead of a
    /// vendored copy of the one this weir was built with.
    #[arg(long)]
    sdk: Option<PathBuf>,
}

/// Where the vendored SDK goes in a new crate. Two levels deep, as `plugins/sdk` is in the
/// repository, so the SDK's relative path to its contract (`../../wit/v0.1.0`) holds in both
/// places.
const VENDORED_SDK: &str = "vendor/weir-plugin";

/// The SDK's sources and the contract, as compiled into this binary.
const SDK_FILES: &[(&str, &str)] = &[
    ("vendor/weir-plugin/src/lib.rs", include_str!("../../plugins/sdk/src/lib.rs")),
    ("vendor/weir-plugin/src/__private.rs", include_str!("../../plugins/sdk/src/__private.rs")),
    ("vendor/weir-plugin/src/log.rs", include_str!("../../plugins/sdk/src/log.rs")),
    ("vendor/weir-plugin/src/testing.rs", include_str!("../../plugins/sdk/src/testing.rs")),
    ("vendor/weir-plugin/src/wire.rs", include_str!("../../plugins/sdk/src/wire.rs")),
    ("wit/v0.1.0/transform.wit", include_str!("../../wit/v0.1.0/transform.wit")),
];

/// The plugin workspace's lock file: a new crate resolves the versions the SDK is tested with.
const LOCK: &str = include_str!("../../plugins/Cargo.lock");

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = args.name.trim();
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        bail!("{name:?} is not a crate name: use letters, digits, `-` and `_`, not starting with a digit");
    }
    let dir = args.dir.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let sdk = match &args.sdk {
        Some(sdk) => sdk
            .canonicalize()
            .with_context(|| format!("the weir-plugin SDK is not at {}", sdk.display()))?
            .display()
            .to_string()
            .replace('\\', "/"),
        None => VENDORED_SDK.to_string(),
    };
    let type_name: String = name
        .split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    let mut files = vec![
        ("Cargo.toml", CARGO.replace("{name}", name).replace("{sdk}", &sdk)),
        ("rust-toolchain.toml", TOOLCHAIN.to_string()),
        ("src/lib.rs", LIB.replace("{Type}", &type_name).replace("{name}", name)),
        ("README.md", README.replace("{name}", name)),
        (".gitignore", "/target\n".to_string()),
    ];
    if args.sdk.is_none() {
        files.push(("Cargo.lock", LOCK.to_string()));
        files.push(("vendor/weir-plugin/Cargo.toml", SDK_CARGO.to_string()));
        files.extend(SDK_FILES.iter().map(|(file, text)| (*file, text.to_string())));
    }
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.sdk.is_none() {
        complete_lock(&dir);
    }
    println!("created plugin `{name}` in {}", dir.display());
    // The crate is usable natively either way; building it needs the wasm target.
    toolchain::ensure_wasm_target(&dir).context("the crate is created, but it cannot be built yet")?;
    println!("  cargo test             # unit-test the logic natively");
    println!("  weir build {}   # build the component and check it", dir.display());
    Ok(ExitCode::SUCCESS)
}

const CARGO: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
# cdylib: the WebAssembly component; rlib: native unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
weir-plugin = { path = "{sdk}" }
serde_json = "1"

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true

# Standalone: not part of any enclosing workspace.
[workspace]
"#;

/// Adds the new crate to the lock file it was given, keeping every pinned version, so that even
/// `cargo build --locked` works from the start. Offline: only the registry cache is read. If it
/// cannot (no cache yet), the first build completes the lock file instead.
fn complete_lock(dir: &std::path::Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let done = std::process::Command::new(cargo)
        .args(["update", "--workspace", "--offline", "--quiet"])
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !matches!(done, Ok(s) if s.success()) {
        tracing::debug!(dir = %dir.display(), "could not complete Cargo.lock offline; the first build will");
    }
}

/// The SDK's manifest outside the plugin workspace (whose `workspace = true` entries it spells out;
/// a test checks they agree).
const SDK_CARGO: &str = r#"[package]
name = "weir-plugin"
description = "SDK for writing weir record transforms as WebAssembly components (vendored by `weir new`)."
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
license = "Apache-2.0"
publish = false

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = { version = "1", features = ["arbitrary_precision"] }

[target.'cfg(target_arch = "wasm32")'.dependencies]
wit-bindgen = { version = "0.61", default-features = false, features = ["macros", "realloc"] }
"#;

const TOOLCHAIN: &str = r#"[toolchain]
channel = "1.95.0"
targets = ["wasm32-wasip2"]
"#;

const LIB: &str = r##"//! `{name}`: a weir record transform.
//!
//! Adds `"processed": true` to every JSON object, drops records with `"skip": true`, and
//! rejects anything that is not a JSON object. Replace the logic with yours.

use weir_plugin::{Config, Emitter, Record, Reject, Transform, Value};

/// The transform. Fields hold what `init` read from the stage config.
pub struct {Type} {
    flag: String,
}

impl Transform for {Type} {
    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["flag"])?;
        Ok({Type} { flag: config.get("flag").unwrap_or("processed").to_string() })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Reject> {
        let mut object = record.json_object()?;
        if object.get("skip") == Some(&Value::Bool(true)) {
            return Ok(()); // filtered: emit nothing
        }
        object.insert(self.flag.clone(), Value::Bool(true));
        out.emit_json(&object)
    }
}

weir_plugin::export_transform!({Type});

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin::testing::Harness;

    #[test]
    fn marks_objects() {
        let mut plugin = Harness::<{Type}>::new(&[]).unwrap();
        let out = plugin.run(r#"{"a":1}"#).unwrap();
        assert_eq!(out[0].json()["processed"], true);
    }

    #[test]
    fn filters_and_rejects() {
        let mut plugin = Harness::<{Type}>::new(&[("flag", "seen")]).unwrap();
        assert!(plugin.run(r#"{"skip":true}"#).unwrap().is_empty());
        assert!(plugin.run("[1]").unwrap_err().reason().contains("must be a JSON object"));
    }
}
"##;

const README: &str = r#"# {name}

A weir record transform.

- `cargo test`: unit tests of the logic, natively.
- `weir build .`: builds `target/wasm32-wasip2/release/*.wasm` and checks it against the weir world.
- `weir test . --input in.jsonl --expect expected.jsonl`: golden tests.
- Use it in a pipeline: `plugin = "path/to/{name}"` under `[[stages]]` in `weir.toml`.

`vendor/weir-plugin/` is the weir-plugin SDK and `wit/` the contract (`weir:transform`) of the
weir that created this crate; a newer weir's `weir new` writes newer copies.
"#;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn toml_file(path: &str) -> toml::Table {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
        std::fs::read_to_string(&path).unwrap().parse().unwrap()
    }

    /// The vendored SDK is the SDK: every source file, and the same dependencies.
    #[test]
    fn the_vendored_sdk_matches_the_repository_sdk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        // Every file of the SDK crate but its manifest (checked below), at any depth.
        let mut sources = Vec::new();
        let mut dirs = vec![root.join("plugins/sdk")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let relative = path.strip_prefix(root.join("plugins/sdk")).unwrap().to_string_lossy().into_owned();
                if path.is_dir() && relative != "target" {
                    dirs.push(path);
                } else if path.is_file() && relative != "Cargo.toml" {
                    sources.push(format!("{VENDORED_SDK}/{relative}"));
                }
            }
        }
        sources.sort();
        let mut vendored: Vec<String> =
            SDK_FILES.iter().filter(|(f, _)| f.starts_with(VENDORED_SDK)).map(|(f, _)| f.to_string()).collect();
        vendored.sort();
        assert_eq!(vendored, sources, "SDK_FILES must list every file of plugins/sdk");
        let sdk_wit = include_str!("../../plugins/sdk/src/__private.rs")
            .lines()
            .find_map(|l| l.trim().strip_prefix("path: \"../../"))
            .and_then(|l| l.strip_suffix("\","))
            .expect("the SDK names its WIT path");
        let mut wits: Vec<String> = std::fs::read_dir(root.join(sdk_wit))
            .unwrap()
            .map(|e| format!("{sdk_wit}/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        wits.sort();
        let mut vendored_wits: Vec<String> =
            SDK_FILES.iter().filter(|(f, _)| f.starts_with("wit/")).map(|(f, _)| f.to_string()).collect();
        vendored_wits.sort();
        assert_eq!(vendored_wits, wits, "SDK_FILES must list every file of the contract the SDK uses");

        let vendored: toml::Table = SDK_CARGO.parse().unwrap();
        let sdk = toml_file("plugins/sdk/Cargo.toml");
        // A new manifest section ([features], [lib], [build-dependencies], ...) needs vendoring too.
        assert_eq!(sdk.keys().collect::<Vec<_>>(), ["dependencies", "package", "target"]);
        assert_eq!(vendored.keys().collect::<Vec<_>>(), ["dependencies", "package", "target"]);
        let workspace = toml_file("plugins/Cargo.toml");
        let shared = workspace["workspace"]["dependencies"].as_table().unwrap();
        let resolve = |deps: &toml::Value| -> toml::Table {
            deps.as_table().unwrap().keys().map(|k| (k.clone(), shared[k].clone())).collect()
        };
        assert_eq!(vendored["dependencies"].as_table().unwrap(), &resolve(&sdk["dependencies"]));
        let wasm = |t: &toml::Table| t["target"]["cfg(target_arch = \"wasm32\")"]["dependencies"].clone();
        assert_eq!(wasm(&vendored).as_table().unwrap(), &resolve(&wasm(&sdk)));
        assert_eq!(vendored["package"]["version"], workspace["workspace"]["package"]["version"]);
        assert_eq!(vendored["package"]["edition"], workspace["workspace"]["package"]["edition"]);
    }
}
