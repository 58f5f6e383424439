//! Simple tenant usage (`os-simple-tenant-usage`) and the instance usage
//! audit (`os-instance_usage_audit_log`, `instance.exists`) on SQLite and
//! PostgreSQL: hours and resource-hours per server within the window,
//! deleted servers as `terminated`, the project's own view and the admin's
//! list, pagination links (2.40), bad windows and parameters; the audit of
//! the last completed period per host, once.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api_common::backends;
use crate::compute::{Cloud, IMAGE, cloud_on};

const V: Option<&str> = Some("2.40");

async fn active_server(cloud: &Cloud, token: &str, name: &str, flavor: &str) -> String {
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            "/compute/v2.1/servers",
            Some(json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": flavor, "networks": "none"}})),
            V,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("h1", token, &id).await;
    id
}

/// Moves instance `id`'s launch (and termination, if any) `hours` back.
async fn age(cloud: &Cloud, id: &str, hours: i64) {
    let shift = |text: Option<String>| {
        text.and_then(|text| chrono::DateTime::parse_from_rfc3339(&text).ok())
            .map(|time| novum_db::timestamp(time.to_utc() - chrono::Duration::hours(hours)))
    };
    let instance = novum_compute::conductor::model::Instance::fetch(cloud.state.db.pool(), id)
        .await
        .expect("read")
        .expect("instance");
    sqlx::query("UPDATE instances SET launched_at = $1, terminated_at = $2 WHERE uuid = $3")
        .bind(shift(instance.launched_at))
        .bind(shift(instance.terminated_at))
        .bind(id)
        .execute(cloud.state.db.pool())
        .await
        .expect("age");
}

fn usage_of<'a>(tenant: &'a Value, id: &str) -> &'a Value {
    tenant["server_usages"]
        .as_array()
        .and_then(|usages| usages.iter().find(|usage| usage["instance_id"] == id))
        .unwrap_or_else(|| panic!("no usage of {id} in {tenant}"))
}

