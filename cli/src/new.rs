//! `weir new`: scaffold a plugin crate that builds and passes its tests as generated.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct Args {
    /// The plugin's name (a crate name: letters, digits, `-`, `_`).
    name: String,
    /// Parent directory (default: current directory).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Path to the weir-plugin SDK (default: the one this weir was built with).
    #[arg(long)]
    sdk: Option<PathBuf>,
}

/// The SDK in this repository.
fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("plugins").join("sdk")
}

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
    let sdk = args.sdk.unwrap_or_else(default_sdk);
    let sdk = sdk.canonicalize().with_context(|| format!("the weir-plugin SDK is not at {}", sdk.display()))?;
    let type_name: String = name
        .split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        ("Cargo.toml", CARGO.replace("{name}", name).replace("{sdk}", &sdk.display().to_string().replace('\\', "/"))),
        ("rust-toolchain.toml", TOOLCHAIN.to_string()),
        ("src/lib.rs", LIB.replace("{Type}", &type_name).replace("{name}", name)),
        ("README.md", README.replace("{name}", name)),
        (".gitignore", "/target\n".to_string()),
    ];
    for (file, text) in files {
        std::fs::write(dir.join(file), text).with_context(|| format!("writing {file}"))?;
    }
    println!("created plugin `{name}` in {}", dir.display());
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
"#;
