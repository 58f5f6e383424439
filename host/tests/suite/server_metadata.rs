//! `/servers/{id}/metadata` on SQLite and PostgreSQL: list, merge, replace,
//! one item shown, set and deleted, as Nova answers them; bad bodies (a
//! non-string value, a key too long, a URI/body mismatch, several items)
//! are 400 and change nothing; another project sees no server; a locked
//! server refuses its owner (409); a building one refuses (409); over the
//! `metadata_items` quota is 403 and changes nothing; each change sends
//! `instance.update`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api_common::backends;
use crate::compute::{Cloud, IMAGE, cloud_on};

async fn call(
    cloud: &Cloud,
    who: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    cloud.call(Some(who), method, path, body, None).await
}

async fn metadata_of(cloud: &Cloud, id: &str) -> Value {
    let (status, body) = call(
        cloud,
        "member",
        "GET",
        &format!("/compute/v2.1/servers/{id}/metadata"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["metadata"].clone()
}

async fn server_metadata_on(backend: &crate::api_common::Backend) {
    let cloud = cloud_on(backend).await;
    let token = cloud.register("h1", 16, 32768).await;
    let (status, body) = cloud
        .create(
            "member",
            json!({"server": {"name": "meta", "imageRef": IMAGE, "flavorRef": "1", "networks": "none", "metadata": {"a": "1"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let path = format!("/compute/v2.1/servers/{id}/metadata");

    // Still building: Nova refuses.
    let (status, body) = call(
        &cloud,
        "member",
        "POST",
        &path,
        Some(json!({"metadata": {"b": "2"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("vm_state building"), "{body}");
    cloud.spawn_active("h1", &token, &id).await;

    assert_eq!(metadata_of(&cloud, &id).await, json!({"a": "1"}));
    let (status, body) = call(
        &cloud,
        "member",
        "POST",
        &path,
        Some(json!({"metadata": {"b": "2", "a": "x"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"metadata": {"a": "x", "b": "2"}}));
    let (status, body) = call(
        &cloud,
        "member",
        "PUT",
        &path,
        Some(json!({"metadata": {"c": "3"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"metadata": {"c": "3"}}));
    assert_eq!(metadata_of(&cloud, &id).await, json!({"c": "3"}));

    let item = format!("{path}/d");
    let (status, body) = call(
        &cloud,
        "member",
        "PUT",
        &item,
        Some(json!({"meta": {"d": "4"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"meta": {"d": "4"}}));
    let (status, body) = call(&cloud, "member", "GET", &item, None).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"meta": {"d": "4"}}))
    );
    // The server shows it too.
    let server = cloud.server(&id).await;
    assert_eq!(server["metadata"], json!({"c": "3", "d": "4"}));

    // Bad bodies: 400, nothing changes.
    for (url, bad) in [
        (&item, json!({"meta": {"e": "5"}})),
        (&item, json!({"meta": {"d": "4", "e": "5"}})),
        (&item, json!({"meta": {"d": 4}})),
        (&path, json!({"metadata": {"x".repeat(256): "v"}})),
        (&path, json!({"metadata": {"k": "v".repeat(256)}})),
        (&path, json!({"metadata": ["k"]})),
        (&path, json!({"metadata": {}, "extra": 1})),
    ] {
        let (status, body) = call(&cloud, "member", "PUT", url, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        assert!(body["badRequest"]["message"].is_string(), "{body}");
    }
    assert_eq!(metadata_of(&cloud, &id).await, json!({"c": "3", "d": "4"}));

    // Another project does not see the server.
    let (status, _) = call(&cloud, "other", "GET", &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&cloud, "other", "DELETE", &item, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Over the metadata_items quota: 403, nothing changes.
    let (status, body) = call(
        &cloud,
        "admin",
        "PUT",
        "/compute/v2.1/os-quota-class-sets/default",
        Some(json!({"quota_class_set": {"metadata_items": 3}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &cloud,
        "member",
        "POST",
        &path,
        Some(json!({"metadata": {"e": "5", "f": "6"}})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.to_string().contains("metadata_items"), "{body}");
    assert_eq!(metadata_of(&cloud, &id).await, json!({"c": "3", "d": "4"}));
    // Overwriting within the limit is fine.
    let (status, body) = call(
        &cloud,
        "member",
        "POST",
        &path,
        Some(json!({"metadata": {"c": "33", "e": "5"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Locked by its owner: the owner may not change it, an admin may.
    let action = format!("/compute/v2.1/servers/{id}/action");
    let (status, body) = call(
        &cloud,
        "member",
        "POST",
        &action,
        Some(json!({"lock": null})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = call(&cloud, "member", "DELETE", &item, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = call(&cloud, "admin", "DELETE", &item, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = call(
        &cloud,
        "member",
        "POST",
        &action,
        Some(json!({"unlock": null})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (status, body) = call(&cloud, "member", "DELETE", &item, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["itemNotFound"]["message"],
        "Metadata item was not found"
    );
    let (status, _) = call(&cloud, "member", "GET", &item, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(metadata_of(&cloud, &id).await, json!({"c": "33", "e": "5"}));

    // Each change sent instance.update with the metadata as it became.
    let (status, body) = call(
        &cloud,
        "admin",
        "GET",
        &format!("/novum/v1/notifications?event_type=instance.update&instance={id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updates = body["notifications"].as_array().expect("a list");
    assert!(updates.len() >= 5, "{body}");
    // Newest first.
    let newest = &updates[0]["notification"]["payload"]["nova_object.data"]["metadata"];
    assert_eq!(newest, &json!({"c": "33", "e": "5"}), "{body}");
}

#[tokio::test]
async fn server_metadata_is_listed_merged_replaced_set_and_deleted() {
    for backend in backends().await {
        server_metadata_on(&backend).await;
    }
}
