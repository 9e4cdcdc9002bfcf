//! Manifests in S3: the live one (conditional fetch by ETag, optimistic replace with
//! `If-Match`), the history of every version, and the artifacts beside them.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use crate::aws::CallError;
use crate::plugin::sha256_hex;

use super::*;

/// The answer to a conditional fetch of the live manifest.
#[derive(Debug)]
pub enum Fetched {
    /// Same ETag as given: nothing changed.
    NotModified,
    Changed {
        manifest: Manifest,
        etag: String,
    },
    /// A new manifest that is not a valid weir manifest of this pipeline (refused once, by ETag).
    Unparsable {
        reason: ManifestError,
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
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |e| ManifestError::S3(CallError::sdk(what, e))
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
        let bytes = out.body.collect().await.map_err(|e| CallError::body(what, e))?;
        let what = format!("s3://{}/{}", self.bucket, self.key);
        let manifest: Manifest = match serde_json::from_slice(&bytes.into_bytes()) {
            Ok(m) => m,
            Err(source) => return Ok(Fetched::Unparsable { reason: ManifestError::Format { what, source }, etag }),
        };
        if manifest.pipeline != self.pipeline {
            let reason =
                ManifestError::OtherPipeline { what, found: manifest.pipeline, expected: self.pipeline.clone() };
            return Ok(Fetched::Unparsable { reason, etag });
        }
        Ok(Fetched::Changed { manifest, etag })
    }

    /// The live manifest and its ETag.
    pub async fn current(&self) -> Result<Option<(Manifest, String)>, ManifestError> {
        match self.fetch(None).await? {
            Fetched::Changed { manifest, etag } => Ok(Some((manifest, etag))),
            Fetched::Missing => Ok(None),
            Fetched::Unparsable { reason, .. } => Err(reason),
            Fetched::NotModified => {
                Err(ManifestError::NotModified { what: format!("reading s3://{}/{}", self.bucket, self.key) })
            }
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
        let bytes = out.body.collect().await.map_err(|e| CallError::body(what, e))?.into_bytes();
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&stage.sha256) {
            return Err(ManifestError::Digest {
                stage: stage.name.clone(),
                bucket: self.bucket.clone(),
                artifact: stage.artifact.clone(),
                actual,
                expected: stage.sha256.clone(),
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
        let body = serde_json::to_vec_pretty(&manifest).map_err(ManifestError::Encode)?;
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
            let bytes = out.body.collect().await.map_err(|e| CallError::body(what.clone(), e))?;
            let m: Manifest = serde_json::from_slice(&bytes.into_bytes())
                .map_err(|source| ManifestError::Format { what: format!("s3://{}/{key}", self.bucket), source })?;
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
            let old = history.iter().find(|m| m.version == target).ok_or_else(|| ManifestError::NoSuchVersion {
                pipeline: self.pipeline.clone(),
                version: target,
                known: history.iter().map(|m| m.version).collect(),
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
