//! Manifest signatures: what a stage's and a chain's signature cover, signing and verifying
//! them, and ed25519 keys as text.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::plugin::sha256_hex;

use super::{Manifest, ManifestError, ManifestStage};

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
        .map_err(|source| ManifestError::Unverified { stage: stage.name.clone(), source })
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

/// Why a signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("not signed, and this host requires a signature by one of its keys")]
    Unsigned,
    #[error("signature is not 64 bytes of base64")]
    Malformed,
    #[error("signature does not verify with any configured key")]
    NoKeyVerifies,
}

/// A key given as text is not one.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a signing key is a 32-byte seed in base64")]
    Seed,
    #[error("public key {text:?}: expected 32 bytes in base64")]
    Public { text: String },
    #[error("public key {text:?} is not an ed25519 key: {source}")]
    NotEd25519 { text: String, source: ed25519_dalek::SignatureError },
}

fn check(signature: Option<&str>, message: &[u8], keys: &[VerifyingKey]) -> Result<(), SignatureError> {
    let text = signature.ok_or(SignatureError::Unsigned)?;
    let bytes: [u8; 64] =
        BASE64.decode(text.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(SignatureError::Malformed)?;
    let signature = Signature::from_bytes(&bytes);
    if keys.iter().any(|k| k.verify(message, &signature).is_ok()) { Ok(()) } else { Err(SignatureError::NoKeyVerifies) }
}

/// Checks a manifest's chain signature (stage order, presence, pipeline file) and every
/// stage's own; with no keys configured, none is required.
pub fn verify_manifest(manifest: &Manifest, keys: &[VerifyingKey]) -> Result<(), ManifestError> {
    if keys.is_empty() {
        return Ok(());
    }
    let message = chain_signing_message(&manifest.pipeline, &manifest.stages, manifest.definition.as_deref());
    check(manifest.signature.as_deref(), &message, keys).map_err(|source| ManifestError::Unverified {
        stage: "(chain: stage order and pipeline file)".into(),
        source,
    })?;
    manifest.stages.iter().try_for_each(|s| verify(&manifest.pipeline, s, keys))
}

/// Parses a signing key: its 32-byte seed in base64 (the file `weir keygen` writes).
pub fn signing_key(text: &str) -> Result<SigningKey, KeyError> {
    let bytes: [u8; 32] = BASE64.decode(text.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(KeyError::Seed)?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// A public key as `WEIR_SIGNING_KEYS` and terraform's `signing_keys` take it: base64.
pub fn public_key_text(key: &VerifyingKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// Parses public keys: base64 of 32 bytes each, separated by commas or whitespace
/// (`WEIR_SIGNING_KEYS`).
pub fn verifying_keys(text: &str) -> Result<Vec<VerifyingKey>, KeyError> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bytes: [u8; 32] = BASE64
                .decode(s)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| KeyError::Public { text: s.into() })?;
            VerifyingKey::from_bytes(&bytes).map_err(|source| KeyError::NotEd25519 { text: s.into(), source })
        })
        .collect()
}
