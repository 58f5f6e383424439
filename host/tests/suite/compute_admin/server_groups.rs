//! os-server-groups: create shapes per microversion (2.1 policies, 2.64
//! policy and rules), quota, visibility across projects, delete, and the
//! anti-affinity policy as the scheduler applies it.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_common::Reply;

use super::{Caller, Env, assert_fault, keys, on_each_backend};

/// `POST os-server-groups` with `server_group` as `caller` at `version`.
async fn create(env: &Env, caller: &Caller, version: &str, server_group: Value) -> Reply {
    env.compute(
        caller,
        Method::POST,
        "os-server-groups",
        version,
        json!({ "server_group": server_group }),
    )
    .await
}

/// The id of a group just created, asserting 200.
fn created_id(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json["server_group"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// The member's anti-affinity group g1 (2.1: `policies`).
async fn g1(env: &Env) -> Reply {
    create(
        env,
        &env.member,
        "2.1",
        json!({"name": "g1", "policies": ["anti-affinity"]}),
    )
    .await
}

/// The member's anti-affinity group g2 (2.64: `policy` and `rules`).
async fn g2(env: &Env) -> Reply {
    create(
        env,
        &env.member,
        "2.64",
        json!({"name": "g2", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}),
    )
    .await
}

/// The member's groups g1 and g2; returns their ids.
async fn two_groups(env: &Env) -> (String, String) {
    (created_id(&g1(env).await), created_id(&g2(env).await))
}

#[tokio::test]
async fn server_groups_have_policies_before_2_64_and_policy_and_rules_from_it() {
    on_each_backend(async |env| {
        let reply = g1(env).await;
        created_id(&reply);
        assert_eq!(
            keys(&reply.json["server_group"]),
            ["id", "members", "metadata", "name", "policies"]
        );
        let reply = g2(env).await;
        created_id(&reply);
        assert_eq!(
            keys(&reply.json["server_group"]),
            [
                "id",
                "members",
                "name",
                "policy",
                "project_id",
                "rules",
                "user_id"
            ]
        );
        assert_eq!(
            reply.json["server_group"]["rules"]["max_server_per_host"],
            2
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_policies_and_rules_on_affinity_are_refused() {
    on_each_backend(async |env| {
        let reply = create(
            env,
            &env.member,
            "2.1",
            json!({"name": "g", "policies": ["soft-affinity"]}),
        )
        .await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
        let reply = create(
            env,
            &env.member,
            "2.64",
            json!({"name": "g", "policy": "affinity", "rules": {"max_server_per_host": 2}}),
        )
        .await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}

#[tokio::test]
async fn readers_cannot_create_server_groups() {
    on_each_backend(async |env| {
        let reply = create(
            env,
            &env.reader,
            "2.64",
            json!({"name": "r", "policy": "affinity"}),
        )
        .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    })
    .await;
}

/// One more group is over a limit of 2, in the create transaction.
#[tokio::test]
async fn server_groups_are_limited_by_the_projects_quota() {
    on_each_backend(async |env| {
        two_groups(env).await;
        env.set_quota(&env.member, json!({"server_groups": 2}))
            .await;
        let reply = create(
            env,
            &env.member,
            "2.64",
            json!({"name": "g3", "policy": "affinity"}),
        )
        .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    })
    .await;
}

/// Own project only; all_projects for admins only.
#[tokio::test]
async fn server_groups_are_visible_to_their_project_and_to_admins() {
    on_each_backend(async |env| {
        let (g1, g2) = two_groups(env).await;
        let get = async |caller: &Caller, path: String, version: &str| {
            env.compute(caller, Method::GET, &path, version, Value::Null)
                .await
        };
        let reply = get(&env.other, format!("os-server-groups/{g1}"), "2.1").await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        let reply = get(&env.other, "os-server-groups".into(), "2.1").await;
        assert_eq!(reply.json["server_groups"], json!([]));
        let reply = get(
            &env.other,
            "os-server-groups?all_projects=True".into(),
            "2.1",
        )
        .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
        let reply = get(
            &env.admin,
            "os-server-groups?all_projects=True".into(),
            "2.13",
        )
        .await;
        assert_eq!(
            reply.json["server_groups"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            reply.json["server_groups"][0]["project_id"],
            json!(env.member.project_id)
        );
        let reply = get(
            &env.reader,
            "os-server-groups?limit=1&offset=1".into(),
            "2.1",
        )
        .await;
        assert_eq!(reply.json["server_groups"][0]["id"], json!(g2));
    })
    .await;
}

/// Anti-affinity spreads members over alpha and beta; a third member finds
/// no host.
#[tokio::test]
async fn anti_affinity_spreads_members_until_no_host_is_left() {
    on_each_backend(async |env| {
        let g1 = created_id(&g1(env).await);
        let image = env.image(&env.member, "grouped", json!({})).await;
        let mut hosts = Vec::new();
        for name in ["spread-1", "spread-2", "spread-3"] {
            let server = env
                .boot(
                    &env.member,
                    json!({"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}),
                    json!({"group": g1}),
                )
                .await;
            hosts.push(server["OS-EXT-SRV-ATTR:host"].clone());
            if name == "spread-3" {
                assert_eq!(server["status"], "ERROR", "{server}");
                assert!(
                    server["fault"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("No valid host")),
                    "{server}"
                );
            }
        }
        assert_ne!(hosts[0], hosts[1], "{hosts:?}");
        assert!(hosts[0].is_string() && hosts[1].is_string(), "{hosts:?}");
        let reply = env
            .compute(
                &env.member,
                Method::GET,
                &format!("os-server-groups/{g1}"),
                "2.1",
                Value::Null,
            )
            .await;
        assert_eq!(
            reply.json["server_group"]["members"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
    })
    .await;
}

#[tokio::test]
async fn an_unknown_server_group_is_refused_at_server_create() {
    on_each_backend(async |env| {
        let image = env.image(&env.member, "grouped", json!({})).await;
        let reply = env
            .create_server(
                &env.member,
                json!({"name": "lost", "imageRef": image, "flavorRef": "1", "networks": "none"}),
                json!({"group": uuid::Uuid::new_v4().to_string()}),
            )
            .await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}

#[tokio::test]
async fn server_groups_are_deleted_by_their_project_only() {
    on_each_backend(async |env| {
        let (_, g2) = two_groups(env).await;
        let delete = async |caller: &Caller| {
            env.compute(
                caller,
                Method::DELETE,
                &format!("os-server-groups/{g2}"),
                "2.1",
                Value::Null,
            )
            .await
        };
        let reply = delete(&env.other).await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        let reply = delete(&env.member).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    })
    .await;
}

#[tokio::test]
async fn server_group_create_and_delete_are_notified_with_them() {
    on_each_backend(async |env| {
        let before = env.outbox_events().await.len();
        let (g1, _) = two_groups(env).await;
        // Refused: another project's group; nothing is sent.
        let path = format!("os-server-groups/{g1}");
        let reply = env
            .compute(&env.other, Method::DELETE, &path, "2.1", Value::Null)
            .await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        let reply = env
            .compute(&env.member, Method::DELETE, &path, "2.1", Value::Null)
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        let events = env.outbox_events().await;
        assert_eq!(
            events[before..],
            [
                "server_group.create",
                "server_group.create",
                "server_group.delete"
            ]
        );
    })
    .await;
}
