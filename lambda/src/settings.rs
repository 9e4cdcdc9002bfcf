//! The function's environment, read once at cold start.
//!
//! [`VARIABLES`] is the one list of names; `lambda/env-vars.json` documents them and the
//! terraform function module sets exactly those (a test here and the terraform tests check
//! both). The standard AWS SDK variables (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`) are
//! read by the SDK as usual.

use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use weir_host::manifest::verifying_keys;

/// Every variable the function reads, as `lambda/env-vars.json` lists them.
pub const VARIABLES: [&str; 8] = [
    "WEIR_PIPELINE",
    "WEIR_PLUGINS_BUCKET",
    "WEIR_MANIFEST_KEY",
    "WEIR_BINDINGS_KEY",
    "WEIR_REFRESH_SECONDS",
    "WEIR_SIGNING_KEYS",
    "WEIR_CACHE_DIR",
    "RUST_LOG",
];

/// A variable that is missing or malformed: names it and says what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}: {message}")]
pub struct SettingsError {
    pub name: &'static str,
    pub message: String,
}

/// What the environment says.
#[derive(Debug, Clone)]
pub struct Settings {
    pub pipeline: String,
    pub plugins_bucket: String,
    pub manifest_key: String,
    /// The deployment's bindings document in the plugins bucket: where each sink of the
    /// pipeline lives ([`Deployment`](weir_host::pipeline::deployment::Deployment)), read once at
    /// cold start.
    pub bindings_key: String,
    /// How often the manifest is checked; zero = every invocation.
    pub refresh: Duration,
    /// Plugins must be signed by one of these; empty = no signature required.
    pub signing_keys: Vec<VerifyingKey>,
    pub cache_dir: PathBuf,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let required = |name: &'static str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or(SettingsError { name, message: "must be set (see lambda/env-vars.json)".into() })
        };
        let refresh = match get("WEIR_REFRESH_SECONDS").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            None => Duration::from_secs(30),
            Some(v) => Duration::from_secs(u64::from(v.parse::<u32>().map_err(|_| SettingsError {
                name: "WEIR_REFRESH_SECONDS",
                message: format!("{v:?} is not a whole number of seconds (0 = check on every invocation)"),
            })?)),
        };
        let signing_keys = verifying_keys(&get("WEIR_SIGNING_KEYS").unwrap_or_default())
            .map_err(|e| SettingsError { name: "WEIR_SIGNING_KEYS", message: e.to_string() })?;
        let bindings_key = required("WEIR_BINDINGS_KEY")?;
        if bindings_key.starts_with('/') || bindings_key.starts_with("s3://") {
            return Err(SettingsError {
                name: "WEIR_BINDINGS_KEY",
                message: format!(
                    "{bindings_key:?} is not a key inside WEIR_PLUGINS_BUCKET (pipelines/<pipeline>/bindings.json)"
                ),
            });
        }
        Ok(Settings {
            pipeline: required("WEIR_PIPELINE")?,
            plugins_bucket: required("WEIR_PLUGINS_BUCKET")?,
            manifest_key: required("WEIR_MANIFEST_KEY")?,
            bindings_key,
            refresh,
            signing_keys,
            cache_dir: get("WEIR_CACHE_DIR")
                .filter(|v| !v.trim().is_empty())
                .map_or_else(|| PathBuf::from("/tmp/weir-cache"), PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env() -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("WEIR_PIPELINE", "orders".to_string()),
            ("WEIR_PLUGINS_BUCKET", "plugins".into()),
            ("WEIR_MANIFEST_KEY", "pipelines/orders/manifest.json".into()),
            ("WEIR_BINDINGS_KEY", "pipelines/orders/bindings.json".into()),
        ])
    }

    fn settings(env: &BTreeMap<&'static str, String>) -> Result<Settings, SettingsError> {
        Settings::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn the_documented_list_is_the_list_read() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/env-vars.json")).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut documented: Vec<&str> =
            doc["variables"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        documented.sort();
        let mut read = VARIABLES.to_vec();
        read.sort();
        assert_eq!(documented, read);
        // Every required one is required here, every optional one has its documented default.
        for v in doc["variables"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            if v["required"].as_bool().unwrap() {
                let mut e = env();
                e.remove(name);
                let err = settings(&e).unwrap_err();
                assert_eq!(err.name, name);
            }
        }
        let s = settings(&env()).unwrap();
        assert_eq!(s.refresh, Duration::from_secs(30));
        assert!(s.signing_keys.is_empty());
        assert_eq!(s.cache_dir, PathBuf::from("/tmp/weir-cache"));
        assert_eq!(s.bindings_key, "pipelines/orders/bindings.json");
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_allowed() {
        let mut e = env();
        e.insert("WEIR_REFRESH_SECONDS", "soon".into());
        let err = settings(&e).unwrap_err().to_string();
        assert!(err.contains("WEIR_REFRESH_SECONDS") && err.contains("whole number"), "{err}");
        let mut e = env();
        e.insert("WEIR_SIGNING_KEYS", "not-a-key".into());
        assert_eq!(settings(&e).unwrap_err().name, "WEIR_SIGNING_KEYS");
        let mut e = env();
        e.insert("WEIR_BINDINGS_KEY", "s3://plugins/pipelines/orders/bindings.json".into());
        assert!(settings(&e).unwrap_err().to_string().contains("not a key inside WEIR_PLUGINS_BUCKET"));
        let mut e = env();
        e.insert("WEIR_REFRESH_SECONDS", "0".into());
        assert_eq!(settings(&e).unwrap().refresh, Duration::ZERO);
    }
}
