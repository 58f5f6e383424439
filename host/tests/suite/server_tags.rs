//! `/servers/{id}/tags` (2.26) on SQLite and PostgreSQL: tags given at
//! create (2.52), listed, replaced, added (201 then 204), checked, removed
//! and cleared; shown on the server; the list filters `tags`, `tags-any`,
//! `not-tags`, `not-tags-any`; bad tags and more than 50 are 400; before
//! 2.26 the routes do not exist.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api_common::backends;
use crate::compute::{Cloud, IMAGE, cloud_on};

const V: Option<&str> = Some("2.52");

async fn call(cloud: &Cloud, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    cloud.call(Some("member"), method, path, body, V).await
}

async fn server_with(cloud: &Cloud, host: &str, token: &str, name: &str, tags: Value) -> String {
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            "/compute/v2.1/servers",
            Some(json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "1", "networks": "none", "tags": tags}})),
            V,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active(host, token, &id).await;
    id
}

async fn names_listed(cloud: &Cloud, query: &str) -> Vec<String> {
    let (status, body) = call(
        cloud,
        "GET",
        &format!("/compute/v2.1/servers?{query}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut names: Vec<String> = body["servers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|server| server["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

async fn server_tags_on(backend: &crate::api_common::Backend) {
    let cloud = cloud_on(backend).await;
    let token = cloud.register("h1", 16, 32768).await;
    let red = server_with(&cloud, "h1", &token, "red", json!(["colour", "red", "red"])).await;
    let blue = server_with(&cloud, "h1", &token, "blue", json!(["colour", "blue"])).await;
    let plain = server_with(&cloud, "h1", &token, "plain", json!([])).await;
    let tags = |id: &str| format!("/compute/v2.1/servers/{id}/tags");

    let (status, body) = call(&cloud, "GET", &tags(&red), None).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"tags": ["colour", "red"]}))
    );
    let (_, body) = call(&cloud, "GET", &format!("/compute/v2.1/servers/{red}"), None).await;
    assert_eq!(body["server"]["tags"], json!(["colour", "red"]));
    let (_, body) = call(
        &cloud,
        "GET",
        "/compute/v2.1/servers/detail?name=blue",
        None,
    )
    .await;
    assert_eq!(body["servers"][0]["tags"], json!(["blue", "colour"]));

    assert_eq!(names_listed(&cloud, "tags=colour,red").await, ["red"]);
    assert_eq!(
        names_listed(&cloud, "tags-any=red,blue").await,
        ["blue", "red"]
    );
    assert_eq!(
        names_listed(&cloud, "not-tags=colour,red").await,
        ["blue", "plain"]
    );
    assert_eq!(
        names_listed(&cloud, "not-tags-any=red,blue").await,
        ["plain"]
    );

    // One tag: added (201 with a Location), again (204), checked, removed.
    let one = format!("{}/new", tags(&plain));
    let (status, _) = call(&cloud, "PUT", &one, None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&cloud, "PUT", &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&cloud, "GET", &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&cloud, "DELETE", &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&cloud, "GET", &one, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = call(&cloud, "DELETE", &one, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Replace and clear.
    let (status, body) = call(
        &cloud,
        "PUT",
        &tags(&blue),
        Some(json!({"tags": ["b", "a"]})),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"tags": ["a", "b"]}))
    );
    let (status, _) = call(&cloud, "DELETE", &tags(&blue), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = call(&cloud, "GET", &tags(&blue), None).await;
    assert_eq!(body, json!({"tags": []}));

    // Bad tags and too many: 400, nothing changes.
    let too_many: Vec<String> = (0..51).map(|n| format!("t{n}")).collect();
    for bad in [
        json!({"tags": ["a/b"]}),
        json!({"tags": ["a,b"]}),
        json!({"tags": [""]}),
        json!({"tags": ["x".repeat(61)]}),
        json!({"tags": too_many}),
        json!({"tags": "a"}),
        json!({}),
    ] {
        let (status, body) = call(&cloud, "PUT", &tags(&red), Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
    }
    let (status, _) = call(&cloud, "PUT", &format!("{}/a,b", tags(&red)), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = call(&cloud, "GET", &tags(&red), None).await;
    assert_eq!(body, json!({"tags": ["colour", "red"]}));

    // Another project sees no server; before 2.26 there is no such route.
    let (status, _) = cloud.call(Some("other"), "GET", &tags(&red), None, V).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = cloud
        .call(Some("member"), "GET", &tags(&red), None, Some("2.25"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Tags at create before 2.52 are refused.
    let (status, _) = cloud
        .call(
            Some("member"),
            "POST",
            "/compute/v2.1/servers",
            Some(json!({"server": {"name": "old", "imageRef": IMAGE, "flavorRef": "1", "networks": "none", "tags": ["a"]}})),
            Some("2.51"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn server_tags_are_given_listed_changed_and_filtered() {
    for backend in backends().await {
        server_tags_on(&backend).await;
    }
}
