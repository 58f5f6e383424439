//! Host bindings for `novum:plugin@0.1.0` (`wit/since_v0.1.0`).
//!
//! The four worlds share the `types` and `host` interfaces: they are generated
//! once with the `filter` world and reused by the others (`with`), so every
//! world speaks the same Rust types. The conversions between the SDK's types
//! (which the scheduler builds) and these generated types live here, in one
//! place; they move fields rather than copy them.

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use crate::PluginKind;
use crate::wasm::StoreState;
use novum_plugin_sdk as sdk;

#[allow(missing_docs, clippy::all)]
mod generated {
    pub mod filter {
        wasmtime::component::bindgen!({
            path: "../../wit/since_v0.1.0",
            world: "filter",
        });
    }
    pub mod weigher {
        wasmtime::component::bindgen!({
            path: "../../wit/since_v0.1.0",
            world: "weigher",
            with: {
                "novum:plugin/types@0.1.0": super::filter::novum::plugin::types,
                "novum:plugin/host@0.1.0": super::filter::novum::plugin::host,
            },
        });
    }
    pub mod quota_policy {
        wasmtime::component::bindgen!({
            path: "../../wit/since_v0.1.0",
            world: "quota-policy",
            with: {
                "novum:plugin/types@0.1.0": super::filter::novum::plugin::types,
                "novum:plugin/host@0.1.0": super::filter::novum::plugin::host,
            },
        });
    }
    pub mod notification_hook {
        wasmtime::component::bindgen!({
            path: "../../wit/since_v0.1.0",
            world: "notification-hook",
            with: {
                "novum:plugin/types@0.1.0": super::filter::novum::plugin::types,
                "novum:plugin/host@0.1.0": super::filter::novum::plugin::host,
            },
        });
    }
}

use generated::filter::novum::plugin::host as wit_host;
use generated::filter::novum::plugin::types as wit;

/// Adds the `host` interface (log, config, now-ms) to `linker`.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    wit_host::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)?;
    wit::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}

impl wit::Host for StoreState {}

impl wit_host::Host for StoreState {
    fn log(&mut self, level: wit_host::Level, message: String, fields: Vec<wit::KeyValue>) {
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|pair| (pair.key, pair.value))
            .collect();
        let level = match level {
            wit_host::Level::Trace => sdk::Level::Trace,
            wit_host::Level::Debug => sdk::Level::Debug,
            wit_host::Level::Info => sdk::Level::Info,
            wit_host::Level::Warn => sdk::Level::Warn,
            wit_host::Level::Error => sdk::Level::Error,
        };
        self.write_log(level, &message, &fields);
    }

    fn config(&mut self) -> Vec<wit::KeyValue> {
        self.plugin_config()
            .iter()
            .map(|(key, value)| wit::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }

    fn now_ms(&mut self) -> u64 {
        crate::wasm::now_ms()
    }
}

/// A plugin component linked against one world, ready to instantiate.
pub enum WorldPre {
    /// The `filter` world.
    Filter(generated::filter::FilterPre<StoreState>),
    /// The `weigher` world.
    Weigher(generated::weigher::WeigherPre<StoreState>),
    /// The `quota-policy` world.
    QuotaPolicy(generated::quota_policy::QuotaPolicyPre<StoreState>),
    /// The `notification-hook` world.
    NotificationHook(generated::notification_hook::NotificationHookPre<StoreState>),
}

/// An instantiated plugin of one world.
pub enum WorldInstance {
    /// The `filter` world.
    Filter(generated::filter::Filter),
    /// The `weigher` world.
    Weigher(generated::weigher::Weigher),
    /// The `quota-policy` world.
    QuotaPolicy(generated::quota_policy::QuotaPolicy),
    /// The `notification-hook` world.
    NotificationHook(generated::notification_hook::NotificationHook),
}

