//! Issue 15's "explain" over the real binaries: a server no host can take
//! ends in ERROR with a fault (as `openstack server show` prints it) naming
//! the top reasons with their host counts and the request id of its
//! decision; `GET /novum/v1/decisions/{request_id}` shows the admin every
//! host's rejection, the owner only the summary, another project nothing;
//! a placed server's decision shows the ranking with each weigher's part;
//! `novum decision show` prints both.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use novum_tests::{Cloud, novum_cli, openstack, openstack_json, openstack_json_with};

/// Polls `openstack server show NAME` (as `env`) until it leaves BUILD.
fn settled(env: &[(&'static str, String)], name: &str) -> anyhow::Result<Value> {
    for _ in 0..300 {
        let shown = openstack_json_with(env.to_vec(), &["server", "show", name])?;
        if shown["status"] != "BUILD" {
            return Ok(shown);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("server {name} stayed in BUILD")
}

/// The request id of the `create` action of server `name` (`openstack
/// server event list`), as `env` sees it.
fn create_request_id(env: &[(&'static str, String)], name: &str) -> anyhow::Result<String> {
    let events = openstack_json_with(env.to_vec(), &["server", "event", "list", name])?;
    events
        .as_array()
        .into_iter()
        .flatten()
        .find(|event| event["Action"] == "create")
        .and_then(|event| event["Request ID"].as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no create event for {name}: {events}"))
}

/// `GET path` as `token` once the decision log's writer has written it
/// (decisions are written off the scheduling path, a moment later).
fn written(cloud: &Cloud, token: &str, path: &str) -> anyhow::Result<Value> {
    for _ in 0..50 {
        let (status, _, body) = cloud.request(token, Method::GET, path, None)?;
        match status {
            200 => return Ok(body),
            404 => std::thread::sleep(Duration::from_millis(100)),
            other => anyhow::bail!("GET {path} answered {other}: {body}"),
        }
    }
    anyhow::bail!("GET {path}: no decision written within 5 s")
}

#[test]
fn no_valid_host_explained_through_fault_api_and_cli() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start("decisions", "[agent]\nembedded_hosts = 2\n")?;
    let admin = cloud.admin_token()?;
    let image = cloud.create_image(&admin, "decisions-image")?;
    openstack(
        &cloud,
        &[
            // More RAM than a host has (16 GiB, ratio 1.0), within the
            // project's quota.
            "flavor", "create", "--vcpus", "1", "--ram", "32768", "--disk", "1", "--public",
            "e2e.huge",
        ],
    )?;
    let services = openstack_json(
        &cloud,
        &["compute", "service", "list", "--service", "nova-compute"],
    )?;
    let mut compute_hosts: Vec<String> = services
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|service| service["Host"].as_str().map(str::to_string))
        .collect();
    compute_hosts.sort();
    assert_eq!(compute_hosts.len(), 2, "{services}");
    let owner = cloud.project_member(&admin, "explained", "explained-owner")?;
    let stranger = cloud.project_member(&admin, "elsewhere", "elsewhere-member")?;
    let owner_env = cloud.member_env(&owner);

    // A server too large for any host: ERROR, and the fault says why.
    openstack_json_with(
        owner_env.clone(),
        &[
            "server", "create", "--flavor", "e2e.huge", "--image", &image, "--nic", "none",
            "doomed",
        ],
    )?;
    let shown = settled(&owner_env, "doomed")?;
    assert_eq!(shown["status"], "ERROR", "{shown}");
    let request_id = create_request_id(&owner_env, "doomed")?;
    let fault = &shown["fault"];
    println!("openstack server show doomed (owner): fault {fault}");
    let message = fault["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("No valid host was found.")
            && message.contains("Top reasons: placement rejected 2 hosts.")
            && message.contains(&format!("novum decision show {request_id}")),
        "{fault}"
    );
    assert!(
        fault.get("details").is_none(),
        "the owner sees no details: {fault}"
    );

    // The admin: every host's rejection.
    let path = format!("/novum/v1/decisions/{request_id}");
    let body = written(&cloud, &admin, &path)?;
    let decision = &body["decisions"][0];
    assert_eq!(decision["outcome"]["result"], "no_valid_host", "{body}");
    assert_eq!(decision["request"]["flavor"]["name"], "e2e.huge", "{body}");
    assert_eq!(decision["request"]["project_id"], owner.project_id.as_str());
    let mut rejected: Vec<String> = decision["rejections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|group| group["plugin"] == "placement")
        .flat_map(|group| group["hosts"].as_array().cloned().unwrap_or_default())
        .filter_map(|host| host.as_str().map(str::to_string))
        .collect();
    rejected.sort();
    assert_eq!(rejected, compute_hosts, "{body}");
    assert!(
        decision["rejections"][0]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("insufficient MEMORY_MB")),
        "{body}"
    );

    // The owner: the summary; another project: 404.
    let (_, body) = cloud.call(&owner.token, Method::GET, &path, None)?;
    let summary = &body["decisions"][0];
    assert_eq!(summary["result"], "no_valid_host", "{body}");
    assert_eq!(summary["reasons"][0]["plugin"], "placement", "{body}");
    assert_eq!(summary["reasons"][0]["hosts"], 2, "{body}");
    assert!(summary.get("rejections").is_none(), "{body}");
    for host in &compute_hosts {
        assert!(!body.to_string().contains(host.as_str()), "{body}");
    }
    let (status, _, body) = cloud.request(&stranger.token, Method::GET, &path, None)?;
    assert_eq!(status, 404, "{body}");

    // `novum decision show`: the admin's rejections by plugin with host
    // names, the owner's counts.
    let printed = novum_cli(cloud.cli_env(), &["decision", "show", &request_id])?;
    println!("novum decision show {request_id} (admin):\n{printed}");
    assert!(printed.contains("Rejected hosts, by plugin"), "{printed}");
    assert!(printed.contains("placement: 2 hosts"), "{printed}");
    assert!(printed.contains("e2e.huge"), "{printed}");
    for host in &compute_hosts {
        assert!(printed.contains(host.as_str()), "{printed}");
    }
    let printed = novum_cli(owner_env.clone(), &["decision", "show", &request_id])?;
    println!("novum decision show {request_id} (owner):\n{printed}");
    assert!(printed.contains("placement: 2 hosts"), "{printed}");
    assert!(printed.contains("no_valid_host"), "{printed}");
    for host in &compute_hosts {
        assert!(!printed.contains(host.as_str()), "{printed}");
    }

    // A placed server: its decision ranks both hosts, weigher by weigher.
    let placed = openstack_json_with(
        owner_env.clone(),
        &[
            "server", "create", "--flavor", "m1.tiny", "--image", &image, "--nic", "none",
            "--wait", "placed",
        ],
    )?;
    assert_eq!(placed["status"], "ACTIVE", "{placed}");
    let request_id = create_request_id(&owner_env, "placed")?;
    // The admin names it by id: by name, its own project's are looked up.
    let placed_id = placed["id"].as_str().unwrap_or_default();
    let host = openstack_json(&cloud, &["server", "show", placed_id])?["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let body = written(&cloud, &admin, &format!("/novum/v1/decisions/{request_id}"))?;
    let decision = &body["decisions"][0];
    assert_eq!(decision["outcome"]["result"], "placed", "{body}");
    assert_eq!(decision["outcome"]["selections"][0]["host"], host.as_str());
    let ranking = decision["ranking"].as_array().cloned().unwrap_or_default();
    assert_eq!(ranking.len(), 2, "{body}");
    assert_eq!(ranking[0]["host"], host.as_str(), "{body}");
    assert_eq!(ranking[0]["selected"], true, "{body}");
    let ram = ranking[0]["weighers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|part| part["weigher"] == "ram-weigher")
        .cloned()
        .unwrap_or_default();
    assert!(
        ram["raw"].is_number() && ram["normalized"].is_number() && ram["multiplier"] == 1.0,
        "{body}"
    );
    let printed = novum_cli(cloud.cli_env(), &["decision", "show", &request_id])?;
    println!("novum decision show {request_id} (admin):\n{printed}");
    assert!(printed.contains(&format!("placed on {host}")), "{printed}");
    assert!(
        printed.contains("Ranking (best 2 of 2 candidates"),
        "{printed}"
    );
    assert!(printed.contains("ram-weigher"), "{printed}");
    let listed = novum_cli(cloud.cli_env(), &["decision", "list"])?;
    assert!(listed.contains(&request_id), "{listed}");
    Ok(())
}
