//! Paths of the wasm plugins built by this crate's build script, for tests and benchmarks, and
//! the local AWS emulators the integration tests run against.

pub mod emulators;

include!(concat!(env!("OUT_DIR"), "/paths.rs"));
