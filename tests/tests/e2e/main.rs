//! End-to-end tests in one test binary: the real `novum` and `novum-agent`
//! binaries over real HTTP, driven by reqwest and by the real `openstack` CLI.

mod agent_process;
mod consoles_cli;
mod crate_boundaries;
mod decisions_cli;
mod fleet_evacuate_cli;
mod fleet_harness;
mod fleet_live_migrate_cli;
mod fleet_migrate_cli;
mod login_flood;
mod network_cli;
mod notifications_e2e;
mod openstack_cli;
mod plugin_cli;
mod quota_cli;
mod real_fleet_live_migrate;
mod real_guests;
mod real_live_migration;
mod rebuild_rescue_cli;
mod restart_e2e;
mod schemathesis;
mod server_details_cli;
mod server_network_cli;
mod simulated_fleet;
mod snapshots_cli;
mod soft_delete_cli;
mod tempest;
mod tempest_network;
mod two_controllers;
mod whatif_cli;
