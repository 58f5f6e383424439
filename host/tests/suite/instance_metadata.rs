//! The instance metadata generator (`novum_compute::instance_metadata`),
//! the config drive a spawn task carries, and the metadata API under
//! `/metadata` (the instance named by the proxy's signed headers), on
//! SQLite and PostgreSQL.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use novum_compute::instance_metadata::{config_drive_column, config_drive_required};
use novum_wire::{SpawnSpec, TaskAction, metadata_signature};
use serde_json::{Value, json};

use crate::api_common::backends;
use crate::compute::{Cloud, IMAGE, cloud_on};
use crate::server_ports::network;

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIhHhJ0WkkzJ3Kz2GGgK0Q6j6gM4OZmGqf3G5i2tW9xP md@novum";
const USER_DATA: &str = "#!/bin/sh\necho hello from user data\n";

/// The files of a spawn spec's config drive, decoded.
fn drive_files(spec: &SpawnSpec) -> BTreeMap<String, Vec<u8>> {
    spec.config_drive
        .as_ref()
        .expect("a config drive")
        .iter()
        .map(|file| {
            (
                file.path.clone(),
                BASE64.decode(&file.content_base64).expect("base64"),
            )
        })
        .collect()
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("json")
}

/// Creates a server of member (project p-one) on `net`; its id.
async fn create(cloud: &Cloud, name: &str, net: &str, config_drive: bool) -> String {
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            "/compute/v2.1/servers",
            Some(json!({"server": {
                "name": name, "imageRef": IMAGE, "flavorRef": "1",
                "networks": [{"uuid": net, "fixed_ip": "192.168.40.9"}],
                "key_name": "md-key", "config_drive": config_drive,
                "user_data": BASE64.encode(USER_DATA),
                "metadata": {"role": "web"},
            }})),
            Some("2.96"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["server"]["id"].as_str().expect("id").to_string()
}

/// The metadata service's answer to `path` for `instance` of `tenant`,
/// signed with `signature` (None: the right one).
async fn metadata(
    cloud: &Cloud,
    method: &str,
    path: &str,
    instance: &str,
    tenant: &str,
    signature: Option<&str>,
    body: &[u8],
) -> (StatusCode, String, Vec<u8>) {
    let right = metadata_signature(&cloud.state.metadata_secret, instance);
    let signature = signature.unwrap_or(&right);
    let mut headers = vec![("x-instance-id", instance), ("x-tenant-id", tenant)];
    if !signature.is_empty() {
        headers.push(("x-instance-id-signature", signature));
    }
    cloud
        .raw(method, &format!("/metadata{path}"), &headers, body.to_vec())
        .await
}

async fn get_text(cloud: &Cloud, path: &str, instance: &str) -> String {
    let (status, content_type, body) =
        metadata(cloud, "GET", path, instance, "p-one", None, b"").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{path}: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        content_type.starts_with("text/plain"),
        "{path}: {content_type}"
    );
    String::from_utf8(body).expect("utf-8")
}

async fn get_json(cloud: &Cloud, path: &str, instance: &str) -> Value {
    let (status, content_type, body) =
        metadata(cloud, "GET", path, instance, "p-one", None, b"").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{path}: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(content_type, "application/json", "{path}");
    json_of(&body)
}

#[tokio::test]
async fn config_drive_and_metadata_service_on_every_backend() {
    for backend in backends().await {
        config_drive_and_metadata_service(&backend).await;
    }
}

