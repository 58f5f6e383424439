//! novum: a compute controller in the spirit of OpenStack Nova, whose
//! scheduling, quota and notification policy are sandboxed WebAssembly
//! plugins. See ARCHITECTURE.md for the map.

#![deny(missing_docs)]

pub mod admin_client;
pub mod api;
pub mod compute;
pub mod conductor;
pub mod config;
pub mod identity;
pub mod images;
pub mod notify;
pub mod plugins;
pub mod quota;
pub mod rpc;
/// The scheduler, re-exported from [`novum_scheduler`]. Transitional: keeps
/// the old `novum::scheduler::…` paths working until callers import
/// `novum_scheduler` directly.
pub use novum_scheduler as scheduler;
pub mod server;
pub mod store;

/// The database layer, now the `novum-db` crate. Transitional: this
/// re-export keeps the `crate::db::…` / `novum::db::…` paths working while
/// the other parts move into crates of their own; new code names
/// `novum_db` directly.
pub use novum_db as db;
