//! novum: a compute controller in the spirit of OpenStack Nova, whose
//! scheduling, quota and notification policy are sandboxed WebAssembly
//! plugins. This crate is the binary's: the command line, the start and the
//! shutdown order (`server`), the embedded agents and the admin client; the
//! parts live in the `novum-*` crates. See ARCHITECTURE.md for the map.

#![deny(missing_docs)]

pub mod admin_client;
pub mod bench_cloud;
pub mod embedded;
pub mod plugin_tools;
pub mod server;
