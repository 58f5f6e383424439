//! Repositories for everything compute stores: one module per resource, each
//! the only place that resource's SQL is written. Functions take a [`Db`] or
//! a transaction, return plain domain types and
//! [`crate::conductor::Result`] or [`novum_db::DbError`]; they never see
//! HTTP, authorization or microversions. The compute API handlers and the
//! agent RPC (novum-api) call these instead of writing SQL.
//!
//! [`Db`]: novum_db::Db

pub mod agent_credentials;
pub mod aggregates;
pub mod console_tokens;
pub mod decisions;
pub mod flavors;
pub mod instances;
pub mod keypairs;
pub mod migrations;
pub mod nodes;
pub mod server_groups;
pub mod server_listing;
pub mod services;
pub mod tags;
