//! The controller's instance metadata reaching a REAL guest both ways: a
//! server created through the Compute API with a key pair, user data and
//! `config_drive: true`; the spawn task's config drive (the controller's
//! generator) made into an ISO by the agent's code and booted in novum's
//! test guest on `qemu:///system`; the guest's user data fetching
//! `meta_data.json` at 169.254.169.254 through the agent's metadata proxy
//! from this controller's metadata API (served over real HTTP).

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use novum_agent::config_drive;
use novum_agent::metadata_proxy::MetadataProxy;
use novum_wire::{PowerState, TaskAction, TaskOutcome};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api_common::backends;
use crate::compute::{IMAGE, cloud_on};
use crate::server_ports::network;

#[path = "../../../compute-agent/tests/support/real_guest.rs"]
mod real_guest;

use real_guest::{Bridge, Guest, READY_WITHIN, TestDir, fetch_script, fetched};

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmGbQ0u3kFzY1Jr9d8x6pq2nq0gk3rQhJ1f7S9wVb2o rg@novum";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_guest_gets_the_controllers_config_drive_and_metadata() {
    let backend = backends().await.remove(0);
    let cloud = cloud_on(&backend).await;
    let controller = cloud.serve_http().await;
    let token = cloud.register("h1", 16, 32768).await;
    let net = network(&cloud, "rg-net", "10.233.5.0/24").await;
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            "/compute/v2.1/os-keypairs",
            Some(json!({"keypair": {"name": "rg-key", "public_key": PUBLIC_KEY}})),
            Some("2.96"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user_data = fetch_script("/openstack/latest/meta_data.json");
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            "/compute/v2.1/servers",
            Some(json!({"server": {
                "name": "rg-guest", "imageRef": IMAGE, "flavorRef": "1",
                "networks": [{"uuid": net, "fixed_ip": "10.233.5.20"}],
                "key_name": "rg-key", "config_drive": true,
                "user_data": BASE64.encode(&user_data),
            }})),
            Some("2.96"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let instance = Uuid::parse_str(&id).expect("uuid");

    // Play the agent: the spawn task's config drive and interface.
    let tasks = cloud.next_tasks("h1", &token).await;
    let action = tasks.tasks[0].action.clone();
    let TaskAction::Spawn(spec) = &action else {
        panic!("a spawn task: {action:?}");
    };
    let interface = spec.interfaces[0].clone();
    let dir = TestDir::new();
    let image = dir.0.join(config_drive::DISK_CONFIG);
    config_drive::build(
        spec.config_drive.as_deref().expect("a config drive"),
        &image,
    )
    .expect("the ISO");
    let _bridge = Bridge::new(&interface.bridge);
    let proxy = MetadataProxy::new(&controller);
    proxy.set_secret(Some(cloud.state.metadata_secret.clone()));
    let spawned = TaskOutcome::Succeeded {
        power_state: PowerState::Running,
    };
    // What the agent learns from the spawn it ran: the proxy serves the
    // bridge and knows the guest's address.
    proxy.observe(instance, &action, &spawned);
    let guest = Guest::boot(&dir, instance, &image, &interface);
    cloud.report("h1", &token, tasks.tasks[0].id, spawned).await;

    let console = tokio::task::spawn_blocking(move || {
        let console = guest.console_until("NOVUM-READY", READY_WITHIN);
        drop(guest);
        console
    })
    .await
    .expect("console");
    proxy.stop();
    assert!(
        console.contains("NOVUM-READY"),
        "the guest did not finish: {console}"
    );
    assert!(console.contains(&format!("NOVUM-UUID {id}")), "{console}");
    assert!(console.contains("NOVUM-HOSTNAME rg-guest"), "{console}");
    assert!(
        console.contains(&format!("NOVUM-KEY {PUBLIC_KEY}")),
        "{console}"
    );
    assert!(
        console.contains("NOVUM-USER-DATA-BEGIN") && console.contains("echo \"NOVUM-MD $(printf"),
        "{console}"
    );
    assert!(
        console.contains(&format!(
            "NOVUM-NET eth0 {} 10.233.5.20/24",
            interface.mac_address
        )),
        "{console}"
    );
    let meta: Value = serde_json::from_str(fetched(&console).trim())
        .unwrap_or_else(|error| panic!("{error}: {console}"));
    assert_eq!(meta["uuid"], id.as_str());
    assert_eq!(meta["project_id"], "p-one");
    assert_eq!(meta["public_keys"], json!({"rg-key": PUBLIC_KEY}));
}
