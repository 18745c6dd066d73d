//! The wasmtime engine, the compiled-component cache and the linker.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::state::InstanceState;
use crate::{key_value, outbound_http, postgres, variables};

/// How often the epoch advances: a running guest yields to the executor at every tick, so an
/// instance's expiry is checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances one component instance may need (its module, shims and adapters).
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// Linear memory reset by rewriting the pages a request touched, instead of unmapping them:
/// unmapping costs a TLB shootdown on every core per request. With `PAGEMAP_SCAN` (Linux 6.7+)
/// only resident pages are rewritten.
const MEMORY_KEEP_RESIDENT: usize = 4 << 20;
/// The same for tables and async (fiber) stacks.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;
const STACK_KEEP_RESIDENT: usize = 512 << 10;
/// Slots whose leftover pages are unmapped together, amortizing the shootdowns that remain.
const DECOMMIT_BATCH: usize = 64;

/// Limits the pooling allocator is sized for.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Component instances alive at once: concurrent requests plus chained calls.
    pub instances: u32,
    /// The most linear memory one instance may use, in bytes.
    pub max_memory_bytes: usize,
}

/// Builds the engine: component model with async, epoch interruption, pooling allocator.
pub fn new_engine(limits: PoolLimits) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.instances)
        .total_core_instances(limits.instances * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(limits.instances * 2)
        .total_tables(limits.instances * CORE_INSTANCES_PER_COMPONENT)
        .total_stacks(limits.instances * 2)
        .max_memory_size(limits.max_memory_bytes)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .async_stack_keep_resident(STACK_KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto)
        .decommit_batch_size(DECOMMIT_BATCH);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot configure wasmtime")?;
    spawn_epoch_ticker(&engine);
    Ok(engine)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the engine lives.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning a thread at start-up");
}

/// Where compiled components are kept: `$SPINYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/spinyard`,
/// else `~/.cache/spinyard`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SPINYARD_CACHE_DIR") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("spinyard")
}

/// Loads a component, compiling it only if this engine has not compiled these bytes before.
pub fn load_component(engine: &Engine, wasm: &Path, cache_dir: &Path) -> anyhow::Result<Component> {
    let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let cached = cache_dir.join(format!(
        "{:x}-{:016x}.cwasm",
        Sha256::digest(&bytes),
        engine_hash.finish()
    ));
    if cached.exists() {
        // SAFETY: files in the cache directory are written only by this function, from
        // `Component::serialize` of the same engine configuration (the hash is in the name);
        // wasmtime still checks compatibility and we recompile on any error.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok(component),
            Err(error) => {
                tracing::warn!(path = %cached.display(), "recompiling: cached component unusable: {error:#}")
            }
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("failed to compile component from {}", wasm.display()))?;
    if let Err(error) = write_cache(&cached, &component) {
        tracing::warn!(path = %cached.display(), "cannot cache compiled component: {error:#}");
    }
    Ok(component)
}

fn write_cache(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has no directory")?;
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, &component.serialize()?)?;
    // A rename never changes a file another process may have mapped.
    temp.persist(path)?;
    Ok(())
}

/// The linker every component is instantiated with: WASI 0.2 (what Rust std imports),
/// WASI 0.3 with HTTP, and the Spin interfaces spinyard implements, each linked by its module.
pub fn new_linker(engine: &Engine) -> anyhow::Result<Linker<InstanceState>> {
    let mut linker = Linker::<InstanceState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    outbound_http::add_to_linker(&mut linker, |state| &mut state.outbound)?;
    key_value::add_to_linker(&mut linker, InstanceState::key_value_view)?;
    postgres::add_to_linker(&mut linker, InstanceState::postgres_view)?;
    variables::add_to_linker(&mut linker, InstanceState::variables_view)?;
    Ok(linker)
}
