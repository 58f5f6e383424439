//! Live migration (Nova's `os-migrateLive` and `/servers/{id}/migrations`)
//! over real HTTP on three embedded hosts (libvirt's test driver, whose
//! agents simulate the move: the source copies the guest's memory at a
//! fixed rate, then its domain leaves, and the destination defines and
//! starts it). Admin only; Nova's body by microversion; the state guards;
//! the scheduler's choice (never the source), a named host through the
//! filters unless forced; status MIGRATING while it runs, the progress in
//! `GET /servers/{id}/migrations`; the claim moving with the guest; abort
//! (the migration `cancelled`, the guest still on its source),
//! force-complete, and a forced migration to a full host ending in `error`
//! with the server ACTIVE where it was; the `os-migrations` records, the
//! instance actions and Nova's notifications.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{self, Cloud};
use crate::resize::{cloud, create_flavor, event_types, host_of, show, vcpus_used, wait_status};

/// Sends `os-migrateLive` with `args` at `version` as admin.
async fn live(cloud: &Cloud, id: &str, args: Value, version: &str) -> (u16, Value) {
    cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({ "os-migrateLive": args })),
            version,
        )
        .await
}

/// Sends `os-migrateLive` with `args` at `version` as admin: accepted.
async fn start_live(cloud: &Cloud, id: &str, args: Value, version: &str) {
    let (status, body) = live(cloud, id, args, version).await;
    assert_eq!(status, 202, "{body}");
}

