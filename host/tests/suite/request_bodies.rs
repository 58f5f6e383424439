//! The typed request bodies (`novum_api::bodies`) through the real router:
//! each refusal of a server create or update, a flavor create and the
//! aggregate bodies and actions, with Nova's message: unknown fields, fields
//! this microversion does not have, missing required fields, wrong types,
//! and each field type's own rules. Bodies are refused before anything is
//! looked up, so the paths need not name anything that exists.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_common::{TestApp, backends};
use crate::input_validation::{assert_nova_fault, compute};

/// A refusal to check: method, path, microversion, body, expected message.
type Case = (Method, &'static str, &'static str, Value, &'static str);

/// Sends every case as the admin and checks the 400 and its message.
async fn check(cases: Vec<Case>) {
    let backend = backends().await.remove(0);
    let app = TestApp::start(&backend).await;
    let admin = app.admin_token().await;
    for (method, path, version, body, expected) in cases {
        let what = format!("{method} {path} {version} {body}");
        let reply = compute(&app, method, path, &admin, version, body).await;
        assert_nova_fault(&reply, StatusCode::BAD_REQUEST, "badRequest", &what);
        assert_eq!(
            reply.json["badRequest"]["message"], expected,
            "{what}: {}",
            reply.json
        );
    }
}

/// A valid create's `server`, with `extra` merged in.
fn server(extra: Value) -> Value {
    let mut server = json!({"name": "s", "imageRef": "img", "flavorRef": "1"});
    if let (Some(server), Some(extra)) = (server.as_object_mut(), extra.as_object()) {
        server.extend(extra.clone());
    }
    server
}

#[tokio::test]
async fn server_create_bodies_are_refused_with_novas_messages() {
    let post = |version: &'static str, body: Value, expected: &'static str| -> Case {
        (Method::POST, "/servers", version, body, expected)
    };
    check(vec![
        post(
            "2.1",
            json!({"server": server(json!({"bogus": 1}))}),
            "Additional properties are not allowed ('bogus' was unexpected)",
        ),
        post(
            "2.1",
            json!({"server": server(json!({})), "extra": {}}),
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
        post("2.1", json!({}), "'server' is a required property"),
        post(
            "2.1",
            json!({"server": 5}),
            "Invalid input for field/attribute server. Value: 5. 5 is not of type 'object'",
        ),
        post(
            "2.1",
            json!({"server": {"imageRef": "img", "flavorRef": "1"}}),
            "'name' is a required property",
        ),
        post(
            "2.1",
            json!({"server": {"name": "s", "imageRef": "img"}}),
            "'flavorRef' is a required property",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"name": 5}))}),
            "Invalid input for field/attribute name. Value: 5. 5 is not of type 'string'",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"key_name": ["k"]}))}),
            "Invalid input for field/attribute key_name. Value: [\"k\"]. [\"k\"] is not of type 'string'",
        ),
        post(
            "2.18",
            json!({"server": server(json!({"description": "d"}))}),
            "Additional properties are not allowed ('description' was unexpected)",
        ),
        post(
            "2.51",
            json!({"server": server(json!({"networks": "none", "tags": ["t"]}))}),
            "Additional properties are not allowed ('tags' was unexpected)",
        ),
        post(
            "2.73",
            json!({"server": server(json!({"networks": "none", "host": "h"}))}),
            "Additional properties are not allowed ('host' was unexpected)",
        ),
        post(
            "2.89",
            json!({"server": server(json!({"networks": "none", "hostname": "h"}))}),
            "Additional properties are not allowed ('hostname' was unexpected)",
        ),
        post(
            "2.57",
            json!({"server": server(json!({"networks": "none", "personality": []}))}),
            "Additional properties are not allowed ('personality' was unexpected)",
        ),
        post(
            "2.56",
            json!({"server": server(json!({"networks": "none", "personality": [{"path": "/a"}]}))}),
            "Invalid input for field/attribute personality: each file needs a 'path' and 'contents' string.",
        ),
        post(
            "2.56",
            json!({"server": server(json!({"networks": "none", "personality": [{"path": "/a", "contents": "!"}]}))}),
            "Personality content for /a cannot be decoded",
        ),
        post(
            "2.37",
            json!({"server": server(json!({}))}),
            "'networks' is a required property",
        ),
        post(
            "2.36",
            json!({"server": server(json!({"networks": "auto"}))}),
            "Invalid input for field/attribute networks. Value: auto.",
        ),
        post(
            "2.37",
            json!({"server": server(json!({"networks": 5}))}),
            "Invalid input for field/attribute networks. Value: 5.",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"min_count": 0}))}),
            "Invalid input for field/attribute min_count. Value: 0. It must be an integer between 1 and 2147483647.",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"min_count": 3, "max_count": "2"}))}),
            "min_count must be <= max_count",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"metadata": 5}))}),
            "Invalid input for field/attribute metadata. Value: 5. It is not of type 'object'",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"metadata": {"k": 1}}))}),
            "Invalid input for field/attribute metadata. Value: 1.",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"accessIPv4": "1.2.3"}))}),
            "Invalid input for field/attribute accessIPv4. Value: \"1.2.3\". \"1.2.3\" is not a 'ipv4'",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"user_data": "!not base64!"}))}),
            "User data needs to be valid base 64.",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"block_device_mapping_v2": {}}))}),
            "Invalid input for field/attribute block_device_mapping_v2.",
        ),
        post(
            "2.1",
            json!({"server": server(json!({"return_reservation_id": "maybe"}))}),
            "Invalid input for field/attribute return_reservation_id.",
        ),
        post(
            "2.1",
            json!({"server": server(json!({})), "os:scheduler_hints": 5}),
            "Invalid input for field/attribute os:scheduler_hints. Value: 5. 5 is not of type 'object'",
        ),
    ])
    .await;
}

