//! Paths of the wasm plugins built by this crate's build script, for tests and benchmarks.
include!(concat!(env!("OUT_DIR"), "/paths.rs"));
