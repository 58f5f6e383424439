//! Repositories for everything compute stores: one module per resource, each
//! reading and writing its tables through [`crate::db::Db`] or a
//! [`crate::db::Tx`] and answering plain domain types. The compute API
//! handlers and the agent RPC call these instead of writing SQL; destined for
//! the novum-compute crate together with the conductor.

pub mod instances;
pub mod migrations;
pub mod nodes;
pub mod services;
