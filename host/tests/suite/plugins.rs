//! Plugin sets: atomic hot reload, failing reloads, the compile cache, and
//! what the API lists.

use crate::common;

use std::sync::Arc;

use common::test_plugin;
use novum_plugin_host::{
    Backend, CompileSource, PluginEngine, PluginKind, PluginSelection, Plugins, PluginsConfig,
};

fn selection(filters: &[&str], weighers: &[&str]) -> PluginSelection {
    PluginSelection {
        filters: filters.iter().map(|name| (*name).to_string()).collect(),
        weighers: weighers.iter().map(|name| (*name).to_string()).collect(),
        ..PluginSelection::default()
    }
}

#[test]
fn reload_swaps_atomically_and_a_failing_reload_keeps_the_old_set() {
    let config = PluginsConfig::default();
    let plugins = Plugins::load(
        common::engine(),
        Backend::Wasm,
        &selection(&["compute-filter"], &["ram-weigher"]),
        &config,
    )
    .expect("initial set");
    let in_flight = plugins.current();
    assert_eq!(in_flight.filters().len(), 1);

    let reloaded = plugins
        .reload(
            Backend::Wasm,
            &selection(&["compute-filter"], &["ram-weigher", "cpu-weigher"]),
            &config,
        )
        .expect("reload");
    assert!(Arc::ptr_eq(&reloaded, &plugins.current()));
    assert_eq!(plugins.current().weighers().len(), 2);
    // A request that took the old set still has it, intact.
    assert_eq!(in_flight.weighers().len(), 1);
    assert!(!Arc::ptr_eq(&in_flight, &plugins.current()));

    let mut broken = PluginsConfig::default();
    broken.plugins.insert(
        "broken".to_string(),
        novum_plugin_host::PluginConfig {
            path: Some("/nonexistent/broken.wasm".into()),
            ..Default::default()
        },
    );
    let error = plugins
        .reload(
            Backend::Wasm,
            &selection(&["compute-filter", "broken"], &[]),
            &broken,
        )
        .expect_err("a missing component fails the reload");
    assert_eq!(error.plugin, "broken");
    assert!(
        error.to_string().contains("/nonexistent/broken.wasm"),
        "{error}"
    );
    assert!(
        Arc::ptr_eq(&reloaded, &plugins.current()),
        "the running set stays"
    );

    let error = plugins
        .reload(Backend::Wasm, &selection(&["ram-weigher"], &[]), &config)
        .expect_err("a weigher is not a filter");
    assert!(error.to_string().contains("is a weigher"), "{error}");
    let error = plugins
        .reload(Backend::Wasm, &selection(&["no-such-plugin"], &[]), &config)
        .expect_err("unknown plugin");
    assert_eq!(error.plugin, "no-such-plugin");
    assert!(Arc::ptr_eq(&reloaded, &plugins.current()));
}

#[test]
fn compile_cache_is_hit_on_second_load() {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "plugin-cache-{}-{}",
        std::process::id(),
        line!()
    ));
    let _ = std::fs::remove_dir_all(&cache);
    let mut config = PluginsConfig::default();
    config
        .plugins
        .insert("misbehaving".into(), test_plugin("misbehaving-filter"));
    let only = selection(&["misbehaving"], &[]);

    let first = PluginEngine::new(&cache).expect("engine");
    Plugins::load(Arc::clone(&first), Backend::Wasm, &only, &config).expect("load");
    assert_eq!((first.compiles(), first.cache_hits()), (1, 0));

    // A fresh engine (a restart) finds the compiled component on disk.
    let second = PluginEngine::new(&cache).expect("engine");
    Plugins::load(Arc::clone(&second), Backend::Wasm, &only, &config).expect("load");
    assert_eq!((second.compiles(), second.cache_hits()), (0, 1));
    let bytes = std::fs::read(novum_plugin_host::builtin::built_component_path(
        "misbehaving-filter",
    ))
    .expect("built");
    let (_, source) = second.load_component("misbehaving", &bytes).expect("load");
    assert_eq!(source, CompileSource::Cache);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn lists_plugins_with_kind_version_needs_and_metrics() {
    let plugins = Plugins::load(
        common::engine(),
        Backend::Wasm,
        &selection(&["compute-filter"], &["io-ops-weigher"]),
        &PluginsConfig::default(),
    )
    .expect("load");
    let list = plugins.list();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, "compute-filter");
    assert_eq!(list[0].kind, PluginKind::Filter);
    assert_eq!(list[0].needs, ["service"]);
    assert_eq!(list[0].version, env!("CARGO_PKG_VERSION"));
    assert_eq!(list[1].kind, PluginKind::Weigher);
    assert_eq!(list[1].multiplier, Some(-1.0));
    assert_eq!(list[1].metrics.calls, 0);
}
