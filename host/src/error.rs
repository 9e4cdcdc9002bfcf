//! Errors from loading plugins and building stages. Record-level problems are not errors: they
//! are [`Rejected`](crate::Rejected) entries of a [`BatchReport`](crate::BatchReport).

use std::path::PathBuf;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{name}: not a WebAssembly binary (no `\\0asm` header)")]
    NotWasm { name: String },
    #[error(
        "{name}: a core WebAssembly module, not a component; build it with `--target wasm32-wasip2` \
         (or wrap it with `wasm-tools component new`)"
    )]
    NotAComponent { name: String },
    #[error("{name}: targets {found}, but this host supports {supported}")]
    WrongVersion { name: String, found: String, supported: String },
    #[error("{name}: does not export `{expected}`; is it a weir plugin? (exports: {found})")]
    MissingExport { name: String, expected: String, found: String },
    #[error(
        "{name}: imports {}, which weir plugins may not use; plugins get clocks, random and \
         logging only (no files, network or environment)",
        imports.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
    )]
    ForbiddenImport { name: String, imports: Vec<String> },
    #[error("{name}: sha256 is {actual}, expected {expected}")]
    DigestMismatch { name: String, expected: String, actual: String },
    #[error("{name}: invalid component: {message}")]
    Invalid { name: String, message: String },
}

/// Why a stage could not be built or (re)started.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("stage `{stage}`: invalid limits: {message}")]
    Limits { stage: String, message: String },
    #[error("stage `{stage}` ({plugin}): init refused the config: {message}")]
    InitRefused { stage: String, plugin: String, message: String },
    #[error("stage `{stage}` ({plugin}): cannot instantiate: {message}")]
    Instantiate { stage: String, plugin: String, message: String },
}
