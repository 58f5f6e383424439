//! Sandbox containment: misbehaving plugins are stopped by their deadline or
//! memory cap, or caught answering nonsense; the request completes with the
//! plugin's `on_error` outcome, the error is counted, and the next request on
//! the same plugin succeeds.

use crate::common;

use std::time::{Duration, Instant};

use common::{cloud, load, request, test_plugin};
use novum_plugin_host::{FailureKind, OnError, PluginConfig, PluginsConfig};
use novum_scheduler::{NoClaims, ScheduleError, SchedulerConfig, schedule};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn config_with(name: &str, plugin: PluginConfig) -> PluginsConfig {
    let mut config = PluginsConfig::default();
    config.plugins.insert(name.to_string(), plugin);
    config
}

fn run(
    set: &novum_plugin_host::PluginSet,
    misbehave: Option<&str>,
) -> Result<Vec<novum_scheduler::Selection>, ScheduleError> {
    let mut rng = StdRng::seed_from_u64(1);
    schedule(
        set,
        &SchedulerConfig::default(),
        &cloud(4),
        &request(misbehave),
        &NoClaims,
        &mut rng,
    )
}

/// A filter misbehaving as `mode` under `reject-host`: every host rejected
/// with a reason naming the plugin, the failure counted as `kind`, and the
/// next well-behaved request served by the same plugin.
fn filter_is_contained(mode: &str, kind: FailureKind, plugin: PluginConfig) {
    let set = load(&["misbehaving"], &[], &config_with("misbehaving", plugin));
    let started = Instant::now();
    let error = run(&set, Some(mode)).expect_err("every host is rejected");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{mode}: contained quickly"
    );
    let ScheduleError::NoValidHost(explanation) = error else {
        panic!("{mode}: expected no valid host")
    };
    assert_eq!(explanation.rejections.len(), 4, "{mode}");
    for rejection in &explanation.rejections {
        assert_eq!(rejection.plugin, "misbehaving");
        assert!(
            rejection.reason.starts_with("plugin misbehaving failed: "),
            "{mode}: {}",
            rejection.reason
        );
    }
    let filter = set.plugin("misbehaving").expect("loaded");
    assert_eq!(
        filter.metrics().errors(kind),
        1,
        "{mode}: counted as {kind:?}"
    );

    let selections = run(&set, None).expect("the next request succeeds");
    assert_eq!(selections.len(), 1);
    let snapshot = filter.metrics().snapshot();
    assert_eq!(snapshot.calls, 2);
    assert_eq!(snapshot.error_count(), 1);
}

#[test]
fn endless_loop_hits_the_deadline() {
    let plugin = PluginConfig {
        deadline_ms: Some(30),
        ..test_plugin("misbehaving-filter")
    };
    filter_is_contained("loop", FailureKind::Deadline, plugin);
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let plugin = PluginConfig {
        memory_limit_mib: Some(16),
        // A generous deadline: on a loaded machine, filling 16 MiB must not
        // be cut short by the clock before the memory cap is reached.
        deadline_ms: Some(5_000),
        ..test_plugin("misbehaving-filter")
    };
    filter_is_contained("alloc", FailureKind::OutOfMemory, plugin);
}

#[test]
fn panic_is_a_trap() {
    filter_is_contained(
        "panic",
        FailureKind::Trap,
        test_plugin("misbehaving-filter"),
    );
}

#[test]
fn wrong_verdict_count_is_malformed() {
    filter_is_contained(
        "wrong-length",
        FailureKind::Malformed,
        test_plugin("misbehaving-filter"),
    );
}

#[test]
fn needs_outside_the_declared_columns_are_malformed() {
    filter_is_contained(
        "undeclared-needs",
        FailureKind::Malformed,
        test_plugin("misbehaving-filter"),
    );
}

#[test]
fn verdict_past_the_reasons_is_malformed() {
    filter_is_contained(
        "bad-reason",
        FailureKind::Malformed,
        test_plugin("misbehaving-filter"),
    );
}

#[test]
fn filter_on_error_ignore_passes_every_host() {
    let plugin = PluginConfig {
        on_error: Some(OnError::Ignore),
        ..test_plugin("misbehaving-filter")
    };
    let set = load(&["misbehaving"], &[], &config_with("misbehaving", plugin));
    let selections = run(&set, Some("panic")).expect("ignored");
    assert_eq!(selections.len(), 1);
    assert_eq!(
        set.plugin("misbehaving")
            .expect("loaded")
            .metrics()
            .errors(FailureKind::Trap),
        1
    );
}

