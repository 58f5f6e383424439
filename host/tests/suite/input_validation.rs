//! Input the APIs refuse as Nova, Keystone and Glance do, through the real
//! router on SQLite and PostgreSQL: NUL and control characters in names,
//! paths and query strings (PostgreSQL cannot store a NUL, so these were
//! 500s there), names with edge whitespace, trailing garbage after the JSON,
//! bad flavor ids and `rxtx_factor`, long descriptions and user data,
//! malformed microversions, oversized bodies (413).

use crate::api_common;

use api_common::{Backend, Reply, TestApp, assert_keystone_error, backends};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

macro_rules! on_backends {
    ($test:ident) => {
        for backend in backends().await {
            println!("backend: {}", backend.name);
            $test(&backend).await;
        }
    };
}

/// Asserts a Nova fault with `status` and fault name `name`.
pub(crate) fn assert_nova_fault(reply: &Reply, status: StatusCode, name: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.json);
    assert_eq!(
        reply.json[name]["code"],
        json!(status.as_u16()),
        "{what}: {}",
        reply.json
    );
    assert!(
        reply.json[name]["message"].is_string(),
        "{what}: {}",
        reply.json
    );
}

/// A compute request with a microversion.
pub(crate) async fn compute(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    version: &str,
    body: Value,
) -> Reply {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("json")
    };
    app.send(
        method,
        &format!("/compute/v2.1{path}"),
        &[
            ("x-auth-token", token),
            ("content-type", "application/json"),
            ("x-openstack-nova-api-version", version),
        ],
        bytes,
    )
    .await
}

#[tokio::test]
async fn nul_in_any_name_path_or_query_is_a_400_in_each_apis_shape() {
    on_backends!(nul_on);
}

async fn nul_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let image = app.public_image(&admin).await;
    let nul = "a\u{0}b";
    let compute_cases = [
        (
            "/servers",
            json!({"server": {"name": nul, "imageRef": image, "flavorRef": "1"}}),
        ),
        (
            "/os-server-groups",
            json!({"server_group": {"name": nul, "policies": ["affinity"]}}),
        ),
        (
            "/flavors",
            json!({"flavor": {"name": nul, "ram": 64, "vcpus": 1, "disk": 1}}),
        ),
        (
            "/flavors",
            json!({"flavor": {"name": "nul-id", "id": nul, "ram": 64, "vcpus": 1, "disk": 1}}),
        ),
        ("/os-aggregates", json!({"aggregate": {"name": nul}})),
        ("/os-keypairs", json!({"keypair": {"name": nul}})),
        (
            "/servers",
            json!({"server": {"name": "ok", "imageRef": image, "flavorRef": "1", "metadata": {nul: "v"}}}),
        ),
    ];
    for (path, body) in compute_cases {
        let reply = compute(&app, Method::POST, path, &admin, "2.1", body.clone()).await;
        assert_nova_fault(
            &reply,
            StatusCode::BAD_REQUEST,
            "badRequest",
            &format!("[{}] POST {path} {body}", app.backend),
        );
    }
    for path in [
        "/flavors/a%00b",
        "/servers?name=a%00b",
        "/flavors?minRam=%00",
    ] {
        let reply = compute(&app, Method::GET, path, &admin, "2.1", Value::Null).await;
        assert_nova_fault(
            &reply,
            StatusCode::BAD_REQUEST,
            "badRequest",
            &format!("[{}] GET {path}", app.backend),
        );
    }
    // Glance: image names and properties, and its paths.
    let reply = app
        .call(
            Method::POST,
            "/image/v2/images",
            Some(&admin),
            json!({"name": nul}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "[{}] {}",
        app.backend,
        reply.json
    );
    let reply = app
        .call(
            Method::GET,
            "/image/v2/images?name=a%00b",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "[{}] {}",
        app.backend,
        reply.json
    );
    // Keystone: the user name of an unauthenticated token request, the
    // names of new users and projects, and its paths and queries.
    let reply = app.password_auth(nul, "pw", None).await;
    assert_keystone_error(&reply, StatusCode::BAD_REQUEST);
    for (path, body) in [
        (
            "/identity/v3/users",
            json!({"user": {"name": nul, "password": "pw"}}),
        ),
        ("/identity/v3/projects", json!({"project": {"name": nul}})),
    ] {
        let reply = app.call(Method::POST, path, Some(&admin), body).await;
        assert_keystone_error(&reply, StatusCode::BAD_REQUEST);
    }
    for path in ["/identity/v3/users?name=a%00b", "/identity/v3/users/a%00b"] {
        let reply = app.call(Method::GET, path, Some(&admin), Value::Null).await;
        assert_keystone_error(&reply, StatusCode::BAD_REQUEST);
    }
    // The agent RPC answers in its own shape, `{"error": "..."}` (the
    // schemathesis run caught a Nova fault here).
    for path in [
        "/rpc/v1/agents/a%00b/tasks",
        "/rpc/v1/agents/host/tasks?%00=null",
    ] {
        let reply = app.call(Method::GET, path, None, Value::Null).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(reply.json["error"].is_string(), "{path}: {}", reply.json);
    }
    // Nothing reached the database.
    let reply = compute(&app, Method::GET, "/flavors", &admin, "2.1", Value::Null).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        !reply.json.to_string().contains("\\u0000"),
        "[{}] {}",
        app.backend,
        reply.json
    );
}

