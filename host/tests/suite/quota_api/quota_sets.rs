//! os-quota-sets: show shapes per microversion, who may read and change a
//! project's limits, refused updates, defaults, and delete.

use reqwest::Method;
use serde_json::json;

use super::{Tenants, keys};

/// Shapes per microversion; members read their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_set_shows_the_resources_of_each_microversion() {
    let t = Tenants::start().await;
    let (status, body) = t.call(&t.member, Method::GET, &t.path, "2.1").await;
    assert_eq!(status, 200, "{body}");
    let set = &body["quota_set"];
    assert_eq!(set["id"], t.project.as_str());
    assert_eq!(
        (
            set["instances"].as_i64(),
            set["cores"].as_i64(),
            set["ram"].as_i64()
        ),
        (Some(10), Some(20), Some(51200))
    );
    assert_eq!(
        (set["floating_ips"].as_i64(), set["injected_files"].as_i64()),
        (Some(-1), Some(5))
    );
    assert_eq!(keys(set).len(), 15);
    let (_, body) = t.call(&t.member, Method::GET, &t.path, "2.36").await;
    assert!(
        body["quota_set"].get("floating_ips").is_none()
            && body["quota_set"].get("injected_files").is_some()
    );
    let (_, body) = t.call(&t.member, Method::GET, &t.path, "2.57").await;
    assert_eq!(
        keys(&body["quota_set"]),
        [
            "cores",
            "id",
            "instances",
            "key_pairs",
            "metadata_items",
            "ram",
            "server_group_members",
            "server_groups"
        ]
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_projects_quota_sets_are_forbidden_and_unknown_projects_refused() {
    let t = Tenants::start().await;
    let (status, body) = t.call(&t.outsider, Method::GET, &t.path, "2.57").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["forbidden"]["message"],
        "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed."
    );
    let (status, _) = t
        .call(
            &t.outsider,
            Method::GET,
            &format!("{}/detail", t.path),
            "2.57",
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = t
        .call(
            &t.admin,
            Method::GET,
            "/os-quota-sets/no-such-project",
            "2.57",
        )
        .await;
    assert_eq!(
        (status, body["badRequest"]["message"].as_str()),
        (
            400,
            Some("Project ID no-such-project is not a valid project.")
        )
    );
    t.stop().await;
}

/// Admin only; the CLI sends 2.56; no id in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_set_update_is_admin_only_and_answers_without_an_id() {
    let t = Tenants::start().await;
    let (status, _) = t
        .update(&t.member, &t.path, json!({"instances": 20}), "2.56")
        .await;
    assert_eq!(status, 403);
    let (status, body) = t
        .update(
            &t.admin,
            &t.path,
            json!({"instances": 20, "cores": "40"}),
            "2.56",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["quota_set"].get("id").is_none());
    assert_eq!(
        (
            body["quota_set"]["instances"].as_i64(),
            body["quota_set"]["cores"].as_i64()
        ),
        (Some(20), Some(40))
    );
    assert_eq!(body["quota_set"]["injected_files"], 5);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_set_updates_with_bad_resources_or_values_are_refused() {
    let t = Tenants::start().await;
    for (bad, version) in [
        (json!({"injected_files": 3}), "2.57"),
        (json!({"floating_ips": 3}), "2.36"),
        (json!({"instances": -2}), "2.57"),
        (json!({"instances": "ten"}), "2.57"),
        (json!({"instances": 2147483648_i64}), "2.57"),
        (json!({"networks": 1}), "2.1"),
        (json!({"force": "maybe"}), "2.57"),
    ] {
        let (status, body) = t.update(&t.admin, &t.path, bad.clone(), version).await;
        assert_eq!(status, 400, "{bad} at {version}: {body}");
    }
    let (status, _) = t
        .cloud
        .compute(
            &t.admin,
            Method::PUT,
            &t.path,
            Some(json!({"quota": {"instances": 1}})),
            "2.57",
        )
        .await;
    assert_eq!(status, 400);
    t.stop().await;
}

/// Defaults are the class and configuration, not the project's own limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_set_defaults_ignore_the_projects_own_limits() {
    let t = Tenants::start().await;
    t.set_project_quota(json!({"instances": 20})).await;
    let (_, body) = t
        .call(
            &t.member,
            Method::GET,
            &format!("{}/defaults", t.path),
            "2.57",
        )
        .await;
    assert_eq!(
        (
            body["quota_set"]["id"].as_str(),
            body["quota_set"]["instances"].as_i64()
        ),
        (Some(t.project.as_str()), Some(10))
    );
    t.stop().await;
}

/// Delete: back to the class and configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_quota_set_restores_the_class_and_configuration() {
    let t = Tenants::start().await;
    let (status, body) = t.update_default_class(json!({"cores": 30})).await;
    assert_eq!(status, 200, "{body}");
    t.set_project_quota(json!({"instances": 20, "cores": 40}))
        .await;
    let (status, _) = t.call(&t.member, Method::DELETE, &t.path, "2.57").await;
    assert_eq!(status, 403);
    let (status, _) = t.call(&t.admin, Method::DELETE, &t.path, "2.57").await;
    assert_eq!(status, 202);
    let (_, body) = t.call(&t.member, Method::GET, &t.path, "2.57").await;
    assert_eq!(
        (
            body["quota_set"]["instances"].as_i64(),
            body["quota_set"]["cores"].as_i64()
        ),
        (Some(10), Some(30))
    );
    t.stop().await;
}