fn message(body: &Value, fault: &str) -> String {
    body[fault]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The live migrations of `id` (os-migrations) as (status, source, dest),
/// newest first.
async fn records(cloud: &Cloud, id: &str) -> Vec<[String; 3]> {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/os-migrations?instance_uuid={id}&migration_type=live-migration"),
            None,
            "2.80",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for row in body["migrations"].as_array().expect("migrations") {
        for key in ["old_instance_type_id", "new_instance_type_id"] {
            assert!(
                row[key].is_i64() || row[key].is_null(),
                "Nova's schema has {key} an integer or null: {row}"
            );
        }
    }
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or_default().to_string();
    body["migrations"]
        .as_array()
        .expect("migrations")
        .iter()
        .map(|row| {
            [
                text(row, "status"),
                text(row, "source_compute"),
                text(row, "dest_compute"),
            ]
        })
        .collect()
}

/// Waits until `GET /servers/{id}/migrations` shows a running migration
/// with progress; returns it.
async fn running(cloud: &Cloud, id: &str) -> Value {
    for _ in 0..400 {
        let (status, body) = cloud
            .compute(
                &cloud.admin,
                Method::GET,
                &format!("/servers/{id}/migrations"),
                None,
                "2.80",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if let Some(row) = body["migrations"]
            .as_array()
            .and_then(|rows| rows.first())
            .filter(|row| row["status"] == "running" && row["memory_total_bytes"].is_u64())
        {
            return row.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no running live migration of {id}");
}

/// Waits until the newest live migration of `id` is `wanted`.
async fn wait_record(cloud: &Cloud, id: &str, wanted: &str) -> Vec<[String; 3]> {
    let mut latest = Vec::new();
    for _ in 0..600 {
        latest = records(cloud, id).await;
        if latest.first().is_some_and(|row| row[0] == wanted) {
            return latest;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the live migration of {id} never became {wanted}: {latest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_migration_moves_a_running_server_and_rolls_back_when_it_cannot() {
    live_migration(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_migration_on_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        live_migration(Some(url)).await;
    }
}

async fn live_migration(database_url: Option<String>) {
    let cloud = cloud(3, false, database_url).await;
    // 256 MiB: the simulated copy takes about four seconds.
    let small = create_flavor(&cloud, "small", 1, 256).await;
    let (_, _, member) = cloud.tenant("movers", "mover", "member").await;
    let (status, body) = cloud
        .compute(
            &member,
            Method::POST,
            "/servers",
            Some(http_cloud::server("mover", &small)),
            "2.96",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let source = host_of(&wait_status(&cloud, &id, "ACTIVE").await);

    // Admin only.
    let (status, body) = cloud
        .compute(
            &member,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"os-migrateLive": {"host": null, "block_migration": "auto"}})),
            "2.68",
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        message(&body, "forbidden").contains("os_compute_api:os-migrate-server:migrate_live"),
        "{body}"
    );
    // Nova's body by microversion, and its checks of the named host.
    for (args, version, fault) in [
        (
            json!({"host": null, "block_migration": false}),
            "2.1",
            "'disk_over_commit' is a required property",
        ),
        (
            json!({"host": null, "block_migration": "auto", "disk_over_commit": false}),
            "2.25",
            "'disk_over_commit' was unexpected",
        ),
        (
            json!({"host": null, "block_migration": "auto", "force": true}),
            "2.30",
            "Can't force to a non-provided destination",
        ),
        (
            json!({"host": "x", "block_migration": "auto", "force": true}),
            "2.68",
            "'force' was unexpected",
        ),
        (
            json!({"block_migration": "auto"}),
            "2.68",
            "'host' is a required property",
        ),
        (
            json!({"host": source, "block_migration": "auto"}),
            "2.68",
            &format!("Unable to migrate instance ({id}) to current host ({source})."),
        ),
        (
            json!({"host": "nowhere", "block_migration": "auto"}),
            "2.68",
            "Compute host nowhere could not be found.",
        ),
    ] {
        let (status, reply) = live(&cloud, &id, args.clone(), version).await;
        assert_eq!(status, 400, "{args} at {version}: {reply}");
        assert!(message(&reply, "badRequest").contains(fault), "{reply}");
    }
    // Not while it is off.
    let act = |body: Value| {
        let cloud = &cloud;
        let member = member.clone();
        let id = id.clone();
        async move {
            cloud
                .compute(
                    &member,
                    Method::POST,
                    &format!("/servers/{id}/action"),
                    Some(body),
                    "2.96",
                )
                .await
        }
    };
    assert_eq!(act(json!({"os-stop": null})).await.0, 202);
    wait_status(&cloud, &id, "SHUTOFF").await;
    let (status, body) = live(
        &cloud,
        &id,
        json!({"host": null, "block_migration": "auto"}),
        "2.68",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        message(&body, "conflictingRequest"),
        format!("Cannot 'os-migrateLive' instance {id} while it is in vm_state stopped")
    );
    assert_eq!(act(json!({"os-start": null})).await.0, 202);
    wait_status(&cloud, &id, "ACTIVE").await;
    assert!(records(&cloud, &id).await.is_empty());

    // The scheduler's choice: MIGRATING while the guest moves, with its
    // progress, then ACTIVE on another host with the claim there.
    start_live(
        &cloud,
        &id,
        json!({"host": null, "block_migration": "auto"}),
        "2.25",
    )
    .await;
    let moving = show(&cloud, &id).await;
    assert_eq!(moving["status"], "MIGRATING", "{moving}");
    assert_eq!(moving["OS-EXT-STS:task_state"], "migrating");
    let row = running(&cloud, &id).await;
    assert_eq!(row["memory_total_bytes"], 256 * 1024 * 1024, "{row}");
    assert_eq!(row["source_compute"], source.as_str());
    assert_eq!(row["server_uuid"], id.as_str());
    let first = row["dest_compute"].as_str().expect("dest").to_string();
    assert_ne!(first, source);
    // Shown alone too; an unknown one is a 404.
    let mid = row["id"].as_i64().expect("id");
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{id}/migrations/{mid}"),
            None,
            "2.23",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["migration"]["id"], mid);
    let (status, _) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{id}/migrations/{mid}"),
            None,
            "2.22",
        )
        .await;
    assert_eq!(status, 404, "before 2.23");
    // A second move while one runs: 409.
    let (status, body) = live(
        &cloud,
        &id,
        json!({"host": null, "block_migration": "auto"}),
        "2.68",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let moved = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&moved), first);
    assert!(moved["OS-EXT-STS:task_state"].is_null(), "{moved}");
    assert_eq!(moved["OS-EXT-STS:power_state"], 1);
    let usage = vcpus_used(&cloud).await;
    assert!(
        usage
            .iter()
            .all(|(host, used)| *used == i64::from(*host == first)),
        "{usage:?}"
    );
    assert_eq!(wait_record(&cloud, &id, "completed").await[0][2], first);
    // Nothing in progress any more; force_complete and abort refuse.
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{id}/migrations"),
            None,
            "2.23",
        )
        .await;
    assert_eq!((status, body["migrations"].clone()), (200, json!([])));
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/migrations/{mid}/action"),
            Some(json!({"force_complete": null})),
            "2.22",
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        message(&body, "conflictingRequest"),
        format!("Cannot 'force complete' instance {id} while it is in task_state None")
    );

    // Abort while it runs: the guest stays where it was, `cancelled`.
    start_live(
        &cloud,
        &id,
        json!({"host": null, "block_migration": "auto"}),
        "2.68",
    )
    .await;
    let row = running(&cloud, &id).await;
    let mid = row["id"].as_i64().expect("id");
    let aborted_to = row["dest_compute"].as_str().expect("dest").to_string();
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::DELETE,
            &format!("/servers/{id}/migrations/{}", mid + 1000),
            None,
            "2.24",
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::DELETE,
            &format!("/servers/{id}/migrations/{mid}"),
            None,
            "2.24",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    wait_record(&cloud, &id, "cancelled").await;
    let stayed = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&stayed), first);
    assert!(stayed["OS-EXT-STS:task_state"].is_null(), "{stayed}");
    let usage = vcpus_used(&cloud).await;
    assert!(
        usage
            .iter()
            .all(|(host, used)| *used == i64::from(*host == first)),
        "{usage:?}"
    );

    // Force-complete while it runs: it ends at once, to the named host.
    let third = usage
        .iter()
        .map(|(host, _)| host.clone())
        .find(|host| *host != source && *host != first)
        .expect("a third host");
    start_live(
        &cloud,
        &id,
        json!({"host": source, "block_migration": true}),
        "2.68",
    )
    .await;
    let row = running(&cloud, &id).await;
    let mid = row["id"].as_i64().expect("id");
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/migrations/{mid}/action"),
            Some(json!({"force_complete": null})),
            "2.22",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    wait_record(&cloud, &id, "completed").await;
    let back = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&back), source);

    // A paused guest moves paused and stays PAUSED (the test driver's
    // simulated move starts the domain at the destination: it is paused
    // again there), then comes back for the rest.
    assert_eq!(act(json!({"pause": null})).await.0, 202);
    wait_status(&cloud, &id, "PAUSED").await;
    start_live(
        &cloud,
        &id,
        json!({"host": first, "block_migration": "auto"}),
        "2.68",
    )
    .await;
    wait_record(&cloud, &id, "completed").await;
    let paused = wait_status(&cloud, &id, "PAUSED").await;
    assert_eq!(host_of(&paused), first);
    assert_eq!(paused["OS-EXT-STS:power_state"], 3, "{paused}");
    start_live(
        &cloud,
        &id,
        json!({"host": source, "block_migration": "auto"}),
        "2.68",
    )
    .await;
    wait_record(&cloud, &id, "completed").await;
    assert_eq!(host_of(&wait_status(&cloud, &id, "PAUSED").await), source);
    assert_eq!(act(json!({"unpause": null})).await.0, 202);
    wait_status(&cloud, &id, "ACTIVE").await;

    // Forced (2.30) to a host that is full: the claim fails, the migration
    // ends in error and the server is ACTIVE on its source.
    let big = create_flavor(&cloud, "big", 8, 512).await;
    let mut filler = http_cloud::server("filler", &big);
    filler["server"]["availability_zone"] = json!(format!("nova:{third}"));
    let (status, body) = cloud
        .compute(&cloud.admin, Method::POST, "/servers", Some(filler), "2.96")
        .await;
    assert_eq!(status, 202, "{body}");
    let filler = body["server"]["id"].as_str().expect("id").to_string();
    assert_eq!(
        host_of(&wait_status(&cloud, &filler, "ACTIVE").await),
        third
    );
    start_live(
        &cloud,
        &id,
        json!({"host": third, "block_migration": "auto", "force": true}),
        "2.30",
    )
    .await;
    wait_record(&cloud, &id, "error").await;
    let stayed = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&stayed), source);
    assert!(stayed["OS-EXT-STS:task_state"].is_null(), "{stayed}");

    let row = |status: &str, from: &str, to: &str| [status, from, to].map(str::to_string);
    assert_eq!(
        records(&cloud, &id).await,
        vec![
            row("error", &source, ""),
            row("completed", &first, &source),
            row("completed", &source, &first),
            row("completed", &first, &source),
            row("cancelled", &first, &aborted_to),
            row("completed", &source, &first),
        ]
    );
    let (status, body) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/servers/{id}/os-instance-actions"),
            None,
            "2.84",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let lives = body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|action| action["action"] == "live-migration")
        .count();
    assert_eq!(lives, 6, "{body}");
    let notified: Vec<String> = event_types(&cloud, &id)
        .await
        .into_iter()
        .filter(|event| event.starts_with("instance.live_migration"))
        .collect();
    for wanted in [
        "instance.live_migration_pre.start",
        "instance.live_migration_pre.end",
        "instance.live_migration_post.start",
        "instance.live_migration_post.end",
        "instance.live_migration_abort.start",
        "instance.live_migration_abort.end",
        "instance.live_migration_rollback.start",
        "instance.live_migration_rollback.end",
        "instance.live_migration_force_complete.start",
        "instance.live_migration_force_complete.end",
    ] {
        assert!(
            notified.iter().any(|event| event == wanted),
            "{wanted}: {notified:?}"
        );
    }
    cloud.stop().await;
}

