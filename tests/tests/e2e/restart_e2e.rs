//! Restarts of the real `novum serve` binary with embedded compute hosts:
//!
//! - SIGTERM stops it within seconds (measured and printed), the servers on
//!   the embedded hosts keep their domains (power state RUNNING or SHUTDOWN as
//!   left) and their actions work after the restart, a build accepted just
//!   before SIGTERM completes after it, and the notifications emitted before
//!   it (a webhook that is down meanwhile) are all delivered after it;
//! - SIGKILL in the middle of a burst of creates on PostgreSQL, then a
//!   restart: every server ends ACTIVE with its claim, and no host holds more
//!   than it has.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use novum_tests::{Cloud, free_port};
use reqwest::Method;
use serde_json::{Value, json};

use crate::notifications_e2e::{Api, Receiver, eventually, webhook_config};

/// Plugin deadlines are the sandbox tests' subject: here a loaded machine
/// must not turn a descheduled plugin call into a rejection.
pub(crate) const PLUGIN_DEADLINE: &str = "[plugins.defaults]\ndeadline_ms = 1000\n";

/// What SIGTERM may take at most (the target is 2 s; a loaded CI machine
/// must not make the test flaky).
const SIGTERM_BOUND: Duration = Duration::from_secs(5);

fn server(api: &Api, id: &str) -> Value {
    let (status, body) = api.compute(Method::GET, &format!("/servers/{id}"), None);
    assert_eq!(status, 200, "{body}");
    body["server"].clone()
}

/// Waits for `id` to be `wanted` with no task, asserting its power state.
fn settle(api: &Api, id: &str, wanted: &str, power_state: u64) {
    api.wait_status(id, wanted);
    eventually(
        30,
        &format!("{id} {wanted} with power state {power_state}"),
        || {
            let server = server(api, id);
            server["OS-EXT-STS:task_state"].is_null()
                && server["status"] == wanted
                && server["OS-EXT-STS:power_state"] == power_state
        },
    );
}

#[test]
fn sigterm_with_embedded_hosts_is_quick_and_loses_nothing() {
    let _turn = novum_tests::shared_turn();
    let port = free_port();
    let config = format!(
        "{PLUGIN_DEADLINE}\n[agent]\nheartbeat_seconds = 1\n\n[notifications]\npoll_interval_ms = 100\n\n{}",
        webhook_config(
            &format!("http://127.0.0.1:{port}/hook"),
            "max_attempts = 100000"
        )
    );
    let cloud = Cloud::start("restart-sigterm", &config).expect("cloud");
    let api = Api::login(&cloud);
    api.wait_for_compute();
    let running = api.create_server("keeps-running");
    let stopped = api.create_server("keeps-stopped");
    settle(&api, &running, "ACTIVE", 1);
    settle(&api, &stopped, "ACTIVE", 1);
    api.action(&stopped, json!({"os-stop": null}));
    settle(&api, &stopped, "SHUTOFF", 4);
    // Accepted just before SIGTERM: its build and notifications are in flight.
    let late = api.create_server("accepted-last");
    let emitted = api.outbox_ids();

    let (data_dir, took) = cloud.terminate(Duration::from_secs(60)).expect("SIGTERM");
    println!("SIGTERM with an embedded host: exited in {took:?}");
    assert!(took < SIGTERM_BOUND, "SIGTERM took {took:?}");

    let cloud = Cloud::start_in(data_dir, &config).expect("restart");
    let receiver = Receiver::start(port);
    let api = Api::login(&cloud);
    settle(&api, &late, "ACTIVE", 1);
    // Several heartbeats later the domains are still where they were.
    std::thread::sleep(Duration::from_secs(3));
    settle(&api, &running, "ACTIVE", 1);
    settle(&api, &stopped, "SHUTOFF", 4);
    api.action(&running, json!({"os-stop": null}));
    settle(&api, &running, "SHUTOFF", 4);
    api.action(&running, json!({"os-start": null}));
    settle(&api, &running, "ACTIVE", 1);
    api.action(&running, json!({"reboot": {"type": "HARD"}}));
    settle(&api, &running, "ACTIVE", 1);
    api.action(&stopped, json!({"os-start": null}));
    settle(&api, &stopped, "ACTIVE", 1);

    eventually(90, "every event emitted before SIGTERM arrives", || {
        emitted.is_subset(&receiver.unique_ids())
    });
    println!(
        "{} events emitted before SIGTERM, all delivered after the restart",
        emitted.len()
    );
    drop(cloud);
}

// ------------------------------------------------- SIGKILL during a burst

