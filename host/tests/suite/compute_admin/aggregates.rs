//! os-aggregates: admin only; create, show, update and delete, host
//! membership (one availability zone per host) and metadata.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_common::Reply;

use super::{Env, assert_fault, on_each_backend};

/// `POST os-aggregates` with `body` as the admin at `version`.
async fn create(env: &Env, version: &str, body: Value) -> Reply {
    env.compute(&env.admin, Method::POST, "os-aggregates", version, body)
        .await
}

/// `POST os-aggregates/{id}/action` with `body` as the admin at 2.41.
async fn action(env: &Env, id: i64, body: Value) -> Reply {
    env.compute(
        &env.admin,
        Method::POST,
        &format!("os-aggregates/{id}/action"),
        "2.41",
        body,
    )
    .await
}

/// A new aggregate `name` in availability zone `zone`; returns its id.
async fn aggregate_in_zone(env: &Env, name: &str, zone: &str) -> i64 {
    let reply = create(
        env,
        "2.41",
        json!({"aggregate": {"name": name, "availability_zone": zone}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json["aggregate"]["id"].as_i64().expect("id")
}

/// Aggregate agg-a holding alpha in zone-a, and agg-b in zone-b without
/// hosts; returns their ids.
pub(super) async fn alpha_in_zone_a(env: &Env) -> (i64, i64) {
    let a = aggregate_in_zone(env, "agg-a", "zone-a").await;
    let b = aggregate_in_zone(env, "agg-b", "zone-b").await;
    let reply = action(env, a, json!({"add_host": {"host": "alpha"}})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["aggregate"]["hosts"], json!(["alpha"]));
    (a, b)
}

/// `{verb} os-aggregates/{path}` as the admin at 2.1.
async fn at(env: &Env, method: Method, path: &str, body: Value) -> Reply {
    env.compute(
        &env.admin,
        method,
        &format!("os-aggregates/{path}"),
        "2.1",
        body,
    )
    .await
}

#[tokio::test]
async fn aggregates_are_admin_only() {
    on_each_backend(async |env| {
        let reply = env
            .compute(
                &env.member,
                Method::POST,
                "os-aggregates",
                "2.1",
                json!({"aggregate": {"name": "agg"}}),
            )
            .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    })
    .await;
}

#[tokio::test]
async fn aggregate_create_shows_a_uuid_from_2_41_and_refuses_taken_names() {
    on_each_backend(async |env| {
        let reply = create(
            env,
            "2.1",
            json!({"aggregate": {"name": "agg-a", "availability_zone": "zone-a"}}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let created = reply.json["aggregate"].clone();
        assert_eq!(created["availability_zone"], "zone-a");
        assert!(
            created.get("hosts").is_none() && created.get("uuid").is_none(),
            "{created}"
        );
        assert!(created["id"].is_i64(), "{created}");
        let reply = create(env, "2.41", json!({"aggregate": {"name": "agg-a"}})).await;
        assert_fault(&reply, StatusCode::CONFLICT, "conflictingRequest");
        let reply = create(
            env,
            "2.41",
            json!({"aggregate": {"name": "agg-b", "availability_zone": "zone-b"}}),
        )
        .await;
        assert!(
            reply.json["aggregate"]["uuid"].is_string(),
            "{}",
            reply.json
        );
        assert!(reply.json["aggregate"]["id"].is_i64(), "{}", reply.json);
        let reply = create(env, "2.1", json!({"aggregate": {"name": "x", "bogus": 1}})).await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}

#[tokio::test]
async fn a_host_joins_an_aggregate_once_and_one_availability_zone() {
    on_each_backend(async |env| {
        let (a, b) = alpha_in_zone_a(env).await;
        let reply = action(env, a, json!({"add_host": {"host": "alpha"}})).await;
        assert_fault(&reply, StatusCode::CONFLICT, "conflictingRequest");
        let reply = action(env, a, json!({"add_host": {"host": "ghost"}})).await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        // alpha is in zone-a: it cannot join zone-b.
        let reply = action(env, b, json!({"add_host": {"host": "alpha"}})).await;
        assert_fault(&reply, StatusCode::CONFLICT, "conflictingRequest");
    })
    .await;
}

#[tokio::test]
async fn aggregate_metadata_is_set_and_unset_and_unknown_actions_are_refused() {
    on_each_backend(async |env| {
        let a = aggregate_in_zone(env, "agg-a", "zone-a").await;
        let reply = action(
            env,
            a,
            json!({"set_metadata": {"metadata": {"ssd": "true", "gone": null}}}),
        )
        .await;
        assert_eq!(
            reply.json["aggregate"]["metadata"],
            json!({"availability_zone": "zone-a", "ssd": "true"})
        );
        let reply = action(env, a, json!({"explode": {}})).await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}

#[tokio::test]
async fn aggregates_are_shown_and_renamed_by_integer_id() {
    on_each_backend(async |env| {
        let (a, _) = alpha_in_zone_a(env).await;
        let reply = at(env, Method::GET, "abc", Value::Null).await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
        let reply = at(env, Method::GET, "999", Value::Null).await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        let reply = at(env, Method::GET, &a.to_string(), Value::Null).await;
        assert_eq!(reply.json["aggregate"]["hosts"], json!(["alpha"]));
        assert!(reply.json["aggregate"].get("uuid").is_none());
        let reply = at(
            env,
            Method::PUT,
            &a.to_string(),
            json!({"aggregate": {"name": "agg-a2"}}),
        )
        .await;
        assert_eq!(reply.json["aggregate"]["name"], "agg-a2");
    })
    .await;
}

#[tokio::test]
async fn an_aggregate_is_deleted_only_once_its_hosts_are_removed() {
    on_each_backend(async |env| {
        let (a, _) = alpha_in_zone_a(env).await;
        let reply = at(env, Method::DELETE, &a.to_string(), Value::Null).await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
        let reply = action(env, a, json!({"remove_host": {"host": "alpha"}})).await;
        assert_eq!(reply.json["aggregate"]["hosts"], json!([]));
        let reply = action(env, a, json!({"remove_host": {"host": "alpha"}})).await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        let reply = at(env, Method::DELETE, &a.to_string(), Value::Null).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let reply = env
            .compute(&env.admin, Method::GET, "os-aggregates", "2.1", Value::Null)
            .await;
        assert_eq!(reply.json["aggregates"].as_array().map(Vec::len), Some(1));
    })
    .await;
}

#[tokio::test]
async fn aggregate_changes_are_notified_with_them_and_refusals_are_not() {
    on_each_backend(async |env| {
        let before = env.outbox_events().await.len();
        let (a, b) = alpha_in_zone_a(env).await;
        // Refused: alpha is in zone-a already; nothing is sent.
        let reply = action(env, b, json!({"add_host": {"host": "alpha"}})).await;
        assert_fault(&reply, StatusCode::CONFLICT, "conflictingRequest");
        let reply = at(
            env,
            Method::PUT,
            &b.to_string(),
            json!({"aggregate": {"name": "agg-c"}}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let reply = action(
            env,
            b,
            json!({"set_metadata": {"metadata": {"availability_zone": "zone-c"}}}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let reply = action(env, a, json!({"remove_host": {"host": "alpha"}})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let reply = at(env, Method::DELETE, &a.to_string(), Value::Null).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let events = env.outbox_events().await;
        let expected = [
            "create",
            "create",
            "add_host",
            "update_prop",
            "update_metadata",
            "remove_host",
            "delete",
        ]
        .iter()
        .flat_map(|action| ["start", "end"].map(|phase| format!("aggregate.{action}.{phase}")))
        .collect::<Vec<_>>();
        assert_eq!(events[before..], expected[..]);
    })
    .await;
}
