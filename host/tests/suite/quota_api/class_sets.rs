//! os-quota-class-sets: the default class, admin only, and how it changes
//! the limits of every project without rows of its own.

use reqwest::Method;
use serde_json::json;

use super::Tenants;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_quota_class_is_admin_only_and_has_the_2_1_resources() {
    let t = Tenants::start().await;
    let (status, _) = t
        .call(
            &t.member,
            Method::GET,
            "/os-quota-class-sets/default",
            "2.57",
        )
        .await;
    assert_eq!(status, 403);
    let (_, body) = t
        .call(&t.admin, Method::GET, "/os-quota-class-sets/default", "2.1")
        .await;
    assert_eq!(body["quota_class_set"]["id"], "default");
    assert!(
        body["quota_class_set"].get("server_groups").is_none()
            && body["quota_class_set"].get("floating_ips").is_some()
    );
    t.stop().await;
}

/// The default class changes the defaults of every project without rows;
/// a project's own row wins over the class.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_class_sets_the_limits_of_projects_without_their_own() {
    let t = Tenants::start().await;
    t.set_project_quota(json!({"cores": 40})).await;
    let (status, body) = t
        .update_default_class(json!({"cores": 30, "server_groups": 7}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["quota_class_set"]["cores"].as_i64(),
            body["quota_class_set"]["server_groups"].as_i64()
        ),
        (Some(30), Some(7))
    );
    assert!(body["quota_class_set"].get("id").is_none());
    let (_, body) = t
        .call(
            &t.admin,
            Method::GET,
            &format!("/os-quota-sets/{}", t.other),
            "2.57",
        )
        .await;
    assert_eq!(
        (
            body["quota_set"]["cores"].as_i64(),
            body["quota_set"]["instances"].as_i64()
        ),
        (Some(30), Some(10))
    );
    let (_, body) = t
        .call(
            &t.admin,
            Method::GET,
            &format!("/os-quota-sets/{}/defaults", t.other),
            "2.57",
        )
        .await;
    assert_eq!(body["quota_set"]["cores"], 30);
    let (_, body) = t.call(&t.admin, Method::GET, &t.path, "2.57").await;
    assert_eq!(
        body["quota_set"]["cores"], 40,
        "the project's row wins over the class"
    );
    t.stop().await;
}
