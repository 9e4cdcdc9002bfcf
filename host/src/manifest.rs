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

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::limits::Limits;
use crate::pipeline::Pipeline;
use crate::plugin::sha256_hex;

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
                return Err(ManifestError::Invalid(format!(
                    "pipeline {pipeline:?} has no pipeline file yet: pass --definition weir.toml (its sinks, dead letter \
                     and stage config are what the deployed host runs)"
                )));
            }
        },
    };
    let def = Pipeline::parse_deployed(&file, &text).map_err(|e| ManifestError::Invalid(e.to_string()))?;
    let names: Vec<&str> = def.stages.iter().map(|s| s.name.as_str()).collect();
    if let Some(unknown) = artifacts.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(ManifestError::Invalid(format!(
            "stage {unknown:?} is not in {} (its stages: {})",
            file.display(),
            names.join(", ")
        )));
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
        return Err(ManifestError::Invalid(format!(
            "stage(s) {} of {} have no published plugin yet; a chain is published whole: publish those too \
             (`weir publish --definition FILE` publishes every stage)",
            missing.join(", "),
            file.display()
        )));
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
    #[error("{0}")]
    Invalid(String),
    #[error("stage {stage:?}: {message}")]
    Refused { stage: String, message: String },
    #[error("{what}: {message}")]
    S3 { what: String, message: String },
}

/// The text a stage's signature covers: everything that decides what the stage does.
pub fn signing_message(pipeline: &str, stage: &ManifestStage) -> Vec<u8> {
    let config = serde_json::to_string(&stage.config).unwrap_or_default();
    let limits = serde_json::to_string(&stage.limits).unwrap_or_default();
    format!("weir-stage-v1\n{pipeline}\n{}\n{}\n{config}\n{limits}\n", stage.name, stage.sha256.to_ascii_lowercase())
        .into_bytes()
}

/// Signs a stage in place.
pub fn sign(pipeline: &str, stage: &mut ManifestStage, key: &SigningKey) {
    let signature = key.sign(&signing_message(pipeline, stage));
    stage.signature = Some(BASE64.encode(signature.to_bytes()));
}

/// Checks a stage's signature against `keys`; with no keys configured, signatures are not
/// required (but a present one must still be well-formed).
pub fn verify(pipeline: &str, stage: &ManifestStage, keys: &[VerifyingKey]) -> Result<(), ManifestError> {
    if keys.is_empty() {
        return Ok(());
    }
    check(stage.signature.as_deref(), &signing_message(pipeline, stage), keys)
        .map_err(|message| ManifestError::Refused { stage: stage.name.clone(), message })
}

/// The text a manifest's chain signature covers: every stage's [`signing_message`] in order,
/// and the sha256 of the pipeline file.
pub fn chain_signing_message(pipeline: &str, stages: &[ManifestStage], definition: Option<&str>) -> Vec<u8> {
    let mut message = format!("weir-chain-v1\n{pipeline}\n{}\n", stages.len()).into_bytes();
    for stage in stages {
        message.extend(signing_message(pipeline, stage));
    }
    let file = definition.map(|d| sha256_hex(d.as_bytes())).unwrap_or_default();
    message.extend(format!("definition {file}\n").into_bytes());
    message
}

/// Signs a whole chain (see [`chain_signing_message`]).
pub fn sign_chain(pipeline: &str, stages: &[ManifestStage], definition: Option<&str>, key: &SigningKey) -> String {
    BASE64.encode(key.sign(&chain_signing_message(pipeline, stages, definition)).to_bytes())
}

fn check(signature: Option<&str>, message: &[u8], keys: &[VerifyingKey]) -> Result<(), String> {
    let Some(text) = signature else {
        return Err("not signed, and this host requires a signature by one of its keys".into());
    };
    let bytes: [u8; 64] = BASE64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "signature is not 64 bytes of base64".to_string())?;
    let signature = Signature::from_bytes(&bytes);
    if keys.iter().any(|k| k.verify(message, &signature).is_ok()) {
        Ok(())
    } else {
        Err("signature does not verify with any configured key".into())
    }
}

/// Checks a manifest's chain signature (stage order, presence, pipeline file) and every
/// stage's own; with no keys configured, none is required.
pub fn verify_manifest(manifest: &Manifest, keys: &[VerifyingKey]) -> Result<(), ManifestError> {
    if keys.is_empty() {
        return Ok(());
    }
    let message = chain_signing_message(&manifest.pipeline, &manifest.stages, manifest.definition.as_deref());
    check(manifest.signature.as_deref(), &message, keys).map_err(|message| ManifestError::Refused {
        stage: "(chain: stage order and pipeline file)".into(),
        message,
    })?;
    manifest.stages.iter().try_for_each(|s| verify(&manifest.pipeline, s, keys))
}

