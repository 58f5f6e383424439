//! os-keypairs: generated and imported (ssh, x509) key pairs per
//! microversion, refusals, key pairs for other users (2.10), list and show
//! shapes, quota, delete, and key_name on server create.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_common::Reply;

use super::{Caller, Env, assert_fault, keys, on_each_backend};

const IMPORTED: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx8nkQv/zgGgB4rMYmIf+6A4l6Rr+o/6lHBQdW5aYd44bd8JttDCE/F/pNRr0lRE+PiqSPO8nDPHw0010JeMH9gYgnnFlyY3/OcJ02RhIPyyxYpv9FhY+2YiUkpwFOcLImyrxEsYXpD/0d3ac30bNH6Sw9JD9UZHYcpSxsIbECHw== Generated-by-Nova";
const IMPORTED_FINGERPRINT: &str = "1e:2c:9b:56:79:4b:45:77:f9:ca:7a:98:2c:b0:d5:3c";
const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIBPTCB8KADAgECAhM9kyfVcRr37tGkCwFEqB8teIQ6MAUGAytlcDAVMRMwEQYD
VQQDDApub3Z1bS10ZXN0MB4XDTI2MTEyMTIzMDAxMloXDTM2MTExODIzMDAxMlow
FTETMBEGA1UEAwwKbm92dW0tdGVzdDAqMAUGAytlcAMhABTw8GzhFO+3VQiazIP2
vmdwo9MPn5SvJpPb4z6nMaV2o1MwUTAdBgNVHQ4EFgQUnvNKesGIksCMdGsjgIWP
SpafX34wHwYDVR0jBBgwFoAUnvNKesGIksCMdGsjgIWPSpafX34wDwYDVR0TAQH/
BAUwAwEB/zAFBgMrZXADQQDozqAJ9hoWs3A4ueOo9Q6DQWujaaMCsGih4ALod8op
FZO3S3C6SsmueadjZm67yM1JmwioVpzn3u9OHkQkS0kB
-----END CERTIFICATE-----
";
/// `openssl x509 -noout -fingerprint -sha1` of [`CERTIFICATE`].
const CERTIFICATE_FINGERPRINT: &str = "62:62:66:ee:54:e5:1a:fe:2a:b7:8b:63:e1:71:34:ce:0f:f2:81:d8";

/// `POST os-keypairs` with `keypair` as `caller` at `version`.
async fn create(env: &Env, caller: &Caller, version: &str, keypair: Value) -> Reply {
    env.compute(
        caller,
        Method::POST,
        "os-keypairs",
        version,
        json!({ "keypair": keypair }),
    )
    .await
}

/// `{method} os-keypairs/{path}` as `caller` at `version`.
async fn at(env: &Env, caller: &Caller, method: Method, path: &str, version: &str) -> Reply {
    env.compute(
        caller,
        method,
        &format!("os-keypairs{path}"),
        version,
        Value::Null,
    )
    .await
}

/// The member's generated key pair `gen` (2.1).
async fn generated(env: &Env) -> Reply {
    create(env, &env.member, "2.1", json!({"name": "gen"})).await
}

/// The member's imported ssh key pair `imported` (2.2).
async fn imported(env: &Env) -> Reply {
    create(
        env,
        &env.member,
        "2.2",
        json!({"name": "imported", "public_key": IMPORTED}),
    )
    .await
}

/// The member's imported x509 key pair `cert` (2.2).
async fn certificate(env: &Env) -> Reply {
    create(
        env,
        &env.member,
        "2.2",
        json!({"name": "cert", "type": "x509", "public_key": CERTIFICATE}),
    )
    .await
}

/// The member's three key pairs: gen, imported and cert.
async fn three_key_pairs(env: &Env) {
    let reply = generated(env).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    for reply in [imported(env).await, certificate(env).await] {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    }
}

/// The admin's key pair `for-bob` for the other user (2.10).
async fn for_bob(env: &Env) -> Reply {
    create(
        env,
        &env.admin,
        "2.10",
        json!({"name": "for-bob", "user_id": env.other.user_id, "public_key": IMPORTED}),
    )
    .await
}

