//! The one wasmtime [`Engine`] every plugin runs in, its epoch ticker, and the
//! on-disk cache of compiled components.
//!
//! Engine settings: epoch interruption on (deadlines), the pooling instance
//! allocator sized for about [`POOLED_PLUGINS`] plugins with
//! [`DEFAULT_POOL_SIZE`] warm instances each, component-model concurrency
//! support off (it makes every call slower and no plugin needs it).

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::{
    CORE_INSTANCES_PER_COMPONENT, DEFAULT_POOL_SIZE, EPOCH_TICK, MAX_MEMORY_LIMIT_MIB,
    POOLED_PLUGINS,
};

/// The wasmtime version compiled artifacts are tied to.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Where a component came from when it was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompileSource {
    /// Compiled now (and written to the cache).
    Compiled,
    /// Deserialized from the compile cache.
    Cache,
}

/// Errors creating the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("creating the wasmtime engine: {0}")]
    Wasmtime(String),
    /// The cache directory could not be created.
    #[error("creating the plugin cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The shared engine: wasmtime engine, epoch ticker thread, compile cache.
pub struct PluginEngine {
    engine: Engine,
    cache_dir: PathBuf,
    fingerprint: String,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    epoch: Arc<AtomicU64>,
    cache_hits: AtomicU64,
    compiles: AtomicU64,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PluginEngine")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

/// Feeds `Hash` output into a SHA-256 digest.
struct DigestHasher(Sha256);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The engine configuration novum runs plugins with.
fn engine_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.concurrency_support(false);
    let instances = POOLED_PLUGINS * u32::try_from(DEFAULT_POOL_SIZE).unwrap_or(4) * 2;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances)
        .max_memories_per_component(2)
        .total_tables(instances * 4)
        .max_tables_per_component(8)
        .max_memory_size(usize::try_from(MAX_MEMORY_LIMIT_MIB << 20).unwrap_or(usize::MAX));
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

impl PluginEngine {
    /// Creates the engine, starts its epoch ticker, and uses `cache_dir` for
    /// compiled components (created if missing).
    pub fn new(cache_dir: impl Into<PathBuf>) -> Result<Arc<Self>, EngineError> {
        let cache_dir = cache_dir.into();
        std::fs::create_dir_all(&cache_dir).map_err(|source| EngineError::CacheDir {
            path: cache_dir.clone(),
            source,
        })?;
        let engine = Engine::new(&engine_config())
            .map_err(|error| EngineError::Wasmtime(format!("{error:#}")))?;
        let mut hasher = DigestHasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let fingerprint = hex::encode(hasher.0.finalize());

        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU64::new(0));
        let ticker = {
            let engine = engine.clone();
            let stop = Arc::clone(&stop);
            let epoch = Arc::clone(&epoch);
            std::thread::Builder::new()
                .name("novum-epoch".to_string())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                        // After the engine's: whoever sees this count knows
                        // the engine's epoch is at least as far.
                        epoch.fetch_add(1, Ordering::Release);
                    }
                })
                .ok()
        };
        Ok(Arc::new(Self {
            engine,
            cache_dir,
            fingerprint,
            stop,
            ticker,
            epoch,
            cache_hits: AtomicU64::new(0),
            compiles: AtomicU64::new(0),
        }))
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The ticks the epoch ticker has counted, a lower bound of the engine's
    /// epoch (which wasmtime does not expose). The WASI timers of a plugin
    /// read it to wake when a call's deadline has passed.
    pub fn epoch_counter(&self) -> &Arc<AtomicU64> {
        &self.epoch
    }

    /// The compile cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Components loaded from the compile cache so far.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Components compiled so far.
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// The cache key of `bytes`: sha256 of the component, the wasmtime
    /// version and the engine's configuration fingerprint.
    pub fn cache_key(&self, bytes: &[u8]) -> String {
        let mut digest = Sha256::new();
        digest.update(bytes);
        digest.update(WASMTIME_VERSION.as_bytes());
        digest.update(self.fingerprint.as_bytes());
        hex::encode(digest.finalize())
    }

    /// Compiles `bytes`, or loads the compiled artifact from the cache.
    pub fn load_component(&self, bytes: &[u8]) -> wasmtime::Result<(Component, CompileSource)> {
        let path = self
            .cache_dir
            .join(format!("{}.cwasm", self.cache_key(bytes)));
        if path.exists() {
            // SAFETY: files in the cache directory are written by
            // `Component::serialize` below, under a name that includes the
            // engine's compatibility fingerprint; the directory belongs to
            // the controller and must not be writable by others.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => {
                    self.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok((component, CompileSource::Cache));
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), error = %error, "ignoring unreadable compiled plugin");
                }
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        match component.serialize() {
            Ok(artifact) => {
                let temporary = path.with_extension(format!("tmp{}", std::process::id()));
                let written = std::fs::write(&temporary, &artifact)
                    .and_then(|()| std::fs::rename(&temporary, &path));
                if let Err(error) = written {
                    tracing::warn!(path = %path.display(), error = %error, "could not cache compiled plugin");
                    let _ = std::fs::remove_file(&temporary);
                }
            }
            Err(error) => tracing::warn!(error = %error, "could not serialize compiled plugin"),
        }
        Ok((component, CompileSource::Compiled))
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}