async fn config_drive_and_metadata_service(backend: &crate::api_common::Backend) {
    let cloud = cloud_on(backend).await;
    let token = cloud.register("h1", 16, 32768).await;
    let net = network(&cloud, "mdnet", "192.168.40.0/24").await;
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            "/compute/v2.1/os-keypairs",
            Some(json!({"keypair": {"name": "md-key", "public_key": PUBLIC_KEY}})),
            Some("2.96"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A server with a config drive: the spawn task carries its files.
    let id = create(&cloud, "md-web", &net, true).await;
    let tasks = cloud.next_tasks("h1", &token).await;
    let TaskAction::Spawn(spec) = &tasks.tasks[0].action else {
        panic!("a spawn task: {:?}", tasks.tasks[0].action);
    };
    assert_eq!(spec.project_id.as_deref(), Some("p-one"));
    let files = drive_files(spec);
    let meta = json_of(&files["openstack/latest/meta_data.json"]);
    assert_eq!(meta["uuid"], id.as_str());
    assert_eq!(meta["name"], "md-web");
    assert_eq!(meta["hostname"], "md-web");
    assert_eq!(meta["project_id"], "p-one");
    assert_eq!(meta["availability_zone"], "nova");
    assert_eq!(meta["launch_index"], 0);
    assert_eq!(meta["meta"], json!({"role": "web"}));
    assert_eq!(meta["public_keys"], json!({"md-key": PUBLIC_KEY}));
    assert_eq!(
        meta["keys"],
        json!([{"name": "md-key", "type": "ssh", "data": PUBLIC_KEY}])
    );
    assert_eq!(meta["devices"], json!([]));
    assert_eq!(meta["dedicated_cpus"], json!([]));
    assert_eq!(
        files["openstack/latest/user_data"],
        USER_DATA.as_bytes(),
        "decoded"
    );
    let network_data = json_of(&files["openstack/latest/network_data.json"]);
    assert_eq!(network_data["networks"][0]["ip_address"], "192.168.40.9");
    assert_eq!(network_data["networks"][0]["netmask"], "255.255.255.0");
    assert_eq!(
        json_of(&files["openstack/latest/vendor_data2.json"]),
        json!({})
    );
    let old = json_of(&files["openstack/2012-08-10/meta_data.json"]);
    assert_eq!(old["uuid"], id.as_str());
    assert!(old.get("project_id").is_none(), "{old}");
    assert!(!files.contains_key("openstack/2012-08-10/network_data.json"));
    assert!(!files.keys().any(|path| path.ends_with("/password")));
    let ec2 = json_of(&files["ec2/latest/meta-data.json"]);
    assert_eq!(ec2["instance-id"], format!("i-{}", &id[..8]));
    assert_eq!(ec2["local-ipv4"], "192.168.40.9");
    assert_eq!(ec2["placement"]["availability-zone"], "nova");
    assert_eq!(ec2["public-keys"]["0"]["openssh-key"], PUBLIC_KEY);
    assert_eq!(files["ec2/latest/user-data"], USER_DATA.as_bytes());
    let server = active(&cloud, &tasks, &token, &id).await;
    assert_eq!(server["config_drive"], "True");

    // Without one: no files, and the server says "".
    let plain = create(&cloud, "md-plain", &net_second(&cloud).await, false).await;
    let tasks = cloud.next_tasks("h1", &token).await;
    let TaskAction::Spawn(spec) = &tasks.tasks[0].action else {
        panic!("a spawn task");
    };
    assert!(spec.config_drive.is_none());
    let server = active(&cloud, &tasks, &token, &plain).await;
    assert_eq!(server["config_drive"], "");

    // The metadata service: the same documents, to the signed instance.
    let meta = get_json(&cloud, "/openstack/latest/meta_data.json", &id).await;
    assert_eq!(meta["uuid"], id.as_str());
    assert_eq!(meta["public_keys"], json!({"md-key": PUBLIC_KEY}));
    let listing = get_text(&cloud, "/openstack", &id).await;
    assert!(listing.starts_with("2012-08-10\n2013-04-04\n"), "{listing}");
    assert!(
        listing.ends_with("2018-08-27\n2020-10-14\nlatest"),
        "{listing}"
    );
    assert_eq!(
        get_text(&cloud, "/openstack/latest", &id).await,
        "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json"
    );
    assert_eq!(
        get_text(&cloud, "/openstack/2012-08-10/", &id).await,
        "meta_data.json\nuser_data"
    );
    assert_eq!(
        get_text(&cloud, "/openstack/latest/user_data", &id).await,
        USER_DATA
    );
    let network_data = get_json(&cloud, "/openstack/2015-10-15/network_data.json", &id).await;
    assert_eq!(network_data["links"][0]["type"], "bridge");
    assert_eq!(
        get_json(&cloud, "/openstack/latest/vendor_data.json", &id).await,
        json!({})
    );
    // EC2.
    let root = get_text(&cloud, "", &id).await;
    assert!(root.starts_with("1.0\n2007-01-19\n"), "{root}");
    assert!(root.ends_with("2009-04-04\nlatest"), "{root}");
    assert_eq!(
        get_text(&cloud, "/latest", &id).await,
        "meta-data/\nuser-data"
    );
    let listing = get_text(&cloud, "/latest/meta-data/", &id).await;
    for entry in [
        "ami-id",
        "hostname",
        "instance-id",
        "instance-type",
        "local-ipv4",
        "placement/",
        "public-keys/",
        "reservation-id",
    ] {
        assert!(
            listing.lines().any(|line| line == entry),
            "{entry}: {listing}"
        );
    }
    assert_eq!(
        get_text(&cloud, "/latest/meta-data/instance-id", &id).await,
        format!("i-{}", &id[..8])
    );
    assert_eq!(
        get_text(&cloud, "/latest/meta-data/hostname", &id).await,
        "md-web"
    );
    assert_eq!(
        get_text(&cloud, "/latest/meta-data/local-ipv4", &id).await,
        "192.168.40.9"
    );
    assert_eq!(
        get_text(&cloud, "/latest/meta-data/instance-type", &id).await,
        "m1.tiny"
    );
    assert_eq!(
        get_text(&cloud, "/latest/meta-data/placement/availability-zone", &id).await,
        "nova"
    );
    assert_eq!(
        get_text(&cloud, "/latest/meta-data/public-keys/", &id).await,
        "0=md-key"
    );
    assert_eq!(
        get_text(&cloud, "/latest/meta-data/public-keys/0/openssh-key", &id).await,
        PUBLIC_KEY
    );
    assert!(
        get_text(&cloud, "/latest/meta-data/ami-id", &id)
            .await
            .starts_with(&format!("ami-{}", &IMAGE[..8]))
    );
    assert_eq!(get_text(&cloud, "/latest/user-data", &id).await, USER_DATA);
    assert_eq!(
        get_text(&cloud, "/2007-01-19/meta-data/local-hostname", &id).await,
        "md-web"
    );

    // Unknown paths, in the metadata service's plain-text words.
    for path in [
        "/openstack/2011-01-01/meta_data.json",
        "/openstack/latest/nothing",
        "/latest/meta-data/nothing",
        "/latest/meta-data/public-keys/0/_name",
        "/1999-01-01/meta-data/",
    ] {
        let (status, content_type, body) =
            metadata(&cloud, "GET", path, &id, "p-one", None, b"").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(content_type.starts_with("text/plain"), "{path}");
        assert!(
            String::from_utf8_lossy(&body).starts_with("404 Not Found"),
            "{path}"
        );
    }
    // The plain server has no user data file of its own... but its documents.
    let plain_meta = get_json(&cloud, "/openstack/latest/meta_data.json", &plain).await;
    assert_eq!(plain_meta["uuid"], plain.as_str());

    // Identity: a wrong or missing signature is 403, a missing instance
    // header 400, another tenant's or an unknown instance 404.
    let path = "/openstack/latest/meta_data.json";
    let (status, _, _) = metadata(&cloud, "GET", path, &id, "p-one", Some("00"), b"").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let forged = metadata_signature("not-the-secret", &id);
    let (status, _, _) = metadata(&cloud, "GET", path, &id, "p-one", Some(&forged), b"").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = metadata(&cloud, "GET", path, &id, "p-one", Some(""), b"").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The signature of another instance does not open this one.
    let theirs = metadata_signature(&cloud.state.metadata_secret, &plain);
    let (status, _, _) = metadata(&cloud, "GET", path, &id, "p-one", Some(&theirs), b"").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = cloud
        .raw("GET", &format!("/metadata{path}"), &[], Vec::new())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("X-Instance-ID header is missing"));
    let (status, _, _) = metadata(&cloud, "GET", path, &id, "p-two", None, b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unknown = "0c1b2a39-4857-4a6b-8c7d-9e0f1a2b3c4d";
    let (status, _, _) = metadata(&cloud, "GET", path, unknown, "p-one", None, b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The password: empty, set once, kept.
    let password = "/openstack/latest/password";
    assert_eq!(get_text(&cloud, password, &id).await, "");
    let (status, _, _) = metadata(&cloud, "POST", password, &id, "p-one", None, b"s3cret").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get_text(&cloud, password, &id).await, "s3cret");
    let (status, _, _) = metadata(&cloud, "POST", password, &id, "p-one", None, b"again").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(get_text(&cloud, password, &id).await, "s3cret");
    let (status, _, _) = metadata(
        &cloud,
        "POST",
        password,
        &plain,
        "p-one",
        None,
        &[b'x'; 1021],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "over Nova's 1020 bytes");
    let (status, _, _) =
        metadata(&cloud, "POST", password, &plain, "p-one", Some("00"), b"x").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(get_text(&cloud, password, &plain).await, "");
    let (status, _, _) = metadata(&cloud, "POST", path, &id, "p-one", None, b"x").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "only the password takes a POST"
    );
    let (status, _, _) = metadata(
        &cloud,
        "GET",
        "/openstack/2012-08-10/password",
        &id,
        "p-one",
        None,
        b"",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no password before 2013-04-04"
    );
}

