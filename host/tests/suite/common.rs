//! Shared pieces of the host's integration tests: one plugin engine per test
//! binary (compile cache under the target directory), small clouds, requests.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use novum_plugin_host::{
    Backend, PluginConfig, PluginEngine, PluginSelection, PluginSet, PluginsConfig,
};
use novum_plugin_sdk::{Flavor, Image, Request, SchedulerHint};
use novum_scheduler::{CloudSnapshot, HostState, SchedulingRequest};

/// The engine of this test binary.
pub fn engine() -> Arc<PluginEngine> {
    static ENGINE: OnceLock<Arc<PluginEngine>> = OnceLock::new();
    Arc::clone(ENGINE.get_or_init(|| {
        PluginEngine::new(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"))
            .expect("plugin engine")
    }))
}

/// Plugin settings for tests that are not about deadlines: a 1 s deadline,
/// since on a loaded 2-core CI machine the default 50 ms can pass while a
/// plugin's thread waits for a core (the sandbox tests cover deadlines).
pub fn plugins_config() -> PluginsConfig {
    let mut config = PluginsConfig::default();
    config.defaults.deadline_ms = 1_000;
    config
}

/// `count` healthy hosts named host-0.., with growing free RAM.
pub fn cloud(count: usize) -> CloudSnapshot {
    let hosts = (0..count)
        .map(|index| HostState {
            name: format!("host-{index}"),
            uuid: format!("uuid-{index}"),
            memory_total_mb: 8192,
            memory_used_mb: 4096 - (index as i64) * 100,
            disk_total_mb: 100_000,
            vcpus_total: 8,
            ..HostState::default()
        })
        .collect();
    CloudSnapshot::new(hosts, Vec::new())
}

/// A one-instance request; `misbehave` becomes the scheduler hint the test
/// plugins read.
pub fn request(misbehave: Option<&str>) -> SchedulingRequest {
    let request = Request {
        flavor: Flavor {
            id: "1".into(),
            name: "m1.small".into(),
            vcpus: 1,
            memory_mb: 512,
            root_gb: 1,
            ephemeral_gb: 0,
            swap_mb: 0,
            extra_specs: Vec::new(),
        },
        image: Image {
            id: "image".into(),
            properties: Vec::new(),
        },
        project_id: "p".into(),
        user_id: "u".into(),
        availability_zone: None,
        num_instances: 1,
        scheduler_hints: misbehave
            .map(|mode| {
                vec![SchedulerHint {
                    name: "misbehave".into(),
                    values: vec![mode.into()],
                }]
            })
            .unwrap_or_default(),
        group: None,
        instance_uuids: vec!["instance-0".into()],
    };
    SchedulingRequest::new("req-test", request)
}

/// A plugin table loading a test component from the build directory.
pub fn test_plugin(crate_name: &str) -> PluginConfig {
    PluginConfig {
        path: Some(novum_plugin_host::builtin::built_component_path(crate_name)),
        ..PluginConfig::default()
    }
}

/// Loads `filters` and `weighers` with `config`.
pub fn load(filters: &[&str], weighers: &[&str], config: &PluginsConfig) -> PluginSet {
    let selection = PluginSelection {
        filters: filters.iter().map(|name| (*name).to_string()).collect(),
        weighers: weighers.iter().map(|name| (*name).to_string()).collect(),
        ..PluginSelection::default()
    };
    PluginSet::load(&engine(), Backend::Wasm, &selection, config).expect("plugins load")
}
