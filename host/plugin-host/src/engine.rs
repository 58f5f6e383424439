//! The one wasmtime [`Engine`] every plugin runs in, its epoch ticker, and the
//! on-disk cache of compiled components.
//!
//! A compiled artifact is native code the controller maps and runs, so the
//! cache trusts nothing it did not write itself: the directory (default
//! `<data_dir>/plugin-cache`, created 0700) must belong to the controller's
//! user and be writable by no one else, or the engine refuses to start; every
//! artifact carries a MAC (keyed BLAKE2b, RFC 7693), keyed by a secret of the
//! cache directory ([`CACHE_KEY_FILE`], 32 random bytes, 0600), over the
//! component's sha256,
//! the engine's version and configuration, and the artifact bytes. An artifact
//! that does not verify, or that others may write, is recompiled with a
//! warning naming the plugin, and only the verified bytes are deserialized.
//!
//! Engine settings: epoch interruption on (deadlines), the pooling instance
//! allocator sized for about [`POOLED_PLUGINS`] plugins with
//! [`DEFAULT_POOL_SIZE`] warm instances each, component-model concurrency
//! support off (it makes every call slower and no plugin needs it).

use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::hash::Hasher;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use blake2::Blake2bMac;
use blake2::digest::Mac;
use blake2::digest::consts::U32;
use rand::RngCore;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::{
    CORE_INSTANCES_PER_COMPONENT, DEFAULT_POOL_SIZE, EPOCH_TICK, MAX_MEMORY_LIMIT_MIB,
    POOLED_PLUGINS,
};

/// The wasmtime version compiled artifacts are tied to.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The file, inside the cache directory, holding the secret key that
/// authenticates the compiled artifacts (created at first start).
pub const CACHE_KEY_FILE: &str = "cache.key";

/// The length of the cache key, in bytes.
const CACHE_KEY_LEN: usize = 32;

/// The mode of a cache directory novum creates: the controller's user only.
const CACHE_DIR_MODE: u32 = 0o700;

/// The mode of the files novum writes into the cache directory.
const CACHE_FILE_MODE: u32 = 0o600;

/// Mode bits that let users other than the owner write.
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Mode bits that let users other than the owner read or write.
const ACCESSIBLE_BY_OTHERS: u32 = 0o077;

/// The first bytes of a cache artifact: the format, then the
/// authentication code ([`MAC_LEN`] bytes), then wasmtime's artifact.
const ARTIFACT_MAGIC: &[u8; 8] = b"novumcw1";

/// The length of an artifact's authentication code.
const MAC_LEN: usize = 32;

