//! The HTTP API: one axum router (`app`) for the Compute v2.1, Identity v3,
//! Image v2 and Network v2.0 subsets, the agent RPC and novum's admin endpoints. Handlers
//! validate and authorize, then call into the domain; they hold no business
//! logic and no SQL (this crate does not depend on sqlx): they parse,
//! authorize, call the conductor, a `store` repository or a domain crate, and
//! shape the answer for the microversion. Every `From<DomainError> for
//! ApiError` lives here.

#![deny(missing_docs)]

pub mod auth;
pub mod bodies;
pub mod body;
pub mod compute;
pub mod consoles;
pub mod decisions;
pub mod extract;
pub mod fault;
pub mod guard;
pub mod identity;
pub mod images;
pub mod metadata;
pub mod microversion;
pub mod network;
pub mod notifications;
pub mod openapi;
pub mod plugins;
pub mod quota;
pub mod request_id;
pub mod request_layer;
pub mod rpc;
pub mod scheduling;
pub mod telemetry;
pub mod validation;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::middleware;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use novum_config::Config;
use novum_db::Db;
use novum_identity::Identity;

/// Everything a handler can reach.
pub struct Services {
    /// The configuration in effect.
    pub config: Config,
    /// The database.
    pub db: Db,
    /// The identity service.
    pub identity: Identity,
    /// The conductor (workflows, task queue).
    pub conductor: std::sync::Arc<novum_compute::conductor::Conductor>,
    /// The token compute agents enroll with.
    pub enrollment_token: String,
    /// The token this controller's own embedded agents enroll with: made
    /// afresh at every start and never written down, it lets them take their
    /// host names back right after a restart, while those still look up.
    pub embedded_enrollment_token: String,
    /// The secret the metadata proxies sign instance ids with.
    pub metadata_secret: String,
    /// Quotas (limits, usage, policy checks).
    pub quota: Arc<novum_quota::Quota>,
    /// The network service (Neutron v2.0 subset).
    pub network: novum_network::NetworkService,
    /// The notification-hook plugins (`[notifications] hooks`).
    pub hooks: Arc<novum_plugin_host::Plugins>,
    /// The metrics recorder (`[metrics]`); `None` when metrics are off.
    pub telemetry: Option<Arc<telemetry::Telemetry>>,
    /// What the agent RPC keeps in memory: credentials, heartbeats not yet
    /// written, inventory fingerprints (see [`rpc::Agents`]).
    pub agents: Arc<rpc::Agents>,
}

impl Services {
    /// Runs `build` with this controller's metrics recorder in scope (see
    /// [`telemetry::Telemetry::scope`]): plugins loaded in it count into
    /// `/metrics`.
    pub fn metrics_scope<T>(&self, build: impl FnOnce() -> T) -> T {
        telemetry::in_scope(self.telemetry.as_deref(), build)
    }
}

/// Shared handler state (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Wraps the services.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The whole API as one router, with its OpenAPI document served at
/// [`openapi::OPENAPI_PATH`].
pub fn app(state: AppState) -> Router {
    Router::from(documented_routes())
        .fallback(|| async { fault::ApiError::no_such_resource() })
        .layer(request_layer::RequestLayer::new(state.telemetry.clone()))
        .with_state(state)
}

/// The OpenAPI document of every route [`app`] answers.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::finish(documented_routes().into_openapi())
}

/// Every route, each with its OpenAPI operation: the one list both the
/// router and the document are built from.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .nest("/identity", identity::routes())
        .nest(
            "/compute",
            crate::compute::routes().layer(middleware::from_fn(microversion::negotiate)),
        )
        .routes(routes!(crate::compute::versions::root_with_slash))
        .nest(novum_wire::API_PREFIX, crate::rpc::routes())
        .nest("/image", images::routes())
        .nest("/network", network::routes())
        .nest(novum_wire::METADATA_PREFIX, metadata::routes())
        .routes(routes!(network::versions::versions_with_slash))
        .merge(notifications::routes())
        .merge(consoles::routes())
        .merge(crate::plugins::routes())
        .merge(crate::decisions::routes())
        .merge(crate::scheduling::routes())
        .merge(telemetry::routes())
        .routes(routes!(openapi::document))
}
