//! The OpenStack Compute API v2.1 under `/compute`, one module per resource.
//! Handlers validate and authorize, then call the conductor or a `store`
//! repository of novum-compute.

pub mod aggregates;
pub mod availability_zones;
pub mod common;
pub mod consoles;
pub mod deferred_delete;
pub mod evacuate;
pub mod extensions;
pub mod external_events;
pub mod flavors;
pub mod guest_actions;
pub mod hosts;
pub mod hypervisors;
pub mod image_proxy;
pub mod interfaces;
pub mod keypairs;
pub mod live_migration;
pub mod migrations;
pub mod network_proxies;
pub mod security_groups;
pub mod server_actions;
pub mod server_diagnostics;
pub mod server_groups;
pub mod server_list;
pub mod server_metadata;
pub mod server_networks;
pub mod server_password;
pub mod server_rebuild;
pub mod server_tags;
pub mod servers;
pub mod services;
pub mod snapshots;
pub mod usage;
pub mod usage_audit_log;
pub mod versions;
pub mod volumes_boot;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// The `/compute` routes (the microversion middleware is applied by the caller).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(versions::routes())
        .merge(flavors::routes())
        .merge(servers::routes())
        .merge(server_actions::routes())
        .merge(consoles::routes())
        .merge(server_networks::routes())
        .merge(server_metadata::routes())
        .merge(server_tags::routes())
        .merge(server_diagnostics::routes())
        .merge(server_password::routes())
        .merge(interfaces::routes())
        .merge(hypervisors::routes())
        .merge(services::routes())
        .merge(aggregates::routes())
        .merge(availability_zones::routes())
        .merge(server_groups::routes())
        .merge(keypairs::routes())
        .merge(migrations::routes())
        .merge(live_migration::routes())
        .merge(usage::routes())
        .merge(hosts::routes())
        .merge(image_proxy::routes())
        .merge(network_proxies::routes())
        .merge(security_groups::routes())
        .merge(extensions::routes())
        .merge(usage_audit_log::routes())
        .merge(external_events::routes())
        .merge(volumes_boot::routes())
        .merge(crate::quota::routes())
}
