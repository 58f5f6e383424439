//! The decision log (issue 15, "explain") on SQLite and PostgreSQL: real
//! decisions of the real pipeline with the shipped WASM plugins, handed to
//! the log without waiting, written by its own task, the table trimmed to
//! `decision_log_size`, each decision read back by request id with every
//! rejection and the weighed ranking; and `GET /novum/v1/decisions` through
//! the real router: an admin sees everything, the requesting project the
//! summary, another project nothing. The inputs a replay needs are kept on
//! the newest `decision_replay_size` rows, and a replay with the same set
//! decides the same.

use axum::http::{Method, StatusCode};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::api_common::{TestApp, backends};
use crate::common::{cloud, load, plugins_config, request};
use novum_compute::conductor::decisions::DecisionLog;
use novum_compute::store::decisions as store;
use novum_plugin_host::PluginSet;
use novum_scheduler::explain::Outcome;
use novum_scheduler::whatif::{self, DecisionInputs};
use novum_scheduler::{CloudSnapshot, NoClaims, SchedulerConfig};

/// The plugins the decisions run: a filter that rejects (disabled and down
/// hosts) and two weighers that rank.
fn plugins() -> PluginSet {
    load(
        &["compute-filter"],
        &["ram-weigher", "cpu-weigher"],
        &plugins_config(),
    )
}

/// Four hosts: host-0 down, host-1 disabled, host-2 and host-3 healthy
/// (host-3 with the most free RAM).
fn hosts() -> CloudSnapshot {
    let mut hosts = cloud(4).host_states();
    hosts[0].service_up = false;
    hosts[1].service_disabled = true;
    CloudSnapshot::new(hosts, Vec::new())
}

/// Schedules request `request_id` of `project` through `log`: placed when
/// `fits`, else a flavor no host can hold (rejected by the capacity check).
fn decide(
    log: &DecisionLog,
    set: &PluginSet,
    snapshot: &CloudSnapshot,
    request_id: &str,
    project: &str,
    fits: bool,
) {
    let mut scheduling = request(None);
    scheduling.request_id = request_id.to_string();
    scheduling.request.project_id = project.to_string();
    scheduling.check_capacity = true;
    if !fits {
        scheduling.request.flavor.vcpus = 64;
    }
    let result = log.schedule(
        "build",
        set,
        &SchedulerConfig::default(),
        snapshot,
        scheduling,
        &NoClaims,
        &mut StdRng::seed_from_u64(1),
    );
    assert_eq!(result.is_ok(), fits, "{result:?}");
}