impl WorldPre {
    /// Finds which world of this version `pre` exports, or `None`.
    pub fn new(pre: &InstancePre<StoreState>) -> Option<Self> {
        if let Ok(pre) = generated::filter::FilterPre::new(pre.clone()) {
            return Some(Self::Filter(pre));
        }
        if let Ok(pre) = generated::weigher::WeigherPre::new(pre.clone()) {
            return Some(Self::Weigher(pre));
        }
        if let Ok(pre) = generated::quota_policy::QuotaPolicyPre::new(pre.clone()) {
            return Some(Self::QuotaPolicy(pre));
        }
        if let Ok(pre) = generated::notification_hook::NotificationHookPre::new(pre.clone()) {
            return Some(Self::NotificationHook(pre));
        }
        None
    }

    /// The kind of plugin.
    pub fn kind(&self) -> PluginKind {
        match self {
            Self::Filter(_) => PluginKind::Filter,
            Self::Weigher(_) => PluginKind::Weigher,
            Self::QuotaPolicy(_) => PluginKind::QuotaPolicy,
            Self::NotificationHook(_) => PluginKind::NotificationHook,
        }
    }

    /// Instantiates the plugin in `store`.
    pub fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<WorldInstance> {
        Ok(match self {
            Self::Filter(pre) => WorldInstance::Filter(pre.instantiate(store)?),
            Self::Weigher(pre) => WorldInstance::Weigher(pre.instantiate(store)?),
            Self::QuotaPolicy(pre) => WorldInstance::QuotaPolicy(pre.instantiate(store)?),
            Self::NotificationHook(pre) => WorldInstance::NotificationHook(pre.instantiate(store)?),
        })
    }
}

/// A call made on an instance of the wrong world.
pub fn wrong_world(export: &str) -> wasmtime::Error {
    wasmtime::format_err!("plugin does not export `{export}`")
}

impl WorldInstance {
    /// `describe`.
    pub fn describe(&self, store: &mut Store<StoreState>) -> wasmtime::Result<sdk::PluginInfo> {
        let info = match self {
            Self::Filter(world) => world.call_describe(store)?,
            Self::Weigher(world) => world.call_describe(store)?,
            Self::QuotaPolicy(world) => world.call_describe(store)?,
            Self::NotificationHook(world) => world.call_describe(store)?,
        };
        Ok(info.into())
    }

    /// `begin` (filters and weighers): hands the instance the request and
    /// returns the columns it needs.
    pub fn begin(
        &self,
        store: &mut Store<StoreState>,
        request: &wit::Request,
    ) -> wasmtime::Result<Vec<sdk::Column>> {
        let needs = match self {
            Self::Filter(world) => world.call_begin(store, request)?,
            Self::Weigher(world) => world.call_begin(store, request)?,
            _ => return Err(wrong_world("begin")),
        };
        Ok(needs.into_iter().map(column).collect())
    }

    /// `filter-hosts`, after `begin` on the same instance.
    pub fn filter_hosts(
        &self,
        store: &mut Store<StoreState>,
        hosts: &wit::HostTable,
    ) -> wasmtime::Result<sdk::FilterOutcome> {
        match self {
            Self::Filter(world) => {
                let outcome = world.call_filter_hosts(store, hosts)?;
                Ok(sdk::FilterOutcome {
                    verdicts: outcome.verdicts,
                    reasons: outcome.reasons,
                })
            }
            _ => Err(wrong_world("filter-hosts")),
        }
    }

    /// `weigh-hosts`, after `begin` on the same instance.
    pub fn weigh_hosts(
        &self,
        store: &mut Store<StoreState>,
        hosts: &wit::HostTable,
    ) -> wasmtime::Result<Vec<f64>> {
        match self {
            Self::Weigher(world) => world.call_weigh_hosts(store, hosts),
            _ => Err(wrong_world("weigh-hosts")),
        }
    }

    /// `check-quota`.
    pub fn check_quota(
        &self,
        store: &mut Store<StoreState>,
        request: &wit::QuotaRequest,
    ) -> wasmtime::Result<Result<(), sdk::QuotaDenial>> {
        match self {
            Self::QuotaPolicy(world) => {
                Ok(world
                    .call_check_quota(store, request)?
                    .map_err(|denial| sdk::QuotaDenial {
                        resource: denial.resource,
                        message: denial.message,
                    }))
            }
            _ => Err(wrong_world("check-quota")),
        }
    }

