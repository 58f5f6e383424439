//! The image API (Glance v2 subset) through the real router, on SQLite and
//! PostgreSQL.

use crate::api_common;

use api_common::{Backend, PUBLIC_URL, TestApp, backends};
use axum::http::{Method, StatusCode};
use md5::Digest as _;
use novum_api::auth::AuthContext;
use novum_images::{self as images, ImageError, Viewer};
use serde_json::{Value, json};

const PATCH_TYPE: &str = "application/openstack-images-v2.1-json-patch";

macro_rules! on_backends {
    ($test:ident) => {
        for backend in backends().await {
            println!("backend: {}", backend.name);
            $test(&backend).await;
        }
    };
}

/// Creates an image with `body`, asserting 201; returns its id.
async fn create(app: &TestApp, token: &str, body: Value) -> String {
    let reply = app
        .call(Method::POST, "/image/v2/images", Some(token), body)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "[{}] {}",
        app.backend,
        reply.json
    );
    reply.json["id"].as_str().expect("id").to_string()
}

async fn upload(app: &TestApp, token: &str, id: &str, data: Vec<u8>) -> api_common::Reply {
    app.send(
        Method::PUT,
        &format!("/image/v2/images/{id}/file"),
        &[
            ("x-auth-token", token),
            ("content-type", "application/octet-stream"),
        ],
        data,
    )
    .await
}

async fn patch(app: &TestApp, token: &str, id: &str, operations: Value) -> api_common::Reply {
    app.send(
        Method::PATCH,
        &format!("/image/v2/images/{id}"),
        &[("x-auth-token", token), ("content-type", PATCH_TYPE)],
        serde_json::to_vec(&operations).expect("json"),
    )
    .await
}

async fn show(app: &TestApp, token: &str, id: &str) -> api_common::Reply {
    app.call(
        Method::GET,
        &format!("/image/v2/images/{id}"),
        Some(token),
        Value::Null,
    )
    .await
}

async fn list(app: &TestApp, token: &str, query: &str) -> api_common::Reply {
    let reply = app
        .call(
            Method::GET,
            &format!("/image/v2/images{query}"),
            Some(token),
            Value::Null,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "[{}] {query}: {}",
        app.backend,
        reply.json
    );
    reply
}

fn names(reply: &api_common::Reply) -> Vec<String> {
    reply.json["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|image| image["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn version_documents() {
    on_backends!(versions_on);
}

async fn versions_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    for path in ["/image", "/image/versions"] {
        let reply = app.call(Method::GET, path, None, Value::Null).await;
        assert_eq!(reply.status, StatusCode::OK);
        let versions = reply.json["versions"].as_array().expect("versions");
        let current: Vec<&Value> = versions
            .iter()
            .filter(|v| v["status"] == "CURRENT")
            .collect();
        assert_eq!(current.len(), 1);
        assert!(
            current[0]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("v2."))
        );
        assert_eq!(
            current[0]["links"][0]["href"],
            format!("{PUBLIC_URL}/image/v2/")
        );
    }
}

#[tokio::test]
async fn create_upload_download_patch_delete() {
    on_backends!(lifecycle_on);
}

