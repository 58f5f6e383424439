//! Usage against limits: the detail view, limits below usage (force),
//! per-user limits, and min_count/max_count creates.

use reqwest::Method;
use serde_json::json;

use crate::http_cloud;

use super::Tenants;

/// Usage of two m1.tiny servers (1 vCPU, 512 MiB each).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_set_detail_shows_usage_beside_each_limit() {
    let t = Tenants::start().await;
    t.set_project_quota(json!({"instances": 20, "cores": 40}))
        .await;
    t.create_servers(&["a", "b"]).await;
    let (status, body) = t
        .call(
            &t.member,
            Method::GET,
            &format!("{}/detail", t.path),
            "2.57",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["quota_set"]["instances"],
        json!({"in_use": 2, "limit": 20, "reserved": 0})
    );
    assert_eq!(
        body["quota_set"]["cores"],
        json!({"in_use": 2, "limit": 40, "reserved": 0})
    );
    assert_eq!(
        body["quota_set"]["ram"],
        json!({"in_use": 1024, "limit": 51200, "reserved": 0})
    );
    assert_eq!(body["quota_set"]["id"], t.project.as_str());
    t.stop().await;
}

/// Without force a limit below usage is refused; with it, creates are then
/// over quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limit_below_usage_needs_force() {
    let t = Tenants::start().await;
    t.create_servers(&["a", "b"]).await;
    let (status, body) = t
        .update(&t.admin, &t.path, json!({"instances": 1}), "2.56")
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["badRequest"]["message"],
        "Quota limit 1 for instances must be greater than or equal to already used and reserved 2."
    );
    let (status, body) = t
        .update(
            &t.admin,
            &t.path,
            json!({"instances": 1, "force": true}),
            "2.56",
        )
        .await;
    assert_eq!(
        (status, body["quota_set"]["instances"].as_i64()),
        (200, Some(1)),
        "{body}"
    );
    let (status, body) = t.create_server("c").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["forbidden"]["message"],
        "Quota exceeded for instances: Requested 1, but already used 2 of 1 instances"
    );
    t.stop().await;
}

/// A user's limit lies between their usage and the project's limit, is
/// enforced beside it, and is deleted back to the project's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_user_limits_lie_between_usage_and_the_projects_limit() {
    let t = Tenants::start().await;
    t.create_servers(&["a", "b"]).await;
    t.set_project_quota(json!({"instances": 10, "force": true}))
        .await;
    let user_path = format!("{}?user_id={}", t.path, t.user);
    let (status, body) = t
        .update(&t.admin, &user_path, json!({"instances": 11}), "2.56")
        .await;
    assert_eq!(status, 400, "above the project's limit: {body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Quota limit 11 for instances must be less than or equal to 10."
    );
    let (status, _) = t
        .update(&t.admin, &user_path, json!({"instances": 1}), "2.56")
        .await;
    assert_eq!(status, 400, "below the user's usage");
    let (status, body) = t
        .update(&t.admin, &user_path, json!({"instances": 3}), "2.56")
        .await;
    assert_eq!(
        (status, body["quota_set"]["instances"].as_i64()),
        (200, Some(3)),
        "{body}"
    );
    let (_, body) = t.call(&t.member, Method::GET, &user_path, "2.57").await;
    assert_eq!(body["quota_set"]["instances"], 3);
    let (_, body) = t.call(&t.member, Method::GET, &t.path, "2.57").await;
    assert_eq!(body["quota_set"]["instances"], 10);
    let (status, _) = t.create_server("c").await;
    assert_eq!(status, 202);
    let (status, body) = t.create_server("d").await;
    assert_eq!(status, 403);
    assert_eq!(
        body["forbidden"]["message"],
        "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances"
    );
    let (status, _) = t.call(&t.admin, Method::DELETE, &user_path, "2.57").await;
    assert_eq!(status, 202);
    let (status, _) = t.create_server("d").await;
    assert_eq!(status, 202, "the project's limit again");
    t.stop().await;
}

/// min_count/max_count: as many as fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn min_and_max_count_create_as_many_servers_as_fit() {
    let t = Tenants::start().await;
    t.create_servers(&["a", "b", "c"]).await;
    t.set_project_quota(json!({"instances": 5})).await;
    let many = json!({"server": {"name": "many", "imageRef": http_cloud::IMAGE, "flavorRef": "1", "networks": "none", "min_count": 1, "max_count": 4, "return_reservation_id": true}});
    let (status, body) = t
        .cloud
        .compute(&t.member, Method::POST, "/servers", Some(many), "2.57")
        .await;
    assert_eq!(status, 202, "{body}");
    let (_, body) = t
        .call(
            &t.member,
            Method::GET,
            &format!("{}/detail", t.path),
            "2.57",
        )
        .await;
    assert_eq!(
        body["quota_set"]["instances"]["in_use"], 5,
        "2 of the 4 fit"
    );
    t.stop().await;
}
