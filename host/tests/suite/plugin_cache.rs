//! The compiled-plugin cache is native code the controller runs, so nothing
//! in it is trusted: an artifact copied over another plugin's, a tampered
//! byte, or a file others may write is recompiled (with a warning naming the
//! plugin), never loaded; a cache directory others may write, or that
//! belongs to another user, is refused at start with an error naming it.
//! The cache's key is created owner-only and refused when others may read
//! it. The normal path still loads from the cache.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use novum_config::Config;
use novum_plugin_host::engine::CACHE_KEY_FILE;
use novum_plugin_host::{Backend, PluginEngine, PluginSelection, PluginSet, PluginsConfig};
use novum_scheduler::{CloudSnapshot, NoClaims, ScheduleError, SchedulerConfig, schedule};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common;

/// A fresh, not yet existing cache directory for one test.
fn fresh_cache(test: &str) -> PathBuf {
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "plugin-cache-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&parent).expect("parent");
    parent.join(test)
}

/// Where `engine` keeps the compiled artifact of the builtin `plugin`.
fn artifact(engine: &PluginEngine, plugin: &str) -> PathBuf {
    let bytes = novum_plugin_host::builtin::builtin(plugin)
        .expect("builtin")
        .bytes;
    engine
        .cache_dir()
        .join(format!("{}.cwasm", engine.cache_key(bytes)))
}

/// Loads the one filter `plugin` on `engine`, returning the set and every
/// log line the load wrote at WARN or above.
fn load_filter(engine: &Arc<PluginEngine>, plugin: &str) -> (PluginSet, String) {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let selection = PluginSelection {
        filters: vec![plugin.to_string()],
        ..PluginSelection::default()
    };
    let set = tracing::subscriber::with_default(subscriber, || {
        PluginSet::load(engine, Backend::Wasm, &selection, &PluginsConfig::default())
    })
    .expect("plugin loads");
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("log buffer")).into_owned();
    (set, logs)
}

/// Whether `set` (one filter) lets a host whose compute service is disabled
/// through: `all-hosts-filter` does, `compute-filter` does not.
fn passes_a_disabled_host(set: &PluginSet) -> bool {
    let mut hosts = common::cloud(1).host_states();
    hosts[0].service_disabled = true;
    let snapshot = CloudSnapshot::new(hosts, Vec::new());
    match schedule(
        set,
        &SchedulerConfig::default(),
        &snapshot,
        &common::request(None),
        &NoClaims,
        &mut StdRng::seed_from_u64(1),
    ) {
        Ok(_) => true,
        Err(ScheduleError::NoValidHost(_)) => false,
        Err(other) => panic!("unexpected scheduling error: {other}"),
    }
}

#[test]
fn a_copied_artifact_is_recompiled_and_the_plugin_runs_as_itself() {
    let dir = fresh_cache("copied");
    let first = PluginEngine::new(&dir).expect("engine");
    let (compute, _) = load_filter(&first, "compute-filter");
    let (all_hosts, _) = load_filter(&first, "all-hosts-filter");
    assert!(!passes_a_disabled_host(&compute));
    assert!(passes_a_disabled_host(&all_hosts));

    // Plugin A's artifact under plugin B's name.
    std::fs::copy(
        artifact(&first, "all-hosts-filter"),
        artifact(&first, "compute-filter"),
    )
    .expect("copy artifact");

    let second = PluginEngine::new(&dir).expect("engine");
    let (compute, logs) = load_filter(&second, "compute-filter");
    assert!(
        !passes_a_disabled_host(&compute),
        "compute-filter must keep its own verdicts, not all-hosts-filter's"
    );
    assert_eq!((second.compiles(), second.cache_hits()), (1, 0));
    assert!(
        logs.contains("WARN") && logs.contains("compute-filter"),
        "a warning naming the plugin: {logs}"
    );

    // The recompiled artifact replaced the bad one: the next start hits.
    let third = PluginEngine::new(&dir).expect("engine");
    let (compute, logs) = load_filter(&third, "compute-filter");
    assert!(!passes_a_disabled_host(&compute));
    assert_eq!((third.compiles(), third.cache_hits()), (0, 1));
    assert!(logs.is_empty(), "no warning on a good artifact: {logs}");
}

#[test]
fn a_tampered_artifact_is_recompiled() {
    let dir = fresh_cache("tampered");
    let first = PluginEngine::new(&dir).expect("engine");
    load_filter(&first, "compute-filter");
    let path = artifact(&first, "compute-filter");
    let mut bytes = std::fs::read(&path).expect("artifact");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).expect("tamper");

    let second = PluginEngine::new(&dir).expect("engine");
    let (compute, logs) = load_filter(&second, "compute-filter");
    assert_eq!((second.compiles(), second.cache_hits()), (1, 0));
    assert!(logs.contains("compute-filter"), "{logs}");
    assert!(!passes_a_disabled_host(&compute));
}