async fn usage_on(backend: &crate::api_common::Backend) {
    let cloud = cloud_on(backend).await;
    let token = cloud.register("h1", 16, 32768).await;
    let running = active_server(&cloud, &token, "running", "2").await;
    let gone = active_server(&cloud, &token, "gone", "1").await;
    cloud.delete_done("h1", &token, &gone).await;
    // Both launched three hours ago; `gone` was deleted three hours ago too.
    age(&cloud, &running, 3).await;
    age(&cloud, &gone, 3).await;

    let window = "start=2000-01-01T00:00:00&end=2999-01-01T00:00:00";
    let (status, body) = cloud
        .call(
            Some("member"),
            "GET",
            &format!("/compute/v2.1/os-simple-tenant-usage/p-one?{window}"),
            None,
            V,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tenant = &body["tenant_usage"];
    assert_eq!(tenant["tenant_id"], "p-one");
    let running_usage = usage_of(tenant, &running);
    assert_eq!(running_usage["state"], "active");
    assert_eq!(running_usage["flavor"], "m1.small");
    assert_eq!(running_usage["vcpus"], 1);
    assert_eq!(running_usage["memory_mb"], 2048);
    assert_eq!(running_usage["local_gb"], 20);
    assert_eq!(running_usage["ended_at"], Value::Null);
    let hours = running_usage["hours"].as_f64().expect("hours");
    assert!((2.99..3.1).contains(&hours), "{hours}");
    assert!(running_usage["uptime"].as_i64().expect("uptime") >= 3 * 3600 - 5);
    let gone_usage = usage_of(tenant, &gone);
    assert_eq!(gone_usage["state"], "terminated");
    assert!(gone_usage["ended_at"].is_string());
    assert!(gone_usage["hours"].as_f64().expect("hours") < 0.1);
    let total = tenant["total_memory_mb_usage"].as_f64().expect("total");
    let expected = 2048.0 * hours + 512.0 * gone_usage["hours"].as_f64().unwrap_or(0.0);
    assert!((total - expected).abs() < 1.0, "{total} vs {expected}");

    // A window that closed before the servers ran: nothing.
    let (_, body) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/os-simple-tenant-usage/p-one?start=2000-01-01T00:00:00&end=2000-02-01T00:00:00",
            None,
            V,
        )
        .await;
    assert_eq!(body, json!({"tenant_usage": {}}));
    // The last hour: `running` ran all of it, `gone` none.
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let (_, body) = cloud
        .call(
            Some("admin"),
            "GET",
            &format!("/compute/v2.1/os-simple-tenant-usage?detailed=1&start={hour_ago}"),
            None,
            V,
        )
        .await;
    let tenants = body["tenant_usages"].as_array().expect("list");
    assert_eq!(tenants.len(), 1, "{body}");
    assert_eq!(
        tenants[0]["server_usages"].as_array().map(Vec::len),
        Some(1)
    );
    let hours = tenants[0]["total_hours"].as_f64().expect("hours");
    assert!((0.99..1.01).contains(&hours), "{hours}");
    // Without `detailed`, no server usages.
    let (_, body) = cloud
        .call(
            Some("admin"),
            "GET",
            &format!("/compute/v2.1/os-simple-tenant-usage?{window}"),
            None,
            V,
        )
        .await;
    assert!(
        body["tenant_usages"][0].get("server_usages").is_none(),
        "{body}"
    );
    // Pages of one server, with a next link.
    let (_, body) = cloud
        .call(
            Some("admin"),
            "GET",
            &format!("/compute/v2.1/os-simple-tenant-usage?{window}&detailed=1&limit=1"),
            None,
            V,
        )
        .await;
    let next = body["tenant_usages_links"][0]["href"]
        .as_str()
        .expect("next link");
    assert!(next.contains("marker="), "{next}");

    // Who may see what, and bad requests.
    for (who, path, wanted) in [
        (
            "member",
            "/compute/v2.1/os-simple-tenant-usage",
            StatusCode::FORBIDDEN,
        ),
        (
            "member",
            "/compute/v2.1/os-simple-tenant-usage/p-two",
            StatusCode::FORBIDDEN,
        ),
        (
            "admin",
            "/compute/v2.1/os-simple-tenant-usage/p-two",
            StatusCode::OK,
        ),
        (
            "admin",
            "/compute/v2.1/os-simple-tenant-usage?start=2030-01-01T00:00:00&end=2020-01-01T00:00:00",
            StatusCode::BAD_REQUEST,
        ),
        (
            "admin",
            "/compute/v2.1/os-simple-tenant-usage?start=yesterday",
            StatusCode::BAD_REQUEST,
        ),
        (
            "admin",
            "/compute/v2.1/os-simple-tenant-usage?marker=nope",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = cloud.call(Some(who), "GET", path, None, V).await;
        assert_eq!(status, wanted, "{who} {path}: {body}");
    }
    let (status, _) = cloud
        .call(
            Some("admin"),
            "GET",
            "/compute/v2.1/os-simple-tenant-usage?bogus=1",
            None,
            Some("2.75"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = cloud
        .call(
            Some("admin"),
            "GET",
            "/compute/v2.1/os-simple-tenant-usage?bogus=1",
            None,
            Some("2.74"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn usage_counts_the_hours_each_server_ran_in_the_window() {
    for backend in backends().await {
        usage_on(&backend).await;
    }
}

#[tokio::test]
async fn the_usage_audit_reports_each_host_once_per_period() {
    let cloud = crate::compute::cloud_with(|config| {
        config.compute.instance_usage_audit = true;
        config.compute.instance_usage_audit_period = "hour".to_string();
    })
    .await;
    let token = cloud.register("h1", 16, 32768).await;
    // Too small for any server: every server lands on h1.
    cloud.register("h2", 1, 128).await;
    let old = active_server(&cloud, &token, "old", "1").await;
    let new = active_server(&cloud, &token, "new", "1").await;
    age(&cloud, &old, 2).await;

    let log = |who: &'static str, path: &'static str| {
        let cloud = &cloud;
        async move { cloud.call(Some(who), "GET", path, None, None).await }
    };
    let (status, body) = log("admin", "/compute/v2.1/os-instance_usage_audit_log").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = &body["instance_usage_audit_logs"];
    assert_eq!(before["num_hosts"], 2);
    assert_eq!(before["num_hosts_not_run"], 2);
    assert_eq!(before["overall_status"], "0 of 2 hosts done. 0 errors.");

    assert_eq!(cloud.state.conductor.audit_usage().await.expect("audit"), 2);
    assert_eq!(cloud.state.conductor.audit_usage().await.expect("audit"), 0);
    let (_, body) = log("admin", "/compute/v2.1/os-instance_usage_audit_log").await;
    let after = &body["instance_usage_audit_logs"];
    assert_eq!(after["num_hosts_done"], 2, "{after}");
    assert_eq!(after["total_instances"], 1, "{after}");
    assert_eq!(after["log"]["h1"]["instances"], 1);
    assert_eq!(after["log"]["h1"]["state"], "DONE");
    assert_eq!(after["log"]["h2"]["instances"], 0);
    assert_eq!(after["overall_status"], "ALL hosts done. 0 errors.");
    let exists = novum_notify::outbox::list_events(
        &cloud.state.db,
        &novum_notify::outbox::EventFilter {
            event_type: Some("instance.exists".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .expect("events");
    let about: Vec<_> = exists
        .iter()
        .filter_map(|event| event.envelope.payload["nova_object.data"]["uuid"].as_str())
        .map(str::to_string)
        .collect();
    assert_eq!(
        about,
        std::slice::from_ref(&old),
        "only the server that ran in the period"
    );
    assert!(!about.contains(&new));

    // A period long before: nothing ran, nothing audited.
    let (status, body) = log(
        "admin",
        "/compute/v2.1/os-instance_usage_audit_log/2000-01-01%2000:00:00",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["instance_usage_audit_log"]["period_ending"],
        "1999-12-31 23:00:00"
    );
    assert_eq!(body["instance_usage_audit_log"]["num_hosts_done"], 0);
    let (status, _) = log(
        "admin",
        "/compute/v2.1/os-instance_usage_audit_log/yesterday",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = log("member", "/compute/v2.1/os-instance_usage_audit_log").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