fn config(size: u64) -> SchedulerConfig {
    SchedulerConfig {
        decision_log_size: size,
        decision_log_top_hosts: 10,
        ..SchedulerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_written_off_the_path_bounded_and_read_by_request() {
    let set = plugins();
    let snapshot = hosts();
    for backend in backends().await {
        let name = backend.name;
        let log = DecisionLog::new(backend.db.clone(), "controller-a", &config(5));

        // Recorded before the writer runs: nothing is written on the
        // decision's path.
        for index in 0..3 {
            decide(&log, &set, &snapshot, &format!("req-{index}"), "p", true);
        }
        assert_eq!(store::count(&backend.db).await.expect("count"), 0, "{name}");
        let writer = log.start().expect("the writer starts");
        assert!(log.start().is_none(), "{name}: one writer only");
        log.flush().await;
        assert_eq!(store::count(&backend.db).await.expect("count"), 3, "{name}");

        // Seven more: the table keeps the newest five.
        for index in 3..10 {
            decide(
                &log,
                &set,
                &snapshot,
                &format!("req-{index}"),
                "p",
                index != 9,
            );
        }
        log.flush().await;
        assert_eq!(store::count(&backend.db).await.expect("count"), 5, "{name}");
        assert!(
            store::for_request(&backend.db, "req-4")
                .await
                .expect("read")
                .is_empty(),
            "{name}: the oldest went"
        );
        let page = store::page(&backend.db, 10, None).await.expect("page");
        let ids: Vec<&str> = page.iter().map(|entry| entry.request_id.as_str()).collect();
        assert_eq!(ids, ["req-9", "req-8", "req-7", "req-6", "req-5"], "{name}");
        let older = store::page(&backend.db, 2, Some(page[1].id))
            .await
            .expect("page after a marker");
        let ids: Vec<&str> = older
            .iter()
            .map(|entry| entry.request_id.as_str())
            .collect();
        assert_eq!(ids, ["req-7", "req-6"], "{name}");

        // A placement: the filter's rejections and the ranking with each
        // weigher's part.
        let placed = store::for_request(&backend.db, "req-8")
            .await
            .expect("read");
        assert_eq!(placed.len(), 1, "{name}");
        let decision = &placed[0].decision;
        assert_eq!(placed[0].controller, "controller-a");
        assert_eq!(decision.purpose, "build");
        assert_eq!(decision.instance_uuids, ["instance-0"]);
        assert_eq!(decision.request.flavor.name, "m1.small");
        assert_eq!((decision.hosts_total, decision.hosts_passed), (4, 2));
        let Outcome::Placed { selections } = &decision.outcome else {
            panic!("{name}: placed, not {:?}", decision.outcome)
        };
        assert_eq!(selections[0].host, "host-3");
        let rejected: Vec<(&str, &str, Vec<&str>)> = decision
            .rejections
            .iter()
            .map(|group| {
                (
                    group.plugin.as_str(),
                    group.reason.as_str(),
                    group.hosts.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(rejected.len(), 2, "{name}: {rejected:?}");
        assert!(
            rejected
                .iter()
                .all(|(plugin, reason, hosts)| *plugin == "compute-filter"
                    && !reason.is_empty()
                    && hosts.len() == 1),
            "{name}: {rejected:?}"
        );
        assert_eq!(decision.reasons.len(), 1);
        assert_eq!(decision.reasons[0].hosts, 2);
        let ranking: Vec<&str> = decision
            .ranking
            .iter()
            .map(|host| host.host.as_str())
            .collect();
        assert_eq!(ranking, ["host-3", "host-2"], "{name}");
        let best = &decision.ranking[0];
        assert!(best.selected && !decision.ranking[1].selected);
        let ram = best
            .weighers
            .iter()
            .find(|part| part.weigher == "ram-weigher")
            .expect("the RAM weigher's part");
        // host-3 has the more free RAM of the two (100 MiB more).
        let second_ram = decision.ranking[1]
            .weighers
            .iter()
            .find(|part| part.weigher == "ram-weigher")
            .expect("the RAM weigher's part");
        let (Some(best_raw), Some(second_raw)) = (ram.raw, second_ram.raw) else {
            panic!("{name}: raw RAM weights: {ram:?} {second_ram:?}")
        };
        assert_eq!(
            best_raw - second_raw,
            100.0,
            "{name}: {ram:?} {second_ram:?}"
        );
        assert_eq!(ram.normalized, Some(1.0), "{name}: {ram:?}");
        assert_eq!(ram.multiplier, 1.0);
        assert_eq!(ram.weighted, 1.0);
        let total: f64 = best.weighers.iter().map(|part| part.weighted).sum();
        assert!((total - best.total).abs() < 1e-9, "{name}: {best:?}");

        // No valid host: every host's rejection, and the fault's message.
        let failed = store::for_request(&backend.db, "req-9")
            .await
            .expect("read");
        let decision = &failed[0].decision;
        let Outcome::NoValidHost { message } = &decision.outcome else {
            panic!("{name}: no valid host, not {:?}", decision.outcome)
        };
        assert!(
            message.starts_with("No valid host was found. There are not enough hosts available.")
                && message.contains("placement rejected 4 hosts")
                && message.ends_with("novum decision show req-9"),
            "{name}: {message}"
        );
        let hosts: Vec<&str> = decision
            .rejections
            .iter()
            .flat_map(|group| group.hosts.iter().map(String::as_str))
            .collect();
        assert_eq!(hosts, ["host-0", "host-1", "host-2", "host-3"], "{name}");
        assert!(decision.ranking.is_empty());
        writer.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_log_keeps_nothing() {
    let set = plugins();
    let snapshot = hosts();
    for backend in backends().await {
        let log = DecisionLog::new(backend.db.clone(), "controller-a", &config(0));
        assert!(log.start().is_none());
        decide(&log, &set, &snapshot, "req-0", "p", true);
        log.flush().await;
        assert_eq!(store::count(&backend.db).await.expect("count"), 0);
    }
}

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let reply = app.call(Method::GET, path, Some(token), Value::Null).await;
    (reply.status, reply.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_everything_members_their_summary_others_nothing() {
    let set = plugins();
    let snapshot = hosts();
    for backend in backends().await {
        let app = TestApp::start(&backend).await;
        let admin = app.admin_token().await;
        let (owner_project, _, owner) = app.project_user(&admin, "owners", "owner", "member").await;
        let (_, _, stranger) = app
            .project_user(&admin, "strangers", "stranger", "member")
            .await;
        let log = app.state.conductor.decisions();
        decide(log, &set, &snapshot, "req-fail", &owner_project, false);
        decide(log, &set, &snapshot, "req-placed", &owner_project, true);
        log.flush().await;

        let (status, body) = get(&app, &admin, "/novum/v1/decisions/req-fail").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let decision = &body["decisions"][0];
        assert_eq!(decision["outcome"]["result"], "no_valid_host", "{body}");
        assert_eq!(decision["rejections"][0]["plugin"], "placement", "{body}");
        assert_eq!(
            decision["rejections"][0]["hosts"].as_array().map(Vec::len),
            Some(4),
            "{body}"
        );
        let (_, body) = get(&app, &admin, "/novum/v1/decisions/req-placed").await;
        let ranking = &body["decisions"][0]["ranking"];
        assert_eq!(ranking[0]["host"], "host-3", "{body}");
        assert!(
            ranking[0]["weighers"][0]["normalized"].is_number(),
            "{body}"
        );

        // The owner: the summary, no host anywhere.
        let (status, body) = get(&app, &owner, "/novum/v1/decisions/req-fail").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let summary = &body["decisions"][0];
        assert_eq!(summary["result"], "no_valid_host", "{body}");
        assert_eq!(summary["reasons"][0]["plugin"], "placement", "{body}");
        assert_eq!(summary["reasons"][0]["hosts"], 4, "{body}");
        for hidden in [
            "rejections",
            "ranking",
            "outcome",
            "filter_results",
            "controller",
        ] {
            assert!(summary.get(hidden).is_none(), "{hidden} shown: {body}");
        }
        assert!(!body.to_string().contains("host-"), "{body}");
        let (_, body) = get(&app, &owner, "/novum/v1/decisions/req-placed").await;
        assert!(!body.to_string().contains("host-"), "{body}");

        // Another project, and an unknown request: 404.
        let (status, body) = get(&app, &stranger, "/novum/v1/decisions/req-fail").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(body["itemNotFound"]["message"].is_string(), "{body}");
        let (status, _) = get(&app, &admin, "/novum/v1/decisions/req-nothing").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The list: admins only, newest first, pages after a marker.
        let (status, body) = get(&app, &admin, "/novum/v1/decisions?limit=1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["decisions"][0]["request_id"], "req-placed", "{body}");
        let marker = body["decisions"][0]["id"].as_i64().expect("an id");
        let (_, body) = get(
            &app,
            &admin,
            &format!("/novum/v1/decisions?limit=5&marker={marker}"),
        )
        .await;
        let listed: Vec<&str> = body["decisions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["request_id"].as_str())
            .collect();
        assert_eq!(listed, ["req-fail"], "{body}");
        let (status, _) = get(&app, &owner, "/novum/v1/decisions").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = get(&app, &admin, "/novum/v1/decisions?marker=abc").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

/// A started log on `db` that keeps the inputs of its newest two
/// decisions, its settings and its writer.
fn log_keeping_two_inputs(
    db: &novum_db::Db,
) -> (SchedulerConfig, DecisionLog, tokio::task::JoinHandle<()>) {
    let config = SchedulerConfig {
        decision_replay_size: 2,
        ..config(10)
    };
    let log = DecisionLog::new(db.clone(), "controller-a", &config);
    let writer = log.start().expect("the writer starts");
    (config, log, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_kept_on_the_newest_and_replay_the_same() {
    let set = plugins();
    let snapshot = hosts();
    for backend in backends().await {
        let name = backend.name;
        let (config, log, writer) = log_keeping_two_inputs(&backend.db);
        for index in 0..4 {
            decide(&log, &set, &snapshot, &format!("req-{index}"), "p", true);
            // One batch each: the trim runs after every one.
            log.flush().await;
        }
        let mut kept = Vec::new();
        for index in 0..4 {
            let stored = store::for_request(&backend.db, &format!("req-{index}"))
                .await
                .expect("read");
            let inputs = store::inputs(&backend.db, stored[0].id)
                .await
                .expect("inputs");
            kept.push(inputs.is_some());
            if let Some(text) = inputs {
                // The hosts the plugins saw (all four passed the capacity
                // check), and the same decision again with the same set.
                let (inputs, total) = DecisionInputs::decode(&text).expect("decodes");
                assert_eq!((inputs.hosts.len(), total), (4, 4), "{name}");
                let replayed = whatif::replay(&set, &config, &inputs, novum_db::now());
                let comparison = whatif::compare(&stored[0].decision, &replayed);
                assert!(comparison.same_choice, "{name}: {comparison:?}");
                assert_eq!(comparison.changed_hosts, 0, "{name}: {comparison:?}");
                assert_eq!(comparison.after, ["host-3"], "{name}");
            }
        }
        assert_eq!(kept, [false, false, true, true], "{name}");
        writer.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_keeps_the_inputs_of_its_newest_once_quiet() {
    let set = plugins();
    let snapshot = hosts();
    for backend in backends().await {
        let name = backend.name;
        let (_, log, writer) = log_keeping_two_inputs(&backend.db);
        // No flush: the writer encodes once no decision came for a while.
        for index in 0..6 {
            decide(&log, &set, &snapshot, &format!("burst-{index}"), "p", true);
        }
        let mut kept = Vec::new();
        for _ in 0..100 {
            kept.clear();
            for index in 0..6 {
                let stored = store::for_request(&backend.db, &format!("burst-{index}"))
                    .await
                    .expect("read");
                let inputs = match stored.first() {
                    Some(stored) => store::inputs(&backend.db, stored.id).await.expect("inputs"),
                    None => None,
                };
                kept.push(inputs.is_some());
            }
            if kept == [false, false, false, false, true, true] {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(kept, [false, false, false, false, true, true], "{name}");
        writer.abort();
    }
}