/// Reports the spawn in `tasks` done on h1 and waits for `id` ACTIVE.
async fn active(cloud: &Cloud, tasks: &novum_wire::TaskList, token: &str, id: &str) -> Value {
    cloud
        .report(
            "h1",
            token,
            tasks.tasks[0].id,
            novum_wire::TaskOutcome::Succeeded {
                power_state: novum_wire::PowerState::Running,
            },
        )
        .await;
    cloud.wait_status(id, "ACTIVE").await
}

/// A second network for the second server (the first one's address is taken).
async fn net_second(cloud: &Cloud) -> String {
    network(cloud, "mdnet2", "192.168.40.0/24").await
}

#[tokio::test]
async fn force_config_drive_gives_every_server_one() {
    let cloud = crate::compute::cloud_with(|config| config.compute.force_config_drive = true).await;
    let token = cloud.register("h1", 16, 32768).await;
    let net = network(&cloud, "forced", "192.168.41.0/24").await;
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            "/compute/v2.1/servers",
            Some(
                json!({"server": {"name": "forced", "imageRef": IMAGE, "flavorRef": "1",
                                   "networks": [{"uuid": net}]}}),
            ),
            Some("2.96"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let tasks = cloud.next_tasks("h1", &token).await;
    let TaskAction::Spawn(spec) = &tasks.tasks[0].action else {
        panic!("a spawn task");
    };
    let files = drive_files(spec);
    assert_eq!(
        json_of(&files["openstack/latest/meta_data.json"])["uuid"],
        id.as_str()
    );
    assert!(
        !files.contains_key("openstack/latest/user_data"),
        "no user data given"
    );
    let server = active(&cloud, &tasks, &token, &id).await;
    assert_eq!(server["config_drive"], "True");
}

#[test]
fn who_gets_a_config_drive() {
    let none = BTreeMap::new();
    let mandatory: BTreeMap<String, String> =
        [("img_config_drive".to_string(), "mandatory".to_string())].into();
    let optional: BTreeMap<String, String> =
        [("img_config_drive".to_string(), "optional".to_string())].into();
    assert!(!config_drive_required(false, &none, false));
    assert!(config_drive_required(true, &none, false));
    assert!(
        config_drive_required(false, &none, true),
        "force_config_drive"
    );
    assert!(config_drive_required(false, &mandatory, false));
    assert!(!config_drive_required(false, &optional, false));
    assert_eq!(config_drive_column(true), "True");
    assert_eq!(config_drive_column(false), "");
}
