//! /limits: absolute limits and usage per microversion, for the caller's
//! project or (admins) another's.

use reqwest::Method;
use serde_json::json;

use super::{Tenants, keys};

/// quota-p1 at 5 instances and 40 cores, server groups at 7 by the default
/// class, and five m1.tiny servers (5 vCPUs, 2560 MiB) of alice's.
async fn five_servers_of_five() -> Tenants {
    let t = Tenants::start().await;
    let (status, body) = t.update_default_class(json!({"server_groups": 7})).await;
    assert_eq!(status, 200, "{body}");
    t.set_project_quota(json!({"instances": 5, "cores": 40}))
        .await;
    t.create_servers(&["a", "b", "c", "d", "e"]).await;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_show_absolute_limits_and_usage_per_microversion() {
    let t = five_servers_of_five().await;
    let (status, body) = t.call(&t.member, Method::GET, "/limits", "2.1").await;
    assert_eq!(status, 200, "{body}");
    let absolute = &body["limits"]["absolute"];
    assert_eq!(body["limits"]["rate"], json!([]));
    assert_eq!(
        (
            absolute["maxTotalInstances"].as_i64(),
            absolute["totalInstancesUsed"].as_i64()
        ),
        (Some(5), Some(5))
    );
    assert_eq!(
        (
            absolute["maxTotalCores"].as_i64(),
            absolute["totalCoresUsed"].as_i64()
        ),
        (Some(40), Some(5))
    );
    assert_eq!(
        (
            absolute["maxTotalRAMSize"].as_i64(),
            absolute["totalRAMUsed"].as_i64()
        ),
        (Some(51200), Some(2560))
    );
    assert_eq!(
        (
            absolute["maxServerGroups"].as_i64(),
            absolute["totalServerGroupsUsed"].as_i64()
        ),
        (Some(7), Some(0))
    );
    for name in [
        "maxServerMeta",
        "maxImageMeta",
        "maxPersonality",
        "maxPersonalitySize",
        "maxTotalFloatingIps",
        "maxSecurityGroups",
        "totalFloatingIpsUsed",
        "maxTotalKeypairs",
        "maxServerGroupMembers",
    ] {
        assert!(absolute.get(name).is_some(), "{name} at 2.1");
    }
    let (_, body) = t.call(&t.member, Method::GET, "/limits", "2.57").await;
    assert_eq!(
        keys(&body["limits"]["absolute"]),
        [
            "maxServerGroupMembers",
            "maxServerGroups",
            "maxServerMeta",
            "maxTotalCores",
            "maxTotalInstances",
            "maxTotalKeypairs",
            "maxTotalRAMSize",
            "totalCoresUsed",
            "totalInstancesUsed",
            "totalRAMUsed",
            "totalServerGroupsUsed"
        ]
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_projects_limits_are_for_admins_only() {
    let t = five_servers_of_five().await;
    let (status, _) = t
        .call(
            &t.member,
            Method::GET,
            &format!("/limits?tenant_id={}", t.other),
            "2.57",
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = t
        .call(
            &t.admin,
            Method::GET,
            &format!("/limits?tenant_id={}", t.project),
            "2.57",
        )
        .await;
    assert_eq!(
        (
            status,
            body["limits"]["absolute"]["totalInstancesUsed"].as_i64()
        ),
        (200, Some(5))
    );
    t.stop().await;
}
