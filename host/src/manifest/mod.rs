//! Pipeline manifests: which plugin each stage of a deployed pipeline runs.
//!
//! A manifest lives in the plugins bucket beside content-addressed artifacts:
//!
//! ```text
//! artifacts/<sha256>.wasm                          plugin binaries, written once, never changed
//! pipelines/<pipeline>/manifest.json               the live manifest: the host polls this
//! pipelines/<pipeline>/history/<version>.json      every manifest ever published (zero-padded)
//! ```
//!
//! Each stage names its artifact, the artifact's sha256, its config and limits, and optionally
//! an ed25519 signature over all of those ([`signing_message`]). A host configured with public
//! keys refuses any stage without a valid signature by one of them.
//!
//! Publishing is optimistic: read the live manifest and its ETag, replace it only if it still
//! has that ETag (`If-Match`; `If-None-Match: *` for the first), then write the history entry.
//! Two concurrent publishes cannot both win: the loser gets [`ManifestError::Conflict`] and
//! nothing it wrote is live. A rollback publishes an earlier version's stages as a new version,
//! so history only grows.
//!
//! With keys configured, a host also requires the manifest's chain signature
//! ([`chain_signing_message`]: every stage in order and the pipeline file), so that nothing can
//! be dropped, reordered or reconfigured without a key.
//!
//! [`signing`] holds the signatures (what they cover, signing, verifying, key text);
//! [`store`] the manifests in S3 (conditional fetch, optimistic publish, history).

pub mod signing;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::aws::CallError;
use crate::error::{LoadError, StageError};
use crate::limits::Limits;
use crate::pipeline::Pipeline;
use crate::pipeline::config::ConfigError;

pub use signing::*;
pub use store::{Fetched, ManifestStore};

/// One stage of a published pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestStage {
    pub name: String,
    /// The artifact's key in the plugins bucket (`artifacts/<sha256>.wasm`).
    pub artifact: String,
    /// The artifact's sha256, lowercase hex; checked on every load.
    pub sha256: String,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: Limits,
    /// ed25519 signature over [`signing_message`], base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A published pipeline: its stages in order, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub pipeline: String,
    /// 1, 2, 3, … one per publish or rollback.
    pub version: u64,
    /// Seconds since the Unix epoch.
    pub published_at: u64,
    /// What this version did: `publish enrich`, `rollback to 3`.
    pub note: String,
    pub stages: Vec<ManifestStage>,
    /// The pipeline file (`weir.toml` text) whose sinks, dead letter, source filter and batch
    /// size the deployed host uses; its `[[stages]]` are superseded by `stages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// ed25519 signature over the whole chain ([`chain_signing_message`]: the stages in order
    /// and the pipeline file), base64: with keys configured, nothing can be dropped, reordered
    /// or reconfigured without the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What a publish changes: the next version's stages, note, pipeline file and chain signature.
#[derive(Debug, Clone)]
pub struct Draft {
    pub stages: Vec<ManifestStage>,
    pub note: String,
    pub definition: Option<String>,
    pub signature: Option<String>,
}

