//! The network service (novum-network) at the module level, on SQLite and
//! PostgreSQL (skipped with a printed reason when no server answers):
//! validation refusals with Neutron's error types, visibility between
//! projects, the default security group under concurrency, IPAM under
//! concurrency (200 ports on a /24, exhaustion of a /27), quota races,
//! listing, the compute side (allocate, bind, release, rollback) and
//! get-me-a-network.

mod compute;
mod concurrency;
mod listing;
mod validation;
mod visibility;

use novum_network::{
    Caller, GatewayRequest, Network, NetworkConfig, NetworkError, NetworkService, NewNetwork,
    NewSubnet, Subnet,
};

use crate::api_common::{Backend, backends};

/// Project A's caller.
pub fn alice() -> Caller {
    Caller::project("project-a")
}

/// Project B's caller.
pub fn bob() -> Caller {
    Caller::project("project-b")
}

/// An admin (of the admin project).
pub fn admin() -> Caller {
    Caller::admin("admin-project")
}

/// The service over `backend`'s database with the default configuration.
pub fn service(backend: &Backend) -> NetworkService {
    service_with(backend, NetworkConfig::default())
}

/// The service over `backend`'s database with `config`.
pub fn service_with(backend: &Backend, config: NetworkConfig) -> NetworkService {
    NetworkService::new(backend.db.clone(), config).expect("builtin backend")
}

/// Every database to test on.
pub async fn databases() -> Vec<Backend> {
    backends().await
}

/// A network of `caller` named `name`.
pub async fn network(service: &NetworkService, caller: &Caller, name: &str) -> Network {
    service
        .create_network(
            caller,
            &NewNetwork {
                name: Some(name.to_string()),
                ..NewNetwork::default()
            },
        )
        .await
        .expect("network created")
}

/// An IPv4 subnet `cidr` on `network_id` with the default gateway and pools.
pub async fn subnet(
    service: &NetworkService,
    caller: &Caller,
    network_id: &str,
    cidr: &str,
) -> Subnet {
    service
        .create_subnet(
            caller,
            &NewSubnet {
                network_id: network_id.to_string(),
                ip_version: 4,
                cidr: cidr.to_string(),
                gateway_ip: GatewayRequest::Default,
                ..NewSubnet::default()
            },
        )
        .await
        .expect("subnet created")
}

/// Asserts that `result` failed with Neutron type `kind` and `status`,
/// and returns the message.
#[track_caller]
pub fn refused<T: std::fmt::Debug>(
    result: Result<T, NetworkError>,
    kind: &str,
    status: u16,
) -> String {
    match result {
        Ok(value) => panic!("expected {kind}, got {value:?}"),
        Err(error) => {
            assert_eq!(
                (error.error_type(), error.status()),
                (kind, status),
                "unexpected error: {error}"
            );
            error.to_string()
        }
    }
}

/// Rows of `table` in `backend`'s database.
pub async fn rows(backend: &Backend, table: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {table}"
    )))
    .fetch_one(backend.db.pool())
    .await
    .expect("count")
    .try_get("n")
    .expect("n")
}
