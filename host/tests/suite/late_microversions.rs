//! Response and request shapes of the microversions after 2.70 that
//! change what existing routes answer: `server_groups` (2.71, single
//! server views only), image properties under `image` (2.98), scheduler
//! hints (2.100), flavors without `rxtx_factor` and with a `name` filter
//! (2.102), pinning and unpinning the availability zone (2.104), and what
//! an update answers before 2.75.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::compute::{IMAGE, cloud_with};

#[tokio::test]
async fn servers_show_groups_image_properties_hints_and_pins_by_microversion() {
    let cloud = cloud_with(|_| {}).await;
    let token = cloud.register("h1", 8, 16384).await;
    let (status, group) = cloud
        .compute_at(
            "member",
            "POST",
            "/os-server-groups",
            Some(json!({"server_group": {"name": "g", "policies": ["anti-affinity"]}})),
            "2.1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{group}");
    let group_id = group["server_group"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, body) = cloud
        .compute_at(
            "member",
            "POST",
            "/servers",
            Some(json!({
                "server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"},
                "os:scheduler_hints": {"group": group_id},
            })),
            "2.96",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("h1", &token, &id).await;
    let path = format!("/servers/{id}");

    let (_, body) = cloud.compute_at("member", "GET", &path, None, "2.70").await;
    assert!(body["server"].get("server_groups").is_none());
    let (_, body) = cloud.compute_at("member", "GET", &path, None, "2.71").await;
    assert_eq!(body["server"]["server_groups"], json!([group_id]));
    assert!(body["server"]["image"].get("properties").is_none());
    let (_, body) = cloud
        .compute_at("member", "GET", "/servers/detail", None, "2.71")
        .await;
    assert!(body["servers"][0].get("server_groups").is_none());
    let (_, body) = cloud.compute_at("member", "GET", &path, None, "2.98").await;
    assert_eq!(body["server"]["image"]["properties"], json!({}));
    assert!(body["server"].get("scheduler_hints").is_none());
    let (_, body) = cloud
        .compute_at("member", "GET", &path, None, "2.100")
        .await;
    assert_eq!(
        body["server"]["scheduler_hints"],
        json!({"group": [group_id]})
    );

    // 2.104: pin to the zone it is in, unpin, refuse another zone.
    let pin = |zone: Value| json!({"server": {"pinned_availability_zone": zone}});
    let (status, _) = cloud
        .compute_at("member", "PUT", &path, Some(pin(json!("nova"))), "2.103")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = cloud
        .compute_at("member", "PUT", &path, Some(pin(json!("nova"))), "2.104")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["server"]["pinned_availability_zone"], "nova");
    assert_eq!(body["server"]["server_groups"], json!([group_id]));
    let (status, body) = cloud
        .compute_at("member", "PUT", &path, Some(pin(json!("nova"))), "2.104")
        .await;
    assert_eq!(status, StatusCode::OK, "idempotent: {body}");
    let (status, body) = cloud
        .compute_at(
            "member",
            "PUT",
            &path,
            Some(pin(json!("elsewhere"))),
            "2.104",
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = cloud
        .compute_at("member", "PUT", &path, Some(pin(Value::Null)), "2.104")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["server"]["pinned_availability_zone"], Value::Null);
    let (status, body) = cloud
        .compute_at(
            "member",
            "PUT",
            &path,
            Some(pin(json!("elsewhere"))),
            "2.104",
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Before 2.75 an update leaves out what only a show has.
    let (status, body) = cloud
        .compute_at(
            "member",
            "PUT",
            &path,
            Some(json!({"server": {"name": "t"}})),
            "2.1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for absent in [
        "config_drive",
        "key_name",
        "OS-EXT-STS:vm_state",
        "OS-EXT-AZ:availability_zone",
    ] {
        assert!(body["server"].get(absent).is_none(), "{absent} in {body}");
    }
    assert_eq!(body["server"]["name"], "t");
}

#[tokio::test]
async fn flavors_lose_rxtx_factor_and_gain_a_name_filter_at_2_102() {
    let cloud = cloud_with(|_| {}).await;
    let (_, body) = cloud
        .compute_at("member", "GET", "/flavors/1", None, "2.101")
        .await;
    assert!(body["flavor"].get("rxtx_factor").is_some());
    assert!(body["flavor"].get("OS-FLV-DISABLED:disabled").is_some());
    let (_, body) = cloud
        .compute_at("member", "GET", "/flavors/1", None, "2.102")
        .await;
    assert!(body["flavor"].get("rxtx_factor").is_none(), "{body}");
    assert!(body["flavor"].get("OS-FLV-DISABLED:disabled").is_none());
    let (status, body) = cloud
        .compute_at("member", "GET", "/flavors?name=m1.small", None, "2.102")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["flavors"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|flavor| flavor["name"].as_str())
        .collect();
    assert_eq!(names, ["m1.small"]);
    let (status, _) = cloud
        .compute_at("member", "GET", "/flavors?name=m1.small", None, "2.101")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown before 2.102");
    let (status, _) = cloud
        .compute_at("member", "GET", "/flavors?bogus=1", None, "2.74")
        .await;
    assert_eq!(status, StatusCode::OK);
    let flavor = |rxtx: bool| {
        let mut flavor = json!({"name": "f", "ram": 64, "vcpus": 1, "disk": 0});
        if rxtx {
            flavor["rxtx_factor"] = json!(2.0);
        }
        json!({"flavor": flavor})
    };
    let (status, _) = cloud
        .compute_at("admin", "POST", "/flavors", Some(flavor(true)), "2.102")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = cloud
        .compute_at("admin", "POST", "/flavors", Some(flavor(false)), "2.102")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = cloud.call(None, "GET", "/compute/v2.1/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"]["version"], "2.104");
}