#[test]
fn filter_on_error_fail_request_names_the_plugin() {
    let plugin = PluginConfig {
        on_error: Some(OnError::FailRequest),
        ..test_plugin("misbehaving-filter")
    };
    let set = load(&["misbehaving"], &[], &config_with("misbehaving", plugin));
    let error = run(&set, Some("wrong-length")).expect_err("fails");
    assert!(
        matches!(&error, ScheduleError::PluginFailed { plugin, .. } if plugin == "misbehaving"),
        "{error}"
    );
    assert!(error.to_string().contains("misbehaving"), "{error}");
}

#[test]
fn filter_rejections_and_config_reach_the_plugin() {
    let mut plugin = test_plugin("misbehaving-filter");
    plugin
        .config
        .insert("mode".into(), toml::Value::String("reject-odd".into()));
    let set = load(&["odd"], &[], &config_with("odd", plugin));
    let mut rng = StdRng::seed_from_u64(1);
    let ranking_hosts = schedule(
        &set,
        &SchedulerConfig::default(),
        &cloud(4),
        &request(None),
        &NoClaims,
        &mut rng,
    )
    .expect("even rows pass");
    assert!(["host-0", "host-2"].contains(&ranking_hosts[0].host.as_str()));
    let snapshot = set.plugin("odd").expect("loaded").metrics().snapshot();
    assert_eq!(snapshot.rejections, 2);
    assert_eq!(snapshot.calls, 1);
}

#[test]
fn bad_weights_contribute_nothing_and_are_counted() {
    for (mode, kind) in [
        ("wrong-length", FailureKind::Malformed),
        ("nan", FailureKind::Malformed),
    ] {
        let set = load(
            &[],
            &["weird"],
            &config_with("weird", test_plugin("misbehaving-weigher")),
        );
        let selections = run(&set, Some(mode)).expect("weigher failures do not fail the request");
        // With the weigher ignored all weights are 0: the first host wins.
        assert_eq!(selections[0].host, "host-0", "{mode}");
        assert_eq!(selections[0].weight, 0.0, "{mode}");
        let weigher = set.plugin("weird").expect("loaded");
        assert_eq!(weigher.metrics().errors(kind), 1, "{mode}");

        // Next request: weights by row, so the last host wins.
        let selections = run(&set, None).expect("next request");
        assert_eq!(selections[0].host, "host-3", "{mode}");
    }
}

#[test]
fn looping_weigher_hits_the_deadline() {
    let plugin = PluginConfig {
        deadline_ms: Some(20),
        ..test_plugin("misbehaving-weigher")
    };
    let set = load(&[], &["weird"], &config_with("weird", plugin));
    assert!(run(&set, Some("loop")).is_ok());
    assert_eq!(
        set.plugin("weird")
            .expect("loaded")
            .metrics()
            .errors(FailureKind::Deadline),
        1
    );
    assert_eq!(run(&set, None).expect("next")[0].host, "host-3");
}

#[test]
fn sleeping_past_the_deadline_hits_the_deadline() {
    // A WASI timer never outlasts the call: the 10 s sleep wakes once the
    // 30 ms deadline has passed and the guest stops there.
    let plugin = PluginConfig {
        deadline_ms: Some(30),
        ..test_plugin("misbehaving-filter")
    };
    filter_is_contained("sleep", FailureKind::Deadline, plugin);
}

/// A `misbehaving-filter` in `work` mode for `rounds` rounds, under
/// `deadline_ms`.
fn working_filter(rounds: u64, deadline_ms: u64) -> PluginsConfig {
    let mut plugin = PluginConfig {
        deadline_ms: Some(deadline_ms),
        ..test_plugin("misbehaving-filter")
    };
    plugin
        .config
        .insert("mode".into(), toml::Value::String("work".into()));
    plugin.config.insert(
        "work_rounds".into(),
        toml::Value::Integer(rounds.cast_signed()),
    );
    config_with("working", plugin)
}

/// Runs one request through `set` on a thread pinned to `cpu` at nice 19,
/// while a thread at the controller's priority spins on the same CPU: the
/// request's thread runs a small share of the time, in short turns. Answers
/// the result and the wall-clock time it took.
fn run_kept_off_the_core(
    set: &novum_plugin_host::PluginSet,
    cpu: usize,
) -> (
    Result<Vec<novum_scheduler::Selection>, ScheduleError>,
    Duration,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let pin = |cpu: usize| {
        let mut only = rustix::thread::CpuSet::new();
        only.set(cpu);
        rustix::thread::sched_setaffinity(None, &only).expect("pinned");
    };
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            pin(cpu);
            while !done.load(Ordering::Relaxed) {
                std::hint::black_box(0u64);
            }
        });
        let request = scope.spawn(|| {
            pin(cpu);
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19)
                .expect("nice 19");
            let started = Instant::now();
            let result = run(set, None);
            (result, started.elapsed())
        });
        let answer = request.join().expect("the request thread ends");
        done.store(true, Ordering::Relaxed);
        answer
    })
}

