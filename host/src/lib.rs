//! novum: a compute controller in the spirit of OpenStack Nova, whose
//! scheduling, quota and notification policy are sandboxed WebAssembly
//! plugins. See ARCHITECTURE.md for the map.

#![deny(missing_docs)]

pub mod admin_client;
pub mod api;
pub mod compute;
pub mod conductor;
pub mod config;
pub mod plugins;
pub mod rpc;
pub mod server;
pub mod store;
