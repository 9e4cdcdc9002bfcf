//! Loading a plugin: bytes or file -> checked to be a component of the weir world -> compiled
//! (or loaded from the [`ArtifactCache`]) -> linked into an `InstancePre`.
//!
//! Every refusal names the plugin and the problem: not a component, another contract version,
//! a missing export, or an import outside the sandbox (named).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};

use crate::cache::{ArtifactCache, CacheOutcome};
use crate::contract::{self, ALLOWED_WASI};
use crate::engine::Engine;
use crate::error::LoadError;
use crate::sandbox::Sandbox;

/// A loaded plugin: compiled, checked and linked. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    sha256: String,
    engine: Engine,
    pre: contract::Pre,
    cache: CacheOutcome,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("name", &self.inner.name).field("sha256", &self.inner.sha256).finish()
    }
}

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Plugin {
    /// Loads a plugin file; its name is the file stem.
    pub fn from_file(engine: &Engine, path: &Path, cache: Option<&ArtifactCache>) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
        let name =
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        Self::from_bytes(engine, &name, &bytes, cache)
    }

    /// Loads a plugin whose sha256 must be `expected` (a pin from the pipeline file or manifest).
    pub fn from_bytes_pinned(
        engine: &Engine,
        name: &str,
        bytes: &[u8],
        expected: &str,
        cache: Option<&ArtifactCache>,
    ) -> Result<Self, LoadError> {
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(LoadError::DigestMismatch { name: name.into(), expected: expected.into(), actual });
        }
        Self::from_bytes(engine, name, bytes, cache)
    }

    /// Loads a plugin from its bytes.
    pub fn from_bytes(
        engine: &Engine,
        name: &str,
        bytes: &[u8],
        cache: Option<&ArtifactCache>,
    ) -> Result<Self, LoadError> {
        check_header(name, bytes)?;
        let sha256 = sha256_hex(bytes);
        let compile = || Component::new(engine.wasmtime(), bytes);
        let (component, cache_outcome) = match cache {
            Some(cache) => cache.load_or_compile(engine, &sha256, compile),
            None => compile().map(|c| (c, CacheOutcome::Uncached)),
        }
        .map_err(|e| LoadError::Invalid { name: name.into(), message: format!("{e:#}") })?;
        check_world(engine, name, &component)?;

        let mut linker = Linker::<Sandbox>::new(engine.wasmtime());
        let invalid = |e: wasmtime::Error| LoadError::Invalid { name: name.into(), message: format!("{e:#}") };
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(invalid)?;
        contract::v0_1_0::add_to_linker(&mut linker).map_err(invalid)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = contract::v0_1_0::Pre::new(instance_pre).map_err(invalid)?;
        tracing::debug!(plugin = name, %sha256, cache = ?cache_outcome, "plugin loaded");
        Ok(Plugin {
            inner: Arc::new(Inner {
                name: name.into(),
                sha256,
                engine: engine.clone(),
                pre: contract::Pre::V0_1_0(pre),
                cache: cache_outcome,
            }),
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The sha256 of the wasm, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// `name@` and the first 12 hex digits of the sha256: how reports and outputs name it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.inner.name, &self.inner.sha256[..12])
    }

    /// Whether the compiled code came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.inner.cache
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn pre(&self) -> &contract::Pre {
        &self.inner.pre
    }
}

/// Distinguishes "not wasm" and "a core module" from a component by the preamble.
fn check_header(name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()), // layer 1: component
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => Err(LoadError::NotAComponent { name: name.into() }),
        _ => Err(LoadError::NotWasm { name: name.into() }),
    }
}

/// Splits `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, `1.2.3`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((base, version)) => (base, Some(version)),
        None => (name, None),
    }
}

/// The package version a `weir:transform/...` item belongs to, if any.
fn weir_version(name: &str) -> Option<&str> {
    let (base, version) = split_version(name);
    base.starts_with("weir:transform/").then(|| version.unwrap_or("(unversioned)"))
}

/// Whether two versions are the same contract: equal major, and for 0.x equal minor (semver).
fn compatible(version: &str, supported: &str) -> bool {
    let parts = |v: &str| v.split('.').map(|p| p.parse::<u64>().ok()).collect::<Vec<_>>();
    match (parts(version).as_slice(), parts(supported).as_slice()) {
        ([Some(0), Some(a), ..], [Some(0), Some(b), ..]) => a == b,
        ([Some(a), ..], [Some(b), ..]) => a == b,
        _ => false,
    }
}

fn check_world(engine: &Engine, name: &str, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    let supported = contract::v0_1_0::PACKAGE;
    let supported_version = supported.rsplit('@').next().unwrap_or_default();
    let exports: Vec<String> = ty.exports(engine.wasmtime()).map(|(n, _)| n.to_string()).collect();
    if !exports.iter().any(|e| e == contract::v0_1_0::EXPORT) {
        if let Some(v) = exports.iter().find_map(|e| weir_version(e)).filter(|v| !compatible(v, supported_version)) {
            return Err(LoadError::WrongVersion {
                name: name.into(),
                found: format!("weir:transform@{v}"),
                supported: supported.into(),
            });
        }
        if !exports.iter().any(|e| split_version(e).0 == "weir:transform/transformer") {
            return Err(LoadError::MissingExport {
                name: name.into(),
                expected: contract::v0_1_0::EXPORT.into(),
                found: if exports.is_empty() { "none".into() } else { exports.join(", ") },
            });
        }
    }
    let mut forbidden = Vec::new();
    for (import, _) in ty.imports(engine.wasmtime()) {
        if let Some(v) = weir_version(import) {
            if !compatible(v, supported_version) {
                return Err(LoadError::WrongVersion {
                    name: name.into(),
                    found: format!("weir:transform@{v}"),
                    supported: supported.into(),
                });
            }
            continue;
        }
        if !ALLOWED_WASI.contains(&split_version(import).0) {
            forbidden.push(import.to_string());
        }
    }
    if !forbidden.is_empty() {
        return Err(LoadError::ForbiddenImport { name: name.into(), imports: forbidden });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.1.0", "0.1.0"));
        assert!(!compatible("x", "0.1.0"));
        assert_eq!(weir_version("weir:transform/log@0.2.0"), Some("0.2.0"));
        assert_eq!(weir_version("wasi:io/streams@0.2.0"), None);
    }

    #[test]
    fn headers() {
        assert!(matches!(check_header("x", b"hello world"), Err(LoadError::NotWasm { .. })));
        assert!(matches!(check_header("x", b"\0asm\x01\0\0\0"), Err(LoadError::NotAComponent { .. })));
        assert!(check_header("x", b"\0asm\x0d\0\x01\0").is_ok());
    }
}