/// Generated at 2.1: 200 with the private key, no type.
#[tokio::test]
async fn a_generated_key_pair_comes_with_its_private_key() {
    on_each_backend(async |env| {
        let reply = generated(env).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let generated = reply.json["keypair"].clone();
        assert!(
            generated["private_key"]
                .as_str()
                .is_some_and(|k| k.contains("PRIVATE KEY")),
            "{generated}"
        );
        assert!(generated.get("type").is_none());
        assert_eq!(generated["user_id"], json!(env.member.user_id));
        // An x509 key pair (2.2): a private key and its self-signed
        // certificate, with the certificate's SHA-1 fingerprint.
        let reply = create(
            env,
            &env.member,
            "2.2",
            json!({"name": "made-cert", "type": "x509"}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        let made = &reply.json["keypair"];
        assert_eq!(made["type"], "x509");
        assert!(
            made["private_key"]
                .as_str()
                .is_some_and(|key| key.contains("PRIVATE KEY")),
            "{made}"
        );
        assert!(
            made["public_key"]
                .as_str()
                .is_some_and(|cert| cert.starts_with("-----BEGIN CERTIFICATE-----")),
            "{made}"
        );
        let fingerprint = made["fingerprint"].as_str().unwrap_or_default();
        assert_eq!(fingerprint.split(':').count(), 20, "{made}");
    })
    .await;
}

/// Imported at 2.2: 201 with type, Nova's fingerprint.
#[tokio::test]
async fn imported_key_pairs_have_a_type_and_novas_fingerprint() {
    on_each_backend(async |env| {
        let reply = imported(env).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        assert_eq!(reply.json["keypair"]["fingerprint"], IMPORTED_FINGERPRINT);
        assert_eq!(reply.json["keypair"]["type"], "ssh");
        assert!(reply.json["keypair"].get("private_key").is_none());
        let reply = certificate(env).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        assert_eq!(
            reply.json["keypair"]["fingerprint"],
            CERTIFICATE_FINGERPRINT
        );
    })
    .await;
}

#[tokio::test]
async fn taken_names_bad_keys_and_other_users_key_pairs_are_refused() {
    on_each_backend(async |env| {
        assert_eq!(imported(env).await.status, StatusCode::CREATED);
        for (keypair, version, status, fault) in [
            (
                json!({"name": "imported", "public_key": IMPORTED}),
                "2.2",
                StatusCode::CONFLICT,
                "conflictingRequest",
            ),
            (
                json!({"name": "bad", "public_key": "ssh-rsa bogus"}),
                "2.2",
                StatusCode::BAD_REQUEST,
                "badRequest",
            ),
            (
                json!({"name": "bad$name"}),
                "2.2",
                StatusCode::BAD_REQUEST,
                "badRequest",
            ),
            (
                json!({"name": "typed", "type": "x509"}),
                "2.1",
                StatusCode::BAD_REQUEST,
                "badRequest",
            ),
            (
                json!({"name": "nokey"}),
                "2.92",
                StatusCode::BAD_REQUEST,
                "badRequest",
            ),
            (
                json!({"name": "theirs", "user_id": env.other.user_id}),
                "2.10",
                StatusCode::FORBIDDEN,
                "forbidden",
            ),
        ] {
            let reply = create(env, &env.member, version, keypair).await;
            assert_fault(&reply, status, fault);
        }
    })
    .await;
}

/// An admin creates one for another user (2.10); members cannot list
/// another user's.
#[tokio::test]
async fn admins_create_key_pairs_for_other_users() {
    on_each_backend(async |env| {
        let reply = for_bob(env).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        assert_eq!(reply.json["keypair"]["user_id"], json!(env.other.user_id));
        let reply = at(env, &env.other, Method::GET, "/for-bob", "2.2").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let reply = at(
            env,
            &env.member,
            Method::GET,
            &format!("?user_id={}", env.other.user_id),
            "2.10",
        )
        .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    })
    .await;
}

/// List and show shapes; paging from 2.35; a user sees only their own.
#[tokio::test]
async fn key_pairs_are_listed_and_shown_to_their_user() {
    on_each_backend(async |env| {
        three_key_pairs(env).await;
        assert_eq!(for_bob(env).await.status, StatusCode::CREATED);
        let reply = at(env, &env.member, Method::GET, "", "2.2").await;
        let list = reply.json["keypairs"].as_array().expect("list").clone();
        assert_eq!(list.len(), 3);
        assert_eq!(
            keys(&list[0]["keypair"]),
            ["fingerprint", "name", "public_key", "type"]
        );
        let reply = at(env, &env.member, Method::GET, "?limit=1", "2.35").await;
        assert_eq!(reply.json["keypairs"].as_array().map(Vec::len), Some(1));
        assert!(reply.json["keypairs_links"].is_array(), "{}", reply.json);
        let reply = at(env, &env.member, Method::GET, "/imported", "2.1").await;
        assert_eq!(
            keys(&reply.json["keypair"]),
            [
                "created_at",
                "deleted",
                "deleted_at",
                "fingerprint",
                "id",
                "name",
                "public_key",
                "updated_at",
                "user_id"
            ]
        );
        let reply = at(env, &env.other, Method::GET, "/imported", "2.1").await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    })
    .await;
}

/// key_name on server create resolves the caller's key pair, not another
/// user's.
#[tokio::test]
async fn server_create_takes_the_callers_key_pair_by_name() {
    on_each_backend(async |env| {
        assert_eq!(imported(env).await.status, StatusCode::CREATED);
        assert_eq!(for_bob(env).await.status, StatusCode::CREATED);
        let image = env.image(&env.member, "keyed", json!({})).await;
        let server = env
            .boot(
                &env.member,
                json!({"name": "keyed", "imageRef": image, "flavorRef": "1", "networks": "none", "key_name": "imported"}),
                Value::Null,
            )
            .await;
        assert_eq!(server["key_name"], "imported");
        let reply = env
            .create_server(
                &env.member,
                json!({"name": "keyed", "imageRef": image, "flavorRef": "1", "networks": "none", "key_name": "for-bob"}),
                Value::Null,
            )
            .await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}

/// Key pairs are limited per user, checked in the create transaction.
#[tokio::test]
async fn key_pairs_are_limited_by_quota() {
    on_each_backend(async |env| {
        three_key_pairs(env).await;
        env.set_quota(&env.member, json!({"key_pairs": 3})).await;
        let reply = create(
            env,
            &env.member,
            "2.2",
            json!({"name": "fourth", "public_key": IMPORTED}),
        )
        .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    })
    .await;
}

/// Delete answers 202 before 2.2 and 204 from it; a deleted key pair is gone.
#[tokio::test]
async fn key_pairs_are_deleted() {
    on_each_backend(async |env| {
        three_key_pairs(env).await;
        let reply = at(env, &env.member, Method::DELETE, "/gen", "2.1").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        let reply = at(env, &env.member, Method::DELETE, "/cert", "2.2").await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        let reply = at(env, &env.member, Method::DELETE, "/cert", "2.2").await;
        assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
        let message = reply.json["itemNotFound"]["message"].as_str();
        assert!(
            message.is_some_and(|text| text.starts_with("Keypair cert not found for user ")),
            "{}",
            reply.json
        );
    })
    .await;
}
