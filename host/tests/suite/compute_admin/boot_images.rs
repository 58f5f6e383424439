//! Server create's image handling: which images a caller may boot, and the
//! image properties and block device mappings the scheduler sees.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{assert_fault, on_each_backend};

/// Unknown and other projects' private images are a 400 at create.
#[tokio::test]
async fn unknown_and_other_projects_private_images_are_refused() {
    on_each_backend(async |env| {
        let reply = env
            .create_server(
                &env.member,
                json!({"name": "x", "imageRef": uuid::Uuid::new_v4().to_string(), "flavorRef": "1", "networks": "none"}),
                Value::Null,
            )
            .await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
        let private = env.image(&env.other, "bobs", json!({})).await;
        let reply = env
            .create_server(
                &env.member,
                json!({"name": "x", "imageRef": private, "flavorRef": "1", "networks": "none"}),
                Value::Null,
            )
            .await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}

#[tokio::test]
async fn an_image_needing_more_ram_than_the_flavor_is_refused() {
    on_each_backend(async |env| {
        let big = env
            .image(&env.member, "big", json!({"min_ram": 4096}))
            .await;
        let reply = env
            .create_server(
                &env.member,
                json!({"name": "x", "imageRef": big, "flavorRef": "1", "networks": "none"}),
                Value::Null,
            )
            .await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}

/// Image properties reach the scheduler: no host runs ppc64 guests.
#[tokio::test]
async fn an_image_no_host_supports_fails_in_the_scheduler() {
    on_each_backend(async |env| {
        let ppc = env
            .image(&env.member, "ppc", json!({"hw_architecture": "ppc64"}))
            .await;
        let server = env
            .boot(
                &env.member,
                json!({"name": "ppc", "imageRef": ppc, "flavorRef": "1", "networks": "none"}),
                Value::Null,
            )
            .await;
        assert_eq!(server["status"], "ERROR", "{server}");
        assert!(
            server["fault"]["details"]
                .as_str()
                .is_some_and(|details| details.contains("image-properties")),
            "{server}"
        );
    })
    .await;
}

/// An x86_64 image boots, here from a block device mapping of the image.
#[tokio::test]
async fn servers_boot_from_an_image_block_device_mapping() {
    on_each_backend(async |env| {
        let x86 = env
            .image(&env.member, "x86", json!({"hw_architecture": "x86_64"}))
            .await;
        let server = env
            .boot(
                &env.member,
                json!({"name": "bdm", "flavorRef": "1", "networks": "none", "block_device_mapping_v2": [
                    {"source_type": "image", "destination_type": "local", "boot_index": 0, "uuid": x86}
                ]}),
                Value::Null,
            )
            .await;
        assert!(server["OS-EXT-SRV-ATTR:host"].is_string(), "{server}");
        assert_eq!(server["image"]["id"], json!(x86));
    })
    .await;
}
