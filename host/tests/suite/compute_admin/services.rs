//! os-services: admin only; the list shape, enable and disable by host
//! before 2.53 and by uuid from 2.53 (with forced_down), and what a
//! disabled, forced-down host means to the scheduler.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_common::Reply;

use super::{Env, assert_fault, keys, on_each_backend};

/// `PUT os-services/{id}` with `body` as the admin at 2.53.
async fn update(env: &Env, id: &str, body: Value) -> Reply {
    env.compute(
        &env.admin,
        Method::PUT,
        &format!("os-services/{id}"),
        "2.53",
        body,
    )
    .await
}

/// The uuid of beta's compute service (2.53), which is not forced down.
async fn beta_service(env: &Env) -> String {
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-services?host=beta",
            "2.53",
            Value::Null,
        )
        .await;
    let beta = reply.json["services"][0].clone();
    assert_eq!(beta["forced_down"], false);
    beta["id"].as_str().expect("uuid").to_string()
}

/// Disables beta and forces it down; returns its service uuid.
async fn force_beta_down(env: &Env) -> String {
    let id = beta_service(env).await;
    let reply = update(
        env,
        &id,
        json!({"status": "disabled", "disabled_reason": "drain", "forced_down": true}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["service"]["status"], "disabled");
    assert_eq!(reply.json["service"]["state"], "down");
    assert_eq!(reply.json["service"]["forced_down"], true);
    id
}

/// With beta disabled and forced down, two servers of the member's build:
/// both land on alpha.
pub(super) async fn two_servers_on_alpha_only(env: &Env) {
    force_beta_down(env).await;
    let image = env.image(&env.member, "plain", json!({})).await;
    for name in ["only-alpha-1", "only-alpha-2"] {
        let server = env
            .boot(
                &env.member,
                json!({"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}),
                Value::Null,
            )
            .await;
        assert_eq!(server["OS-EXT-SRV-ATTR:host"], "alpha", "{server}");
    }
}

#[tokio::test]
async fn services_are_admin_only() {
    on_each_backend(async |env| {
        let reply = env
            .compute(&env.reader, Method::GET, "os-services", "2.1", Value::Null)
            .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
        let id = beta_service(env).await;
        let reply = env
            .compute(
                &env.member,
                Method::PUT,
                &format!("os-services/{id}"),
                "2.53",
                json!({"status": "disabled"}),
            )
            .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    })
    .await;
}

#[tokio::test]
async fn service_list_shows_each_compute_service_up_in_the_default_zone() {
    on_each_backend(async |env| {
        let reply = env
            .compute(&env.admin, Method::GET, "os-services", "2.1", Value::Null)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let first = reply.json["services"][0].clone();
        assert_eq!(
            keys(&first),
            [
                "binary",
                "disabled_reason",
                "host",
                "id",
                "state",
                "status",
                "updated_at",
                "zone"
            ]
        );
        assert_eq!(first["binary"], "nova-compute");
        assert_eq!(first["zone"], "nova");
        assert_eq!(first["state"], "up");
    })
    .await;
}

#[tokio::test]
async fn services_are_disabled_and_enabled_by_host_before_2_53() {
    on_each_backend(async |env| {
        let reply = env
            .compute(
                &env.admin,
                Method::PUT,
                "os-services/disable-log-reason",
                "2.1",
                json!({"host": "beta", "binary": "nova-compute", "disabled_reason": "maintenance"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        assert_eq!(reply.json["service"]["status"], "disabled");
        assert_eq!(reply.json["service"]["disabled_reason"], "maintenance");
        let reply = env
            .compute(
                &env.admin,
                Method::PUT,
                "os-services/enable",
                "2.1",
                json!({"host": "beta", "binary": "nova-compute"}),
            )
            .await;
        assert_eq!(reply.json["service"]["status"], "enabled");
        let reply = env
            .compute(
                &env.admin,
                Method::PUT,
                "os-services/enable",
                "2.1",
                json!({"host": "nope", "binary": "nova-compute"}),
            )
            .await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    })
    .await;
}

#[tokio::test]
async fn services_are_updated_by_uuid_with_forced_down_from_2_53() {
    on_each_backend(async |env| {
        let id = beta_service(env).await;
        let reply = update(
            env,
            &id,
            json!({"status": "enabled", "disabled_reason": "why"}),
        )
        .await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
        let reply = update(
            env,
            &uuid::Uuid::new_v4().to_string(),
            json!({"status": "disabled"}),
        )
        .await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        force_beta_down(env).await;
        let reply = update(env, &id, json!({"status": "enabled", "forced_down": false})).await;
        assert_eq!(reply.json["service"]["status"], "enabled");
        assert_eq!(reply.json["service"]["disabled_reason"], Value::Null);
    })
    .await;
}

#[tokio::test]
async fn a_disabled_forced_down_host_takes_no_servers() {
    on_each_backend(async |env| {
        two_servers_on_alpha_only(env).await;
    })
    .await;
}
