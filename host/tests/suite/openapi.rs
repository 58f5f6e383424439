//! The OpenAPI document (`/novum/v1/openapi.json`) against the real router:
//! it is served without a token, it is the document the router was built
//! with, every operation it lists is answered by the route it names (checked
//! with axum's `MatchedPath` on every documented method and path), every
//! operation documents its client errors, and no route is added to the router
//! outside the one list the document is generated from.

use std::path::Path;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use novum_api::openapi::{OPENAPI_PATH, operations};
use serde_json::Value;

use crate::api_common::{TestApp, backends};

/// The response header the test's route layer sets to the route's template.
const MATCHED_HEADER: &str = "x-test-matched-path";

/// Tags every response of a matched route with the route's path template.
async fn mark_matched(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(matched) = matched
        && let Ok(value) = HeaderValue::from_str(matched.as_str())
    {
        response.headers_mut().insert(MATCHED_HEADER, value);
    }
    response
}

/// `template` with every `{param}` replaced by a value no route treats as
/// special.
fn concrete(template: &str) -> String {
    let mut path = String::new();
    let mut in_param = false;
    for character in template.chars() {
        match character {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                path.push_str("no-such-thing");
            }
            _ if in_param => {}
            other => path.push(other),
        }
    }
    path
}

#[tokio::test]
async fn the_document_is_served_and_is_the_routers_own() {
    let backend = backends().await.remove(0);
    let app = TestApp::start(&backend).await;
    let reply = app.call(Method::GET, OPENAPI_PATH, None, Value::Null).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("x-openstack-request-id").is_some());
    let openapi = reply.json["openapi"].as_str().unwrap_or_default();
    assert!(openapi.starts_with("3.1"), "OpenAPI version {openapi}");
    let expected =
        serde_json::to_value(novum_api::openapi_document()).expect("document serializes");
    assert_eq!(reply.json, expected);
    for scheme in ["X-Auth-Token", "AgentToken"] {
        assert!(
            reply.json["components"]["securitySchemes"][scheme].is_object(),
            "no {scheme} security scheme"
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_answered_by_its_route() {
    let backend = backends().await.remove(0);
    let app = TestApp::start(&backend).await;
    let admin = app.admin_token().await;
    let router = app
        .router
        .clone()
        .route_layer(middleware::from_fn(mark_matched));
    let probe = TestApp {
        router,
        state: app.state.clone(),
        backend: app.backend,
    };
    let document = novum_api::openapi_document();
    let operations = operations(&document);
    assert!(
        operations.len() >= 100,
        "only {} operations documented",
        operations.len()
    );
    for area in [
        "/compute/v2.1/",
        "/identity/v3/",
        "/image/v2/",
        "/network/v2.0/",
        "/rpc/v1/",
        "/novum/v1/",
    ] {
        assert!(
            operations.iter().any(|(_, path)| path.starts_with(area)),
            "nothing documented under {area}"
        );
    }
    let mut ids: Vec<String> = Vec::new();
    for item in document.paths.paths.values() {
        for operation in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
            .into_iter()
            .flatten()
        {
            ids.push(operation.operation_id.clone().unwrap_or_default());
        }
    }
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "operation ids repeat: {ids:?}");
    for (method, template) in &operations {
        // `X-Subject-Token` names another token than the caller's, so that
        // `DELETE /identity/v3/auth/tokens` does not end the probe.
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let reply = probe
            .send(
                method.clone(),
                &concrete(template),
                &[
                    ("x-auth-token", admin.as_str()),
                    ("x-subject-token", "not-a-token"),
                    ("content-type", "application/json"),
                ],
                b"{}".to_vec(),
            )
            .await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template}: the router has no such method"
        );
        assert_eq!(
            reply.header(MATCHED_HEADER),
            Some(template.as_str()),
            "{method} {template}: answered by another route (or none): {} {}",
            reply.status,
            reply.json
        );
    }
}

#[tokio::test]
async fn every_authenticated_operation_documents_its_fault_body() {
    let document = serde_json::to_value(novum_api::openapi_document()).expect("serializes");
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            // An operation without its own `security` takes the document's
            // (the token); `[{}]` marks the unauthenticated ones.
            let unauthenticated = operation["security"] == serde_json::json!([{}]);
            assert!(
                unauthenticated
                    || operation["responses"]["4XX"]["content"]["application/json"]["schema"]
                        .is_object(),
                "{method} {path}: no documented fault body"
            );
        }
    }
}

