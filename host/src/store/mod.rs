//! Repositories for everything compute stores: one module per resource,
//! each the only place that runs that resource's SQL. Functions take a
//! [`Db`](crate::db::Db) or a transaction, return plain domain types and
//! [`crate::conductor::Result`] (or [`DbError`](crate::db::DbError)); they
//! know nothing of HTTP, callers, microversions or JSON views. Destined for
//! the novum-compute crate together with the conductor.

pub mod flavors;
pub mod keypairs;
