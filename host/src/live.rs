//! Hot reload: the chain a running host should use, kept in step with the pipeline's manifest.
//!
//! [`LiveChain::refresh`] checks the manifest at most once per `refresh` interval (zero = every
//! call) with a conditional GET on its ETag. When it changed, the new version is fetched,
//! every artifact's sha256 and (with keys configured) signature verified, compiled through the
//! precompiled-artifact cache and instantiated; only a chain that passed all of it is handed
//! out, and the caller swaps it in between batches, so a batch always runs on one consistent
//! chain. A version that fails any step is refused: the last good chain keeps running, the
//! refusal is returned (for logs and the `Weir/PluginRefusals` metric) and that version is not
//! tried again until the manifest changes once more.

use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;

use crate::cache::ArtifactCache;
use crate::chain::Chain;
use crate::engine::Engine;
use crate::manifest::{Fetched, Manifest, ManifestError, ManifestStore, verify_manifest};
use crate::plugin::Plugin;
use crate::stage::StageSpec;

/// What a refresh did.
#[derive(Debug)]
pub enum Refresh {
    /// Checked too recently; nothing asked.
    NotDue,
    /// The manifest has not changed (or is the version refused before).
    Unchanged,
    /// A new version passed every check: swap this chain in before the next batch.
    Loaded { manifest: Manifest, chain: Box<Chain> },
    /// A new version failed a check; the current chain stays, and that version is not tried
    /// again until the manifest changes.
    Refused { version: Option<u64>, reason: ManifestError },
    /// The manifest or an artifact could not be read (S3 unavailable, nothing published yet):
    /// tried again on the next check; the current chain, if any, stays.
    Unavailable { reason: ManifestError },
}

/// The manifest a host follows and what it last saw of it.
pub struct LiveChain {
    store: ManifestStore,
    engine: Engine,
    cache: Option<ArtifactCache>,
    keys: Vec<VerifyingKey>,
    refresh: Duration,
    checked_at: Option<Instant>,
    /// The ETag of the running version, and of the last refused one.
    running: Option<(String, Manifest)>,
    /// The version before the running one, while the caller installs the running one (see
    /// [`LiveChain::not_installed`]).
    previous: Option<(String, Manifest)>,
    refused_etag: Option<String>,
    /// The caller's own check of a new version (its pipeline file), before anything loads.
    check: Option<Check>,
}

/// A caller's check of a manifest: `Err(reason)` refuses the version.
pub type Check = Box<dyn Fn(&Manifest) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send>;

impl LiveChain {
    pub fn new(
        store: ManifestStore,
        engine: Engine,
        cache: Option<ArtifactCache>,
        keys: Vec<VerifyingKey>,
        refresh: Duration,
    ) -> Self {
        LiveChain {
            store,
            engine,
            cache,
            keys,
            refresh,
            checked_at: None,
            running: None,
            previous: None,
            refused_etag: None,
            check: None,
        }
    }

    /// Adds a check every new version must pass before it loads (the Lambda checks that the
    /// pipeline file fits the deployed resources); a version it refuses is refused like one
    /// with a bad artifact.
    pub fn with_check(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    /// The store this chain follows.
    pub fn store(&self) -> &ManifestStore {
        &self.store
    }

    /// The running manifest, if any has loaded.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.running.as_ref().map(|(_, m)| m)
    }

    /// Checks the manifest if due (see the module docs). Compiling blocks the thread: drive it
    /// with `Handle::block_on` from a blocking thread, as the Lambda does with the whole batch.
    pub async fn refresh(&mut self, now: Instant) -> Refresh {
        if let Some(at) = self.checked_at
            && self.running.is_some()
            && now.duration_since(at) < self.refresh
        {
            return Refresh::NotDue;
        }
        self.checked_at = Some(now);
        let known = self.refused_etag.clone().or_else(|| self.running.as_ref().map(|(e, _)| e.clone()));
        let fetched = match self.store.fetch(known.as_deref()).await {
            Ok(f) => f,
            // Cannot tell whether it changed: keep running what we have, ask again later.
            Err(reason) => return Refresh::Unavailable { reason },
        };
        let (manifest, etag) = match fetched {
            Fetched::NotModified => return Refresh::Unchanged,
            Fetched::Missing => {
                let reason = ManifestError::Missing {
                    pipeline: self.store.pipeline.clone(),
                    bucket: self.store.bucket.clone(),
                    key: self.store.key.clone(),
                };
                return Refresh::Unavailable { reason };
            }
            Fetched::Unparsable { reason, etag } => {
                if self.refused_etag.as_deref() == Some(&etag) {
                    return Refresh::Unchanged;
                }
                tracing::error!(reason = %reason, "refused a manifest that is not valid; the last good chain keeps running");
                self.refused_etag = Some(etag);
                return Refresh::Refused { version: None, reason };
            }
            Fetched::Changed { manifest, etag } => (manifest, etag),
        };
        if self.running.as_ref().is_some_and(|(e, _)| *e == etag) || self.refused_etag.as_deref() == Some(&etag) {
            return Refresh::Unchanged;
        }
        match self.load(&manifest).await {
            Ok(chain) => {
                tracing::info!(version = manifest.version, chain = %chain.version(), "loaded pipeline version");
                self.previous = self.running.replace((etag, manifest.clone()));
                self.refused_etag = None;
                Refresh::Loaded { manifest, chain: Box::new(chain) }
            }
            // Reading failed, not the version: try it again on the next check.
            Err(reason @ ManifestError::S3(_)) => Refresh::Unavailable { reason },
            Err(e) => {
                tracing::error!(version = manifest.version, error = %e, "refused pipeline version; the last good chain keeps running");
                self.refused_etag = Some(etag);
                Refresh::Refused { version: Some(manifest.version), reason: e }
            }
        }
    }

    /// The caller could not put the version [`LiveChain::refresh`] just loaded to work (its
    /// sinks: a table the stack lacks, an AWS call that failed): the version before it counts as
    /// running again, so that the next check loads the new one again and the caller retries it,
    /// by then perhaps with the table created or the call going through. Nothing is refused for
    /// good: the fault may be the stack's, not the version's.
    pub fn not_installed(&mut self) {
        self.running = self.previous.take();
    }

    /// Fetches, verifies and compiles every stage of `manifest`.
    async fn load(&self, manifest: &Manifest) -> Result<Chain, ManifestError> {
        if manifest.stages.is_empty() {
            return Err(ManifestError::NoStages { version: manifest.version });
        }
        if let Some(check) = &self.check {
            check(manifest).map_err(|source| ManifestError::Check { version: manifest.version, source })?;
        }
        verify_manifest(manifest, &self.keys)?;
        let mut specs = Vec::with_capacity(manifest.stages.len());
        for stage in &manifest.stages {
            let bytes = self.store.artifact(stage).await?;
            let plugin =
                Plugin::from_bytes_pinned(&self.engine, &stage.name, &bytes, &stage.sha256, self.cache.as_ref())
                    .map_err(|source| ManifestError::Plugin { stage: stage.name.clone(), source })?;
            let spec = stage
                .config
                .iter()
                .fold(StageSpec::new(&stage.name, plugin).limits(stage.limits), |spec, (k, v)| spec.config(k, v));
            specs.push(spec);
        }
        // Instantiating runs each plugin's init with its config: a plugin that refuses its
        // config, or traps in init, is refused here, not on the first batch.
        Ok(Chain::new(specs)?)
    }
}
