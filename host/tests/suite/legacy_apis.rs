//! The deprecated routes clients still call, answered as Nova answers
//! them: `os-hosts` (to 2.42), the image proxy `/images` with its metadata
//! (to 2.35), `/extensions`, and `os-volumes_boot` (the `/servers` alias, to
//! 2.102); each 404 after its last microversion.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::compute::{IMAGE, cloud_with};

#[tokio::test]
async fn os_hosts_lists_hosts_and_their_resources() {
    let cloud = cloud_with(|_| {}).await;
    let token = cloud.register("h1", 8, 16384).await;
    cloud.register("h2", 4, 8192).await;
    let (status, body) = cloud
        .call(
            Some("admin"),
            "POST",
            "/compute/v2.1/servers",
            Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "2", "networks": "none", "availability_zone": "nova:h1"}})),
            Some("2.96"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("h1", &token, &id).await;

    let (status, body) = cloud
        .compute_at("admin", "GET", "/os-hosts", None, "2.42")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hosts = body["hosts"].as_array().expect("hosts");
    assert!(hosts.contains(&json!({"host_name": "h1", "service": "compute", "zone": "nova"})));
    let (_, body) = cloud
        .compute_at("admin", "GET", "/os-hosts?zone=elsewhere", None, "2.1")
        .await;
    assert_eq!(body, json!({"hosts": []}));

    let (status, body) = cloud
        .compute_at("admin", "GET", "/os-hosts/h1", None, "2.1")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows: Vec<&Value> = body["host"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| &row["resource"])
        .collect();
    assert_eq!(rows[0]["project"], "(total)");
    assert_eq!(rows[0]["cpu"], 8);
    assert_eq!(rows[1]["project"], "(used_now)");
    assert_eq!(rows[2]["project"], "(used_max)");
    assert_eq!(rows[2]["memory_mb"], 2048);
    assert_eq!(rows[3]["project"], "p-admin");
    assert_eq!(rows[3]["disk_gb"], 20);

    for (who, method, path, body, wanted) in [
        (
            "admin",
            "GET",
            "/os-hosts/nope",
            None,
            StatusCode::NOT_FOUND,
        ),
        ("member", "GET", "/os-hosts", None, StatusCode::FORBIDDEN),
        (
            "admin",
            "PUT",
            "/os-hosts/h1",
            Some(json!({"status": "disable"})),
            StatusCode::NOT_IMPLEMENTED,
        ),
        (
            "admin",
            "PUT",
            "/os-hosts/h1",
            Some(json!({"maintenance_mode": "ENABLE"})),
            StatusCode::NOT_IMPLEMENTED,
        ),
        (
            "admin",
            "PUT",
            "/os-hosts/nope",
            Some(json!({"status": "enable"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "admin",
            "PUT",
            "/os-hosts/h1",
            Some(json!({"status": "bogus"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "admin",
            "PUT",
            "/os-hosts/h1",
            Some(json!({"status": "enable", "x": 1})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "admin",
            "PUT",
            "/os-hosts/h1",
            Some(json!({})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "admin",
            "GET",
            "/os-hosts/h1/reboot",
            None,
            StatusCode::NOT_IMPLEMENTED,
        ),
        (
            "admin",
            "GET",
            "/os-hosts/nope/startup",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "member",
            "GET",
            "/os-hosts/h1/shutdown",
            None,
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (status, answer) = cloud.compute_at(who, method, path, body, "2.1").await;
        assert_eq!(status, wanted, "{who} {method} {path}: {answer}");
    }
    let (status, _) = cloud
        .compute_at("admin", "GET", "/os-hosts", None, "2.43")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_image_proxy_shows_images_the_nova_way() {
    let cloud = cloud_with(|_| {}).await;
    let (status, body) = cloud
        .compute_at("member", "GET", "/images/detail", None, "2.35")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let image = body["images"]
        .as_array()
        .and_then(|images| images.iter().find(|image| image["id"] == IMAGE))
        .expect("the test image");
    assert_eq!(image["status"], "ACTIVE");
    assert_eq!(image["progress"], 100);
    assert_eq!(image["minRam"], 0);
    assert_eq!(image["OS-EXT-IMG-SIZE:size"], 1024);
    assert_eq!(image["links"].as_array().map(Vec::len), Some(3));

    let (_, body) = cloud
        .compute_at("member", "GET", "/images?name=cirros", None, "2.1")
        .await;
    assert_eq!(body["images"][0]["id"], IMAGE);
    assert!(body["images"][0].get("status").is_none());
    let (_, body) = cloud
        .compute_at("member", "GET", "/images?name=nothing", None, "2.1")
        .await;
    assert_eq!(body, json!({"images": []}));
    let (_, body) = cloud
        .compute_at("member", "GET", "/images/detail?minDisk=5", None, "2.1")
        .await;
    assert_eq!(body, json!({"images": []}));

    // Metadata: set, merge, show one, replace, delete; only the owner (admin) may change it.
    let metadata = format!("/images/{IMAGE}/metadata");
    let (status, body) = cloud
        .compute_at(
            "admin",
            "POST",
            &metadata,
            Some(json!({"metadata": {"os_distro": "debian"}})),
            "2.1",
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"metadata": {"os_distro": "debian"}}))
    );
    let (_, body) = cloud
        .compute_at(
            "admin",
            "POST",
            &metadata,
            Some(json!({"metadata": {"a": "1"}})),
            "2.1",
        )
        .await;
    assert_eq!(body, json!({"metadata": {"a": "1", "os_distro": "debian"}}));
    let (status, body) = cloud
        .compute_at("member", "GET", &format!("{metadata}/a"), None, "2.1")
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"meta": {"a": "1"}}))
    );
    let (status, _) = cloud
        .compute_at(
            "member",
            "POST",
            &metadata,
            Some(json!({"metadata": {"b": "2"}})),
            "2.1",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cloud
        .compute_at(
            "admin",
            "PUT",
            &format!("{metadata}/a"),
            Some(json!({"meta": {"b": "2"}})),
            "2.1",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = cloud
        .compute_at(
            "admin",
            "PUT",
            &format!("{metadata}/a"),
            Some(json!({"meta": {"a": "9"}})),
            "2.1",
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"meta": {"a": "9"}}))
    );
    let (_, body) = cloud
        .compute_at(
            "admin",
            "PUT",
            &metadata,
            Some(json!({"metadata": {"c": "3"}})),
            "2.1",
        )
        .await;
    assert_eq!(body, json!({"metadata": {"c": "3"}}));
    let (status, _) = cloud
        .compute_at("admin", "DELETE", &format!("{metadata}/c"), None, "2.1")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = cloud
        .compute_at("admin", "DELETE", &format!("{metadata}/c"), None, "2.1")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = cloud
        .compute_at("member", "GET", "/images/nope", None, "2.1")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["itemNotFound"]["message"], "Image not found.");
    let (status, _) = cloud
        .compute_at("member", "DELETE", &format!("/images/{IMAGE}"), None, "2.1")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cloud
        .compute_at("member", "GET", "/images", None, "2.36")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = cloud
        .compute_at("admin", "DELETE", &format!("/images/{IMAGE}"), None, "2.1")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = cloud
        .compute_at("member", "GET", &format!("/images/{IMAGE}"), None, "2.1")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn extensions_are_listed_as_nova_lists_them() {
    let cloud = cloud_with(|_| {}).await;
    let (status, body) = cloud
        .compute_at("member", "GET", "/extensions", None, "2.1")
        .await;
    assert_eq!(status, StatusCode::OK);
    let extensions = body["extensions"].as_array().expect("list");
    assert_eq!(extensions.len(), 99);
    assert!(
        extensions
            .iter()
            .any(|extension| extension["name"] == "Hosts")
    );
    let (status, body) = cloud
        .compute_at("member", "GET", "/extensions/os-consoles", None, "2.1")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["extension"]["alias"], "os-consoles");
    let (status, _) = cloud
        .compute_at("member", "GET", "/extensions/nope", None, "2.1")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn os_volumes_boot_is_the_servers_alias_until_2_102() {
    let cloud = cloud_with(|_| {}).await;
    let token = cloud.register("h1", 8, 16384).await;
    let body =
        json!({"server": {"name": "vb", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}});
    let (status, created) = cloud
        .compute_at(
            "member",
            "POST",
            "/os-volumes_boot",
            Some(body.clone()),
            "2.102",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("h1", &token, &id).await;

    let (status, shown) = cloud
        .compute_at(
            "member",
            "GET",
            &format!("/os-volumes_boot/{id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["server"]["status"], "ACTIVE");
    for path in ["/os-volumes_boot", "/os-volumes_boot/detail"] {
        let (status, listed) = cloud.compute_at("member", "GET", path, None, "2.1").await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        let ids: Vec<&Value> = listed["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .map(|server| &server["id"])
            .collect();
        assert_eq!(ids, [&json!(id)], "{path}");
    }
    let (status, updated) = cloud
        .compute_at(
            "member",
            "PUT",
            &format!("/os-volumes_boot/{id}"),
            Some(json!({"server": {"name": "renamed"}})),
            "2.1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["server"]["name"], "renamed");
    let (status, fault) = cloud
        .compute_at(
            "member",
            "POST",
            &format!("/os-volumes_boot/{id}/action"),
            Some(json!({"explode": null})),
            "2.1",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{fault}");

    // Gone from 2.103, every route of it.
    for (method, path) in [
        ("GET", "/os-volumes_boot".to_string()),
        ("GET", "/os-volumes_boot/detail".to_string()),
        ("GET", format!("/os-volumes_boot/{id}")),
        ("DELETE", format!("/os-volumes_boot/{id}")),
    ] {
        let (status, fault) = cloud
            .compute_at("member", method, &path, None, "2.103")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {fault}");
    }
    let (status, fault) = cloud
        .compute_at("member", "POST", "/os-volumes_boot", Some(body), "2.103")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{fault}");
    // The server is still there, and goes as any other.
    cloud.delete_done("h1", &token, &id).await;
}