/// Every `*.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_route_bypasses_the_document() {
    // The router and the document are built together from `routes!(…)`
    // lists; `.route(…)`, `.route_service(…)` and `.nest_service(…)` would
    // add a route the document does not know.
    let mut files = Vec::new();
    // The binary (host/src) and the HTTP layer (host/api/src).
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    sources(&host.join("src"), &mut files);
    sources(&host.join("api").join("src"), &mut files);
    assert!(files.len() > 20, "sources not found");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for needle in [".route(", ".route_service(", ".nest_service("] {
            assert!(
                !text.contains(needle),
                "{} calls {needle}: add the handler with `routes!` so the OpenAPI document lists it",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn malformed_paths_and_query_strings_get_the_apis_fault_body() {
    // axum's own Path/Query rejections answered these with text/plain
    // (found by schemathesis: `GET /rpc/v1/agents/0/tasks?wait=-1`).
    let backend = backends().await.remove(0);
    let app = TestApp::start(&backend).await;
    let admin = app.admin_token().await;
    let cases: [(&str, &str); 10] = [
        (
            "/compute/v2.1/flavors?is_public=a&is_public=b",
            "badRequest",
        ),
        ("/compute/v2.1/servers?name=a&name=b", "badRequest"),
        (
            "/compute/v2.1/os-keypairs?user_id=a&user_id=b",
            "badRequest",
        ),
        ("/compute/v2.1/flavors/%FF", "badRequest"),
        ("/compute/v2.1/os-quota-sets/%FF", "badRequest"),
        ("/image/v2/images/%FF", "badRequest"),
        ("/identity/v3/users/%FF", "error"),
        ("/network/v2.0/networks/%FF", "NeutronError"),
        ("/network/v2.0/networks?limit=1&limit=x", "NeutronError"),
        ("/rpc/v1/agents/host/tasks?wait=-1", "error"),
    ];
    for (path, fault_key) in cases {
        let reply = app.call(Method::GET, path, Some(&admin), Value::Null).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{path}: {}",
            String::from_utf8_lossy(&reply.bytes)
        );
        let fault = &reply.json[fault_key];
        let message = if fault.is_string() {
            fault.as_str()
        } else {
            fault["message"].as_str()
        };
        assert!(
            message.is_some_and(|message| !message.is_empty()),
            "{path}: {}",
            reply.json
        );
    }
}

#[test]
fn typed_bodies_are_the_documented_request_schemas() {
    // The bodies `novum_api::bodies` parses are what the document
    // promises: the same fields, required ones required, no others.
    let document = serde_json::to_value(novum_api::openapi_document()).expect("serializes");
    let schemas = &document["components"]["schemas"];
    for (method, path, body, inner, required) in [
        (
            "post",
            "/compute/v2.1/servers",
            "ServerCreateBody",
            "ServerCreate",
            &["name", "flavorRef"][..],
        ),
        (
            "put",
            "/compute/v2.1/servers/{id}",
            "ServerUpdateBody",
            "ServerUpdate",
            &[][..],
        ),
        (
            "post",
            "/compute/v2.1/flavors",
            "FlavorCreateBody",
            "FlavorCreate",
            &["name", "ram", "vcpus", "disk"][..],
        ),
        (
            "post",
            "/compute/v2.1/os-aggregates",
            "AggregateCreateBody",
            "AggregateCreate",
            &["name"][..],
        ),
        (
            "put",
            "/compute/v2.1/os-aggregates/{id}",
            "AggregateUpdateBody",
            "AggregateUpdate",
            &[][..],
        ),
        (
            "post",
            "/compute/v2.1/os-aggregates/{id}/action",
            "AggregateActionBody",
            "HostArgs",
            &["host"][..],
        ),
    ] {
        let schema = &document["paths"][path][method]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"];
        assert_eq!(
            schema.as_str(),
            Some(format!("#/components/schemas/{body}").as_str()),
            "{method} {path}"
        );
        let inner = &schemas[inner];
        assert_eq!(inner["additionalProperties"], Value::Bool(false), "{inner}");
        let mut documented: Vec<&str> = inner["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        documented.sort_unstable();
        let mut expected = required.to_vec();
        expected.sort_unstable();
        assert_eq!(documented, expected, "{method} {path}");
    }
}