async fn lifecycle_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (project_id, _, member) = app.project_user(&admin, "alpha", "alice", "member").await;
    let reader = app
        .add_user(&admin, &project_id, "alpha", "rita", "reader")
        .await;

    // No token: 401; a reader may not create.
    let anonymous = app
        .call(Method::POST, "/image/v2/images", None, json!({"name": "x"}))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let by_reader = app
        .call(
            Method::POST,
            "/image/v2/images",
            Some(&reader),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(by_reader.status, StatusCode::FORBIDDEN);
    // Bad input.
    for (body, status) in [
        (
            json!({"name": "x", "disk_format": "floppy"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "x", "hw_architecture": 64}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "x", "status": "active"}),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({"name": "x", "visibility": "public"}),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({"name": "x", "owner": "someone-else"}),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({"name": "x", "id": "not-a-uuid"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let reply = app
            .call(
                Method::POST,
                "/image/v2/images",
                Some(&member),
                body.clone(),
            )
            .await;
        assert_eq!(reply.status, status, "{body}: {}", reply.json);
    }

    let created = app
        .call(
            Method::POST,
            "/image/v2/images",
            Some(&member),
            json!({"name": "cirros", "disk_format": "qcow2", "container_format": "bare",
                   "min_ram": 64, "tags": ["a", "b", "a"], "hw_architecture": "x86_64", "img_hv_type": "qemu"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let image = &created.json;
    let id = image["id"].as_str().expect("id").to_string();
    assert_eq!(image["status"], "queued");
    assert_eq!(image["visibility"], "shared", "Glance's default visibility");
    assert_eq!(image["owner"], project_id);
    assert_eq!(
        image["hw_architecture"], "x86_64",
        "properties are top-level keys"
    );
    assert_eq!(image["tags"], json!(["a", "b"]));
    assert_eq!(image["min_ram"], 64);
    assert_eq!(image["size"], Value::Null);
    assert_eq!(image["self"], format!("/v2/images/{id}"));
    assert_eq!(image["file"], format!("/v2/images/{id}/file"));
    assert!(
        image["created_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z') && at.len() == 20)
    );

    // Download before upload: 204.
    let empty = app
        .call(
            Method::GET,
            &format!("/image/v2/images/{id}/file"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(empty.status, StatusCode::NO_CONTENT);
    // A reader may not upload.
    assert_eq!(
        upload(&app, &reader, &id, b"x".to_vec()).await.status,
        StatusCode::FORBIDDEN
    );

    // Upload more than axum's default body limit, streamed.
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    let uploaded = upload(&app, &member, &id, data.clone()).await;
    assert_eq!(uploaded.status, StatusCode::NO_CONTENT, "{}", uploaded.json);
    let active = show(&app, &reader, &id).await;
    assert_eq!(active.json["status"], "active");
    assert_eq!(active.json["size"], data.len());
    let md5 = hex::encode(md5::Md5::digest(&data));
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
    assert_eq!(active.json["checksum"], md5);
    assert_eq!(active.json["os_hash_algo"], "sha256");
    assert_eq!(active.json["os_hash_value"], sha256);
    assert_eq!(
        active.json["virtual_size"],
        Value::Null,
        "unknown for qcow2"
    );
    let again = upload(&app, &member, &id, b"more".to_vec()).await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "active images take no new data"
    );
    let downloaded = app
        .call(
            Method::GET,
            &format!("/image/v2/images/{id}/file"),
            Some(&reader),
            Value::Null,
        )
        .await;
    assert_eq!(downloaded.status, StatusCode::OK);
    assert_eq!(downloaded.bytes, data);
    assert_eq!(downloaded.header("content-md5"), Some(md5.as_str()));
    assert_eq!(
        downloaded.header("content-length"),
        Some(data.len().to_string().as_str())
    );

    // An image without formats cannot take data.
    let bare = create(&app, &member, json!({"name": "no-format"})).await;
    assert_eq!(
        upload(&app, &member, &bare, b"x".to_vec()).await.status,
        StatusCode::BAD_REQUEST
    );

    // JSON patch.
    let patched = patch(
        &app,
        &member,
        &id,
        json!([
            {"op": "replace", "path": "/name", "value": "cirros-0.6"},
            {"op": "add", "path": "/hw_vm_mode", "value": "hvm"},
            {"op": "add", "path": "/os~1distro", "value": "cirros"},
            {"op": "remove", "path": "/img_hv_type"},
            {"op": "replace", "path": "/min_disk", "value": 1},
        ]),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.json);
    assert_eq!(patched.json["name"], "cirros-0.6");
    assert_eq!(patched.json["hw_vm_mode"], "hvm");
    assert_eq!(patched.json["os/distro"], "cirros");
    assert!(patched.json.get("img_hv_type").is_none());
    assert_eq!(patched.json["min_disk"], 1);
    for (operations, status) in [
        (
            json!([{"op": "replace", "path": "/nope", "value": "x"}]),
            StatusCode::CONFLICT,
        ),
        (
            json!([{"op": "remove", "path": "/nope"}]),
            StatusCode::CONFLICT,
        ),
        (
            json!([{"op": "remove", "path": "/name"}]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{"op": "replace", "path": "/status", "value": "queued"}]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{"op": "replace", "path": "/disk_format", "value": "raw"}]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{"op": "move", "path": "/name"}]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([{"op": "add", "path": "/a/b", "value": "x"}]),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let reply = patch(&app, &member, &id, operations.clone()).await;
        assert_eq!(reply.status, status, "{operations}: {}", reply.json);
    }
    let unchanged = show(&app, &member, &id).await;
    assert_eq!(
        unchanged.json["name"], "cirros-0.6",
        "a failed patch changes nothing"
    );
    let wrong_type = app
        .call(
            Method::PATCH,
            &format!("/image/v2/images/{id}"),
            Some(&member),
            json!([]),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        patch(&app, &reader, &id, json!([])).await.status,
        StatusCode::FORBIDDEN
    );

    // Tags.
    let tagged = app
        .call(
            Method::PUT,
            &format!("/image/v2/images/{id}/tags/c"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(tagged.status, StatusCode::NO_CONTENT);
    let untagged = app
        .call(
            Method::DELETE,
            &format!("/image/v2/images/{id}/tags/a"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(untagged.status, StatusCode::NO_CONTENT);
    assert_eq!(
        show(&app, &member, &id).await.json["tags"],
        json!(["b", "c"])
    );

    // Protected images resist deletion; readers may not delete; delete removes the data.
    assert_eq!(
        patch(
            &app,
            &member,
            &id,
            json!([{"op": "replace", "path": "/protected", "value": true}])
        )
        .await
        .status,
        StatusCode::OK
    );
    let refused = app
        .call(
            Method::DELETE,
            &format!("/image/v2/images/{id}"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    patch(
        &app,
        &member,
        &id,
        json!([{"op": "replace", "path": "/protected", "value": false}]),
    )
    .await;
    let by_reader = app
        .call(
            Method::DELETE,
            &format!("/image/v2/images/{id}"),
            Some(&reader),
            Value::Null,
        )
        .await;
    assert_eq!(by_reader.status, StatusCode::FORBIDDEN);
    let file = novum_images::data::image_path(&app.state.config.data_dir, &id);
    assert!(file.exists());
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/image/v2/images/{id}"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(!file.exists(), "the data goes with the image");
    assert_eq!(show(&app, &member, &id).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_filters_sorting_and_pagination() {
    on_backends!(listing_on);
}

async fn listing_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (project_id, _, member) = app.project_user(&admin, "alpha", "alice", "member").await;
    let mut ids = Vec::new();
    for (index, name) in ["img-a", "img-b", "img-c", "img-d", "img-e"]
        .iter()
        .enumerate()
    {
        let arch = if index % 2 == 0 { "x86_64" } else { "aarch64" };
        let id = create(
            &app,
            &member,
            json!({"name": name, "disk_format": "raw", "container_format": "bare",
                   "hw_architecture": arch, "tags": [format!("t{index}"), "all"]}),
        )
        .await;
        ids.push(id);
    }
    assert_eq!(
        upload(&app, &member, &ids[0], b"data".to_vec())
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    let all = list(&app, &member, "").await;
    assert_eq!(
        names(&all),
        ["img-e", "img-d", "img-c", "img-b", "img-a"],
        "newest first"
    );
    assert_eq!(all.json["first"], "/v2/images");
    assert_eq!(all.json["schema"], "/v2/schemas/images");
    assert!(all.json.get("next").is_none());
    assert_eq!(names(&list(&app, &member, "?name=img-c").await), ["img-c"]);
    assert_eq!(
        names(&list(&app, &member, &format!("?id=in:{},{}", ids[1], ids[3])).await),
        ["img-d", "img-b"]
    );
    assert_eq!(
        names(&list(&app, &member, "?status=active").await),
        ["img-a"]
    );
    let active = list(&app, &member, "?status=active").await;
    assert_eq!(
        active.json["images"][0]["virtual_size"], 4,
        "raw: virtual size is the size"
    );
    assert_eq!(
        names(&list(&app, &member, "?status=queued&sort_key=name&sort_dir=asc").await),
        ["img-b", "img-c", "img-d", "img-e"]
    );
    assert_eq!(
        names(&list(&app, &member, "?hw_architecture=aarch64&sort=name:asc").await),
        ["img-b", "img-d"]
    );
    assert_eq!(names(&list(&app, &member, "?tag=t2").await), ["img-c"]);
    assert_eq!(
        names(&list(&app, &member, "?tag=all&tag=t4").await),
        ["img-e"]
    );
    assert_eq!(
        names(
            &list(
                &app,
                &member,
                &format!("?owner={project_id}&visibility=shared")
            )
            .await
        )
        .len(),
        5
    );
    assert!(names(&list(&app, &member, "?visibility=private").await).is_empty());
    assert!(names(&list(&app, &member, "?size_min=5").await).is_empty());
    // Booleans in any case, as Glance (openstacksdk lists `?os_hidden=True`).
    assert!(names(&list(&app, &member, "?os_hidden=True").await).is_empty());
    assert_eq!(
        names(&list(&app, &member, "?os_hidden=FALSE").await).len(),
        5
    );
    assert_eq!(names(&list(&app, &member, "?protected=no").await).len(), 5);
    let refused = app
        .call(
            Method::GET,
            "/image/v2/images?os_hidden=maybe",
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        names(&list(&app, &member, "?size_min=4&size_max=4").await),
        ["img-a"]
    );
    for bad in [
        "?sort_key=bogus",
        "?sort_dir=sideways",
        "?limit=x",
        "?visibility=secret",
        "?marker=nope",
    ] {
        let reply = app
            .call(
                Method::GET,
                &format!("/image/v2/images{bad}"),
                Some(&member),
                Value::Null,
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Pages of two, following `next` to the end, in both directions.
    for (query, expected) in [
        (
            "?limit=2",
            vec!["img-e", "img-d", "img-c", "img-b", "img-a"],
        ),
        (
            "?limit=2&sort_key=name&sort_dir=asc",
            vec!["img-a", "img-b", "img-c", "img-d", "img-e"],
        ),
    ] {
        let mut seen = Vec::new();
        let mut next = Some(format!("/v2/images{query}"));
        let mut pages = 0;
        while let Some(path) = next {
            let reply = list(&app, &member, path.trim_start_matches("/v2/images")).await;
            seen.extend(names(&reply));
            next = reply.json["next"].as_str().map(str::to_string);
            pages += 1;
            assert!(pages <= 3, "runaway pagination");
        }
        assert_eq!(seen, expected, "{query}");
        assert_eq!(pages, 3);
    }
}

#[tokio::test]
async fn project_isolation_and_visibility() {
    on_backends!(isolation_on);
}

async fn isolation_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (alpha_id, _, alpha) = app.project_user(&admin, "alpha", "alice", "member").await;
    let (beta_id, _, beta) = app.project_user(&admin, "beta", "bob", "member").await;
    let private = create(
        &app,
        &alpha,
        json!({"name": "private", "visibility": "private"}),
    )
    .await;
    let shared = create(&app, &alpha, json!({"name": "shared"})).await;
    let community = create(
        &app,
        &alpha,
        json!({"name": "community", "visibility": "community"}),
    )
    .await;
    let public = create(
        &app,
        &admin,
        json!({"name": "public", "visibility": "public"}),
    )
    .await;

    // Another project's private and (unshared) shared images are 404.
    assert_eq!(
        show(&app, &beta, &private).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        show(&app, &beta, &shared).await.status,
        StatusCode::NOT_FOUND
    );
    let download = app
        .call(
            Method::GET,
            &format!("/image/v2/images/{private}/file"),
            Some(&beta),
            Value::Null,
        )
        .await;
    assert_eq!(download.status, StatusCode::NOT_FOUND);
    assert_eq!(
        patch(&app, &beta, &private, json!([])).await.status,
        StatusCode::NOT_FOUND
    );
    let delete = app
        .call(
            Method::DELETE,
            &format!("/image/v2/images/{private}"),
            Some(&beta),
            Value::Null,
        )
        .await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);
    // Public and community images are visible; not changeable by others.
    assert_eq!(show(&app, &beta, &public).await.status, StatusCode::OK);
    assert_eq!(show(&app, &beta, &community).await.status, StatusCode::OK);
    assert_eq!(
        patch(
            &app,
            &beta,
            &public,
            json!([{"op": "replace", "path": "/name", "value": "mine"}])
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    // Lists: the own project's images and public ones; community on request.
    assert_eq!(
        names(&list(&app, &beta, "?sort=name:asc").await),
        ["public"]
    );
    assert_eq!(
        names(&list(&app, &beta, "?visibility=community").await),
        ["community"]
    );
    assert_eq!(
        names(&list(&app, &alpha, "?sort=name:asc").await),
        ["community", "private", "public", "shared"]
    );
    assert_eq!(
        names(&list(&app, &admin, "?sort=name:asc").await),
        ["community", "private", "public", "shared"]
    );

    // Sharing: a pending member sees the image but does not list it until it accepts.
    let added = app
        .call(
            Method::POST,
            &format!("/image/v2/images/{shared}/members"),
            Some(&alpha),
            json!({"member": beta_id}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.json);
    assert_eq!(added.json["status"], "pending");
    let not_shared = app
        .call(
            Method::POST,
            &format!("/image/v2/images/{private}/members"),
            Some(&alpha),
            json!({"member": beta_id}),
        )
        .await;
    assert_eq!(not_shared.status, StatusCode::FORBIDDEN);
    assert_eq!(show(&app, &beta, &shared).await.status, StatusCode::OK);
    assert_eq!(
        names(&list(&app, &beta, "?sort=name:asc").await),
        ["public"]
    );
    assert_eq!(
        names(&list(&app, &beta, "?member_status=pending&sort=name:asc").await),
        ["public", "shared"]
    );
    let by_owner = app
        .call(
            Method::PUT,
            &format!("/image/v2/images/{shared}/members/{beta_id}"),
            Some(&alpha),
            json!({"status": "accepted"}),
        )
        .await;
    assert_eq!(
        by_owner.status,
        StatusCode::FORBIDDEN,
        "only the member accepts"
    );
    let accepted = app
        .call(
            Method::PUT,
            &format!("/image/v2/images/{shared}/members/{beta_id}"),
            Some(&beta),
            json!({"status": "accepted"}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.json);
    assert_eq!(
        names(&list(&app, &beta, "?sort=name:asc").await),
        ["public", "shared"]
    );
    let members = app
        .call(
            Method::GET,
            &format!("/image/v2/images/{shared}/members"),
            Some(&alpha),
            Value::Null,
        )
        .await;
    assert_eq!(members.json["members"][0]["member_id"], beta_id);
    let removed = app
        .call(
            Method::DELETE,
            &format!("/image/v2/images/{shared}/members/{beta_id}"),
            Some(&alpha),
            Value::Null,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        show(&app, &beta, &shared).await.status,
        StatusCode::NOT_FOUND
    );

    // The compute side's lookup follows the same rules.
    let alpha_context = AuthContext::validate(&app.state.identity, &alpha)
        .await
        .expect("alpha");
    let beta_context = AuthContext::validate(&app.state.identity, &beta)
        .await
        .expect("beta");
    let admin_context = AuthContext::validate(&app.state.identity, &admin)
        .await
        .expect("admin");
    let image = images::get_for_project(&app.state.db, &private, &Viewer::from(&alpha_context))
        .await
        .expect("own image");
    assert_eq!(image.owner, alpha_id);
    assert!(matches!(
        images::get_for_project(&app.state.db, &private, &Viewer::from(&beta_context)).await,
        Err(ImageError::NotFound(_))
    ));
    assert!(
        images::get_for_project(&app.state.db, &private, &Viewer::from(&admin_context))
            .await
            .is_ok()
    );
    assert!(
        images::get_for_project(&app.state.db, &public, &Viewer::from(&beta_context))
            .await
            .is_ok()
    );
    assert!(matches!(
        images::get_for_project(
            &app.state.db,
            "no-such-image",
            &Viewer::from(&alpha_context)
        )
        .await,
        Err(ImageError::NotFound(_))
    ));
}

#[tokio::test]
async fn compute_lookup_carries_scheduler_properties() {
    on_backends!(properties_on);
}

async fn properties_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let id = create(
        &app,
        &admin,
        json!({"name": "img", "disk_format": "raw", "container_format": "bare",
               "hw_architecture": "x86_64", "img_hv_type": "qemu", "hw_vm_mode": "hvm", "min_ram": 128}),
    )
    .await;
    let context = AuthContext::validate(&app.state.identity, &admin)
        .await
        .expect("admin");
    let image = images::get_for_project(&app.state.db, &id, &Viewer::from(&context))
        .await
        .expect("image");
    assert_eq!(image.property("hw_architecture"), Some("x86_64"));
    assert_eq!(image.property("img_hv_type"), Some("qemu"));
    assert_eq!(image.property("hw_vm_mode"), Some("hvm"));
    assert_eq!(image.min_ram, 128);
    assert_eq!(image.status, images::STATUS_QUEUED);
}

#[tokio::test]
async fn uploads_over_the_size_cap_or_the_project_quota_are_413_and_keep_nothing() {
    on_backends!(upload_limits_on);
}

async fn upload_limits_on(backend: &Backend) {
    const MIB: usize = 1024 * 1024;
    let mut config = api_common::config(&backend.dir.0);
    config.images.max_image_size_mb = 1;
    config.images.project_storage_quota_mb = Some(2);
    let app = TestApp::new(backend, config).await;
    let admin = app.admin_token().await;
    let (_, _, member) = app.project_user(&admin, "capped", "carl", "member").await;
    let new_image =
        |name: &str| json!({"name": name, "disk_format": "raw", "container_format": "bare"});
    let status_and_size = |reply: &api_common::Reply| {
        (
            reply.json["status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            reply.json["size"].clone(),
        )
    };
    let nothing_kept = |id: &str| {
        let file = images::data::image_path(&app.state.config.data_dir, id);
        let partial =
            images::data::images_dir(&app.state.config.data_dir).join(format!(".{id}.upload"));
        !file.exists() && !partial.exists()
    };

    // Over the size cap: streamed (no length given), then declared.
    let first = create(&app, &member, new_image("first")).await;
    let reply = upload(&app, &member, &first, vec![1; MIB + 1]).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "[{}] {}",
        app.backend,
        reply.json
    );
    let message = reply.json["overLimit"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("too large"), "{message}");
    assert_eq!(
        status_and_size(&show(&app, &member, &first).await),
        ("queued".to_string(), Value::Null)
    );
    assert!(nothing_kept(&first));
    let declared = app
        .send(
            Method::PUT,
            &format!("/image/v2/images/{first}/file"),
            &[
                ("x-auth-token", &member),
                ("content-type", "application/octet-stream"),
                ("content-length", &(2 * MIB).to_string()),
            ],
            Vec::new(),
        )
        .await;
    assert_eq!(
        declared.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        declared.json
    );
    // At the cap: stored.
    let reply = upload(&app, &member, &first, vec![1; MIB]).await;
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "[{}] {}",
        app.backend,
        reply.json
    );
    let second = create(&app, &member, new_image("second")).await;
    let reply = upload(&app, &member, &second, vec![2; MIB]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);

    // The project's 2 MiB are used: one more byte is over its quota.
    let third = create(&app, &member, new_image("third")).await;
    let reply = upload(&app, &member, &third, vec![3]).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "[{}] {}",
        app.backend,
        reply.json
    );
    let message = reply.json["overLimit"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("Denying attempt to upload image because it exceeds the quota"),
        "{message}"
    );
    assert_eq!(
        status_and_size(&show(&app, &member, &third).await),
        ("queued".to_string(), Value::Null)
    );
    assert!(nothing_kept(&third));
    // Another project's quota is its own.
    let (_, _, other) = app.project_user(&admin, "other", "olga", "member").await;
    let theirs = create(&app, &other, new_image("theirs")).await;
    let reply = upload(&app, &other, &theirs, vec![4; MIB]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
    // Deleting an image frees its share.
    let reply = app
        .call(
            Method::DELETE,
            &format!("/image/v2/images/{first}"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
    let reply = upload(&app, &member, &third, vec![3]).await;
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "[{}] {}",
        app.backend,
        reply.json
    );
}
