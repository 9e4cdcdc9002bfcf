//! The weir host: runs record transforms, written as WebAssembly components, between a source
//! and sinks.
//!
//! Records flow one way: a source yields [`Record`]s, a [`Chain`] of [`Stage`]s transforms them,
//! sinks take the [`BatchReport`]. This crate is the middle of that sentence and knows nothing of
//! Lambda or of any particular source or sink, so the CLI's local runner and the Lambda share it.
//!
//! - [`engine`]: the wasmtime engine weir runs plugins on (component model, pooling allocator,
//!   epoch-based time limits), and its configuration fingerprint;
//! - [`cache`]: precompiled plugins on disk, keyed by the wasm's sha256 and that fingerprint;
//! - [`plugin`]: loading a component and checking it targets the weir world;
//! - [`contract`]: one module per supported version of the WIT contract;
//! - [`sandbox`]: what a plugin instance can reach (nothing but clocks, random and logging) and
//!   the limits it runs under;
//! - [`stage`]: a plugin with its config and limits, and fault isolation;
//! - [`chain`]: ordered stages, outputs of one feeding the next;
//! - [`report`] and [`metrics`]: what became of each record, and per-stage counters;
//! - [`source`], [`pipeline`], [`sink`]: reading inputs, the `weir.toml` file, its wiring
//!   ([`pipeline::build`]) and the run loop, and writing results (one folder per kind of sink,
//!   each with its local twin and its AWS backend);
//! - [`aws`]: AWS clients, error descriptions and the retry of partial failures; it imports
//!   nothing else of this crate.

pub mod aws;
pub mod cache;
pub mod chain;
pub mod contract;
pub mod engine;
pub mod error;
pub mod limits;
pub mod live;
pub mod manifest;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod record;
pub mod report;
pub mod sandbox;
pub mod sink;
pub mod source;
pub mod stage;

pub use cache::ArtifactCache;
pub use chain::Chain;
pub use engine::Engine;
pub use error::{LoadError, StageError};
pub use limits::Limits;
pub use metrics::StageMetrics;
pub use plugin::Plugin;
pub use record::Record;
pub use report::{BatchReport, Emitted, Filtered, RejectKind, Rejected};
pub use stage::{Stage, StageSpec};
pub use wasmtime;