/// The source's CPU, as its agent reported it (`compute_nodes.cpu_info`),
/// travels in the destination's `PreLiveMigration` task; a destination
/// whose hypervisor cannot offer it fails the step with Nova's
/// "Unacceptable CPU info" and the migration rolls back: `error`, the
/// server ACTIVE on its source, the destination's claim gone and what it
/// prepared destroyed, the pre step's event failed with the reason. The
/// agents are played by the test over the real RPC.
#[tokio::test]
async fn a_destination_refusing_the_source_cpu_keeps_the_server_on_its_source() {
    use axum::http::StatusCode;
    use novum_wire::{CpuInfo, CpuTopology, Inventory, PowerState, TaskAction, TaskOutcome};

    use crate::compute::{self, cloud_with, server_body};

    let cloud = cloud_with(|_| {}).await;
    let haswell = CpuInfo {
        arch: "x86_64".into(),
        model: Some("Haswell-noTSX".into()),
        vendor: Some("Intel".into()),
        features: vec!["avx2".into(), "vmx".into()],
        topology: CpuTopology {
            sockets: 1,
            cores: 4,
            threads: 2,
        },
    };
    let source = cloud
        .register_with(
            "cpu-source",
            Inventory {
                cpu_info: haswell.clone(),
                ..compute::inventory("cpu-source", 4, 8192)
            },
        )
        .await;
    let (status, body) = cloud.create("member", server_body("mover")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("cpu-source", &source, &id).await;
    let destination = cloud.register("cpu-dest", 4, 8192).await;
    let recorded: String =
        sqlx::query_scalar("SELECT cpu_info FROM compute_nodes WHERE host = 'cpu-source'")
            .fetch_one(cloud.state.db.pool())
            .await
            .expect("cpu_info");
    assert_eq!(
        serde_json::from_str::<CpuInfo>(&recorded).expect("recorded cpu_info"),
        haswell
    );

    let (status, body) = cloud
        .compute_at(
            "admin",
            "POST",
            &format!("/servers/{id}/action"),
            Some(json!({"os-migrateLive": {"host": "cpu-dest", "block_migration": "auto"}})),
            "2.68",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let tasks = cloud.next_tasks("cpu-dest", &destination).await;
    let pre = &tasks.tasks[0];
    match &pre.action {
        TaskAction::PreLiveMigration { source_cpu, .. } => {
            assert_eq!(source_cpu.as_ref(), Some(&haswell));
        }
        other => panic!("expected the pre step, got {other:?}"),
    }
    let claimed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM allocations WHERE instance_uuid = $1")
            .bind(format!("resize:{id}"))
            .fetch_one(cloud.state.db.pool())
            .await
            .expect("claim");
    assert!(claimed > 0, "the destination is claimed while it prepares");
    let refusal = format!(
        "pre_live_migration failed: {} the CPU is incompatible with host CPU: Host CPU does not \
         provide required features: avx2, vmx. Refer to {}",
        novum_agent::driver::CPU_INCOMPATIBLE,
        novum_agent::driver::CPU_COMPARE_REFERENCE
    );
    cloud
        .report(
            "cpu-dest",
            &destination,
            pre.id,
            TaskOutcome::Failed {
                message: refusal.clone(),
                power_state: None,
            },
        )
        .await;
    // What the destination prepared goes.
    let tasks = cloud.next_tasks("cpu-dest", &destination).await;
    assert!(
        matches!(tasks.tasks[0].action, TaskAction::Destroy),
        "{:?}",
        tasks.tasks[0].action
    );
    cloud
        .report(
            "cpu-dest",
            &destination,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::NoState,
            },
        )
        .await;

    let server = cloud.wait_status(&id, "ACTIVE").await;
    assert_eq!(server["OS-EXT-SRV-ATTR:host"], "cpu-source", "{server}");
    assert!(server["OS-EXT-STS:task_state"].is_null(), "{server}");
    let (status, body) = cloud
        .compute_at(
            "admin",
            "GET",
            &format!("/os-migrations?instance_uuid={id}"),
            None,
            "2.80",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let migration = &body["migrations"][0];
    assert_eq!(migration["migration_type"], "live-migration", "{body}");
    assert_eq!(migration["status"], "error", "{body}");
    assert_eq!(migration["source_compute"], "cpu-source", "{body}");
    let claimed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM allocations WHERE instance_uuid = $1")
            .bind(format!("resize:{id}"))
            .fetch_one(cloud.state.db.pool())
            .await
            .expect("claim");
    assert_eq!(claimed, 0, "the destination's claim is released");
    let used: i64 =
        sqlx::query_scalar("SELECT vcpus_used FROM compute_nodes WHERE host = 'cpu-dest'")
            .fetch_one(cloud.state.db.pool())
            .await
            .expect("usage");
    assert_eq!(used, 0, "nothing counted on the destination");

    // The instance action: the pre step's event failed, with the reason.
    let (_, body) = cloud
        .compute_at(
            "admin",
            "GET",
            &format!("/servers/{id}/os-instance-actions"),
            None,
            "2.84",
        )
        .await;
    let request_id = body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|action| action["action"] == "live-migration")
        .and_then(|action| action["request_id"].as_str())
        .expect("the live-migration action")
        .to_string();
    let (_, body) = cloud
        .compute_at(
            "admin",
            "GET",
            &format!("/servers/{id}/os-instance-actions/{request_id}"),
            None,
            "2.84",
        )
        .await;
    let events = body["instanceAction"]["events"].as_array().expect("events");
    let pre_event = events
        .iter()
        .find(|event| event["event"] == "compute_pre_live_migration")
        .unwrap_or_else(|| panic!("no pre step event: {body}"));
    assert_eq!(pre_event["result"], "Error", "{body}");
    assert!(
        pre_event["details"]
            .as_str()
            .is_some_and(|details| details.contains(novum_agent::driver::CPU_INCOMPATIBLE)),
        "{body}"
    );
}

/// Puts `host` into a new aggregate `name` of availability zone `zone`;
/// returns the aggregate's id.
async fn zone_of_one(cloud: &Cloud, name: &str, zone: &str, host: &str) -> i64 {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/os-aggregates",
            Some(json!({"aggregate": {"name": name, "availability_zone": zone}})),
            "2.41",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let aggregate = body["aggregate"]["id"].as_i64().expect("aggregate id");
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/os-aggregates/{aggregate}/action"),
            Some(json!({"add_host": {"host": host}})),
            "2.41",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    aggregate
}

/// A move across availability zones takes the server into its
/// destination's zone (Nova's conductor sets `instance.availability_zone`
/// from the destination host's aggregate): a named live migration, a cold
/// migration (the destination's zone while it awaits confirmation, the
/// source's again when reverted, then confirmed) and a forced live
/// migration; the host in no zone aggregate is in the default zone
/// (`nova`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_move_across_availability_zones_takes_the_destination_zone() {
    use crate::evacuate::boot;
    use crate::migrate::act_at;

    let cloud = cloud(3, false, None).await;
    let hosts: Vec<String> = vcpus_used(&cloud)
        .await
        .into_iter()
        .map(|(host, _)| host)
        .collect();
    zone_of_one(&cloud, "east", "az-east", &hosts[0]).await;
    zone_of_one(&cloud, "west", "az-west", &hosts[1]).await;
    let zone = |host: &str| match hosts.iter().position(|known| known == host) {
        Some(0) => "az-east",
        Some(1) => "az-west",
        _ => "nova",
    };
    let in_zone = |server: &Value, host: &str| {
        assert_eq!(host_of(server), host, "{server}");
        assert_eq!(
            server["OS-EXT-AZ:availability_zone"],
            zone(host),
            "{server}"
        );
    };
    let small = create_flavor(&cloud, "small", 1, 64).await;
    // Not pinned to a zone: it may move to any.
    let (id, start) = boot(&cloud, &cloud.admin, "zoned", &small, None).await;
    in_zone(&show(&cloud, &id).await, &start);
    let others: Vec<&String> = hosts.iter().filter(|host| **host != start).collect();
    let (first, second) = (others[0].as_str(), others[1].as_str());

    // A named live migration.
    start_live(
        &cloud,
        &id,
        json!({"host": first, "block_migration": "auto"}),
        "2.68",
    )
    .await;
    wait_record(&cloud, &id, "completed").await;
    in_zone(&wait_status(&cloud, &id, "ACTIVE").await, first);

    // A cold migration: the destination's zone while it awaits
    // confirmation, the source's again when reverted; then confirmed.
    for (answer, stays) in [("revertResize", first), ("confirmResize", second)] {
        let (status, body) =
            act_at(&cloud, &id, json!({"migrate": {"host": second}}), "2.56").await;
        assert_eq!(status, 202, "{body}");
        in_zone(&wait_status(&cloud, &id, "VERIFY_RESIZE").await, second);
        let (status, body) = act_at(&cloud, &id, json!({ answer: null }), "2.56").await;
        assert!(status == 202 || status == 204, "{answer}: {status} {body}");
        let mut server = Value::Null;
        for _ in 0..400 {
            server = show(&cloud, &id).await;
            if server["status"] == "ACTIVE" && server["OS-EXT-STS:task_state"].is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        in_zone(&server, stays);
    }

    // Forced (2.30) back to where it started.
    start_live(
        &cloud,
        &id,
        json!({"host": start, "block_migration": "auto", "force": true}),
        "2.30",
    )
    .await;
    wait_record(&cloud, &id, "completed").await;
    in_zone(&wait_status(&cloud, &id, "ACTIVE").await, &start);
    cloud.stop().await;
}
