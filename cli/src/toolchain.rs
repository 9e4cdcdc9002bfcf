//! The `wasm32-wasip2` target that plugins are built for.
//!
//! rustup installs the targets a `rust-toolchain.toml` lists only when it installs that toolchain;
//! a machine whose toolchain is already there lacks the target, and the first plugin build fails
//! deep inside cargo with "can't find crate for `std`". So before building (and after scaffolding)
//! weir checks the toolchain that will build the crate, as `cargo-component` does for its
//! target: when the target is missing and rustup is on `PATH`, weir adds it and says so in one
//! line; without rustup it stops with the command to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

pub const WASM_TARGET: &str = "wasm32-wasip2";

/// What to do about the target before building in a directory.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// The toolchain has the target's standard library.
    Ready,
    /// Missing; this rustup adds it to this toolchain (the one whose sysroot lacks it).
    Add { rustup: PathBuf, toolchain: String },
    /// Missing and nothing here can add it: the message says what to run.
    Stop { message: String },
}

/// The decision, apart from the processes it needs, so it is tested on its own. rustup can add
/// the target only to a toolchain it manages: one whose sysroot is `<rustup home>/toolchains/<name>`.
pub fn plan(sysroot: &Path, has_target: bool, rustup: Option<PathBuf>, rustup_home: Option<&Path>) -> Plan {
    if has_target {
        return Plan::Ready;
    }
    let managed = rustup_home.and_then(|home| {
        let name = sysroot.strip_prefix(home.join("toolchains")).ok()?;
        let mut parts = name.components();
        let toolchain = parts.next()?.as_os_str().to_str()?.to_string();
        parts.next().is_none().then_some(toolchain)
    });
    match (rustup, managed) {
        (Some(rustup), Some(toolchain)) => Plan::Add { rustup, toolchain },
        (None, _) => Plan::Stop {
            message: format!(
                "the {WASM_TARGET} target is not installed for the Rust toolchain at {} and rustup is not on PATH; \
                 run `rustup target add {WASM_TARGET}` (rustup: https://rustup.rs), or install your Rust \
                 distribution's {WASM_TARGET} standard library",
                sysroot.display()
            ),
        },
        (Some(_), None) => Plan::Stop {
            message: format!(
                "the {WASM_TARGET} target is not installed for the Rust toolchain at {}, which rustup does not \
                 manage; install that toolchain's {WASM_TARGET} standard library, or use a rustup toolchain \
                 (`rustup target add {WASM_TARGET}`)",
                sysroot.display()
            ),
        },
    }
}

/// Makes sure the toolchain that builds the crate in `dir` (its `rust-toolchain.toml`, or
/// `RUSTUP_TOOLCHAIN`) has the wasm target, adding it with rustup when it is missing.
pub fn ensure_wasm_target(dir: &Path) -> anyhow::Result<()> {
    let sysroot = sysroot(dir)?;
    match plan(&sysroot, has_target(&sysroot), find_on_path("rustup"), rustup_home().as_deref()) {
        Plan::Ready => Ok(()),
        Plan::Stop { message } => bail!(message),
        Plan::Add { rustup, toolchain } => {
            eprintln!(
                "weir: the {WASM_TARGET} target is missing from toolchain {toolchain}; adding it: \
                 rustup target add --toolchain {toolchain} {WASM_TARGET}"
            );
            // rustup's own progress goes to the terminal: a download can take a while.
            let status = Command::new(&rustup)
                .args(["target", "add", "--toolchain", &toolchain, WASM_TARGET])
                .current_dir(dir)
                .stdout(Stdio::null())
                .status()
                .with_context(|| format!("running {}", rustup.display()))?;
            if !status.success() {
                bail!("`rustup target add --toolchain {toolchain} {WASM_TARGET}` failed ({status}); run it yourself");
            }
            // rustup may manage another toolchain than the `rustc` on PATH.
            if !has_target(&sysroot) {
                bail!(
                    "rustup added {WASM_TARGET}, but not to the toolchain at {}; run `rustup target add \
                     {WASM_TARGET}` for the toolchain that builds this crate",
                    sysroot.display()
                );
            }
            Ok(())
        }
    }
}

fn has_target(sysroot: &Path) -> bool {
    sysroot.join("lib/rustlib").join(WASM_TARGET).join("lib").is_dir()
}

/// The sysroot of the `rustc` cargo would use in `dir` (`$RUSTC`, else `rustc` on `PATH`).
fn sysroot(dir: &Path) -> anyhow::Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .with_context(|| format!("running `{} --print sysroot`: is Rust installed?", rustc.to_string_lossy()))?;
    if !out.status.success() {
        bail!("`{} --print sysroot` failed: {}", rustc.to_string_lossy(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Where rustup keeps its toolchains: `$RUSTUP_HOME`, else `~/.rustup`.
fn rustup_home() -> Option<PathBuf> {
    let home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))?;
    // Sysroots are printed canonical (a linked toolchain name resolves to its directory).
    Some(home.canonicalize().unwrap_or(home))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/home/u/.rustup";
    const STABLE: &str = "/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu";

    fn rustup() -> Option<PathBuf> {
        Some("/home/u/.cargo/bin/rustup".into())
    }

    #[test]
    fn an_installed_target_needs_nothing() {
        assert_eq!(plan(Path::new(STABLE), true, rustup(), Some(Path::new(HOME))), Plan::Ready);
        assert_eq!(plan(Path::new("/usr/lib/rust"), true, None, None), Plan::Ready);
    }

    #[test]
    fn a_missing_target_is_added_to_the_toolchain_rustup_manages() {
        assert_eq!(
            plan(Path::new(STABLE), false, rustup(), Some(Path::new(HOME))),
            Plan::Add {
                rustup: "/home/u/.cargo/bin/rustup".into(),
                toolchain: "stable-x86_64-unknown-linux-gnu".into()
            }
        );
    }

    #[test]
    fn without_rustup_the_message_is_the_command_to_run() {
        let Plan::Stop { message } = plan(Path::new("/usr/lib/rust"), false, None, None) else { panic!("should stop") };
        assert!(message.contains("`rustup target add wasm32-wasip2`"), "{message}");
        assert!(message.contains("/usr/lib/rust"), "{message}");
    }

    /// A distribution's rustc ahead of rustup's on PATH: rustup cannot fix that toolchain.
    #[test]
    fn a_toolchain_rustup_does_not_manage_is_not_handed_to_rustup() {
        let Plan::Stop { message } = plan(Path::new("/usr/lib/rust"), false, rustup(), Some(Path::new(HOME))) else {
            panic!("should stop")
        };
        assert!(message.contains("which rustup does not manage"), "{message}");
        let nested = Path::new(STABLE).join("lib");
        assert!(matches!(plan(&nested, false, rustup(), Some(Path::new(HOME))), Plan::Stop { .. }));
    }

    #[test]
    fn the_target_is_found_in_the_sysroot() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_target(dir.path()));
        std::fs::create_dir_all(dir.path().join("lib/rustlib/wasm32-wasip2/lib")).unwrap();
        assert!(has_target(dir.path()));
    }
}