impl Manifest {
    /// The chain version this manifest runs (`stage=sha256[..12]` list), for status output.
    pub fn describe(&self) -> String {
        self.stages
            .iter()
            .map(|s| format!("{}={}", s.name, s.sha256.chars().take(12).collect::<String>()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// An uploaded artifact: its key in the plugins bucket and its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub key: String,
    pub sha256: String,
}

/// The next version's stages for a publish (`weir publish`): the pipeline file's stages in its
/// order, each running the artifact just uploaded for it (`artifacts`) or else the one it runs
/// now, with the file's config and limits, signed with `key` when given. The pipeline file is
/// `definition` (`(name for errors, text)`) or else the live manifest's.
///
/// Refuses, naming what is wrong: no pipeline file yet, an artifact for a stage the file does
/// not have, or a stage of the file with no artifact (a chain is published whole, never
/// missing a stage).
pub fn draft(
    current: Option<&Manifest>,
    definition: Option<(&std::path::Path, String)>,
    artifacts: &BTreeMap<String, Artifact>,
    key: Option<&SigningKey>,
    pipeline: &str,
    note: String,
) -> Result<Draft, ManifestError> {
    let (file, text) = match definition {
        Some((file, text)) => (file.to_path_buf(), text),
        None => match current.and_then(|m| m.definition.clone()) {
            Some(text) => (std::path::PathBuf::from(format!("pipeline {pipeline:?} (live manifest)")), text),
            None => {
                return Err(ManifestError::NoDefinition { pipeline: pipeline.into() });
            }
        },
    };
    let def = Pipeline::parse_deployed(&file, &text)?;
    let names: Vec<&str> = def.stages.iter().map(|s| s.name.as_str()).collect();
    if let Some(unknown) = artifacts.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(ManifestError::UnknownStage {
            stage: unknown.clone(),
            file,
            stages: names.iter().map(|n| n.to_string()).collect(),
        });
    }
    let mut stages = Vec::with_capacity(def.stages.len());
    let mut missing = Vec::new();
    for s in &def.stages {
        let live = current.and_then(|m| m.stages.iter().find(|l| l.name == s.name));
        let (artifact, sha256) = match (artifacts.get(&s.name), live) {
            (Some(a), _) => (a.key.clone(), a.sha256.clone()),
            (None, Some(l)) => (l.artifact.clone(), l.sha256.clone()),
            (None, None) => {
                missing.push(s.name.clone());
                continue;
            }
        };
        let mut stage = ManifestStage {
            name: s.name.clone(),
            artifact,
            sha256,
            config: s.config.clone(),
            limits: s.limits,
            signature: None,
        };
        match (key, live) {
            (Some(key), _) => sign(pipeline, &mut stage, key),
            // Unchanged: its signature still covers it.
            (None, Some(l)) if l.sha256 == stage.sha256 && l.config == stage.config && l.limits == stage.limits => {
                stage.signature = l.signature.clone()
            }
            (None, _) => {}
        }
        stages.push(stage);
    }
    if !missing.is_empty() {
        return Err(ManifestError::Unpublished { stages: missing, file });
    }
    let definition = Some(text);
    let signature = match (key, current) {
        (Some(key), _) => Some(sign_chain(pipeline, &stages, definition.as_deref(), key)),
        (None, Some(c)) if c.stages == stages && c.definition == definition => c.signature.clone(),
        (None, _) => None,
    };
    Ok(Draft { stages, note, definition, signature })
}

/// Why a manifest operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("pipeline {pipeline:?} has no manifest at s3://{bucket}/{key}; publish a plugin first")]
    Missing { pipeline: String, bucket: String, key: String },
    #[error(
        "another publish to pipeline {pipeline:?} won the race (the manifest changed while this one was being written); \
         nothing of this publish is live: run it again"
    )]
    Conflict { pipeline: String },
    #[error(
        "pipeline {pipeline:?} has no pipeline file yet: pass --definition weir.toml (its sinks, dead letter \
         and stage config are what the deployed host runs)"
    )]
    NoDefinition { pipeline: String },
    /// The pipeline file a manifest carries is not valid.
    #[error(transparent)]
    Definition(#[from] ConfigError),
    #[error("stage {stage:?} is not in {} (its stages: {})", file.display(), stages.join(", "))]
    UnknownStage { stage: String, file: PathBuf, stages: Vec<String> },
    #[error(
        "stage(s) {} of {} have no published plugin yet; a chain is published whole: publish those too \
         (`weir publish --definition FILE` publishes every stage)",
        stages.join(", "), file.display()
    )]
    Unpublished { stages: Vec<String>, file: PathBuf },
    #[error(
        "pipeline {pipeline:?} has no version {version} (versions: {})",
        if known.is_empty() { "none".to_string() } else { known.iter().map(u64::to_string).collect::<Vec<_>>().join(", ") }
    )]
    NoSuchVersion { pipeline: String, version: u64, known: Vec<u64> },
    #[error("{what} is not a weir manifest: {source}")]
    Format { what: String, source: serde_json::Error },
    #[error("{what} is the manifest of pipeline {found:?}, not {expected:?}")]
    OtherPipeline { what: String, found: String, expected: String },
    #[error("{what}: an unconditional GET was answered 304 Not Modified")]
    NotModified { what: String },
    #[error("encoding the manifest: {0}")]
    Encode(serde_json::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A stage's (or, with stage `(chain: ...)`, the chain's) signature does not verify.
    #[error("stage {stage:?}: {source}")]
    Unverified { stage: String, source: SignatureError },
    #[error("stage {stage:?}: artifact s3://{bucket}/{artifact} has sha256 {actual}, the manifest says {expected}")]
    Digest { stage: String, bucket: String, artifact: String, actual: String, expected: String },
    #[error("stage {stage:?}: {source}")]
    Plugin { stage: String, source: LoadError },
    /// A plugin refused its config or could not start.
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("version {version} has no stages")]
    NoStages { version: u64 },
    /// The host's own check of the version (its pipeline file against the deployment).
    #[error("version {version}: {source}")]
    Check { version: u64, source: Box<dyn std::error::Error + Send + Sync> },
    #[error(transparent)]
    S3(#[from] CallError),
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::*;

    fn stage() -> ManifestStage {
        ManifestStage {
            name: "enrich".into(),
            artifact: "artifacts/ab.wasm".into(),
            sha256: "ab".repeat(32),
            config: BTreeMap::from([("tax_rate".into(), "0.2".into())]),
            limits: Limits::default(),
            signature: None,
        }
    }

    #[test]
    fn signatures_cover_hash_config_and_limits() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let keys = vec![key.verifying_key()];
        let mut s = stage();
        assert!(verify("orders", &s, &[]).is_ok(), "no keys configured: not required");
        assert!(verify("orders", &s, &keys).unwrap_err().to_string().contains("not signed"));
        sign("orders", &mut s, &key);
        assert!(verify("orders", &s, &keys).is_ok());
        assert!(verify("other-pipeline", &s, &keys).is_err(), "bound to the pipeline");
        let mut tampered = s.clone();
        tampered.config.insert("tax_rate".into(), "0".into());
        assert!(verify("orders", &tampered, &keys).unwrap_err().to_string().contains("does not verify"));
        let mut tampered = s.clone();
        tampered.sha256 = "cd".repeat(32);
        assert!(verify("orders", &tampered, &keys).is_err());
        let mut by_other = stage();
        sign("orders", &mut by_other, &other);
        assert!(verify("orders", &by_other, &keys).is_err());
        let parsed = verifying_keys(&format!(
            "{}, {}",
            public_key_text(&other.verifying_key()),
            public_key_text(&key.verifying_key())
        ))
        .unwrap();
        assert!(verify("orders", &s, &parsed).is_ok(), "any configured key");
        assert!(verifying_keys("abc").is_err());
        assert!(signing_key(&BASE64.encode([7u8; 32])).is_ok());
        assert_eq!(public_key_text(&key.verifying_key()).len(), 44, "the shape terraform validates");
    }
}
