//! Builds the example plugins (`plugins/`) and the test-only plugins (`tests/plugins/`) for
//! wasm32-wasip2 and exports their paths as constants, so `cargo test` from a fresh clone
//! needs nothing but the toolchain that `rust-toolchain.toml` names.

use std::path::{Path, PathBuf};
use std::process::Command;

const WORKSPACES: &[(&str, &[(&str, &str)])] = &[
    (
        "plugins",
        &[
            ("VALIDATE_ORDER", "validate_order"),
            ("ENRICH_ORDER", "enrich_order"),
            ("CSV_RESHAPE", "csv_reshape"),
            ("PII_REDACT", "pii_redact"),
        ],
    ),
    (
        "tests/plugins",
        &[
            ("HOSTILE", "hostile"),
            ("FORBIDDEN", "forbidden"),
            ("NOT_WEIR", "not-weir"),
            ("WRONG_VERSION", "wrong_version"),
            ("RECORD_SHAPED", "record_shaped"),
        ],
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..").canonicalize().expect("repository root");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    check_wasm_target();
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    let mut consts = String::new();
    for (workspace, artifacts) in WORKSPACES {
        let ws = root.join(workspace);
        // Each plugin workspace's own target dir: the one `weir run`/`weir build` use for the
        // same crates (README command 1), so the plugins are compiled once for both (issue #12).
        let target_dir = ws.join("target");
        watch(&ws);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&ws)
            .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--workspace", "--target-dir"])
            .arg(&target_dir)
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .status()
            .expect("cannot run cargo to build the plugins");
        assert!(status.success(), "building the wasm plugins in {} failed (see the errors above)", ws.display());
        for (name, file) in *artifacts {
            let path = target_dir.join("wasm32-wasip2/release").join(format!("{file}.wasm"));
            assert!(path.exists(), "expected plugin artifact {}", path.display());
            consts
                .push_str(&format!("/// `{file}.wasm`\npub const {name}: &str = {:?};\n", path.display().to_string()));
        }
    }
    std::fs::write(out_dir.join("paths.rs"), consts).expect("write paths.rs");
}

/// Fails with the fix when the wasm32-wasip2 standard library is missing.
fn check_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(sysroot) = sysroot
        && !Path::new(&sysroot).join("lib/rustlib/wasm32-wasip2").exists()
    {
        panic!(
            "the wasm32-wasip2 target is not installed for this toolchain ({sysroot}).\n\
                 Run `rustup target add wasm32-wasip2` (tests/run.sh does; rustup adds rust-toolchain.toml's \
                 targets only when it installs the toolchain)."
        );
    }
}

/// Rebuild when a plugin's sources or manifests change (not when its target dir does).
fn watch(ws: &Path) {
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", ws.join(file).display());
    }
    if let Ok(entries) = std::fs::read_dir(ws) {
        for entry in entries.flatten() {
            let dir = entry.path();
            if dir.join("Cargo.toml").exists() {
                println!("cargo:rerun-if-changed={}", dir.join("Cargo.toml").display());
                for sub in ["src", "wit"] {
                    if dir.join(sub).exists() {
                        println!("cargo:rerun-if-changed={}", dir.join(sub).display());
                    }
                }
            }
        }
    }
}
