//! The native backend: a plugin crate compiled into the controller, run
//! through the SDK's `NativePlugin` (the very loop its wasm export runs),
//! without the WebAssembly boundary. Used by the reference pipeline, the
//! equivalence tests and the benchmark. A native plugin has no sandbox: a
//! panic is caught and reported as a trap, but a loop is not interrupted.

use std::panic::{AssertUnwindSafe, catch_unwind};

use novum_plugin_sdk::{
    Config, FilterOutcome, KeyValue, NativePlugin, Notification, PluginInfo, QuotaDenial,
    QuotaRequest,
};

use super::{
    CallContext, FailureKind, PluginBackend, PluginFailure, PluginKind, PluginSettings,
    PluginSource, TableFor,
};

macro_rules! native_plugins {
    ($($name:literal => $krate:ident),* $(,)?) => {
        /// Every plugin crate compiled into the controller, by name.
        pub const NATIVE_PLUGINS: &[(&str, NativePlugin)] = &[$(($name, $krate::NATIVE_PLUGIN)),*];
    };
}

native_plugins! {
    "compute-filter" => compute_filter,
    "aggregate-image-properties-isolation" => aggregate_image_properties_isolation,
    "aggregate-instance-extra-specs-filter" => aggregate_instance_extra_specs_filter,
    "aggregate-io-ops-filter" => aggregate_io_ops_filter,
    "aggregate-multi-tenancy-isolation" => aggregate_multi_tenancy_isolation,
    "aggregate-num-instances-filter" => aggregate_num_instances_filter,
    "aggregate-type-affinity-filter" => aggregate_type_affinity_filter,
    "all-hosts-filter" => all_hosts_filter,
    "availability-zone-filter" => availability_zone_filter,
    "compute-capabilities-filter" => compute_capabilities_filter,
    "different-host-filter" => different_host_filter,
    "image-properties-filter" => image_properties_filter,
    "io-ops-filter" => io_ops_filter,
    "isolated-hosts-filter" => isolated_hosts_filter,
    "json-filter" => json_filter,
    "metrics-filter" => metrics_filter,
    "num-instances-filter" => num_instances_filter,
    "same-host-filter" => same_host_filter,
    "server-group-affinity-filter" => server_group_affinity_filter,
    "server-group-anti-affinity-filter" => server_group_anti_affinity_filter,
    "simple-cidr-affinity-filter" => simple_cidr_affinity_filter,
    "build-failure-weigher" => build_failure_weigher,
    "cpu-weigher" => cpu_weigher,
    "disk-weigher" => disk_weigher,
    "hypervisor-version-weigher" => hypervisor_version_weigher,
    "image-props-weigher" => image_props_weigher,
    "io-ops-weigher" => io_ops_weigher,
    "metrics-weigher" => metrics_weigher,
    "num-instances-weigher" => num_instances_weigher,
    "ram-weigher" => ram_weigher,
    "server-group-soft-affinity-weigher" => server_group_soft_affinity_weigher,
    "server-group-soft-anti-affinity-weigher" => server_group_soft_anti_affinity_weigher,
}

/// The native build of plugin `name`.
pub fn native_plugin(name: &str) -> Option<NativePlugin> {
    NATIVE_PLUGINS
        .iter()
        .find(|(native, _)| *native == name)
        .map(|(_, plugin)| *plugin)
}

/// A natively compiled plugin.
pub struct NativeBackend {
    plugin: NativePlugin,
    config: Config,
}

impl NativeBackend {
    /// Wraps `plugin` with its configuration; returns its kind and info too.
    pub fn new(plugin: NativePlugin, settings: &PluginSettings) -> (Self, PluginKind, PluginInfo) {
        let config = Config::new(
            settings
                .config
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        );
        let (kind, info) = match plugin {
            NativePlugin::Filter { info, .. } => (PluginKind::Filter, info()),
            NativePlugin::Weigher { info, .. } => (PluginKind::Weigher, info()),
        };
        (Self { plugin, config }, kind, info)
    }
}

fn guarded<R>(run: impl FnOnce() -> R) -> Result<R, PluginFailure> {
    catch_unwind(AssertUnwindSafe(run)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_string()))
            .unwrap_or_else(|| "panicked".to_string());
        PluginFailure::new(FailureKind::Trap, message)
    })
}

fn unsupported(export: &str) -> PluginFailure {
    PluginFailure::new(
        FailureKind::Unsupported,
        format!("native plugin does not implement `{export}`"),
    )
}

impl PluginBackend for NativeBackend {
    fn source(&self) -> PluginSource {
        PluginSource::Native
    }

    fn filter(
        &self,
        context: &CallContext<'_>,
        hosts: &mut TableFor<'_>,
    ) -> Result<FilterOutcome, PluginFailure> {
        match self.plugin {
            NativePlugin::Filter { needs, run, .. } => {
                let request = context.request.request();
                let table = hosts(guarded(|| needs(&self.config, request))?)?;
                guarded(|| run(&self.config, request, &table))
            }
            NativePlugin::Weigher { .. } => Err(unsupported("filter-hosts")),
        }
    }

    fn weigh(
        &self,
        context: &CallContext<'_>,
        hosts: &mut TableFor<'_>,
    ) -> Result<Vec<f64>, PluginFailure> {
        match self.plugin {
            NativePlugin::Weigher { needs, run, .. } => {
                let request = context.request.request();
                let table = hosts(guarded(|| needs(&self.config, request))?)?;
                guarded(|| run(&self.config, request, &table))
            }
            NativePlugin::Filter { .. } => Err(unsupported("weigh-hosts")),
        }
    }

    fn check_quota(
        &self,
        _request_id: &str,
        _request: QuotaRequest,
    ) -> Result<Result<(), QuotaDenial>, PluginFailure> {
        Err(unsupported("check-quota"))
    }

    fn on_notification(
        &self,
        _request_id: &str,
        _notification: Notification,
    ) -> Result<Result<(), String>, PluginFailure> {
        Err(unsupported("on-notification"))
    }

    fn report(&self) -> Result<String, PluginFailure> {
        Err(unsupported("report"))
    }
}
