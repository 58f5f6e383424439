//! The host's integration tests, in one test binary: wasmtime, libvirt and
//! sqlx are linked once instead of once per file, which keeps the debug build
//! small and CI fast. Each module is one former test file (compute_admin and
//! quota_api are folders, one file per resource or behaviour); the first
//! three are the shared support they use.

mod api_common;
mod common;
mod http_cloud;

mod agent_rpc;
mod cheap_agents;
mod claims_contention;
mod compute;
mod compute_admin;
mod config_examples;
mod config_file;
mod consoles;
mod create_path;
mod db_batch;
mod decision_log;
mod evacuate;
mod external_events;
mod gap_cursor;
mod group_commit;
mod guest_actions;
mod host_firewall;
mod host_state;
mod host_status;
mod identity_api;
mod images_api;
mod input_validation;
mod instance_metadata;
mod instance_usage;
mod keypair_ids;
mod late_microversions;
mod legacy_apis;
mod list_scale;
mod live_migration;
mod metrics;
mod migrate;
mod network;
mod network_api;
mod network_data;
mod network_proxies;
mod notifications;
mod openapi;
mod pipeline;
mod plugin_cache;
mod plugins;
mod plugins_api;
mod python_plugins;
mod quiet_agents;
mod quota;
mod quota_api;
mod real_console;
mod real_guest_metadata;
mod real_guests;
mod rebuild_rescue;
mod request_bodies;
mod resize;
mod restart;
mod sandbox;
mod server_metadata;
mod server_ports;
mod server_tags;
mod snapshots;
mod soft_delete;
mod sqlite_checkpoint;
mod two_controllers;
mod usage;
mod vm_states;
mod whatif;
mod write_your_own_filter;
