//! The configuration file: defaults, unknown keys and out-of-range values
//! are refused with the key and the line.

use novum_config::Config;

#[test]
fn defaults_run_all_in_one() {
    let config = Config::parse("").expect("empty file is valid");
    assert_eq!(config.compute.default_availability_zone, "nova");
    assert!(config.database_url().starts_with("sqlite://"));
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let error = format!(
        "{:#}",
        Config::parse("region = \"r\"\n[compute]\nbogus_key = 1\n").expect_err("must fail")
    );
    assert!(error.contains("bogus_key"), "{error}");
    assert!(error.contains("line 3"), "{error}");
}

/// Parses `text`, expecting a refusal; returns the whole message.
fn refusal(text: &str) -> String {
    format!(
        "{:#}",
        Config::parse(text).expect_err(&format!("must refuse {text:?}"))
    )
}

#[test]
fn out_of_range_values_are_refused_with_key_and_line() {
    let cases = [
        (
            "[identity]\nadmin_password = \"\"\n",
            "identity.admin_password",
            2,
        ),
        (
            "region = \"r\"\n[compute]\ncpu_allocation_ratio = -1.0\n",
            "compute.cpu_allocation_ratio",
            3,
        ),
        (
            "[compute]\nservice_down_time = 60\ncpu_allocation_ratio = nan\n",
            "compute.cpu_allocation_ratio",
            3,
        ),
        (
            "[compute]\nram_allocation_ratio = inf\n",
            "compute.ram_allocation_ratio",
            2,
        ),
        (
            "[compute]\ndisk_allocation_ratio = 0.0\n",
            "compute.disk_allocation_ratio",
            2,
        ),
        ("[quota]\ncores = 4\ninstances = -5\n", "quota.instances", 3),
        (
            "[plugins.defaults]\ndeadline_ms = 0\n",
            "plugins.defaults.deadline_ms",
            2,
        ),
        (
            "[plugins.ram-weigher]\nmultiplier = 1.0\ndeadline_ms = 0\n",
            "plugins.ram-weigher.deadline_ms",
            3,
        ),
        (
            "[plugins.ram-weigher]\nmultiplier = nan\n",
            "plugins.ram-weigher.multiplier",
            2,
        ),
        (
            "[agent]\nenrollment_token = \"\"\n",
            "agent.enrollment_token",
            2,
        ),
        (
            "[agent]\nheartbeat_seconds = 0\n",
            "agent.heartbeat_seconds",
            2,
        ),
        (
            "[agent]\nmax_poll_wait_seconds = 0\n",
            "agent.max_poll_wait_seconds",
            2,
        ),
        (
            "[compute]\nservice_down_time = 50\n\n[agent]\nheartbeat_seconds = 40\n",
            "compute.service_down_time",
            2,
        ),
        (
            "[scheduler]\nmax_attempts = 0\n",
            "scheduler.max_attempts",
            2,
        ),
        (
            "[scheduler]\ndecision_log_size = 100001\n",
            "scheduler.decision_log_size",
            2,
        ),
        (
            "[scheduler]\n\ndecision_log_top_hosts = 0\n",
            "scheduler.decision_log_top_hosts",
            3,
        ),
        (
            "[notifications]\npoll_interval_ms = 0\n",
            "notifications.poll_interval_ms",
            2,
        ),
        (
            "[[notifications.webhooks]]\nurl = \"http://127.0.0.1:9/\"\n\n[[notifications.webhooks]]\nurl = \"http://127.0.0.1:9/\"\ntimeout_ms = 0\n",
            "notifications.webhooks[1].timeout_ms",
            6,
        ),
        (
            "[identity]\nlockout_duration = 0\n",
            "identity.lockout_duration",
            2,
        ),
        (
            "[compute]\nshelved_offload_time = -2\n",
            "compute.shelved_offload_time",
            2,
        ),
        (
            "[compute]\nshelved_poll_interval_seconds = 0\n",
            "compute.shelved_poll_interval_seconds",
            2,
        ),
        (
            "[compute]\nreclaim_instance_interval = 315360001\n",
            "compute.reclaim_instance_interval",
            2,
        ),
    ];
    for (text, key, line) in cases {
        let error = refusal(text);
        assert!(error.contains(&format!("`{key}`")), "{text:?}: {error}");
        assert!(
            error.contains(&format!("line {line}:")),
            "{text:?}: {error}"
        );
    }
}

#[test]
fn every_bad_value_is_named_at_once_and_good_edges_pass() {
    let error = refusal("[quota]\nram = -2\ncores = -3\n");
    assert!(
        error.contains("`quota.ram`") && error.contains("line 2:"),
        "{error}"
    );
    assert!(
        error.contains("`quota.cores`") && error.contains("line 3:"),
        "{error}"
    );
    let config = Config::parse(
        "[quota]\ninstances = -1\ncores = 0\n[compute]\ncpu_allocation_ratio = 0.5\n\
         shelved_offload_time = -1\n\
         [identity]\nadmin_password = \"x\"\nlockout_failure_attempts = 0\n",
    )
    .expect("-1 is unlimited, 0 is a limit, a fractional ratio is a ratio");
    assert_eq!(config.compute.shelved_offload_time, -1, "never offload");
    assert_eq!(config.quota.instances, -1);
    assert_eq!(config.identity.lockout_failure_attempts, 0);
    // Soft delete: 0 is off (the default), ten years the most.
    assert_eq!(Config::default().compute.reclaim_instance_interval, 0);
    let config = Config::parse(
        "[compute]\nreclaim_instance_interval = 315360000\n[identity]\nadmin_password = \"x\"\n",
    )
    .expect("ten years");
    assert_eq!(config.compute.reclaim_instance_interval, 315_360_000);
}

#[test]
fn a_configuration_built_in_code_is_checked_too() {
    let mut config = Config::default();
    config.compute.cpu_allocation_ratio = f64::NAN;
    let error = config.validate().expect_err("nan refused").to_string();
    assert!(error.contains("`compute.cpu_allocation_ratio`"), "{error}");
    assert!(!error.contains("line"), "no file, no line: {error}");
}
