//! The HTTP API: one axum router (`app`) for the Compute v2.1, Identity v3 and
//! Image v2 subsets, the agent RPC and novum's admin endpoints. Handlers
//! validate and authorize, then call into the domain; they hold no business
//! logic.

pub mod auth;
pub mod body;
pub mod fault;
pub mod guard;
pub mod microversion;
pub mod request_id;
pub mod validation;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::middleware;

use crate::config::Config;
use crate::db::Db;
use crate::identity::{self, Identity};

/// Everything a handler can reach.
pub struct Services {
    /// The configuration in effect.
    pub config: Config,
    /// The database.
    pub db: Db,
    /// The identity service.
    pub identity: Identity,
    /// The conductor (workflows, task queue).
    pub conductor: std::sync::Arc<crate::conductor::Conductor>,
    /// The token compute agents enroll with.
    pub enrollment_token: String,
    /// The token this controller's own embedded agents enroll with: made
    /// afresh at every start and never written down, it lets them take their
    /// host names back right after a restart, while those still look up.
    pub embedded_enrollment_token: String,
    /// Quotas (limits, usage, policy checks).
    pub quota: Arc<crate::quota::Quota>,
    /// The notification-hook plugins (`[notifications] hooks`).
    pub hooks: Arc<crate::plugins::Plugins>,
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

/// The whole API as one router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .nest("/identity", identity::routes())
        .nest(
            "/compute",
            crate::compute::routes().layer(middleware::from_fn(microversion::negotiate)),
        )
        .route(
            "/compute/",
            axum::routing::get(crate::compute::versions::root),
        )
        .nest(novum_wire::API_PREFIX, crate::rpc::routes())
        .nest("/image", crate::images::routes())
        .merge(crate::notify::api::routes())
        .merge(crate::plugins::api::routes())
        .fallback(|| async { fault::ApiError::not_found("The resource could not be found.") })
        .layer(middleware::from_fn(guard::guard_request))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}
