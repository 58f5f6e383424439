//! novum: a compute controller in the spirit of OpenStack Nova, whose
//! scheduling, quota and notification policy are sandboxed WebAssembly
//! plugins. See ARCHITECTURE.md for the map.

#![deny(missing_docs)]

pub mod admin_client;
pub mod api;
pub mod compute;
pub mod conductor;
pub mod config;
/// Notifications, now the `novum-notify` crate. Transitional: keeps the
/// `crate::notify::…` / `novum::notify::…` paths working; new code names
/// `novum_notify` directly.
pub use novum_notify as notify;
pub mod plugins;
/// Quotas, now the `novum-quota` crate. Transitional: keeps the
/// `crate::quota::…` / `novum::quota::…` paths working; new code names
/// `novum_quota` directly.
pub use novum_quota as quota;
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
/// Transitional: the identity service is the `novum-identity` crate.
pub use novum_identity as identity;
/// Transitional: the image service is the `novum-images` crate.
pub use novum_images as images;