/// The admin URL of the test PostgreSQL server.
fn postgres_admin_url() -> String {
    std::env::var("NOVUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Runs `sql` with `psql` against `url`; the unaligned rows, or why not.
pub(crate) fn psql(url: &str, sql: &str) -> Result<Vec<String>, String> {
    let output = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .map_err(|error| format!("psql: {error}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect())
}

/// A fresh PostgreSQL database's URL, or `None` with the reason printed.
pub(crate) fn postgres_database() -> Option<String> {
    let admin = postgres_admin_url();
    let name = format!("novum_e2e_{}_{}", std::process::id(), free_port());
    if let Err(why) = psql(&admin, &format!("CREATE DATABASE {name}")) {
        println!("skipping: no PostgreSQL database ({why})");
        return None;
    }
    let base = admin.rsplit_once('/').map(|(base, _)| base)?;
    Some(format!("{base}/{name}"))
}

/// Servers created at once.
const BURST: usize = 50;
/// Creates accepted before the SIGKILL.
const KILL_AFTER: usize = 25;

#[test]
fn sigkill_during_a_burst_of_creates_on_postgres_keeps_every_claim() {
    let _turn = novum_tests::shared_turn();
    let Some(database) = postgres_database() else {
        return;
    };
    let config = format!(
        "{PLUGIN_DEADLINE}\n[database]\nurl = \"{database}\"\n\n[agent]\nheartbeat_seconds = 1\nembedded_hosts = 2\n"
    );
    let cloud = Cloud::start("restart-burst", &config).expect("cloud");
    let api = Api::login(&cloud);
    api.wait_for_compute();
    let image = api.image();
    api.unlimited_quota();

    let began = Instant::now();
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let url = cloud.url.clone();
    let token = api.token.clone();
    let data_dir = std::thread::scope(|scope| {
        for worker in 0..5 {
            let (accepted, url, token, image) = (&accepted, &url, &token, &image);
            scope.spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                for index in (worker..BURST).step_by(5) {
                    let body = json!({"server": {"name": format!("burst-{index}"), "imageRef": image, "flavorRef": "1", "networks": "none"}});
                    let sent = client
                        .post(format!("{url}/compute/v2.1/servers"))
                        .header("x-auth-token", token)
                        .header("openstack-api-version", "compute 2.79")
                        .json(&body)
                        .send();
                    match sent {
                        Ok(response) if response.status().as_u16() == 202 => {
                            accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        // The controller is gone: the rest of the burst is lost.
                        _ => return,
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while accepted.load(std::sync::atomic::Ordering::SeqCst) < KILL_AFTER {
            assert!(
                Instant::now() < deadline,
                "the burst stalled before the kill"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let data_dir = cloud.kill();
        println!(
            "SIGKILL after {} accepted creates ({:?} into the burst)",
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            began.elapsed()
        );
        data_dir
    });
    let cloud = Cloud::start_in(data_dir, &config).expect("restart");
    let api = Api::login(&cloud);
    let mut servers = Vec::new();
    eventually(120, "every server of the burst is built", || {
        let (status, body) = api.compute(Method::GET, "/servers/detail?all_tenants=1", None);
        assert_eq!(status, 200, "{body}");
        servers = body["servers"].as_array().cloned().unwrap_or_default();
        servers
            .iter()
            .all(|server| server["status"] != "BUILD" && server["OS-EXT-STS:task_state"].is_null())
    });
    println!(
        "{} servers after the restart, settled {:?} after the burst began",
        servers.len(),
        began.elapsed()
    );
    if let Some(line) = cloud
        .log()
        .lines()
        .find(|line| line.contains("recovered operations in flight"))
    {
        println!("after the restart: {line}");
    }
    assert!(servers.len() >= KILL_AFTER, "{} servers", servers.len());
    let errors: Vec<&Value> = servers
        .iter()
        .filter(|server| server["status"] != "ACTIVE")
        .collect();
    assert!(
        errors.is_empty(),
        "not ACTIVE after the restart: {errors:#?}"
    );

    // Every server holds its claim on its host, and the hosts hold exactly those.
    let claims: HashMap<String, String> = psql(
        &database,
        "SELECT a.instance_uuid || '|' || n.host FROM allocations a JOIN compute_nodes n ON n.uuid = a.node_uuid",
    )
    .expect("claims")
    .iter()
    .filter_map(|row| row.split_once('|'))
    .map(|(uuid, host)| (uuid.to_string(), host.to_string()))
    .collect();
    let mut per_host: HashMap<String, i64> = HashMap::new();
    for server in &servers {
        let id = server["id"].as_str().expect("id");
        let host = server["OS-EXT-SRV-ATTR:host"].as_str().expect("host");
        assert_eq!(
            claims.get(id).map(String::as_str),
            Some(host),
            "server {id} on {host} has no claim there"
        );
        *per_host.entry(host.to_string()).or_default() += 1;
    }
    let ids: HashSet<&str> = servers.iter().filter_map(|s| s["id"].as_str()).collect();
    assert!(
        claims.keys().all(|uuid| ids.contains(uuid.as_str())),
        "claims of servers that do not exist: {claims:?}"
    );
    assert_node_usage(&database, &per_host);
    drop(cloud);
}

/// Checks every compute node's usage against `per_host` (servers of
/// m1.tiny, 1 vCPU, per host): running VMs and vCPUs match, memory within
/// capacity (no double claim, no over-commit).
pub(crate) fn assert_node_usage(database: &str, per_host: &HashMap<String, i64>) {
    for row in psql(
        database,
        "SELECT host || '|' || running_vms || '|' || vcpus_used || '|' || memory_mb_used || '|' || \
         (memory_mb * ram_allocation_ratio - reserved_host_memory_mb)::bigint FROM compute_nodes",
    )
    .expect("nodes")
    {
        let fields: Vec<&str> = row.split('|').collect();
        let [host, running, vcpus, memory, capacity] = fields[..] else {
            panic!("unexpected row {row}");
        };
        let count = per_host.get(host).copied().unwrap_or(0);
        assert_eq!(running.parse::<i64>().ok(), Some(count), "{row}");
        assert_eq!(
            vcpus.parse::<i64>().ok(),
            Some(count),
            "{row} (m1.tiny: 1 vCPU)"
        );
        let (memory, capacity) = (
            memory.parse::<i64>().expect("memory"),
            capacity.parse::<i64>().expect("capacity"),
        );
        assert!(memory <= capacity, "{host} over-committed: {row}");
    }
}
