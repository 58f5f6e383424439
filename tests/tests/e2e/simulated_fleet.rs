//! The simulated fleet and `novum bench cloud`, through the real binaries:
//! `novum-agent --simulate N` registers N hosts with the real controller over
//! HTTP/2 and runs their tasks on in-memory hypervisors; the benchmark runs
//! the whole control plane end to end on a small fleet and must report no
//! failure.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};

use novum_tests::{Cloud, binary, binary_dir};
use reqwest::Method;
use serde_json::json;

use crate::agent_process::{action, create, wait_for, wait_status};

/// Hosts in the simulated fleet of the API test.
const HOSTS: usize = 40;

/// A `novum-agent --simulate` process, killed when dropped.
struct Fleet(Child);

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_simulated_fleet_registers_every_host_and_runs_their_servers() {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start(
        "simulated-fleet",
        "[agent]\nembedded = false\nheartbeat_seconds = 2\n",
    )
    .expect("novum serve");
    let enrollment = std::fs::read_to_string(cloud.data_dir.join("agent-enrollment-token"))
        .expect("the controller generates an enrollment token");
    let log = std::fs::File::create(cloud.data_dir.join("fleet.log")).expect("log");
    let _fleet = Fleet(
        Command::new(binary("novum-agent"))
            .args(["--controller", &cloud.url, "--token", enrollment.trim()])
            .args(["--host", "sim-", "--simulate", &HOSTS.to_string()])
            .args(["--simulate-ramp-seconds", "1", "--simulate-vcpus", "2"])
            .args(["--heartbeat-seconds", "2", "--poll-seconds", "5"])
            .arg("--state-dir")
            .arg(cloud.data_dir.join("fleet"))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("novum-agent --simulate"),
    );
    let token = cloud.admin_token().expect("token");
    let image = cloud.create_image(&token, "fleet-image").expect("image");
    let hosts = wait_for("every simulated host to register", 60, || {
        let (status, body) = cloud
            .compute(&token, Method::GET, "/os-hypervisors/detail", None, "2.53")
            .expect("hypervisors");
        assert_eq!(status, 200, "{body}");
        let hypervisors = body["hypervisors"].as_array()?;
        (hypervisors.len() == HOSTS
            && hypervisors
                .iter()
                .all(|hypervisor| hypervisor["state"] == "up"))
        .then(|| hypervisors.clone())
    });
    let names: HashSet<String> = hosts
        .iter()
        .filter_map(|hypervisor| hypervisor["service"]["host"].as_str().map(str::to_string))
        .collect();
    assert!(
        names.contains("sim-01") && names.contains("sim-40"),
        "{names:?}"
    );
    assert_eq!(hosts[0]["vcpus"], 2, "{}", hosts[0]);
    // All of them arrived over a handful of HTTP/2 connections: one per
    // hundred hosts, so one here.
    assert_eq!(
        cloud.log().matches("compute agent registered").count(),
        HOSTS,
        "{}",
        cloud.log()
    );

    // Servers spread over the fleet (2 vCPUs × 4.0 per host, flavor 1 has 1
    // vCPU), and their lifecycle runs on the simulated hypervisors.
    let servers: Vec<String> = (0..6)
        .map(|index| create(&cloud, &token, &image, &format!("fleet-vm-{index}")))
        .collect();
    let mut placed = HashSet::new();
    for id in &servers {
        let active = wait_status(&cloud, &token, id, "ACTIVE");
        assert_eq!(active["OS-EXT-STS:power_state"], 1, "{active}");
        let host = active["OS-EXT-SRV-ATTR:host"].as_str().expect("host");
        assert!(names.contains(host), "{active}");
        placed.insert(host.to_string());
    }
    assert!(
        placed.len() > 1,
        "servers spread over several hosts: {placed:?}"
    );
    action(&cloud, &token, &servers[0], json!({"os-stop": null}));
    let stopped = wait_status(&cloud, &token, &servers[0], "SHUTOFF");
    assert_eq!(stopped["OS-EXT-STS:power_state"], 4, "{stopped}");
    action(&cloud, &token, &servers[0], json!({"os-start": null}));
    wait_status(&cloud, &token, &servers[0], "ACTIVE");
    for id in &servers {
        let (status, body) = cloud
            .compute(
                &token,
                Method::DELETE,
                &format!("/servers/{id}"),
                None,
                "2.57",
            )
            .expect("delete");
        assert_eq!(status, 204, "{body}");
    }
    wait_for("the servers to be gone", 60, || {
        let (_, body) = cloud
            .compute(
                &token,
                Method::GET,
                "/os-hypervisors/statistics",
                None,
                "2.53",
            )
            .expect("statistics");
        (body["hypervisor_statistics"]["running_vms"] == 0).then_some(())
    });
}

