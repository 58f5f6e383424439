//! Issue 15's what-if, replay and shadow over the real binaries, driven by
//! the `novum` CLI the README walks an operator through: a three-host
//! cloud with a shadow set configured (`[scheduler.shadow]`: stack on RAM
//! instead of spreading), real creates with the real `openstack` CLI;
//! `novum plan` says where the next server goes and how many fit, and with
//! `--plugins` where the candidate would put it; the next create goes where
//! the plan said; `novum decision replay` reproduces that decision with the
//! live set and shows the change with the candidate; `novum plugin shadow
//! report` counts where the shadow disagreed; `novum plugin test
//! --decisions-from` runs a plugin over the hosts a decision saw; the
//! candidate is switched on with `novum plugin reload` and the next create
//! follows it.

use std::time::Duration;

use serde_json::Value;

use novum_tests::{Cloud, novum_cli, openstack_json, openstack_json_with};

/// The candidate set: stack on RAM (the fullest host first).
const STACKING: &str =
    "[scheduler]\nweighers = [\"ram-weigher\"]\n\n[plugins.ram-weigher]\nmultiplier = -1.0\n";

/// The candidate file, removed when the test ends.
struct CandidateFile(std::path::PathBuf);

impl Drop for CandidateFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates server `name` (m1.tiny) and waits for ACTIVE; returns its host.
fn create(cloud: &Cloud, image: &str, name: &str) -> anyhow::Result<String> {
    let created = openstack_json(
        cloud,
        &[
            "server", "create", "--flavor", "m1.tiny", "--image", image, "--nic", "none", "--wait",
            name,
        ],
    )?;
    anyhow::ensure!(created["status"] == "ACTIVE", "{created}");
    let id = created["id"].as_str().unwrap_or_default();
    Ok(
        openstack_json(cloud, &["server", "show", id])?["OS-EXT-SRV-ATTR:host"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The request id of server `name`'s create.
fn create_request_id(cloud: &Cloud, name: &str) -> anyhow::Result<String> {
    let events = openstack_json_with(cloud.cli_env(), &["server", "event", "list", name])?;
    events
        .as_array()
        .into_iter()
        .flatten()
        .find(|event| event["Action"] == "create")
        .and_then(|event| event["Request ID"].as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no create event for {name}: {events}"))
}

/// `novum plan … -f json`, parsed.
fn plan_json(cloud: &Cloud, extra: &[&str]) -> anyhow::Result<Value> {
    let mut args = vec![
        "plan",
        "--flavor",
        "m1.tiny",
        "--image",
        "whatif-image",
        "-f",
        "json",
    ];
    args.extend_from_slice(extra);
    Ok(serde_json::from_str(&novum_cli(cloud.cli_env(), &args)?)?)
}

fn chosen(run: &Value) -> String {
    run["decision"]["outcome"]["selections"][0]["host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `novum plugin shadow report` once the shadow compared `count` decisions.
fn shadow_report(cloud: &Cloud, count: u64) -> anyhow::Result<(Value, String)> {
    for _ in 0..100 {
        let report: Value = serde_json::from_str(&novum_cli(
            cloud.cli_env(),
            &["plugin", "shadow", "report", "--json"],
        )?)?;
        if report["shadow"]["compared"].as_u64() >= Some(count) {
            let printed = novum_cli(cloud.cli_env(), &["plugin", "shadow", "report"])?;
            return Ok((report, printed));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("the shadow never compared {count} decisions")
}

#[test]
fn plan_replay_shadow_and_switch_through_the_cli() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let candidate = CandidateFile(
        std::env::temp_dir().join(format!("novum-e2e-stacking-{}.toml", std::process::id())),
    );
    std::fs::write(&candidate.0, STACKING)?;
    let candidate_path = candidate.0.display().to_string();
    let cloud = Cloud::start(
        "whatif",
        &format!(
            "[agent]\nembedded_hosts = 3\n\n[scheduler]\n# weighers\n\n[scheduler.shadow]\nplugins = {candidate_path:?}\n"
        ),
    )?;
    let admin = cloud.admin_token()?;
    let image = cloud.create_image(&admin, "whatif-image")?;
    let first = create(&cloud, &image, "first")?;

    // Where would the next go? The live set spreads: not on `first`'s host.
    let printed = novum_cli(
        cloud.cli_env(),
        &["plan", "--flavor", "m1.tiny", "--image", "whatif-image"],
    )?;
    println!("novum plan --flavor m1.tiny --image whatif-image:\n{printed}");
    let plan = plan_json(&cloud, &[])?;
    let next = chosen(&plan["plan"]["live"]);
    assert!(!next.is_empty() && next != first, "{plan}");
    assert!(printed.contains(&format!("would go   {next}")), "{printed}");
    let capacity = &plan["plan"]["live"]["capacity"];
    let total = capacity["total"].as_u64().unwrap_or(0);
    let per_host: Vec<u64> = capacity["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|fit| fit["fits"].as_u64())
        .collect();
    assert_eq!(per_host.len(), 3, "{plan}");
    assert_eq!(per_host.iter().sum::<u64>(), total, "{plan}");
    // `first`'s host fits one fewer than the empty ones.
    assert_eq!(per_host[0] - per_host[2], 1, "{plan}");
    assert!(
        printed.contains(&format!("fits       {total} more m1.tiny")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("per zone   nova {total} (3 hosts)")),
        "{printed}"
    );

    // A candidate set: it would stack onto `first`'s host.
    let printed = novum_cli(
        cloud.cli_env(),
        &[
            "plan",
            "--flavor",
            "m1.tiny",
            "--image",
            "whatif-image",
            "--plugins",
            &candidate_path,
        ],
    )?;
    println!("novum plan … --plugins {candidate_path}:\n{printed}");
    assert!(printed.contains("Candidate set (filters:"), "{printed}");
    assert!(printed.contains("weighers: ram-weigher×-1"), "{printed}");
    assert!(printed.contains("CHOICE DIFFERS"), "{printed}");
    assert!(
        printed.contains(&format!("candidate  {first} (placed)")),
        "{printed}"
    );
    let plan = plan_json(&cloud, &["--plugins", &candidate_path])?;
    assert_eq!(chosen(&plan["plan"]["candidate"]), first, "{plan}");

    // Errors: Nova's fault message.
    let error = novum_cli(
        cloud.cli_env(),
        &["plan", "--flavor", "nope", "--image", "whatif-image"],
    )
    .expect_err("an unknown flavor fails");
    assert!(
        error
            .to_string()
            .contains("Flavor nope could not be found."),
        "{error}"
    );

    // The next create goes where the plan said.
    let second = create(&cloud, &image, "second")?;
    assert_eq!(second, next);
    let request_id = create_request_id(&cloud, "second")?;

    // Replay with the live set: the same host, no verdict changed.
    let mut printed = String::new();
    for _ in 0..50 {
        match novum_cli(cloud.cli_env(), &["decision", "replay", &request_id]) {
            Ok(out) => {
                printed = out;
                break;
            }
            // Written a moment after the decision, off its path.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    println!("novum decision replay {request_id}:\n{printed}");
    assert!(printed.contains("with the live set"), "{printed}");
    assert!(printed.contains("same choice"), "{printed}");
    assert!(printed.contains("no host's verdict differs"), "{printed}");
    assert!(
        printed.contains(&format!("original   {second} (placed)")),
        "{printed}"
    );
    // With the candidate: it would have stacked onto `first`'s host.
    let printed = novum_cli(
        cloud.cli_env(),
        &[
            "decision",
            "replay",
            &request_id,
            "--plugins",
            &candidate_path,
        ],
    )?;
    println!("novum decision replay {request_id} --plugins {candidate_path}:\n{printed}");
    assert!(printed.contains("with the candidate set"), "{printed}");
    assert!(printed.contains("CHOICE DIFFERS"), "{printed}");
    assert!(
        printed.contains(&format!("replayed   {first} (placed)")),
        "{printed}"
    );

    // `novum plugin test --decisions-from`: a plugin run over the hosts that
    // decision's plugins saw (kept with its inputs), not a synthetic cloud:
    // at most one instance per host rejects `first`'s host alone.
    if let Some(filter) = novum_tests::test_plugin("num-instances-filter") {
        let cache = cloud.data_dir.join("plugin-test-cache");
        let printed = novum_cli(
            cloud.cli_env(),
            &[
                "plugin",
                "test",
                &filter.display().to_string(),
                "--decisions-from",
                &request_id,
                "--set",
                "max_instances_per_host=1",
                "--cache-dir",
                &cache.display().to_string(),
            ],
        )?;
        println!("novum plugin test … --decisions-from {request_id}:\n{printed}");
        assert!(
            printed.contains("recorded hosts: 3 (as the decision's plugins saw them)"),
            "{printed}"
        );
        let verdict = |host: &str| {
            printed
                .lines()
                .find(|line| line.split_whitespace().next() == Some(host))
                .map(|line| {
                    line.split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string()
                })
        };
        assert_eq!(verdict(&first).as_deref(), Some("reject"), "{printed}");
        let passed = printed
            .lines()
            .filter(|line| line.split_whitespace().nth(1) == Some("pass"))
            .count();
        assert_eq!(passed, 2, "{printed}");
    } else {
        println!("skipped plugin test --decisions-from: num-instances-filter is not built");
    }

    // The shadow saw both creates: agreed on the first (empty hosts),
    // differed on the second.
    let (report, printed) = shadow_report(&cloud, 2)?;
    println!("novum plugin shadow report:\n{printed}");
    assert_eq!(report["shadow"]["agreed"], 1, "{report}");
    assert_eq!(report["shadow"]["disagreed"], 1, "{report}");
    assert!(
        printed.contains("compared 2: agreed 1 (50.0 %), disagreed 1 (50.0 %), dropped 0"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("{second} → {first}: 1")),
        "{printed}"
    );

    // Switch it on: the candidate into the configuration, reloaded.
    let config = std::fs::read_to_string(&cloud.config_path)?
        .replace("# weighers", "weighers = [\"ram-weigher\"]")
        + "\n[plugins.ram-weigher]\nmultiplier = -1.0\n";
    std::fs::write(&cloud.config_path, config)?;
    let printed = novum_cli(cloud.cli_env(), &["plugin", "reload"])?;
    assert!(printed.contains("ram-weigher"), "{printed}");
    let plan = plan_json(&cloud, &["--plugins", &candidate_path])?;
    let stacked = chosen(&plan["plan"]["live"]);
    assert_eq!(plan["plan"]["differences"]["same_choice"], true, "{plan}");
    assert!(stacked == first || stacked == second, "{plan}");
    let third = create(&cloud, &image, "third")?;
    assert_eq!(third, stacked);
    let (report, _) = shadow_report(&cloud, 3)?;
    assert_eq!(report["shadow"]["agreed"], 2, "{report}");
    Ok(())
}
