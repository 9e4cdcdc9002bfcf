//! The precompiled-artifact cache: hits, misses, and entries it must not trust.

use std::path::{Path, PathBuf};

use weir_host::cache::CacheOutcome;
use weir_host::{ArtifactCache, Plugin};
use weir_test_artifacts as wasm;

use crate::engine;

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    v.sort();
    v
}

fn load(cache: &ArtifactCache) -> Plugin {
    Plugin::from_file(engine(), Path::new(wasm::VALIDATE_ORDER), Some(cache)).unwrap()
}

fn works(plugin: Plugin) {
    let mut chain = crate::chain(vec![weir_host::StageSpec::new("v", plugin)]);
    let report = crate::run(&mut chain, crate::records(&[crate::examples::GOOD_ORDER]));
    assert_eq!(report.emitted.len(), 1);
}

#[test]
fn compiles_once_then_loads_precompiled() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::open(dir.path()).unwrap();
    let first = load(&cache);
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);
    let files = entries(dir.path());
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(first.sha256()), "keyed by the wasm's sha256: {name}");
    assert!(name.contains(engine().fingerprint()), "and the engine fingerprint: {name}");
    let second = load(&cache);
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    works(second);
    // A new handle on the same directory reuses the key.
    assert_eq!(load(&ArtifactCache::open(dir.path()).unwrap()).cache_outcome(), CacheOutcome::Hit);
}

#[test]
fn a_corrupt_entry_is_recompiled_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::open(dir.path()).unwrap();
    load(&cache);
    let entry = entries(dir.path()).remove(0);
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let reloaded = load(&cache);
    assert_eq!(reloaded.cache_outcome(), CacheOutcome::Rejected);
    works(reloaded);
    assert_eq!(load(&cache).cache_outcome(), CacheOutcome::Hit, "the entry was rewritten");

    std::fs::write(&entry, b"WEIRCW01short").unwrap();
    assert_eq!(load(&cache).cache_outcome(), CacheOutcome::Rejected);
}

#[test]
fn an_artifact_this_cache_did_not_write_is_never_loaded() {
    // A valid artifact from a cache with another key, planted under the right name.
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::open(ours.path()).unwrap();
    load(&ArtifactCache::open(theirs.path()).unwrap());
    let planted = entries(theirs.path()).remove(0);
    std::fs::copy(&planted, ours.path().join(planted.file_name().unwrap())).unwrap();
    assert_eq!(load(&cache).cache_outcome(), CacheOutcome::Rejected);
    // A raw wasmtime artifact (no header) is refused too.
    let raw = weir_host::wasmtime::component::Component::from_file(engine().wasmtime(), wasm::VALIDATE_ORDER)
        .unwrap()
        .serialize()
        .unwrap();
    std::fs::write(&entries(ours.path())[0], raw).unwrap();
    assert_eq!(load(&cache).cache_outcome(), CacheOutcome::Rejected);
}

#[cfg(unix)]
#[test]
fn the_cache_directory_and_key_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    ArtifactCache::open(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(path.join("cache.key")).unwrap().permissions().mode() & 0o777, 0o600);
}
