//! Precompiled plugins on disk.
//!
//! Compiling a component takes 75-210 ms; loading a precompiled one takes well under a
//! millisecond. Entries are keyed by the wasm's sha256 and the engine's
//! [fingerprint](crate::Engine::fingerprint), since an artifact is only valid for the exact
//! wasmtime build and `Config` that produced it.
//!
//! Deserializing an artifact runs native code it contains, so the cache only ever loads files
//! it wrote itself: each entry carries an HMAC-SHA256 over its bytes under a random key that the
//! cache created (mode 0600) in its directory (mode 0700). A file that fails the check, whether
//! corrupt, truncated, or planted, is logged, recompiled and overwritten, never trusted. Writes
//! go to a temporary file that is renamed into place, so readers never see half an entry.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::engine::Engine;

const MAGIC: &[u8; 8] = b"WEIRCW01";
const MAC_LEN: usize = 32;
const KEY_FILE: &str = "cache.key";

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a valid entry.
    Hit,
    /// No entry: compiled and stored.
    Miss,
    /// An entry failed its integrity check: recompiled and overwritten.
    Rejected,
    /// No cache configured, or the cache could not be written: compiled only.
    Uncached,
}

/// An on-disk cache of precompiled components.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
}

/// Errors opening a cache directory.
#[derive(Debug, thiserror::Error)]
#[error("artifact cache {path}: {source}")]
pub struct CacheError {
    path: PathBuf,
    source: std::io::Error,
}

impl ArtifactCache {
    /// Opens (creating if needed) a cache in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError { path, source }
        };
        fs::create_dir_all(&dir).map_err(err(&dir))?;
        restrict(&dir, 0o700).map_err(err(&dir))?;
        let key_path = dir.join(KEY_FILE);
        let key = match fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| std::io::Error::other(format!("no randomness for the cache key: {e}")))
                    .map_err(err(&key_path))?;
                write_atomic(&dir, &key_path, &key, 0o600).map_err(err(&key_path))?;
                key
            }
        };
        Ok(ArtifactCache { dir, key })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, wasm_sha256: &str, engine: &Engine) -> PathBuf {
        self.dir.join(format!("{wasm_sha256}-{}.cwasm", engine.fingerprint()))
    }

    fn mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    /// The component for `wasm` (whose sha256 is `wasm_sha256`): from the cache if a valid
    /// entry exists, else compiled with `compile` and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm_sha256: &str,
        compile: impl FnOnce() -> Result<wasmtime::component::Component, wasmtime::Error>,
    ) -> Result<(wasmtime::component::Component, CacheOutcome), wasmtime::Error> {
        let path = self.entry_path(wasm_sha256, engine);
        let mut outcome = CacheOutcome::Miss;
        match fs::read(&path) {
            Ok(entry) => match self.verify(&entry) {
                Some(artifact) => {
                    // SAFETY: `artifact` carries a valid HMAC under this cache's private key, so
                    // this cache wrote it, from `Component::serialize` of an engine with the same
                    // fingerprint (part of the file name).
                    match unsafe { wasmtime::component::Component::deserialize(engine.wasmtime(), artifact) } {
                        Ok(component) => return Ok((component, CacheOutcome::Hit)),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "cached artifact does not load; recompiling");
                            outcome = CacheOutcome::Rejected;
                        }
                    }
                }
                None => {
                    tracing::warn!(path = %path.display(), "cached artifact failed its integrity check; recompiling");
                    outcome = CacheOutcome::Rejected;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot read cached artifact; recompiling"),
        }
        let component = compile()?;
        match component.serialize() {
            Ok(artifact) => {
                let mut entry = Vec::with_capacity(MAGIC.len() + MAC_LEN + artifact.len());
                entry.extend_from_slice(MAGIC);
                entry.extend_from_slice(&self.mac(&artifact));
                entry.extend_from_slice(&artifact);
                if let Err(e) = write_atomic(&self.dir, &path, &entry, 0o600) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write artifact cache entry");
                    outcome = CacheOutcome::Uncached;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot serialize compiled component");
                outcome = CacheOutcome::Uncached;
            }
        }
        Ok((component, outcome))
    }

    /// The artifact inside `entry` if its header and MAC are valid.
    fn verify<'a>(&self, entry: &'a [u8]) -> Option<&'a [u8]> {
        let rest = entry.strip_prefix(MAGIC)?;
        if rest.len() < MAC_LEN {
            return None;
        }
        let (tag, artifact) = rest.split_at(MAC_LEN);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).ok()?;
        mac.update(artifact);
        mac.verify_slice(tag).ok()?; // constant-time comparison
        Some(artifact)
    }
}

fn write_atomic(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    restrict(tmp.path(), mode)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}
