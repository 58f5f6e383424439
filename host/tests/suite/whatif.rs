//! What-if, replay and shadow (issue 15) on a real controller over HTTP:
//! three embedded hosts on libvirt's test driver, the shipped WASM plugins,
//! real creates. The candidate set stacks (one weigher: the RAM weigher at
//! −1) where the live set spreads, so it really decides otherwise once a
//! host holds a server.
//!
//! - `POST /novum/v1/scheduling/plan`: where the next server would go, how
//!   many more of the flavor fit per host, zone and aggregate, and with the
//!   candidate set where it would go instead; nothing is claimed; errors in
//!   Nova's fault format.
//! - `POST /novum/v1/decisions/{request_id}/replay`: a real decision run
//!   again with the live set chooses the same host with no verdict
//!   changed; with the candidate set, the host it would have chosen.
//! - `GET /novum/v1/scheduling/shadow`: the shadow (the candidate set, in
//!   `[scheduler.shadow]`) compared every create and disagreed where the
//!   candidate stacks.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{Cloud, IMAGE, server};

/// The candidate set: stack on RAM (the fullest host first).
const STACKING: &str =
    "[scheduler]\nweighers = [\"ram-weigher\"]\n\n[plugins.ram-weigher]\nmultiplier = -1.0\n";

async fn start() -> (Cloud, std::path::PathBuf) {
    let candidate = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("stacking-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&candidate, STACKING).expect("candidate file");
    let shadow_file = candidate.clone();
    let cloud = Cloud::start(move |config| {
        config.agent.embedded_hosts = 3;
        config.agent.embedded_vcpus = 4;
        config.agent.embedded_memory_mb = 4096;
        config.agent.embedded_disk_gb = 100;
        config.scheduler.shadow = Some(novum_scheduler::config::ShadowConfig {
            plugins: shadow_file,
            ..Default::default()
        });
    })
    .await;
    cloud.wait_for_hosts(3).await;
    (cloud, candidate)
}

async fn create(cloud: &Cloud, name: &str) -> String {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/servers",
            Some(server(name, "1")),
            "2.37",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let shown = cloud.wait_status(&id, "ACTIVE").await;
    shown["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .expect("host")
        .to_string()
}

async fn plan(cloud: &Cloud, token: &str, fields: Value) -> (u16, Value) {
    cloud
        .call(
            token,
            Method::POST,
            "/novum/v1/scheduling/plan",
            Some(json!({ "plan": fields })),
            "2.1",
        )
        .await
}

fn chosen(run: &Value) -> String {
    run["decision"]["outcome"]["selections"][0]["host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The request id of the newest logged decision, once it is written.
async fn newest_decision(cloud: &Cloud, count: usize) -> String {
    for _ in 0..100 {
        let (_, body) = cloud
            .call(
                &cloud.admin,
                Method::GET,
                "/novum/v1/decisions?limit=10",
                None,
                "2.1",
            )
            .await;
        let listed = body["decisions"].as_array().cloned().unwrap_or_default();
        if listed.len() >= count {
            return listed[0]["request_id"].as_str().expect("id").to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the decision log never wrote {count} decisions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_replay_and_shadow_over_a_real_cloud() {
    let (cloud, candidate) = start().await;
    let first = create(&cloud, "first").await;

    // What-if: the live set spreads, so not on `first`'s host; the three
    // hosts have 4096 MiB each, 512 reserved for the host (7 × 512 MiB
    // free), `first`'s one less.
    let (status, body) = plan(
        &cloud,
        &cloud.admin,
        json!({"flavor": "m1.tiny", "image": IMAGE}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let live = &body["plan"]["live"];
    let next = chosen(live);
    assert!(!next.is_empty() && next != first, "{body}");
    assert_eq!(live["decision"]["hosts_total"], 3, "{body}");
    assert_eq!(live["decision"]["hosts_passed"], 3, "{body}");
    let capacity = &live["capacity"];
    assert_eq!(capacity["total"], 20, "{body}");
    let fits_on = |host: &str| {
        capacity["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|fit| fit["name"] == host)
            .map(|fit| fit["fits"].clone())
    };
    assert_eq!(fits_on(&first), Some(json!(6)), "{body}");
    assert_eq!(fits_on(&next), Some(json!(7)), "{body}");
    assert_eq!(capacity["availability_zones"][0]["name"], "nova", "{body}");
    assert_eq!(capacity["availability_zones"][0]["fits"], 20, "{body}");
    assert!(body["plan"]["candidate"].is_null(), "{body}");
    // Nothing was claimed: the same plan again answers the same.
    let (_, again) = plan(&cloud, &cloud.admin, json!({"flavor": "1", "image": IMAGE})).await;
    assert_eq!(again["plan"]["live"]["capacity"]["total"], 20, "{again}");
    assert_eq!(chosen(&again["plan"]["live"]), next, "{again}");

    // Three at once: one per host (spread), each counted before the next.
    let (_, three) = plan(
        &cloud,
        &cloud.admin,
        json!({"flavor": "1", "image": IMAGE, "count": 3}),
    )
    .await;
    let selections = three["plan"]["live"]["decision"]["outcome"]["selections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(selections.len(), 3, "{three}");

    // The candidate set stacks: onto `first`'s host, and says why the
    // two differ.
    let (status, body) = plan(
        &cloud,
        &cloud.admin,
        json!({"flavor": "m1.tiny", "image": IMAGE, "plugins": STACKING}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let plan_body = &body["plan"];
    assert_eq!(chosen(&plan_body["candidate"]), first, "{body}");
    assert_eq!(
        plan_body["candidate"]["set"]["weighers"],
        json!([["ram-weigher", -1.0]]),
        "{body}"
    );
    let differences = &plan_body["differences"];
    assert_eq!(differences["same_choice"], false, "{body}");
    assert_eq!(differences["before"], json!([next]), "{body}");
    assert_eq!(differences["after"], json!([first]), "{body}");
    assert!(differences["changed_hosts"].as_u64() >= Some(2), "{body}");

    // Errors, in Nova's fault format.
    let (status, body) = plan(
        &cloud,
        &cloud.admin,
        json!({"flavor": "nope", "image": IMAGE}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Flavor nope could not be found."
    );
    let (status, body) = plan(
        &cloud,
        &cloud.admin,
        json!({"flavor": "1", "image": "nope"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Image nope could not be found."
    );
    let (status, body) = plan(
        &cloud,
        &cloud.admin,
        json!({"flavor": "1", "image": IMAGE, "plugins": "[scheduler]\nfilters = 1\n"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["badRequest"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("invalid candidate plugin set")),
        "{body}"
    );
    let (status, body) = plan(
        &cloud,
        &cloud.admin,
        json!({"flavor": "1", "image": IMAGE,
               "plugins": "[scheduler]\nenabled_filters = [\"mine\"]\n[plugins.mine]\npath = \"/nonexistent/mine.wasm\"\n"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["badRequest"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("plugin mine")),
        "{body}"
    );
    let (status, body) = plan(
        &cloud,
        &cloud.admin,
        json!({"flavor": "1", "image": IMAGE, "count": 4_000_000_000u32}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "count must be 1 to 1000, not 4000000000"
    );
    let (_, _, member) = cloud.tenant("whatif", "whatif-member", "member").await;
    let (status, body) = plan(&cloud, &member, json!({"flavor": "1", "image": IMAGE})).await;
    assert_eq!(status, 403, "{body}");

    // A second create goes where the plan said.
    let second = create(&cloud, "second").await;
    assert_eq!(second, next);
    let request_id = newest_decision(&cloud, 2).await;

    // Replay: the live set decides the same, no verdict changed.
    let replay = |body: Option<Value>| {
        let cloud = &cloud;
        let request_id = request_id.clone();
        async move {
            cloud
                .call(
                    &cloud.admin,
                    Method::POST,
                    &format!("/novum/v1/decisions/{request_id}/replay"),
                    body,
                    "2.1",
                )
                .await
        }
    };
    let (status, body) = replay(None).await;
    assert_eq!(status, 200, "{body}");
    let replayed = &body["replays"][0];
    assert_eq!(replayed["set"]["name"], "live", "{body}");
    assert_eq!(replayed["comparison"]["same_choice"], true, "{body}");
    assert_eq!(replayed["comparison"]["before"], json!([second]), "{body}");
    assert_eq!(replayed["comparison"]["changed_hosts"], 0, "{body}");
    assert_eq!(replayed["hosts_kept"], 3, "{body}");
    // Twice: the same again.
    let (_, again) = replay(Some(json!({"replay": {}}))).await;
    assert_eq!(
        again["replays"][0]["replayed"]["outcome"], replayed["replayed"]["outcome"],
        "{again}"
    );

    // With the candidate set: it would have stacked onto `first`'s host.
    let (status, body) = replay(Some(json!({"replay": {"plugins": STACKING}}))).await;
    assert_eq!(status, 200, "{body}");
    let comparison = &body["replays"][0]["comparison"];
    assert_eq!(comparison["same_choice"], false, "{body}");
    assert_eq!(comparison["after"], json!([first]), "{body}");
    let (status, body) = replay(Some(json!({"replay": {"plugins": "nonsense ="}}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = cloud
        .call(
            &cloud.admin,
            Method::POST,
            "/novum/v1/decisions/req-nothing/replay",
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["itemNotFound"]["message"].is_string(), "{body}");

    // A candidate with one more filter: at most one server per host. The
    // two hosts holding one are rejected by it, with its reason.
    let one_each = "[scheduler]\nenabled_filters = [\"compute-filter\", \"num-instances-filter\"]\n\n\
                    [plugins.num-instances-filter]\nconfig = { max_instances_per_host = 1 }\n";
    let (status, body) = plan(
        &cloud,
        &cloud.admin,
        json!({"flavor": "1", "image": IMAGE, "plugins": one_each}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let candidate_run = &body["plan"]["candidate"];
    assert_eq!(candidate_run["decision"]["hosts_passed"], 1, "{body}");
    assert_eq!(
        candidate_run["decision"]["reasons"],
        json!([{"plugin": "num-instances-filter", "hosts": 2}]),
        "{body}"
    );
    assert_eq!(
        candidate_run["capacity"]["hosts"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    let rejected: Vec<&Value> = body["plan"]["differences"]["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|change| change["after"]["verdict"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 2, "{body}");
    assert!(
        rejected
            .iter()
            .all(|change| change["after"]["plugin"] == "num-instances-filter"
                && change["before"]["verdict"] == "passed"),
        "{body}"
    );

    // The shadow compared both creates: the first agreed (every host
    // empty), the second not (the candidate stacks).
    let mut report = Value::Null;
    for _ in 0..100 {
        let (status, body) = cloud
            .call(
                &cloud.admin,
                Method::GET,
                "/novum/v1/scheduling/shadow",
                None,
                "2.1",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        report = body["shadow"].clone();
        if report["compared"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(report["compared"], 2, "{report}");
    assert_eq!(report["agreed"], 1, "{report}");
    assert_eq!(report["disagreed"], 1, "{report}");
    assert_eq!(report["dropped"], 0, "{report}");
    assert_eq!(
        report["by_hosts"],
        json!([{"production": second, "shadow": first, "count": 1}]),
        "{report}"
    );
    let recent = &report["recent"][0];
    assert_eq!(recent["request_id"], request_id.as_str(), "{report}");
    assert!(
        recent["why"].as_array().is_some_and(|why| why.len() >= 2),
        "{report}"
    );
    let (status, _) = cloud
        .call(
            &member,
            Method::GET,
            "/novum/v1/scheduling/shadow",
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 403);

    cloud.stop().await;
    let _ = std::fs::remove_file(candidate);
}