#[tokio::test]
async fn names_with_control_characters_or_edge_whitespace_are_refused_as_nova_does() {
    on_backends!(names_on);
}

async fn names_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let image = app.public_image(&admin).await;
    for bad in ["a\nb", "a\u{1b}b", " lead", "trail ", "a\u{2028}b", ""] {
        let cases = [
            (
                "/servers",
                json!({"server": {"name": bad, "imageRef": image, "flavorRef": "1"}}),
            ),
            (
                "/os-server-groups",
                json!({"server_group": {"name": bad, "policies": ["affinity"]}}),
            ),
            (
                "/flavors",
                json!({"flavor": {"name": bad, "ram": 64, "vcpus": 1, "disk": 1}}),
            ),
            ("/os-aggregates", json!({"aggregate": {"name": bad}})),
        ];
        for (path, body) in cases {
            let reply = compute(&app, Method::POST, path, &admin, "2.1", body).await;
            assert_nova_fault(
                &reply,
                StatusCode::BAD_REQUEST,
                "badRequest",
                &format!("[{}] POST {path} name {bad:?}", app.backend),
            );
        }
    }
    let reply = compute(
        &app,
        Method::POST,
        "/os-aggregates",
        &admin,
        "2.1",
        json!({"aggregate": {"name": "agg", "availability_zone": "zone\tone"}}),
    )
    .await;
    assert_nova_fault(&reply, StatusCode::BAD_REQUEST, "badRequest", "zone");
    // Spaces inside a name, and non-ASCII letters, are fine.
    let reply = compute(
        &app,
        Method::POST,
        "/os-aggregates",
        &admin,
        "2.1",
        json!({"aggregate": {"name": "rack één"}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    // Keystone and Glance names refuse control characters.
    let reply = app
        .call(
            Method::POST,
            "/identity/v3/projects",
            Some(&admin),
            json!({"project": {"name": "p\u{7}"}}),
        )
        .await;
    assert_keystone_error(&reply, StatusCode::BAD_REQUEST);
    let reply = app
        .call(
            Method::POST,
            "/image/v2/images",
            Some(&admin),
            json!({"name": "img\u{1}"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.json);
}

#[tokio::test]
async fn trailing_garbage_after_the_json_is_refused() {
    on_backends!(trailing_on);
}

async fn trailing_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let flavor = br#"{"flavor": {"name": "garbage", "ram": 64, "vcpus": 1, "disk": 1}}xxx"#;
    let reply = app
        .send(
            Method::POST,
            "/compute/v2.1/flavors",
            &[
                ("x-auth-token", &admin),
                ("content-type", "application/json"),
            ],
            flavor.to_vec(),
        )
        .await;
    assert_nova_fault(&reply, StatusCode::BAD_REQUEST, "badRequest", "flavor");
    let reply = app
        .send(
            Method::POST,
            "/identity/v3/projects",
            &[
                ("x-auth-token", &admin),
                ("content-type", "application/json"),
            ],
            br#"{"project": {"name": "garbage"}} {}"#.to_vec(),
        )
        .await;
    assert_keystone_error(&reply, StatusCode::BAD_REQUEST);
    // Trailing whitespace is no garbage.
    let reply = app
        .send(
            Method::POST,
            "/identity/v3/projects",
            &[
                ("x-auth-token", &admin),
                ("content-type", "application/json"),
            ],
            b"{\"project\": {\"name\": \"spaced\"}} \n".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
}

#[tokio::test]
async fn flavor_ids_factors_descriptions_and_user_data_are_held_to_novas_limits() {
    on_backends!(fields_on);
}

async fn fields_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let flavor = |extra: Value| {
        let mut body = json!({"name": "f", "ram": 64, "vcpus": 1, "disk": 1});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        json!({ "flavor": body })
    };
    let long = "d".repeat(256);
    for (version, extra) in [
        ("2.1", json!({"id": "x/y"})),
        ("2.1", json!({"id": "../x"})),
        ("2.1", json!({"id": " x"})),
        ("2.1", json!({"rxtx_factor": 1e308})),
        ("2.1", json!({"rxtx_factor": 0})),
        ("2.1", json!({"rxtx_factor": "1e3"})),
        ("2.55", json!({"description": long})),
        ("2.55", json!({"description": "tab\there"})),
    ] {
        let reply = compute(
            &app,
            Method::POST,
            "/flavors",
            &admin,
            version,
            flavor(extra.clone()),
        )
        .await;
        assert_nova_fault(
            &reply,
            StatusCode::BAD_REQUEST,
            "badRequest",
            &format!("[{}] flavor {extra}", app.backend),
        );
    }
    let reply = compute(
        &app,
        Method::POST,
        "/flavors",
        &admin,
        "2.55",
        flavor(json!({"id": "ok.id_1-2", "rxtx_factor": "2.5", "description": "d".repeat(255)})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["flavor"]["rxtx_factor"], json!(2.5));
    let reply = compute(
        &app,
        Method::PUT,
        "/flavors/ok.id_1-2",
        &admin,
        "2.55",
        json!({"flavor": {"description": long}}),
    )
    .await;
    assert_nova_fault(&reply, StatusCode::BAD_REQUEST, "badRequest", "update");

    let image = app.public_image(&admin).await;
    let server = |extra: Value| {
        let mut body = json!({"name": "s", "imageRef": image, "flavorRef": "1"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        json!({ "server": body })
    };
    // At the limits: accepted (so the refusals below are the limits').
    let reply = compute(
        &app,
        Method::POST,
        "/servers",
        &admin,
        "2.19",
        server(json!({"description": "d".repeat(255), "user_data": "A".repeat(65_532), "name": "web 01"})),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::ACCEPTED,
        "[{}] {}",
        app.backend,
        reply.json
    );
    // 65,536 characters of valid base64: one over Nova's cap.
    let user_data = "A".repeat(65_536);
    for (version, extra) in [
        ("2.19", json!({"description": long})),
        ("2.1", json!({"user_data": user_data})),
        ("2.1", json!({"name": "x".repeat(256)})),
    ] {
        let reply = compute(
            &app,
            Method::POST,
            "/servers",
            &admin,
            version,
            server(extra),
        )
        .await;
        assert_nova_fault(
            &reply,
            StatusCode::BAD_REQUEST,
            "badRequest",
            &format!("[{}] server", app.backend),
        );
    }
}

#[tokio::test]
async fn malformed_microversions_are_400_and_unsupported_ones_406() {
    on_backends!(microversions_on);
}

async fn microversions_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    for (header, value, status) in [
        (
            "openstack-api-version",
            "compute 2.01",
            StatusCode::BAD_REQUEST,
        ),
        (
            "openstack-api-version",
            "compute é",
            StatusCode::BAD_REQUEST,
        ),
        ("openstack-api-version", "compute", StatusCode::BAD_REQUEST),
        (
            "x-openstack-nova-api-version",
            "2.01",
            StatusCode::BAD_REQUEST,
        ),
        ("x-openstack-nova-api-version", "2.1 ", StatusCode::OK),
        (
            "openstack-api-version",
            "compute 2.999",
            StatusCode::NOT_ACCEPTABLE,
        ),
        ("openstack-api-version", "compute latest", StatusCode::OK),
    ] {
        let reply = app
            .send(
                Method::GET,
                "/compute/v2.1/flavors",
                &[("x-auth-token", &admin), (header, value)],
                Vec::new(),
            )
            .await;
        assert_eq!(
            reply.status, status,
            "[{}] {header}: {value}: {}",
            app.backend, reply.json
        );
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_in_each_apis_shape() {
    on_backends!(oversized_on);
}

async fn oversized_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let padding = "p".repeat(novum_api::guard::MAX_REQUEST_BODY_BYTES);
    let flavor = json!({"flavor": {"name": padding, "ram": 64, "vcpus": 1, "disk": 1}});
    let reply = compute(&app, Method::POST, "/flavors", &admin, "2.1", flavor).await;
    assert_nova_fault(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "overLimit",
        "oversized flavor",
    );
    let reply = app
        .call(
            Method::POST,
            "/identity/v3/projects",
            Some(&admin),
            json!({"project": {"name": "big", "description": padding}}),
        )
        .await;
    assert_keystone_error(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    // A declared length over the limit is refused before the body is read.
    let reply = app
        .send(
            Method::POST,
            "/compute/v2.1/os-keypairs",
            &[
                ("x-auth-token", &admin),
                ("content-type", "application/json"),
                ("content-length", "200000"),
            ],
            Vec::new(),
        )
        .await;
    assert_nova_fault(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "overLimit",
        "declared length",
    );
}
