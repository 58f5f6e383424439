//! The compute domain: the conductor (server workflows as durable
//! operations, claims, resize, instance actions, agent tasks and the
//! agent-RPC domain) and the repositories (`store`) for everything compute
//! stores. No HTTP: the handlers of novum-api call into it and map
//! [`conductor::ConductorError`] to faults. Its configuration sections are
//! `[compute]`, `[agent]` and `[metadata]` ([`ComputeConfig`], [`AgentConfig`],
//! [`MetadataConfig`]). [`instance_metadata`] renders the documents of the
//! config drive and the metadata service.

#![deny(missing_docs)]

pub mod bench;
pub mod conductor;
pub mod config;
pub mod instance_metadata;
pub mod store;

pub use config::{AgentConfig, ComputeConfig, MetadataConfig};
