//! os-hypervisors: admin only; list, detail and show shapes per
//! microversion (2.1, 2.28, 2.33, 2.53, 2.88), statistics, and the
//! servers each hypervisor holds.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_common::Reply;

use super::{Env, assert_fault, keys, on_each_backend, services};

/// `GET os-hypervisors{query}` as the admin at `version`.
async fn list(env: &Env, query: &str, version: &str) -> Reply {
    env.compute(
        &env.admin,
        Method::GET,
        &format!("os-hypervisors{query}"),
        version,
        Value::Null,
    )
    .await
}

/// The integer id (before 2.53) of the first hypervisor listed.
async fn first_integer_id(env: &Env) -> i64 {
    let reply = list(env, "", "2.1").await;
    reply.json["hypervisors"][0]["id"].as_i64().expect("id")
}

/// The uuid (2.53 on) of beta's hypervisor, found by hostname pattern.
async fn beta_uuid(env: &Env) -> String {
    let reply = list(env, "?hypervisor_hostname_pattern=beta", "2.53").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let beta = &reply.json["hypervisors"][0];
    assert_eq!(beta["hypervisor_hostname"], "beta.example");
    beta["id"].as_str().expect("uuid").to_string()
}

#[tokio::test]
async fn hypervisors_are_admin_only() {
    on_each_backend(async |env| {
        let reply = env
            .compute(
                &env.member,
                Method::GET,
                "os-hypervisors",
                "2.1",
                Value::Null,
            )
            .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    })
    .await;
}

#[tokio::test]
async fn hypervisor_list_shows_each_enrolled_host_up_and_enabled() {
    on_each_backend(async |env| {
        let reply = list(env, "", "2.1").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let hypervisors = reply.json["hypervisors"].as_array().expect("list").clone();
        assert_eq!(hypervisors.len(), 2);
        assert_eq!(
            keys(&hypervisors[0]),
            ["hypervisor_hostname", "id", "state", "status"]
        );
        assert!(hypervisors[0]["id"].is_i64());
        assert_eq!(hypervisors[0]["state"], "up");
        assert_eq!(hypervisors[0]["status"], "enabled");
    })
    .await;
}

#[tokio::test]
async fn hypervisor_detail_has_resource_fields_and_cpu_info_as_text_at_2_1() {
    on_each_backend(async |env| {
        let reply = list(env, "/detail", "2.1").await;
        let first = &reply.json["hypervisors"][0];
        assert_eq!(first["vcpus"], 8);
        assert_eq!(first["memory_mb"], 16384);
        assert!(first["cpu_info"].is_string(), "{first}");
        assert!(first["service"]["id"].is_i64());
        assert_eq!(first["hypervisor_type"], "TEST");
    })
    .await;
}

#[tokio::test]
async fn hypervisor_cpu_info_is_an_object_from_2_28() {
    on_each_backend(async |env| {
        let int_id = first_integer_id(env).await;
        let reply = list(env, &format!("/{int_id}"), "2.28").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        assert_eq!(reply.json["hypervisor"]["cpu_info"]["arch"], "x86_64");
    })
    .await;
}

#[tokio::test]
async fn hypervisors_have_uuids_and_a_hostname_pattern_from_2_53() {
    on_each_backend(async |env| {
        let uuid = beta_uuid(env).await;
        assert!(uuid::Uuid::parse_str(&uuid).is_ok());
        let reply = list(env, "?hypervisor_hostname_pattern=nowhere", "2.53").await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        let reply = list(env, "?hypervisor_hostname_pattern=beta&limit=1", "2.53").await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}

#[tokio::test]
async fn integer_hypervisor_ids_are_refused_from_2_53() {
    on_each_backend(async |env| {
        let int_id = first_integer_id(env).await;
        let reply = list(env, &format!("/{int_id}"), "2.53").await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
        let reply = list(env, &format!("/{}", uuid::Uuid::new_v4()), "2.53").await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    })
    .await;
}

#[tokio::test]
async fn hypervisor_show_has_no_resource_fields_at_2_88() {
    on_each_backend(async |env| {
        let uuid = beta_uuid(env).await;
        let reply = list(env, &format!("/{uuid}"), "2.88").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let shown = &reply.json["hypervisor"];
        assert!(
            shown.get("vcpus").is_none() && shown.get("cpu_info").is_none(),
            "{shown}"
        );
        assert!(
            shown["uptime"]
                .as_str()
                .is_some_and(|uptime| uptime.contains(" up 1 day")),
            "{shown}"
        );
        let reply = list(env, &format!("/{uuid}/uptime"), "2.88").await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "the route ends at 2.87"
        );
    })
    .await;
}

#[tokio::test]
async fn hypervisor_uptime_is_what_the_agent_reported() {
    on_each_backend(async |env| {
        let uuid = beta_uuid(env).await;
        let reply = list(env, &format!("/{uuid}/uptime"), "2.53").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let shown = &reply.json["hypervisor"];
        assert_eq!(shown["id"], json!(uuid));
        assert!(
            shown["uptime"]
                .as_str()
                .is_some_and(|uptime| uptime.starts_with(" 10:00:00 up 1 day")),
            "{shown}"
        );
    })
    .await;
}

#[tokio::test]
async fn hypervisor_statistics_sum_every_host_until_2_88() {
    on_each_backend(async |env| {
        let reply = list(env, "/statistics", "2.88").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let reply = list(env, "/statistics", "2.1").await;
        assert_eq!(reply.json["hypervisor_statistics"]["count"], 2);
        assert_eq!(reply.json["hypervisor_statistics"]["vcpus"], 16);
    })
    .await;
}

#[tokio::test]
async fn hypervisors_page_with_a_marker_link_from_2_33() {
    on_each_backend(async |env| {
        let reply = list(env, "?limit=1", "2.33").await;
        assert_eq!(reply.json["hypervisors"].as_array().map(Vec::len), Some(1));
        assert!(
            reply.json["hypervisors_links"][0]["href"]
                .as_str()
                .is_some_and(|href| href.contains("marker=")),
            "{}",
            reply.json
        );
    })
    .await;
}

#[tokio::test]
async fn hypervisor_search_and_servers_subresources_exist_until_2_53() {
    on_each_backend(async |env| {
        let reply = list(env, "/alpha/search", "2.1").await;
        assert_eq!(
            reply.json["hypervisors"][0]["hypervisor_hostname"],
            "alpha.example"
        );
        let reply = list(env, "/zzz/servers", "2.1").await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        let reply = list(env, "/alpha/search", "2.53").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    })
    .await;
}

/// The hypervisors list the servers they hold: `with_servers` (2.53) and
/// `/{pattern}/servers` before.
#[tokio::test]
async fn hypervisors_list_the_servers_they_hold() {
    on_each_backend(async |env| {
        services::two_servers_on_alpha_only(env).await;
        let reply = list(env, "?with_servers=true", "2.53").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        assert_eq!(
            reply.json["hypervisors"][0]["servers"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert!(
            reply.json["hypervisors"][1].get("servers").is_none(),
            "{}",
            reply.json
        );
        let reply = list(env, "/alpha/servers", "2.1").await;
        let servers = reply.json["hypervisors"][0]["servers"].clone();
        assert_eq!(servers.as_array().map(Vec::len), Some(2), "{}", reply.json);
        assert!(servers[0]["uuid"].is_string() && servers[0]["name"].is_string());
    })
    .await;
}
