//! Server external events (admin): each event answered on its own (200 on
//! a host, 404 unknown server, 422 no host, 400 tag missing) and the
//! request 200 or 207; `injectNetworkInfo` (admin, 202); a deleted
//! server's instance actions from 2.21.

use axum::http::StatusCode;
use novum_wire::{PowerState, TaskOutcome};
use serde_json::{Value, json};

use crate::compute::{IMAGE, cloud_with};

#[tokio::test]
async fn external_events_are_answered_one_by_one() {
    let cloud = cloud_with(|_| {}).await;
    let token = cloud.register("h1", 8, 16384).await;
    let (_, body) = cloud
        .create(
            "member",
            json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}}),
        )
        .await;
    let id = body["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("h1", &token, &id).await;
    let events = |events: Value| Some(json!({ "events": events }));
    let post = |who: &'static str, body: Option<Value>, version: &'static str| {
        let cloud = &cloud;
        async move {
            cloud
                .call(
                    Some(who),
                    "POST",
                    "/compute/v2.1/os-server-external-events",
                    body,
                    Some(version),
                )
                .await
        }
    };

    let (status, body) = post(
        "admin",
        events(json!([{"name": "network-vif-plugged", "server_uuid": id, "tag": "port"}])),
        "2.1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"][0]["code"], 200);
    assert_eq!(body["events"][0]["status"], "completed");
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, body) = post(
        "admin",
        events(json!([
            {"name": "network-changed", "server_uuid": id},
            {"name": "network-changed", "server_uuid": unknown},
            {"name": "power-update", "server_uuid": id},
        ])),
        "2.76",
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let codes: Vec<&Value> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| &event["code"])
        .collect();
    assert_eq!(codes, [&json!(200), &json!(404), &json!(400)]);
    for (body, version) in [
        (
            events(json!([{"name": "power-update", "server_uuid": id, "tag": "POWER_ON"}])),
            "2.75",
        ),
        (events(json!([{"name": "bogus", "server_uuid": id}])), "2.1"),
        (
            events(json!([{"name": "network-changed", "server_uuid": "x"}])),
            "2.1",
        ),
        (events(json!([{"name": "network-changed"}])), "2.1"),
        (events(json!([])), "2.1"),
        (Some(json!({"events": [], "more": 1})), "2.1"),
    ] {
        let (status, answer) = post("admin", body.clone(), version).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {answer}");
    }
    let (status, _) = post(
        "member",
        events(json!([{"name": "network-changed", "server_uuid": id}])),
        "2.1",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // injectNetworkInfo: admin only, accepted.
    let action = format!("/compute/v2.1/servers/{id}/action");
    let (status, _) = cloud
        .call(
            Some("member"),
            "POST",
            &action,
            Some(json!({"injectNetworkInfo": null})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cloud
        .call(
            Some("admin"),
            "POST",
            &action,
            Some(json!({"injectNetworkInfo": null})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // A deleted server's actions: 404 before 2.21, listed from 2.21.
    let (status, _) = cloud
        .call(
            Some("member"),
            "DELETE",
            &format!("/compute/v2.1/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let tasks = cloud.next_tasks("h1", &token).await;
    cloud
        .report(
            "h1",
            &token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::NoState,
            },
        )
        .await;
    let actions = format!("/compute/v2.1/servers/{id}/os-instance-actions");
    for _ in 0..100 {
        let (status, _) = cloud
            .call(Some("member"), "GET", &actions, None, Some("2.20"))
            .await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, _) = cloud
        .call(Some("member"), "GET", &actions, None, Some("2.20"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = cloud
        .call(Some("member"), "GET", &actions, None, Some("2.21"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|action| action["action"].as_str())
        .collect();
    assert!(
        names.contains(&"delete") && names.contains(&"create"),
        "{names:?}"
    );
    let (status, _) = cloud
        .call(Some("other"), "GET", &actions, None, Some("2.21"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