#[test]
fn bench_cloud_runs_the_control_plane_end_to_end_without_a_failure() {
    let _turn = novum_tests::shared_turn();
    let output = Command::new(binary("novum"))
        .args(["bench", "cloud", "--hosts", "150", "--instances", "0,200"])
        // Four background batches, two at a time: the window is waited on.
        .args(["--background-batch", "50", "--background-in-flight", "2"])
        .args([
            "--creates",
            "40",
            "--concurrency",
            "4",
            "--idle-seconds",
            "2",
            "--read-runs",
            "3",
        ])
        .arg("--cache-dir")
        .arg(binary_dir().join("e2e-plugin-cache"))
        .output()
        .expect("novum bench cloud");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    println!("{stdout}");
    // Two tables: the burst's, then the reads'.
    let (burst, reads) = stdout
        .split_once("| hosts | instances | background placed/s |")
        .expect("a reads table");
    let rows = |table: &str| -> Vec<Vec<String>> {
        table
            .lines()
            .filter(|line| line.starts_with("| 150 |"))
            .map(|line| {
                line.split('|')
                    .map(|cell| cell.trim().to_string())
                    .collect()
            })
            .collect()
    };
    let burst = rows(burst);
    assert_eq!(burst.len(), 2, "{stdout}");
    for row in &burst {
        // | hosts | instances | decisions/s | … | 5xx / ERROR / locked / EMFILE / over-committed |
        let decisions: f64 = row[3].parse().expect("decisions/s");
        assert!(decisions > 0.0, "{row:?}");
        // "writer busy / write tx per create": SQLite's one writer was
        // busy, each create took its POST's, its claim's and its spawn
        // result's transactions at least.
        let (busy, writes) = row[7].split_once(" % / ").expect("busy % / writes");
        let busy: f64 = busy.parse().expect("writer busy");
        let writes: f64 = writes.parse().expect("writes per create");
        assert!(busy > 0.0 && writes >= 3.0, "{row:?}");
        assert_eq!(row[12], "0 / 0 / 0 / 0 / 0", "{row:?}");
    }
    assert!(
        stderr.contains("write transactions by kind: ") && stderr.contains("claim 1.00/create"),
        "{stderr}"
    );
    let header = reads.lines().next().expect("the reads header");
    for column in [
        "notifications drained s (left)",
        "RSS with instances, idle MiB",
        "idle CPU with instances",
        "GET /servers/detail?limit=1000 p50 / max ms",
        "page after the middle (marker) p50 / max ms",
        "GET /os-hypervisors/statistics p50 / max ms",
        "GET /os-hypervisors/detail?limit=1000 p50 / max ms",
    ] {
        assert!(header.contains(column), "{column} in {header}");
    }
    let reads = rows(reads);
    assert_eq!(reads.len(), 2, "{stdout}");
    // "p50 / max": two times in ms, 0 < p50 <= max.
    let timing = |cell: &str| {
        let (p50, max) = cell.split_once(" / ").expect("p50 / max");
        let (p50, max): (f64, f64) = (p50.parse().expect("p50"), max.parse().expect("max"));
        assert!(p50 > 0.0 && p50 <= max, "{cell}");
    };
    for row in &reads {
        // | hosts | instances | placed/s | drained s (left) | RSS | CPU | detail | deep
        // | statistics | hypervisors |
        let placed: f64 = row[3].parse().expect("placed/s");
        assert!(
            row[4].ends_with(" (0)"),
            "every notification delivered: {row:?}"
        );
        let rss: f64 = row[5].parse().expect("RSS");
        assert!(rss > 0.0, "{row:?}");
        row[6]
            .trim_end_matches(" %")
            .parse::<f64>()
            .expect("idle CPU");
        for cell in [&row[7], &row[9], &row[10]] {
            timing(cell);
        }
        if row[2] == "0" {
            assert_eq!(placed, 0.0, "{row:?}");
            assert_eq!(row[8], "–", "no page deep inside an empty list: {row:?}");
        } else {
            assert!(placed > 0.0, "{row:?}");
            timing(&row[8]);
        }
    }
}
