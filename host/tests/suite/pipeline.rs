//! The scheduling pipeline with the shipped plugins: force/ignore hosts, a
//! requested destination, the
//! "no valid host" explanation, multi-instance consumption, aggregate
//! multiplier overrides, claims, and WASM/native equivalence on random clouds.

use crate::common;

use std::cell::RefCell;

use common::{cloud, load, request};
use novum_plugin_host::{Backend, PluginSet, PluginsConfig};
use novum_scheduler::{
    Aggregate, ClaimOutcome, Claimer, CloudSnapshot, HostState, NoClaims, ScheduleError,
    SchedulerConfig, SchedulingRequest, schedule, synthetic,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn run(
    set: &PluginSet,
    snapshot: &CloudSnapshot,
    request: &SchedulingRequest,
) -> Result<Vec<novum_scheduler::Selection>, ScheduleError> {
    schedule(
        set,
        &SchedulerConfig::default(),
        snapshot,
        request,
        &NoClaims,
        &mut StdRng::seed_from_u64(3),
    )
}

#[test]
fn ignore_and_force_hosts_as_the_host_manager() {
    let set = load(
        &["compute-filter"],
        &["ram-weigher"],
        &common::plugins_config(),
    );
    let snapshot = cloud(4);
    // host-3 has the most free RAM.
    assert_eq!(
        run(&set, &snapshot, &request(None)).expect("ok")[0].host,
        "host-3"
    );

    let mut ignoring = request(None);
    ignoring.ignore_hosts = vec!["host-3".into()];
    let selection = run(&set, &snapshot, &ignoring).expect("ok");
    assert_eq!(selection[0].host, "host-2");
    assert_eq!(selection[0].alternates, ["host-1", "host-0"]);

    // Forcing skips the filters, as in Nova: even a disabled host is taken.
    let mut hosts = snapshot.host_states();
    hosts[0].service_disabled = true;
    let disabled = CloudSnapshot::new(hosts, Vec::new());
    let mut forcing = request(None);
    forcing.force_hosts = vec!["host-0".into()];
    assert_eq!(
        run(&set, &disabled, &forcing).expect("forced")[0].host,
        "host-0"
    );
    forcing.force_hosts = vec!["nowhere".into()];
    let ScheduleError::NoValidHost(explanation) =
        run(&set, &disabled, &forcing).expect_err("no such host")
    else {
        panic!("expected no valid host")
    };
    assert!(
        explanation
            .rejections
            .iter()
            .all(|rejection| rejection.plugin == "force_hosts")
    );
    let mut nodes = request(None);
    nodes.force_nodes = vec!["host-1".into()];
    assert_eq!(
        run(&set, &disabled, &nodes).expect("forced node")[0].host,
        "host-1"
    );
}

#[test]
fn a_requested_destination_still_goes_through_the_filters() {
    let set = load(
        &["compute-filter"],
        &["ram-weigher"],
        &common::plugins_config(),
    );
    let mut hosts = cloud(4).host_states();
    hosts[0].service_disabled = true;
    let snapshot = CloudSnapshot::new(hosts, Vec::new());
    // Only the requested host, though another has more free RAM.
    let mut requesting = request(None);
    requesting.requested_hosts = vec!["host-1".into()];
    let selection = run(&set, &snapshot, &requesting).expect("requested");
    assert_eq!(selection[0].host, "host-1");
    assert!(selection[0].alternates.is_empty());
    // Unlike a forced host, a disabled one is refused by the filters.
    requesting.requested_hosts = vec!["host-0".into()];
    let ScheduleError::NoValidHost(explanation) =
        run(&set, &snapshot, &requesting).expect_err("disabled")
    else {
        panic!("expected no valid host")
    };
    let plugins: Vec<(&str, &str)> = explanation
        .rejections
        .iter()
        .map(|rejection| (rejection.host.as_str(), rejection.plugin.as_str()))
        .collect();
    assert_eq!(
        plugins,
        [
            ("host-1", "requested_destination"),
            ("host-2", "requested_destination"),
            ("host-3", "requested_destination"),
            ("host-0", "compute-filter"),
        ]
    );
}

#[test]
fn no_valid_host_explains_every_rejection() {
    let set = load(
        &["compute-filter", "availability-zone-filter"],
        &[],
        &common::plugins_config(),
    );
    let mut hosts = cloud(3).host_states();
    hosts[0].service_up = false;
    hosts[1].service_disabled = true;
    hosts[2].availability_zone = "az9".into();
    let snapshot = CloudSnapshot::new(hosts, Vec::new());
    let mut wanting_az1 = request(None);
    wanting_az1.request.availability_zone = Some("az1".into());
    let ScheduleError::NoValidHost(explanation) =
        run(&set, &snapshot, &wanting_az1).expect_err("nothing fits")
    else {
        panic!("expected no valid host")
    };
    let by_host: Vec<(&str, &str)> = explanation
        .rejections
        .iter()
        .map(|rejection| (rejection.host.as_str(), rejection.plugin.as_str()))
        .collect();
    assert_eq!(
        by_host,
        [
            ("host-0", "compute-filter"),
            ("host-1", "compute-filter"),
            ("host-2", "availability-zone-filter")
        ]
    );
    assert_eq!(explanation.filter_results.len(), 2);
    assert_eq!(
        (
            explanation.filter_results[0].hosts_in,
            explanation.filter_results[0].hosts_out
        ),
        (3, 1)
    );
    assert_eq!(
        (
            explanation.filter_results[1].hosts_in,
            explanation.filter_results[1].hosts_out
        ),
        (1, 0)
    );
    let text = explanation.explanation();
    assert!(text.starts_with("No valid host was found."), "{text}");
    assert!(
        text.contains("compute-filter: (start: 3, end: 1)"),
        "{text}"
    );
    assert!(
        text.contains("host-2: rejected by availability-zone-filter"),
        "{text}"
    );
}

#[test]
fn multi_create_consumes_resources_between_instances() {
    let set = load(&[], &["ram-weigher"], &common::plugins_config());
    let snapshot = cloud(2); // host-1 has 100 MB more free RAM than host-0
    let mut two = request(None);
    two.request.num_instances = 2;
    two.request.instance_uuids = vec!["i-0".into(), "i-1".into()];
    let selections = run(&set, &snapshot, &two).expect("two hosts");
    // The first 512 MB instance on host-1 leaves host-0 with more free RAM.
    assert_eq!(selections[0].host, "host-1");
    assert_eq!(selections[1].host, "host-0");
}

#[test]
fn aggregate_metadata_overrides_the_multiplier() {
    let set = load(&[], &["ram-weigher"], &common::plugins_config());
    let mut hosts = cloud(3).host_states();
    hosts[2].aggregates = vec![1, 2];
    let aggregates = vec![
        Aggregate {
            id: 1,
            name: "inverted".into(),
            metadata: vec![("ram_weight_multiplier".into(), "-1.0".into())],
        },
        Aggregate {
            id: 2,
            name: "boosted".into(),
            metadata: vec![("ram_weight_multiplier".into(), "5.0".into())],
        },
    ];
    let snapshot = CloudSnapshot::new(hosts, aggregates);
    // host-2 has the most free RAM but its minimum multiplier (-1) turns that into the worst weight.
    let selection = run(&set, &snapshot, &request(None)).expect("ok");
    assert_eq!(selection[0].host, "host-1");
    // The RAM weigher normalizes from 0 (Nova's minval): free RAM 4196 of
    // the largest 4296, not (4196 - 4096) / (4296 - 4096).
    assert!(
        (selection[0].weight - 4196.0 / 4296.0).abs() < 1e-9,
        "{}",
        selection[0].weight
    );
    assert_eq!(selection[0].alternates, ["host-0", "host-2"]);
}

#[test]
fn zero_multiplier_weighers_are_skipped_unless_an_aggregate_overrides() {
    let weighers = [
        "ram-weigher",
        "num-instances-weigher",
        "image-props-weigher",
    ];
    let calls = |set: &PluginSet, name: &str| {
        set.list()
            .into_iter()
            .find(|plugin| plugin.name == name)
            .map(|plugin| plugin.metrics.latency.count)
            .expect("loaded")
    };
    let set = load(&[], &weighers, &common::plugins_config());
    run(&set, &cloud(3), &request(None)).expect("ok");
    assert_eq!(calls(&set, "ram-weigher"), 1);
    assert_eq!(calls(&set, "num-instances-weigher"), 0);
    assert_eq!(calls(&set, "image-props-weigher"), 0);

    // An aggregate of a candidate overriding the multiplier brings the
    // weigher back: its hosts' weights count.
    let mut hosts = cloud(3).host_states();
    hosts[1].aggregates = vec![1];
    hosts[2].num_instances = 5;
    let aggregates = vec![Aggregate {
        id: 1,
        name: "spread".into(),
        metadata: vec![("num_instances_weight_multiplier".into(), "-1.0".into())],
    }];
    let snapshot = CloudSnapshot::new(hosts, aggregates);
    let set = load(&[], &weighers, &common::plugins_config());
    run(&set, &snapshot, &request(None)).expect("ok");
    assert_eq!(calls(&set, "num-instances-weigher"), 1);
    assert_eq!(calls(&set, "image-props-weigher"), 0);
}

struct LoseFirst {
    attempts: RefCell<Vec<String>>,
}

impl Claimer for LoseFirst {
    fn claim(
        &self,
        host: &HostState,
        _request: &SchedulingRequest,
        _instance: usize,
    ) -> ClaimOutcome {
        self.attempts.borrow_mut().push(host.name.clone());
        if self.attempts.borrow().len() == 1 {
            ClaimOutcome::Lost
        } else {
            ClaimOutcome::Won
        }
    }
}

#[test]
fn a_lost_claim_moves_to_the_next_alternate() {
    let set = load(&[], &["ram-weigher"], &common::plugins_config());
    let claimer = LoseFirst {
        attempts: RefCell::new(Vec::new()),
    };
    let selections = schedule(
        &set,
        &SchedulerConfig::default(),
        &cloud(4),
        &request(None),
        &claimer,
        &mut StdRng::seed_from_u64(1),
    )
    .expect("second host claimed");
    assert_eq!(claimer.attempts.borrow().as_slice(), ["host-3", "host-2"]);
    assert_eq!(selections[0].host, "host-2");
    assert_eq!(selections[0].alternates, ["host-1"]);
}

/// The WASM and native pipelines choose the same hosts on thousands of random
/// clouds (default filters, every weigher, host_subset_size 1).
#[test]
fn wasm_and_native_pipelines_agree_on_random_clouds() {
    let config = SchedulerConfig::default();
    let selection = config.plugin_selection();
    // This test is about equal answers, not deadlines: on a loaded CI
    // machine a 50 ms epoch deadline can pass while the thread waits for a
    // core, and the plugin would fail (the sandbox tests cover deadlines).
    let mut plugins = PluginsConfig::default();
    plugins.defaults.deadline_ms = 10_000;
    let wasm =
        PluginSet::load(&common::engine(), Backend::Wasm, &selection, &plugins).expect("wasm set");
    let native = PluginSet::load(&common::engine(), Backend::Native, &selection, &plugins)
        .expect("native set");
    let (mut placed, mut refused) = (0, 0);
    for seed in 0..2000_u64 {
        let snapshot = synthetic::cloud(seed, 4 + (seed % 13) as usize);
        let request = synthetic::request(seed, &snapshot);
        let from_wasm = schedule(
            &wasm,
            &config,
            &snapshot,
            &request,
            &NoClaims,
            &mut StdRng::seed_from_u64(seed),
        );
        let from_native = schedule(
            &native,
            &config,
            &snapshot,
            &request,
            &NoClaims,
            &mut StdRng::seed_from_u64(seed),
        );
        match (&from_wasm, &from_native) {
            (Ok(_), Ok(_)) => placed += 1,
            (Err(_), Err(_)) => refused += 1,
            _ => {}
        }
        assert_eq!(from_wasm, from_native, "seed {seed}");
    }
    for plugin in wasm.list() {
        assert_eq!(
            plugin.metrics.error_count(),
            0,
            "{} failed: {:?}",
            plugin.name,
            plugin.metrics.errors
        );
    }
    assert!(
        placed > 500 && refused > 50,
        "the generator exercises both outcomes: {placed} placed, {refused} refused"
    );
}