#[test]
fn an_artifact_others_may_write_is_not_loaded() {
    let dir = fresh_cache("writable-artifact");
    let first = PluginEngine::new(&dir).expect("engine");
    load_filter(&first, "compute-filter");
    let path = artifact(&first, "compute-filter");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");

    let second = PluginEngine::new(&dir).expect("engine");
    let (_, logs) = load_filter(&second, "compute-filter");
    assert_eq!((second.compiles(), second.cache_hits()), (1, 0));
    assert!(logs.contains("compute-filter"), "{logs}");
    let mode = std::fs::metadata(&path)
        .expect("rewritten")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "rewritten owner-only: {mode:o}");
}

#[test]
fn a_cache_directory_others_may_write_is_refused() {
    let dir = fresh_cache("world-writable");
    std::fs::create_dir_all(&dir).expect("pre-created directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let error = PluginEngine::new(&dir).expect_err("a 0777 cache directory is refused");
    let text = error.to_string();
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(text.contains("writable by group or others"), "{text}");

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).expect("chmod");
    let error = PluginEngine::new(&dir).expect_err("group-writable is refused too");
    assert!(error.to_string().contains("0770"), "{error}");
}

#[test]
fn a_cache_directory_of_another_user_is_refused() {
    let dir = fresh_cache("foreign");
    std::fs::create_dir_all(&dir).expect("pre-created directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // Only root may give a directory away; elsewhere the check is covered
    // by the mode test and the owner comparison is the same code path.
    const NOBODY: u32 = 65534;
    if let Err(error) = std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)) {
        println!("skipping the owner check: cannot chown a directory to uid {NOBODY}: {error}");
        return;
    }
    let error = PluginEngine::new(&dir).expect_err("a foreign cache directory is refused");
    let text = error.to_string();
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(text.contains(&format!("owned by uid {NOBODY}")), "{text}");
}

#[test]
fn a_new_cache_directory_is_owner_only() {
    let dir = fresh_cache("new");
    let engine = PluginEngine::new(&dir).expect("engine");
    load_filter(&engine, "compute-filter");
    let mode = std::fs::metadata(&dir)
        .expect("created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    let mode = std::fs::metadata(artifact(&engine, "compute-filter"))
        .expect("artifact")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[test]
fn the_key_is_created_owner_only_and_refused_when_others_may_read_it() {
    let dir = fresh_cache("key");
    PluginEngine::new(&dir).expect("engine");
    let key = dir.join(CACHE_KEY_FILE);
    let metadata = std::fs::metadata(&key).expect("key created");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert_eq!(metadata.len(), 32);
    let first = std::fs::read(&key).expect("key");
    PluginEngine::new(&dir).expect("engine");
    assert_eq!(std::fs::read(&key).expect("key"), first, "the key is kept");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = PluginEngine::new(&dir).expect_err("a key others may read is refused");
    let text = error.to_string();
    assert!(text.contains(&key.display().to_string()), "{text}");
    assert!(
        text.contains("readable or writable by group or others"),
        "{text}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&key, b"short").expect("truncate");
    let error = PluginEngine::new(&dir).expect_err("a short key is refused");
    assert!(error.to_string().contains("5 bytes long"), "{error}");
}

#[test]
fn artifacts_written_under_another_key_are_recompiled() {
    let dir = fresh_cache("rekeyed");
    let first = PluginEngine::new(&dir).expect("engine");
    load_filter(&first, "compute-filter");
    // A cache directory carried over from elsewhere: same artifacts, but
    // this controller's key.
    std::fs::write(dir.join(CACHE_KEY_FILE), [7u8; 32]).expect("new key");

    let second = PluginEngine::new(&dir).expect("engine");
    let (compute, logs) = load_filter(&second, "compute-filter");
    assert_eq!((second.compiles(), second.cache_hits()), (1, 0));
    assert!(logs.contains("compute-filter"), "{logs}");
    assert!(!passes_a_disabled_host(&compute));
}

#[test]
fn the_default_cache_is_owner_only_under_the_data_directory() {
    let data_dir = fresh_cache("data");
    let config = Config {
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    let cache = data_dir.join("plugin-cache");
    assert_eq!(config.plugin_cache_dir(), cache);
    let plugins = config
        .load_scheduler_plugins()
        .expect("the default plugins load");
    assert_eq!(plugins.engine().cache_dir(), cache);
    assert!(plugins.engine().compiles() > 0);
    let mode = std::fs::metadata(&cache)
        .expect("created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    let mode = std::fs::metadata(cache.join(CACHE_KEY_FILE))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}