#[test]
fn a_call_kept_off_its_core_past_its_deadline_still_answers() {
    // A deadline counts the CPU time a call uses, not the time its thread
    // waits for a core: on a loaded machine a well-behaved plugin is slow,
    // not failed. Calibrate a call that uses a few milliseconds of CPU...
    let mut rounds = 250_000u64;
    let cpu_time = loop {
        let set = load(&["working"], &[], &working_filter(rounds, 10_000));
        let before = novum_plugin_host::limits::thread_cpu_time();
        run(&set, None).expect("an uncontended call answers");
        let spent = novum_plugin_host::limits::thread_cpu_time().saturating_sub(before);
        if spent >= Duration::from_millis(4) || rounds >= 1 << 36 {
            break spent;
        }
        rounds *= 2;
    };
    // ...give it a deadline of twice that, and keep its thread off the core
    // for most of the call.
    let deadline = cpu_time * 2 + Duration::from_millis(5);
    let deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
    let set = load(&["working"], &[], &working_filter(rounds, deadline_ms));
    let cpu = rustix::thread::sched_getaffinity(None)
        .ok()
        .and_then(|allowed| (0..rustix::thread::CpuSet::MAX_CPU).find(|&cpu| allowed.is_set(cpu)))
        .expect("a CPU this test may run on");
    let (result, took) = run_kept_off_the_core(&set, cpu);
    assert!(
        took > deadline * 2,
        "the call was not kept off its core ({took:?} for a {deadline:?} deadline, \
         {cpu_time:?} of CPU): the test proves nothing"
    );
    let selections = result.expect("the call answers although it ran past its deadline");
    assert_eq!(selections.len(), 1);
    let filter = set.plugin("working").expect("loaded");
    assert_eq!(filter.metrics().errors(FailureKind::Deadline), 0);
    assert_eq!(filter.metrics().snapshot().error_count(), 0);

    // The same call with a budget below its CPU time still hits it.
    let set = load(&["working"], &[], &working_filter(rounds * 8, deadline_ms));
    let error = run(&set, None).expect_err("over its CPU budget");
    assert!(matches!(error, ScheduleError::NoValidHost(_)), "{error}");
    let filter = set.plugin("working").expect("loaded");
    assert_eq!(filter.metrics().errors(FailureKind::Deadline), 1);
}

/// What `std-using-filter` reports when it sees nothing of the outside.
const NOTHING_SEEN: &str = "env=absent args=none fs=denied net=denied dns=denied map=ok";

/// Runs `std-using-filter` over 4 hosts and checks it ran (no failure) and
/// saw nothing: every host rejected with [`NOTHING_SEEN`].
fn std_guest_sees_nothing() {
    // The controller's own process has an environment and a filesystem.
    assert!(std::env::var_os("PATH").is_some());
    assert!(std::path::Path::new("/etc/passwd").exists());
    let set = load(
        &["std"],
        &[],
        &config_with("std", test_plugin("std-using-filter")),
    );
    let error = run(&set, None).expect_err("every host is rejected");
    let ScheduleError::NoValidHost(explanation) = error else {
        panic!("expected no valid host, got {error}")
    };
    assert_eq!(explanation.rejections.len(), 4);
    for rejection in &explanation.rejections {
        assert_eq!(rejection.plugin, "std");
        assert_eq!(rejection.reason, NOTHING_SEEN);
    }
    let snapshot = set.plugin("std").expect("loaded").metrics().snapshot();
    assert_eq!(
        snapshot.error_count(),
        0,
        "the std guest ran without failing"
    );
    assert_eq!(snapshot.calls, 1);
    assert_eq!(snapshot.rejections, 4);
}

#[test]
fn std_guest_runs_in_an_empty_wasi_context() {
    std_guest_sees_nothing();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn std_guest_runs_on_an_async_worker_thread() {
    // WASI's blocking calls (println!) made from a runtime worker thread.
    std_guest_sees_nothing();
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_wasi_in_a_single_threaded_runtime_fails_the_plugin_alone() {
    // wasmtime-wasi cannot block inside a single-threaded runtime's async
    // context: the plugin fails (as a trap), the caller does not panic.
    let set = load(
        &["std"],
        &[],
        &config_with("std", test_plugin("std-using-filter")),
    );
    let error = run(&set, None).expect_err("every host is rejected");
    let ScheduleError::NoValidHost(explanation) = error else {
        panic!("expected no valid host, got {error}")
    };
    for rejection in &explanation.rejections {
        assert!(
            rejection
                .reason
                .starts_with("plugin std failed: a host function panicked: "),
            "{}",
            rejection.reason
        );
    }
    let std_plugin = set.plugin("std").expect("loaded");
    assert_eq!(std_plugin.metrics().errors(FailureKind::Trap), 1);
}