/// Parses a signing key: its 32-byte seed in base64 (the file `weir keygen` writes).
pub fn signing_key(text: &str) -> Result<SigningKey, ManifestError> {
    let bytes: [u8; 32] = BASE64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ManifestError::Invalid("a signing key is a 32-byte seed in base64".into()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// A public key as `WEIR_SIGNING_KEYS` and terraform's `signing_keys` take it: base64.
pub fn public_key_text(key: &VerifyingKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// Parses public keys: base64 of 32 bytes each, separated by commas or whitespace
/// (`WEIR_SIGNING_KEYS`).
pub fn verifying_keys(text: &str) -> Result<Vec<VerifyingKey>, ManifestError> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bytes: [u8; 32] = BASE64
                .decode(s)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ManifestError::Invalid(format!("public key {s:?}: expected 32 bytes in base64")))?;
            VerifyingKey::from_bytes(&bytes)
                .map_err(|e| ManifestError::Invalid(format!("public key {s:?} is not an ed25519 key: {e}")))
        })
        .collect()
}

/// The answer to a conditional fetch of the live manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Same ETag as given: nothing changed.
    NotModified,
    Changed {
        manifest: Manifest,
        etag: String,
    },
    /// A new manifest that is not a valid weir manifest of this pipeline (refused once, by ETag).
    Unparsable {
        reason: String,
        etag: String,
    },
    /// No manifest published yet.
    Missing,
}

/// A pipeline's manifests and artifacts in the plugins bucket.
#[derive(Debug, Clone)]
pub struct ManifestStore {
    pub s3: Client,
    pub bucket: String,
    pub pipeline: String,
    /// The live manifest's key (default `pipelines/<pipeline>/manifest.json`).
    pub key: String,
}

fn s3_error<E, R>(what: String) -> impl FnOnce(aws_sdk_s3::error::SdkError<E, R>) -> ManifestError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    move |e| ManifestError::S3 { what, message: crate::aws::describe(&e) }
}

/// Whether an S3 error is a failed precondition (`If-Match` / `If-None-Match`).
fn precondition_failed<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| matches!(c, "PreconditionFailed" | "ConditionalRequestConflict"))
}

impl ManifestStore {
    pub fn new(s3: Client, bucket: impl Into<String>, pipeline: impl Into<String>) -> Self {
        let pipeline = pipeline.into();
        let key = format!("pipelines/{pipeline}/manifest.json");
        ManifestStore { s3, bucket: bucket.into(), pipeline, key }
    }

    fn history_key(&self, version: u64) -> String {
        format!("pipelines/{}/history/{version:010}.json", self.pipeline)
    }

    /// The content-addressed key of an artifact.
    pub fn artifact_key(sha256: &str) -> String {
        format!("artifacts/{sha256}.wasm")
    }

