//! os-availability-zone and server create's availability_zone: the zones
//! aggregates give their hosts, as callers and the scheduler see them.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::aggregates::alpha_in_zone_a;
use super::{assert_fault, on_each_backend};

#[tokio::test]
async fn zones_are_the_default_one_and_each_aggregate_zone_with_hosts() {
    on_each_backend(async |env| {
        alpha_in_zone_a(env).await;
        let reply = env
            .compute(
                &env.member,
                Method::GET,
                "os-availability-zone",
                "2.1",
                Value::Null,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let names: Vec<&str> = reply.json["availabilityZoneInfo"]
            .as_array()
            .map(|zones| {
                zones
                    .iter()
                    .filter_map(|z| z["zoneName"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(names, ["nova", "zone-a"]);
        assert_eq!(reply.json["availabilityZoneInfo"][1]["hosts"], Value::Null);
    })
    .await;
}

#[tokio::test]
async fn zone_detail_is_admin_only_and_lists_each_hosts_services() {
    on_each_backend(async |env| {
        alpha_in_zone_a(env).await;
        let reply = env
            .compute(
                &env.member,
                Method::GET,
                "os-availability-zone/detail",
                "2.1",
                Value::Null,
            )
            .await;
        assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
        let reply = env
            .compute(
                &env.admin,
                Method::GET,
                "os-availability-zone/detail",
                "2.1",
                Value::Null,
            )
            .await;
        let zone_a = &reply.json["availabilityZoneInfo"][1];
        assert_eq!(zone_a["zoneName"], "zone-a");
        assert_eq!(zone_a["hosts"]["alpha"]["nova-compute"]["available"], true);
        assert_eq!(zone_a["hosts"]["alpha"]["nova-compute"]["active"], true);
    })
    .await;
}

/// The scheduler sees the zone: a server asking for zone-a lands on alpha,
/// one asking for an unknown zone is refused.
#[tokio::test]
async fn servers_land_in_the_zone_they_ask_for() {
    on_each_backend(async |env| {
        alpha_in_zone_a(env).await;
        let image = env.image(&env.member, "zoned", json!({})).await;
        let server = env
            .boot(
                &env.member,
                json!({"name": "in-a", "imageRef": image, "flavorRef": "1", "networks": "none", "availability_zone": "zone-a"}),
                Value::Null,
            )
            .await;
        assert_eq!(server["OS-EXT-SRV-ATTR:host"], "alpha", "{server}");
        assert_eq!(server["OS-EXT-AZ:availability_zone"], "zone-a", "{server}");
        let reply = env
            .create_server(
                &env.member,
                json!({"name": "nowhere", "imageRef": image, "flavorRef": "1", "networks": "none", "availability_zone": "zone-q"}),
                Value::Null,
            )
            .await;
        assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    })
    .await;
}
