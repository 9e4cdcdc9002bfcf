//! The wasmtime engine weir runs plugins on.
//!
//! One [`Engine`] per process: Cranelift-compiled components, epoch interruption for time limits
//! (a background thread advances the epoch every [`Engine::TICK`]; measured cheaper than fuel),
//! and the pooling instance allocator where the machine allows it. Pooling reserves address
//! space up front; where that fails (a tight `ulimit -v`, say) the engine logs why and falls back
//! to on-demand allocation, which is slower to instantiate but otherwise the same.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::limits::Limits;

/// How plugin instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Pre-reserved slots: instantiation in microseconds.
    Pooling,
    /// mmap per instance.
    OnDemand,
}

/// Options for building an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Try the pooling allocator first (default true).
    pub pooling: bool,
    /// Instances the pool holds at once: live stages, plus one per stage while a faulted
    /// instance is replaced.
    pub pool_instances: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { pooling: true, pool_instances: 64 }
    }
}

/// wasmtime refused the engine configuration.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the wasmtime engine: {0}")]
pub struct EngineError(String);

/// The shared wasmtime engine and its epoch ticker.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    allocation: Allocation,
    fingerprint: Arc<str>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("allocation", &self.allocation).field("fingerprint", &self.fingerprint).finish()
    }
}

impl Engine {
    /// How often the epoch advances; time limits are rounded up to whole ticks.
    pub const TICK: Duration = Duration::from_millis(2);

    /// An engine with default options.
    pub fn new() -> Result<Self, EngineError> {
        Self::with_options(&EngineOptions::default())
    }

    /// An engine with these options.
    pub fn with_options(options: &EngineOptions) -> Result<Self, EngineError> {
        let fail = |e: wasmtime::Error| EngineError(format!("{e:#}"));
        let (inner, allocation) = if options.pooling {
            let mut config = base_config();
            let mut pool = PoolingAllocationConfig::default();
            let n = options.pool_instances.max(1);
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(16))
                .total_memories(n.saturating_mul(2))
                .total_tables(n.saturating_mul(16))
                .max_memory_size(Limits::MAX_MEMORY_MIB as usize * (1 << 20));
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            match wasmtime::Engine::new(&config) {
                Ok(engine) => (engine, Allocation::Pooling),
                Err(e) => {
                    tracing::warn!(error = %e, "pooling allocator unavailable; falling back to on-demand allocation");
                    (wasmtime::Engine::new(&base_config()).map_err(fail)?, Allocation::OnDemand)
                }
            }
        } else {
            (wasmtime::Engine::new(&base_config()).map_err(fail)?, Allocation::OnDemand)
        };
        spawn_ticker(&inner);
        let fingerprint = fingerprint(&inner).into();
        tracing::debug!(?allocation, %fingerprint, "wasmtime engine ready");
        Ok(Engine { inner, allocation, fingerprint })
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// Which allocator this engine ended up with.
    pub fn allocation(&self) -> Allocation {
        self.allocation
    }

    /// Identifies everything a precompiled artifact depends on: wasmtime's version, its Cargo
    /// features and this engine's `Config` (wasmtime's own compatibility hash), plus weir's
    /// version. An artifact only loads into an engine with the same fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Epoch ticks for a time limit (rounded up, plus one for the tick already under way).
    pub(crate) fn ticks_for(limit: Duration) -> u64 {
        let tick = Self::TICK.as_micros().max(1);
        (limit.as_micros().div_ceil(tick) as u64).saturating_add(1)
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.parallel_compilation(true);
    config
}

/// Advances the engine's epoch every tick for as long as the engine lives.
fn spawn_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("weir-epoch".into()).spawn(move || {
        loop {
            std::thread::sleep(Engine::TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        // Without a ticker no deadline ever fires; say so loudly rather than run unbounded.
        tracing::error!(error = %e, "cannot start the epoch thread: plugin time limits will not fire");
    }
}

fn fingerprint(engine: &wasmtime::Engine) -> String {
    use sha2::Digest;
    struct ShaHasher(sha2::Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = ShaHasher(sha2::Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.write(b"weir-host ");
    h.write(env!("CARGO_PKG_VERSION").as_bytes());
    hex::encode(&h.0.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up() {
        assert_eq!(Engine::ticks_for(Duration::from_millis(1)), 2);
        assert_eq!(Engine::ticks_for(Duration::from_millis(2)), 2);
        assert_eq!(Engine::ticks_for(Duration::from_millis(3)), 3);
    }

    #[test]
    fn fingerprint_is_stable_and_depends_on_config() {
        let a = Engine::with_options(&EngineOptions { pooling: false, ..Default::default() }).unwrap();
        let b = Engine::with_options(&EngineOptions { pooling: false, ..Default::default() }).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut other = base_config();
        other.cranelift_opt_level(OptLevel::None);
        let c = wasmtime::Engine::new(&other).unwrap();
        assert_ne!(a.fingerprint(), fingerprint(&c));
    }
}
