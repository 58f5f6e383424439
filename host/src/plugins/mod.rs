//! The plugin runtime, re-exported from [`novum_plugin_host`], and its HTTP
//! API ([`api`]: `GET /novum/v1/plugins`, `POST /novum/v1/plugins/reload`).
//!
//! Transitional: the runtime moved to the `novum-plugin-host` crate; this
//! module keeps the old `novum::plugins::…` paths working until the callers
//! (and the API, once it has a crate of its own) import it directly.

pub mod api;

pub use novum_plugin_host::*;