    /// Fetches the live manifest unless its ETag is still `etag` (a conditional GET).
    pub async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, ManifestError> {
        let what = format!("reading s3://{}/{}", self.bucket, self.key);
        let result = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_if_none_match(etag.map(String::from))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 304) => return Ok(Fetched::NotModified),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(Fetched::Missing),
            Err(e) => return Err(s3_error(what)(e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let bytes =
            out.body.collect().await.map_err(|e| ManifestError::S3 { what: what.clone(), message: e.to_string() })?;
        let manifest: Manifest = match serde_json::from_slice(&bytes.into_bytes()) {
            Ok(m) => m,
            Err(e) => {
                let reason = format!("s3://{}/{} is not a weir manifest: {e}", self.bucket, self.key);
                return Ok(Fetched::Unparsable { reason, etag });
            }
        };
        if manifest.pipeline != self.pipeline {
            let reason = format!(
                "s3://{}/{} is the manifest of pipeline {:?}, not {:?}",
                self.bucket, self.key, manifest.pipeline, self.pipeline
            );
            return Ok(Fetched::Unparsable { reason, etag });
        }
        Ok(Fetched::Changed { manifest, etag })
    }

    /// The live manifest and its ETag.
    pub async fn current(&self) -> Result<Option<(Manifest, String)>, ManifestError> {
        match self.fetch(None).await? {
            Fetched::Changed { manifest, etag } => Ok(Some((manifest, etag))),
            Fetched::Missing => Ok(None),
            Fetched::Unparsable { reason, .. } => Err(ManifestError::Invalid(reason)),
            Fetched::NotModified => Err(ManifestError::Invalid("unconditional GET answered 304".into())),
        }
    }

    /// Uploads an artifact under its content address (once; an existing one is the same bytes).
    pub async fn upload_artifact(&self, bytes: &[u8]) -> Result<(String, String), ManifestError> {
        let sha256 = sha256_hex(bytes);
        let key = Self::artifact_key(&sha256);
        let result = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("application/wasm")
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await;
        match result {
            Ok(_) => Ok((key, sha256)),
            Err(e) if precondition_failed(&e) => Ok((key, sha256)),
            Err(e) => Err(s3_error(format!("uploading s3://{}/{key}", self.bucket))(e)),
        }
    }

    /// Downloads a stage's artifact and checks its sha256.
    pub async fn artifact(&self, stage: &ManifestStage) -> Result<Vec<u8>, ManifestError> {
        let what = format!("reading s3://{}/{}", self.bucket, stage.artifact);
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&stage.artifact)
            .send()
            .await
            .map_err(s3_error(what.clone()))?;
        let bytes =
            out.body.collect().await.map_err(|e| ManifestError::S3 { what, message: e.to_string() })?.into_bytes();
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&stage.sha256) {
            return Err(ManifestError::Refused {
                stage: stage.name.clone(),
                message: format!(
                    "artifact s3://{}/{} has sha256 {actual}, the manifest says {}",
                    self.bucket, stage.artifact, stage.sha256
                ),
            });
        }
        Ok(bytes.to_vec())
    }

    /// Publishes the next version: `update` gets the live manifest (if any) and returns the new
    /// stages, note and pipeline file. Fails with [`ManifestError::Conflict`] if another publish got there first.
    pub async fn publish(
        &self,
        update: impl FnOnce(Option<&Manifest>) -> Result<Draft, ManifestError>,
    ) -> Result<Manifest, ManifestError> {
        let current = self.current().await?;
        let Draft { stages, note, definition, signature } = update(current.as_ref().map(|(m, _)| m))?;
        let manifest = Manifest {
            pipeline: self.pipeline.clone(),
            version: current.as_ref().map_or(1, |(m, _)| m.version + 1),
            published_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            note,
            stages,
            definition,
            signature,
        };
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        // The live manifest, only if it is still the one read: the one arbiter of a race.
        let mut put = self.s3.put_object().bucket(&self.bucket).key(&self.key).content_type("application/json");
        put = match &current {
            Some((_, etag)) => put.if_match(etag),
            None => put.if_none_match("*"),
        };
        match put.body(ByteStream::from(body.clone())).send().await {
            Ok(_) => {}
            Err(e) if precondition_failed(&e) => {
                return Err(ManifestError::Conflict { pipeline: self.pipeline.clone() });
            }
            Err(e) => return Err(s3_error(format!("writing s3://{}/{}", self.bucket, self.key))(e)),
        }
        // Then its history entry (only the winner gets here). Should this write fail, the
        // version is live all the same, and `history` lists the live manifest anyway.
        let key = self.history_key(manifest.version);
        let put = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await;
        if let Err(e) = put {
            tracing::warn!(key = %key, error = %crate::aws::describe(&e), "published, but could not write the history entry");
        }
        Ok(manifest)
    }

    /// Every published version, oldest first.
    pub async fn history(&self) -> Result<Vec<Manifest>, ManifestError> {
        let prefix = format!("pipelines/{}/history/", self.pipeline);
        let mut keys = Vec::new();
        let mut pages = self.s3.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(s3_error(format!("listing s3://{}/{prefix}", self.bucket)))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(String::from)));
        }
        keys.sort();
        let mut manifests = Vec::with_capacity(keys.len());
        for key in keys {
            let what = format!("reading s3://{}/{key}", self.bucket);
            let out =
                self.s3.get_object().bucket(&self.bucket).key(&key).send().await.map_err(s3_error(what.clone()))?;
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| ManifestError::S3 { what: what.clone(), message: e.to_string() })?;
            let m: Manifest = serde_json::from_slice(&bytes.into_bytes())
                .map_err(|e| ManifestError::Invalid(format!("{what}: not a weir manifest: {e}")))?;
            manifests.push(m);
        }
        // The live version, if its history entry was not written.
        if let Some((live, _)) = self.current().await?
            && !manifests.iter().any(|m| m.version == live.version)
        {
            manifests.push(live);
        }
        Ok(manifests)
    }

    /// Publishes version `to`'s stages again (default: the version before the live one).
    pub async fn rollback(&self, to: Option<u64>) -> Result<Manifest, ManifestError> {
        let history = self.history().await?;
        self.publish(|current| {
            let current = current.ok_or_else(|| ManifestError::Missing {
                pipeline: self.pipeline.clone(),
                bucket: self.bucket.clone(),
                key: self.key.clone(),
            })?;
            let target = to.unwrap_or(current.version.saturating_sub(1));
            let old = history.iter().find(|m| m.version == target).ok_or_else(|| {
                let known: Vec<String> = history.iter().map(|m| m.version.to_string()).collect();
                ManifestError::Invalid(format!(
                    "pipeline {:?} has no version {target} (versions: {})",
                    self.pipeline,
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ))
            })?;
            Ok(Draft {
                stages: old.stages.clone(),
                note: format!("rollback to {target}"),
                definition: old.definition.clone(),
                // The same chain and file: its signature still covers them.
                signature: old.signature.clone(),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
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