#[tokio::test]
async fn server_update_bodies_are_refused_with_novas_messages() {
    let put = |version: &'static str, body: Value, expected: &'static str| -> Case {
        (
            Method::PUT,
            "/servers/no-such-server",
            version,
            body,
            expected,
        )
    };
    check(vec![
        put(
            "2.1",
            json!({"server": {"flavorRef": "1"}}),
            "Additional properties are not allowed ('flavorRef' was unexpected)",
        ),
        put(
            "2.18",
            json!({"server": {"description": "d"}}),
            "Additional properties are not allowed ('description' was unexpected)",
        ),
        put(
            "2.1",
            json!({"server": {"name": null}}),
            "Invalid input for field/attribute name. Value: null. null is not of type 'string'",
        ),
        put(
            "2.1",
            json!({"server": {"accessIPv6": "::g"}}),
            "Invalid input for field/attribute accessIPv6. Value: \"::g\". \"::g\" is not a 'ipv6'",
        ),
    ])
    .await;
}

/// A valid create's `flavor`, with `extra` merged in.
fn flavor(extra: Value) -> Value {
    let mut flavor = json!({"name": "f", "ram": 64, "vcpus": 1, "disk": 1});
    if let (Some(flavor), Some(extra)) = (flavor.as_object_mut(), extra.as_object()) {
        flavor.extend(extra.clone());
    }
    json!({ "flavor": flavor })
}

#[tokio::test]
async fn flavor_create_bodies_are_refused_with_novas_messages() {
    let post = |version: &'static str, body: Value, expected: &'static str| -> Case {
        (Method::POST, "/flavors", version, body, expected)
    };
    check(vec![
        post(
            "2.1",
            flavor(json!({"bogus": 1})),
            "Additional properties are not allowed ('bogus' was unexpected)",
        ),
        post(
            "2.54",
            flavor(json!({"description": "d"})),
            "Additional properties are not allowed ('description' was unexpected)",
        ),
        post(
            "2.1",
            json!({"flavor": {"name": "f", "vcpus": 1, "disk": 1}}),
            "'ram' is a required property",
        ),
        post(
            "2.1",
            flavor(json!({"name": ["f"]})),
            "Invalid input for field/attribute name. Value: [\"f\"]. [\"f\"] is not of type 'string'",
        ),
        post(
            "2.1",
            flavor(json!({"vcpus": 0})),
            "Invalid input for field/attribute vcpus. Value: 0. It must be an integer between 1 and 2147483647.",
        ),
        post(
            "2.1",
            flavor(json!({"swap": -1})),
            "Invalid input for field/attribute swap. Value: -1. It must be an integer between 0 and 2147483647.",
        ),
        post(
            "2.1",
            flavor(json!({"os-flavor-access:is_public": "maybe"})),
            "Invalid input for field/attribute os-flavor-access:is_public.",
        ),
        post(
            "2.1",
            json!({"flavor": []}),
            "Invalid input for field/attribute flavor. Value: []. [] is not of type 'object'",
        ),
    ])
    .await;
}

#[tokio::test]
async fn aggregate_bodies_and_actions_are_refused_with_novas_messages() {
    let action = |body: Value, expected: &'static str| -> Case {
        (
            Method::POST,
            "/os-aggregates/1/action",
            "2.1",
            body,
            expected,
        )
    };
    check(vec![
        (
            Method::POST,
            "/os-aggregates",
            "2.1",
            json!({"aggregate": {"name": "a"}, "extra": 1}),
            "Invalid input: the body must be {\"aggregate\": {...}}",
        ),
        (
            Method::POST,
            "/os-aggregates",
            "2.1",
            json!({"aggregate": {}}),
            "'name' is a required property",
        ),
        (
            Method::POST,
            "/os-aggregates",
            "2.1",
            json!({"aggregate": {"name": 1}}),
            "Invalid input for field/attribute name. Value: 1. 1 is not of type 'string'",
        ),
        (
            Method::PUT,
            "/os-aggregates/1",
            "2.1",
            json!({"aggregate": {}}),
            "Invalid input: name or availability_zone must be given.",
        ),
        (
            Method::PUT,
            "/os-aggregates/1",
            "2.1",
            json!({"aggregate": {"uuid": "u"}}),
            "Additional properties are not allowed ('uuid' was unexpected)",
        ),
        action(
            json!({"add_host": {"host": "a"}, "remove_host": {"host": "a"}}),
            "The request body must name exactly one action.",
        ),
        action(json!({"explode": {}}), "There is no such action: explode"),
        action(json!({"add_host": {}}), "'host' is a required property"),
        action(
            json!({"remove_host": {"host": "a", "force": true}}),
            "Additional properties are not allowed ('force' was unexpected)",
        ),
        action(
            json!({"add_host": {"host": 7}}),
            "Invalid input for field/attribute host. Value: 7. 7 is not of type 'string'",
        ),
        action(
            json!({"set_metadata": {"metadata": 5}}),
            "'metadata' is a required property",
        ),
        action(
            json!({"set_metadata": {"metadata": {"k": 1}}}),
            "Invalid input for field/attribute metadata. Value: 1.",
        ),
        action(
            json!({"set_metadata": {"metadata": {"availability_zone": "a:b"}}}),
            "Invalid input for field/attribute availability_zone. Value: a:b.",
        ),
    ])
    .await;
}