    /// `on-notification`.
    pub fn on_notification(
        &self,
        store: &mut Store<StoreState>,
        notification: &wit::Notification,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::NotificationHook(world) => world.call_on_notification(store, notification),
            _ => Err(wrong_world("on-notification")),
        }
    }

    /// `report`.
    pub fn report(&self, store: &mut Store<StoreState>) -> wasmtime::Result<String> {
        match self {
            Self::NotificationHook(world) => world.call_report(store),
            _ => Err(wrong_world("report")),
        }
    }
}

// ---- SDK → generated types (moving fields) ----------------------------------

/// The generated types of this version, for callers that convert once.
pub use wit::{HostTable, Notification, QuotaRequest, Request};

fn key_values(pairs: Vec<sdk::KeyValue>) -> Vec<wit::KeyValue> {
    pairs
        .into_iter()
        .map(|pair| wit::KeyValue {
            key: pair.key,
            value: pair.value,
        })
        .collect()
}

fn ref_lists(lists: sdk::RefLists) -> wit::RefLists {
    wit::RefLists {
        offsets: lists.offsets,
        items: lists.items,
    }
}

impl From<sdk::Flavor> for wit::Flavor {
    fn from(flavor: sdk::Flavor) -> Self {
        Self {
            id: flavor.id,
            name: flavor.name,
            vcpus: flavor.vcpus,
            memory_mb: flavor.memory_mb,
            root_gb: flavor.root_gb,
            ephemeral_gb: flavor.ephemeral_gb,
            swap_mb: flavor.swap_mb,
            extra_specs: key_values(flavor.extra_specs),
        }
    }
}

impl From<sdk::Request> for wit::Request {
    fn from(request: sdk::Request) -> Self {
        Self {
            flavor: request.flavor.into(),
            image: wit::Image {
                id: request.image.id,
                properties: key_values(request.image.properties),
            },
            project_id: request.project_id,
            user_id: request.user_id,
            availability_zone: request.availability_zone,
            num_instances: request.num_instances,
            scheduler_hints: request
                .scheduler_hints
                .into_iter()
                .map(|hint| wit::SchedulerHint {
                    name: hint.name,
                    values: hint.values,
                })
                .collect(),
            group: request.group.map(|group| wit::ServerGroup {
                id: group.id,
                policy: match group.policy {
                    sdk::GroupPolicy::Affinity => wit::GroupPolicy::Affinity,
                    sdk::GroupPolicy::AntiAffinity => wit::GroupPolicy::AntiAffinity,
                    sdk::GroupPolicy::SoftAffinity => wit::GroupPolicy::SoftAffinity,
                    sdk::GroupPolicy::SoftAntiAffinity => wit::GroupPolicy::SoftAntiAffinity,
                },
                rules: key_values(group.rules),
                members: group.members,
                hosts: group.hosts,
            }),
            instance_uuids: request.instance_uuids,
        }
    }
}