/// The authentication code of the cache artifacts: BLAKE2b in its keyed
/// (MAC) mode, 256-bit output. Not HMAC-SHA256: verifying every artifact
/// of a start (about 11 MiB for the 37 shipped plugins) took 1.5 s with
/// HMAC-SHA256 in a debug build and 55 ms with BLAKE2b, whose crate the
/// dev profile already optimizes.
type ArtifactMac = Blake2bMac<U32>;

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
    /// The cache directory or its key is not the controller's alone: it
    /// belongs to another user, or others may write it (or read the key).
    #[error(
        "refusing the plugin cache {path}: it is {problem}; it must belong to the \
         controller's user and be writable by no one else (remove it, or fix it with \
         chown and chmod 700 for the directory, 600 for the key)"
    )]
    UnsafeCache {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The cache key could not be read or created.
    #[error("the plugin cache key {path}: {source}")]
    CacheKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The shared engine: wasmtime engine, epoch ticker thread, compile cache.
pub struct PluginEngine {
    engine: Engine,
    cache_dir: PathBuf,
    /// The MAC keyed by the cache key, ready to take an artifact.
    artifact_mac: ArtifactMac,
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
    /// compiled components: created 0700 if missing, refused if it belongs
    /// to another user or others may write it; its key is created at first
    /// use and refused if others may read or write it.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Result<Arc<Self>, EngineError> {
        let cache_dir = cache_dir.into();
        prepare_cache_dir(&cache_dir)?;
        let key_path = cache_dir.join(CACHE_KEY_FILE);
        let artifact_mac =
            ArtifactMac::new_from_slice(&load_or_create_key(&key_path)?).map_err(|error| {
                EngineError::UnsafeCache {
                    path: key_path.clone(),
                    problem: format!("not a usable MAC key: {error}"),
                }
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
            artifact_mac,
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
    /// epoch (which wasmtime does not expose). A plugin's WASI timer that
    /// would outlast its call's budget reads it to wake once the engine has
    /// reached the epoch deadline where the budget ends.
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

    /// The cache key of `bytes`: sha256 over the component's sha256, the
    /// wasmtime version and the engine's configuration fingerprint.
    pub fn cache_key(&self, bytes: &[u8]) -> String {
        self.cache_key_of(&Sha256::digest(bytes).into())
    }

    /// The cache key of the component whose sha256 is `component_digest`.
    fn cache_key_of(&self, component_digest: &[u8; 32]) -> String {
        let mut digest = Sha256::new();
        digest.update(component_digest);
        digest.update(WASMTIME_VERSION.as_bytes());
        digest.update(self.fingerprint.as_bytes());
        hex::encode(digest.finalize())
    }

    /// Compiles `bytes`, the component of `plugin`, or loads its compiled
    /// artifact from the cache when the artifact verifies. An artifact that
    /// does not (or that others may write) is recompiled and replaced, with
    /// a warning naming the plugin.
    pub fn load_component(
        &self,
        plugin: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CompileSource)> {
        let component_digest: [u8; 32] = Sha256::digest(bytes).into();
        let cache_key = self.cache_key_of(&component_digest);
        let path = self.cache_dir.join(format!("{cache_key}.cwasm"));
        match read_artifact(&path) {
            Ok(None) => {}
            Ok(Some(file)) => match self.verified_artifact(&file, &component_digest, &cache_key) {
                Some(artifact) => {
                    // SAFETY: wasmtime may only deserialize artifacts it
                    // wrote itself. These bytes are exactly the ones whose
                    // MAC, keyed by the cache's secret, verified over this
                    // component's sha256 and this engine's version and
                    // configuration: the controller wrote them for this
                    // component, and they were read once, from a file of the
                    // controller's user that no one else may write.
                    match unsafe { Component::deserialize(&self.engine, artifact) } {
                        Ok(component) => {
                            self.cache_hits.fetch_add(1, Ordering::Relaxed);
                            return Ok((component, CompileSource::Cache));
                        }
                        Err(error) => tracing::warn!(
                            plugin,
                            path = %path.display(),
                            error = %format!("{error:#}"),
                            "recompiling the plugin: its cached artifact does not deserialize"
                        ),
                    }
                }
                None => tracing::warn!(
                    plugin,
                    path = %path.display(),
                    "recompiling the plugin: its cached artifact does not verify (copied from \
                     another plugin, tampered with, written under another key or by an older novum)"
                ),
            },
            Err(problem) => tracing::warn!(
                plugin,
                path = %path.display(),
                problem = %problem,
                "recompiling the plugin: refusing its cached artifact"
            ),
        }
        let component = Component::new(&self.engine, bytes)?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        match component.serialize() {
            Ok(artifact) => {
                let mac = self.artifact_mac(&component_digest, &cache_key, &artifact);
                if let Err(error) = write_artifact(&path, mac, &artifact) {
                    tracing::warn!(plugin, path = %path.display(), error = %error, "could not cache compiled plugin");
                }
            }
            Err(error) => {
                tracing::warn!(plugin, error = %error, "could not serialize compiled plugin")
            }
        }
        Ok((component, CompileSource::Compiled))
    }

    /// The authentication code of `artifact`, compiled from the component
    /// with sha256 `component_digest` under cache key `cache_key` (which
    /// covers the wasmtime version and the engine's configuration).
    fn artifact_mac(
        &self,
        component_digest: &[u8; 32],
        cache_key: &str,
        artifact: &[u8],
    ) -> ArtifactMac {
        let mut mac = self.artifact_mac.clone();
        mac.update(ARTIFACT_MAGIC);
        mac.update(component_digest);
        mac.update(cache_key.as_bytes());
        mac.update(artifact);
        mac
    }

    /// The wasmtime artifact inside cache file `file`, if the file is one
    /// and its authentication code verifies.
    fn verified_artifact<'a>(
        &self,
        file: &'a [u8],
        component_digest: &[u8; 32],
        cache_key: &str,
    ) -> Option<&'a [u8]> {
        let rest = file.strip_prefix(ARTIFACT_MAGIC.as_slice())?;
        let (tag, artifact) = rest.split_at_checked(MAC_LEN)?;
        self.artifact_mac(component_digest, cache_key, artifact)
            .verify_slice(tag)
            .ok()?;
        Some(artifact)
    }
}

/// The effective user id of the controller.
fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// What makes `metadata` (of a cache directory or file) unsafe to trust:
/// another owner than the controller's user, or any of the `forbidden`
/// mode bits (`what` names them).
fn ownership_problem(metadata: &Metadata, forbidden: u32, what: &str) -> Option<String> {
    let uid = effective_uid();
    if metadata.uid() != uid {
        return Some(format!(
            "owned by uid {}, not by the controller's uid {uid}",
            metadata.uid()
        ));
    }
    let mode = metadata.mode() & 0o7777;
    (mode & forbidden != 0).then(|| format!("{what} (mode {mode:04o})"))
}

/// Creates the cache directory (0700) if missing, and refuses it unless it
/// is a directory of the controller's user that no one else may write.
fn prepare_cache_dir(dir: &Path) -> Result<(), EngineError> {
    let io_error = |source| EngineError::CacheDir {
        path: dir.to_path_buf(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(CACHE_DIR_MODE)
        .create(dir)
        .map_err(io_error)?;
    let metadata = std::fs::metadata(dir).map_err(io_error)?;
    let problem = if metadata.is_dir() {
        ownership_problem(&metadata, WRITABLE_BY_OTHERS, "writable by group or others")
    } else {
        Some("not a directory".to_string())
    };
    match problem {
        Some(problem) => Err(EngineError::UnsafeCache {
            path: dir.to_path_buf(),
            problem,
        }),
        None => Ok(()),
    }
}

/// Opens `path` for reading without following a symbolic link.
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The cache key at `path`; created (random, 0600) if missing. A key that
/// is not a regular file of the controller's user, that others may read or
/// write, or that has the wrong length is refused.
fn load_or_create_key(path: &Path) -> Result<[u8; CACHE_KEY_LEN], EngineError> {
    let io_error = |source| EngineError::CacheKey {
        path: path.to_path_buf(),
        source,
    };
    let file = match open_no_follow(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            create_key(path).map_err(io_error)?;
            open_no_follow(path).map_err(io_error)?
        }
        Err(error) => return Err(io_error(error)),
    };
    let metadata = file.metadata().map_err(io_error)?;
    let problem = if metadata.is_file() {
        ownership_problem(
            &metadata,
            ACCESSIBLE_BY_OTHERS,
            "readable or writable by group or others",
        )
    } else {
        Some("not a regular file".to_string())
    };
    if let Some(problem) = problem {
        return Err(EngineError::UnsafeCache {
            path: path.to_path_buf(),
            problem,
        });
    }
    let mut key = Vec::with_capacity(CACHE_KEY_LEN);
    file.take(CACHE_KEY_LEN as u64 + 1)
        .read_to_end(&mut key)
        .map_err(io_error)?;
    key.as_slice()
        .try_into()
        .map_err(|_| EngineError::UnsafeCache {
            path: path.to_path_buf(),
            problem: format!("{} bytes long, not {CACHE_KEY_LEN}", key.len()),
        })
}

/// Writes a new random key at `path` (0600), complete or not at all: it is
/// written to a temporary file first and linked into place, so a
/// controller starting at the same moment reads either no key or the whole
/// of one; when another one won, its key stays.
fn create_key(path: &Path) -> std::io::Result<()> {
    let mut key = [0u8; CACHE_KEY_LEN];
    rand::rng().fill_bytes(&mut key);
    let temporary = temporary_path(path);
    let written = write_private_file(&temporary, &[&key]).and_then(|()| {
        match std::fs::hard_link(&temporary, path) {
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            linked => linked,
        }
    });
    let _ = std::fs::remove_file(&temporary);
    written
}

/// A fresh temporary path beside `path`.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    path.with_file_name(name)
}

/// Creates `path` (which must not exist) with mode 0600 and writes `parts`.
fn write_private_file(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(CACHE_FILE_MODE)
        .open(path)?;
    for part in parts {
        file.write_all(part)?;
    }
    file.sync_all()
}

/// The bytes of the cache file at `path`, `None` when there is none; an
/// error (text) when it is a symbolic link, not a regular file, not the
/// controller's, or writable by others.
fn read_artifact(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let mut file = match open_no_follow(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot open it: {error}")),
    };
    let metadata = file
        .metadata()
        .map_err(|error| format!("cannot stat it: {error}"))?;
    if !metadata.is_file() {
        return Err("not a regular file".to_string());
    }
    if let Some(problem) =
        ownership_problem(&metadata, WRITABLE_BY_OTHERS, "writable by group or others")
    {
        return Err(problem);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or_default());
    file.read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read it: {error}"))?;
    Ok(Some(bytes))
}

/// Writes the cache file `path` atomically: a new 0600 temporary file
/// holding the format, the authentication code and the artifact, renamed
/// over `path`.
fn write_artifact(path: &Path, mac: ArtifactMac, artifact: &[u8]) -> std::io::Result<()> {
    let tag = mac.finalize().into_bytes();
    let temporary = temporary_path(path);
    let written = write_private_file(&temporary, &[ARTIFACT_MAGIC.as_slice(), &tag, artifact])
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}
