//! The WIT contracts this host speaks, one module per version.
//!
//! A released version of `weir:transform` is never edited; a new one gets a module beside the
//! old (`v0_2_0.rs` next to [`v0_1_0`]), and [`Pre`] gains a variant, so plugins built against
//! either keep working. Everything version-specific (generated bindings, packing a batch into
//! the wire shape, reading the answer back) stays inside the version's module; the rest of the
//! host sees only [`PluginOutcome`].

pub mod v0_1_0;

use crate::record::Record;
use crate::report::RejectKind;

/// Interfaces (without version) a plugin may import besides the weir contract: what the Rust
/// standard library for `wasm32-wasip2` links. The host provides them empty (no variables, no
/// arguments, no preopened directories; stdio captured). Sockets, HTTP and anything else are
/// refused at load.
pub const ALLOWED_WASI: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// A plugin compiled and linked against one contract version, ready to instantiate.
#[derive(Clone)]
pub enum Pre {
    V0_1_0(v0_1_0::Pre),
}

/// A live plugin instance of one contract version.
pub enum Instance {
    V0_1_0(v0_1_0::Instance),
}

/// What the plugin said about one input record, already checked against the stage's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginOutcome {
    /// Records emitted (0 = filtered), in order.
    Emit(Vec<Record>),
    /// Rejected by the plugin (`plugin-reject`) or by the host for this record alone
    /// (`output-limit`, `invalid-output`).
    Reject { kind: RejectKind, reason: String },
}

pub(crate) use crate::record::check_json;

/// Id of the `k`-th of `n` records emitted for input `id`: the input's id when there is one
/// output, `id/k` for a fan-out, so ids stay stable across redeliveries.
pub(crate) fn output_id(id: &str, k: usize, n: usize) -> String {
    if n == 1 { id.to_string() } else { format!("{id}/{k}") }
}

/// Attributes of an output: the input's, overridden by those the plugin set.
pub(crate) fn merge_attributes(input: &[(String, String)], set: Vec<(String, String)>) -> Vec<(String, String)> {
    if set.is_empty() {
        return input.to_vec();
    }
    let mut merged: Vec<(String, String)> =
        input.iter().filter(|(k, _)| !set.iter().any(|(s, _)| s == k)).cloned().collect();
    merged.extend(set);
    merged
}