impl From<sdk::HostTable> for wit::HostTable {
    fn from(table: sdk::HostTable) -> Self {
        Self {
            len: table.len,
            strings: table.strings,
            aggregates: table
                .aggregates
                .into_iter()
                .map(|aggregate| wit::Aggregate {
                    name: aggregate.name,
                    metadata: key_values(aggregate.metadata),
                })
                .collect(),
            names: table.names,
            uuids: table.uuids,
            availability_zones: table.availability_zones,
            host_aggregates: ref_lists(table.host_aggregates),
            memory_total_mb: table.memory_total_mb,
            memory_used_mb: table.memory_used_mb,
            memory_free_mb: table.memory_free_mb,
            disk_total_mb: table.disk_total_mb,
            disk_used_mb: table.disk_used_mb,
            disk_free_mb: table.disk_free_mb,
            vcpus_total: table.vcpus_total,
            vcpus_used: table.vcpus_used,
            cpu_allocation_ratios: table.cpu_allocation_ratios,
            ram_allocation_ratios: table.ram_allocation_ratios,
            disk_allocation_ratios: table.disk_allocation_ratios,
            num_instances: table.num_instances,
            num_io_ops: table.num_io_ops,
            failed_builds: table.failed_builds,
            hypervisor_types: table.hypervisor_types,
            hypervisor_versions: table.hypervisor_versions,
            cpu_archs: table.cpu_archs,
            cpu_features: ref_lists(table.cpu_features),
            supported_instances: wit::SupportedInstanceLists {
                offsets: table.supported_instances.offsets,
                items: table
                    .supported_instances
                    .items
                    .into_iter()
                    .map(|item| wit::SupportedInstance {
                        arch: item.arch,
                        hv_type: item.hv_type,
                        vm_mode: item.vm_mode,
                    })
                    .collect(),
            },
            metrics: wit::MetricLists {
                offsets: table.metrics.offsets,
                items: table
                    .metrics
                    .items
                    .into_iter()
                    .map(|metric| wit::Metric {
                        name: metric.name,
                        value: metric.value,
                    })
                    .collect(),
            },
            service_flags: table.service_flags,
            host_ips: table.host_ips,
            instances: ref_lists(table.instances),
            instance_groups: ref_lists(table.instance_groups),
            instance_image_properties: wit::PropertyCountLists {
                offsets: table.instance_image_properties.offsets,
                items: table
                    .instance_image_properties
                    .items
                    .into_iter()
                    .map(|count| wit::PropertyCount {
                        key: count.key,
                        value: count.value,
                        count: count.count,
                    })
                    .collect(),
            },
        }
    }
}

impl From<sdk::QuotaRequest> for wit::QuotaRequest {
    fn from(request: sdk::QuotaRequest) -> Self {
        Self {
            project_id: request.project_id,
            user_id: request.user_id,
            action: request.action,
            flavor: request.flavor.map(Into::into),
            resources: request
                .resources
                .into_iter()
                .map(|usage| wit::ResourceUsage {
                    resource: usage.resource,
                    in_use: usage.in_use,
                    limit: usage.limit,
                    requested: usage.requested,
                })
                .collect(),
            flavor_usage: request
                .flavor_usage
                .into_iter()
                .map(|usage| wit::FlavorUsage {
                    flavor_name: usage.flavor_name,
                    extra_specs: key_values(usage.extra_specs),
                    count: usage.count,
                })
                .collect(),
        }
    }
}

impl From<sdk::Notification> for wit::Notification {
    fn from(notification: sdk::Notification) -> Self {
        Self {
            message_id: notification.message_id,
            event_type: notification.event_type,
            priority: notification.priority,
            publisher_id: notification.publisher_id,
            timestamp: notification.timestamp,
            payload_json: notification.payload_json,
        }
    }
}

// ---- generated → SDK types --------------------------------------------------

impl From<wit::PluginInfo> for sdk::PluginInfo {
    fn from(info: wit::PluginInfo) -> Self {
        Self {
            name: info.name,
            version: info.version,
            description: info.description,
            needs: info.needs.into_iter().map(column).collect(),
        }
    }
}

fn column(column: wit::Column) -> sdk::Column {
    use sdk::Column as S;
    use wit::Column as W;
    match column {
        W::Name => S::Name,
        W::Uuid => S::Uuid,
        W::AvailabilityZone => S::AvailabilityZone,
        W::Aggregates => S::Aggregates,
        W::Memory => S::Memory,
        W::Disk => S::Disk,
        W::Vcpus => S::Vcpus,
        W::AllocationRatios => S::AllocationRatios,
        W::NumInstances => S::NumInstances,
        W::NumIoOps => S::NumIoOps,
        W::FailedBuilds => S::FailedBuilds,
        W::Hypervisor => S::Hypervisor,
        W::Cpu => S::Cpu,
        W::SupportedInstances => S::SupportedInstances,
        W::Metrics => S::Metrics,
        W::Service => S::Service,
        W::HostIp => S::HostIp,
        W::Instances => S::Instances,
        W::InstanceGroups => S::InstanceGroups,
        W::InstanceImageProperties => S::InstanceImageProperties,
    }
}
