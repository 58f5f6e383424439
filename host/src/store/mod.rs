//! Repositories for everything compute stores: one module per resource, each
//! the only place that resource's SQL is written. Functions take a [`Db`] or
//! a transaction, return plain domain types and
//! [`crate::conductor::Result`]; they never see HTTP, authorization or
//! microversions. Destined for the novum-compute crate together with the
//! conductor.
//!
//! [`Db`]: crate::db::Db

pub mod aggregates;
pub mod server_groups;
