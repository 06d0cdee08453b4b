//! The one wasmtime [`Engine`] configuration, shared by the agent's process and the
//! out-of-process compiler so that native code compiled by one loads in the other, and the
//! epoch ticker that bounds every call into a plugin.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::RuntimeError;

/// How often the epoch advances: the granularity of per-call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings that decide the generated code; both sides of the compile cache use exactly these.
pub(crate) fn codegen_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

/// The agent-side engine: [`codegen_config`] plus the pooling allocator when asked for and
/// when the address space allows it (otherwise on-demand allocation).
pub(crate) fn host_engine(pooling: bool, max_instances: u32) -> Result<Engine, RuntimeError> {
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(max_instances);
        pool.total_core_instances(max_instances.saturating_mul(8));
        pool.total_memories(max_instances.saturating_mul(2));
        pool.total_tables(max_instances.saturating_mul(8));
        pool.max_memories_per_component(4);
        let mut config = codegen_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&config) {
            Ok(engine) => return Ok(engine),
            Err(err) => tracing::warn!(
                error = %err,
                "pooling allocator unavailable (address space too small?); using on-demand allocation"
            ),
        }
    }
    Engine::new(&codegen_config()).map_err(|err| RuntimeError::Engine(err.into()))
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`] until dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Result<EpochTicker, RuntimeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("usp-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(RuntimeError::EpochTicker)?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Epoch ticks for a deadline (at least one).
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}
