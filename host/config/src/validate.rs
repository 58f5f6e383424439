//! Range checks of every number and every credential in the configuration, in
//! one place: TOML's types stop `"ten"`, these stop `-1.0`, `nan`, `0` and
//! `""` where they would make no sense (or a hole). An error names the key and,
//! when the value came from a file, its line.

use std::fmt;

use super::Config;
use novum_plugin_host::limits::MAX_MEMORY_LIMIT_MIB;
use novum_scheduler::config::{
    MAX_DECISION_LOG_SIZE, MAX_DECISION_LOG_TOP_HOSTS, MAX_SHADOW_QUEUE,
};

/// One step of a key's path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStep {
    /// A key in a table.
    Name(String),
    /// An element of an array (of tables).
    Index(usize),
}

/// The path of a key from the top of the file (`compute.cpu_allocation_ratio`,
/// `notifications.webhooks[0].timeout_ms`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<KeyStep>);

impl KeyPath {
    fn child(&self, name: &str) -> Self {
        let mut steps = self.0.clone();
        steps.push(KeyStep::Name(name.to_string()));
        Self(steps)
    }

    fn index(&self, index: usize) -> Self {
        let mut steps = self.0.clone();
        steps.push(KeyStep::Index(index));
        Self(steps)
    }

    /// The 1-based line of this key's value in `text`, if `text` sets it.
    pub fn line_in(&self, text: &str) -> Option<usize> {
        let document = toml::de::DeTable::parse(text).ok()?;
        let mut value = toml::de::DeValue::Table(document.into_inner());
        let mut span = None;
        for step in &self.0 {
            let next = match step {
                KeyStep::Name(name) => value.get(name.as_str())?,
                KeyStep::Index(index) => value.get(*index)?,
            };
            span = Some(next.span());
            value = next.get_ref().clone();
        }
        let start = span?.start;
        Some(text.get(..start)?.matches('\n').count() + 1)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, step) in self.0.iter().enumerate() {
            match step {
                KeyStep::Name(name) if position == 0 => write!(formatter, "{name}")?,
                KeyStep::Name(name) => write!(formatter, ".{name}")?,
                KeyStep::Index(index) => write!(formatter, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A value out of its range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidValue {
    /// Which key.
    pub key: KeyPath,
    /// Its line in the file, when it came from one.
    pub line: Option<usize>,
    /// What the value must be, and what it was.
    pub reason: String,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(formatter, "line {line}: ")?;
        }
        write!(
            formatter,
            "invalid value of `{}`: {}",
            self.key, self.reason
        )
    }
}

/// Every out-of-range value of a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidConfig(pub Vec<InvalidValue>);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        formatter.write_str(&lines.join("\n"))
    }
}

impl InvalidConfig {
    /// The same errors with the line of each key in `text` (the file they came from).
    pub fn located_in(mut self, text: &str) -> Self {
        for error in &mut self.0 {
            error.line = error.key.line_in(text);
        }
        self.0.sort_by_key(|error| error.line);
        self
    }
}

/// The smallest quota limit: −1 means unlimited, any other negative number is a mistake.
pub const UNLIMITED_QUOTA: i64 = -1;

/// Collects the values that fail their check.
#[derive(Default)]
struct Checks {
    errors: Vec<InvalidValue>,
}

impl Checks {
    fn fail(&mut self, key: KeyPath, reason: String) {
        self.errors.push(InvalidValue {
            key,
            line: None,
            reason,
        });
    }

    /// At least `min` (a count, a size or an interval that 0 would break).
    fn at_least<T>(&mut self, key: KeyPath, value: T, min: T)
    where
        T: PartialOrd + fmt::Display,
    {
        if value < min {
            self.fail(key, format!("must be at least {min}, not {value}"));
        }
    }

    /// Between `min` and `max`.
    fn within<T>(&mut self, key: KeyPath, value: T, min: T, max: T)
    where
        T: Copy + PartialOrd + fmt::Display,
    {
        if !(min..=max).contains(&value) {
            self.fail(key, format!("must be {min} to {max}, not {value}"));
        }
    }

    /// A finite number greater than 0 (an allocation ratio).
    fn positive_ratio(&mut self, key: KeyPath, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            self.fail(
                key,
                format!("must be a finite number greater than 0, not {value}"),
            );
        }
    }

    /// A finite number (a multiplier).
    fn finite(&mut self, key: KeyPath, value: f64) {
        if !value.is_finite() {
            self.fail(key, format!("must be a finite number, not {value}"));
        }
    }

    /// A quota limit: −1 (unlimited) or at least 0.
    fn quota_limit(&mut self, key: KeyPath, value: i64) {
        if value < UNLIMITED_QUOTA {
            self.fail(
                key,
                format!("must be -1 (unlimited) or at least 0, not {value}"),
            );
        }
    }

    /// A secret that, when set, is not empty (an empty one lets anyone in).
    fn non_empty_secret(&mut self, key: KeyPath, value: Option<&str>) {
        if value.is_some_and(|value| value.trim().is_empty()) {
            self.fail(
                key,
                "must not be empty (leave the key out to generate one)".to_string(),
            );
        }
    }
}

/// Whether two listen addresses would take the same port (an unspecified
/// address, `0.0.0.0` or `::`, takes it on every address; port 0 is a fresh
/// port each time).
fn same_port(first: std::net::SocketAddr, second: std::net::SocketAddr) -> bool {
    first.port() != 0
        && first.port() == second.port()
        && (first.ip() == second.ip()
            || first.ip().is_unspecified()
            || second.ip().is_unspecified())
}

fn root(name: &str) -> KeyPath {
    KeyPath::default().child(name)
}

/// Checks every range of `config`.
pub fn validate(config: &Config) -> Result<(), InvalidConfig> {
    let mut checks = Checks::default();

    let identity = root("identity");
    let section = &config.identity;
    checks.non_empty_secret(
        identity.child("admin_password"),
        section.admin_password.as_deref(),
    );
    checks.at_least(
        identity.child("token_expiration_seconds"),
        section.token_expiration_seconds,
        1,
    );
    checks.at_least(
        identity.child("max_active_keys"),
        section.max_active_keys,
        1,
    );
    checks.at_least(
        identity.child("lockout_duration"),
        section.lockout_duration,
        1,
    );

    let compute = root("compute");
    let section = &config.compute;
    checks.at_least(
        compute.child("service_down_time"),
        section.service_down_time,
        1,
    );
    checks.at_least(compute.child("max_limit"), section.max_limit, 1);
    for (key, ratio) in [
        ("cpu_allocation_ratio", section.cpu_allocation_ratio),
        ("ram_allocation_ratio", section.ram_allocation_ratio),
        ("disk_allocation_ratio", section.disk_allocation_ratio),
    ] {
        checks.positive_ratio(compute.child(key), ratio);
    }
    checks.at_least(
        compute.child("reserved_host_memory_mb"),
        section.reserved_host_memory_mb,
        0,
    );
    checks.at_least(
        compute.child("task_lease_seconds"),
        section.task_lease_seconds,
        1,
    );
    checks.at_least(
        compute.child("task_timeout_seconds"),
        section.task_timeout_seconds,
        1,
    );
    checks.at_least(
        compute.child("reaper_interval_seconds"),
        section.reaper_interval_seconds,
        1,
    );
    checks.at_least(
        compute.child("agent_call_timeout_seconds"),
        section.agent_call_timeout_seconds,
        1,
    );
    checks.at_least(
        compute.child("console_token_ttl_seconds"),
        section.console_token_ttl_seconds,
        1,
    );
    checks.at_least(
        compute.child("shelved_offload_time"),
        section.shelved_offload_time,
        -1,
    );
    checks.at_least(
        compute.child("shelved_poll_interval_seconds"),
        section.shelved_poll_interval_seconds,
        1,
    );
    // 0 turns soft delete off; at most ten years, so the reclaim cutoff is
    // always a representable time.
    checks.within(
        compute.child("reclaim_instance_interval"),
        section.reclaim_instance_interval,
        0,
        novum_compute::config::MAX_RECLAIM_INSTANCE_INTERVAL,
    );

    checks.within(
        compute.child("resize_confirm_window"),
        section.resize_confirm_window,
        0,
        novum_compute::config::MAX_RESIZE_CONFIRM_WINDOW,
    );

    if let Err(reason) = section
        .instance_usage_audit_period
        .parse::<novum_compute::conductor::usage_audit::AuditPeriod>()
    {
        checks.fail(compute.child("instance_usage_audit_period"), reason);
    }

    checks.non_empty_secret(
        root("metadata").child("shared_secret"),
        config.metadata.shared_secret.as_deref(),
    );

    let agent = root("agent");
    let section = &config.agent;
    checks.non_empty_secret(
        agent.child("enrollment_token"),
        section.enrollment_token.as_deref(),
    );
    checks.at_least(
        agent.child("heartbeat_seconds"),
        section.heartbeat_seconds,
        1,
    );
    checks.at_least(
        agent.child("max_poll_wait_seconds"),
        section.max_poll_wait_seconds,
        1,
    );
    // Every agent request proves the host alive, and an idle agent sends
    // one at least every min(heartbeat, longest poll) seconds: a host is
    // only marked down after it missed two of them, never between them.
    let longest_silence = section.heartbeat_seconds.min(section.max_poll_wait_seconds);
    if config.compute.service_down_time < longest_silence.saturating_mul(2) {
        checks.fail(
            compute.child("service_down_time"),
            format!(
                "must be at least twice the longest silence of an idle agent (2 × min(agent.heartbeat_seconds, agent.max_poll_wait_seconds) = {}), not {}: hosts would flap down between their requests",
                longest_silence.saturating_mul(2),
                config.compute.service_down_time
            ),
        );
    }
    if section.embedded {
        checks.at_least(agent.child("embedded_vcpus"), section.embedded_vcpus, 1);
        checks.at_least(
            agent.child("embedded_memory_mb"),
            section.embedded_memory_mb,
            1,
        );
        checks.at_least(agent.child("embedded_disk_gb"), section.embedded_disk_gb, 1);
    }

    let scheduler = root("scheduler");
    checks.at_least(
        scheduler.child("host_subset_size"),
        config.scheduler.host_subset_size,
        1,
    );
    checks.at_least(
        scheduler.child("max_attempts"),
        config.scheduler.max_attempts,
        1,
    );
    checks.at_least(
        scheduler.child("host_state_resync_seconds"),
        config.scheduler.host_state_resync_seconds,
        1,
    );
    checks.within(
        scheduler.child("decision_log_size"),
        config.scheduler.decision_log_size,
        0,
        MAX_DECISION_LOG_SIZE,
    );
    checks.within(
        scheduler.child("decision_log_top_hosts"),
        config.scheduler.decision_log_top_hosts,
        1,
        MAX_DECISION_LOG_TOP_HOSTS,
    );
    checks.within(
        scheduler.child("decision_replay_size"),
        config.scheduler.decision_replay_size,
        0,
        MAX_DECISION_LOG_SIZE,
    );
    checks.at_least(
        scheduler.child("decision_replay_max_hosts"),
        config.scheduler.decision_replay_max_hosts,
        1,
    );
    if let Some(shadow) = &config.scheduler.shadow {
        let section = scheduler.child("shadow");
        checks.within(section.child("queue"), shadow.queue, 1, MAX_SHADOW_QUEUE);
        checks.within(section.child("sample_rate"), shadow.sample_rate, 0.0, 1.0);
        if config.scheduler.decision_log_size == 0 {
            checks.fail(
                section.clone(),
                "needs the decision log (decision_log_size > 0): the shadow is fed by its writer"
                    .to_string(),
            );
        }
    }

    let plugins = root("plugins");
    let defaults = plugins.child("defaults");
    let section = &config.plugins.defaults;
    checks.at_least(defaults.child("deadline_ms"), section.deadline_ms, 1);
    checks.within(
        defaults.child("memory_limit_mib"),
        section.memory_limit_mib,
        1,
        MAX_MEMORY_LIMIT_MIB,
    );
    checks.at_least(defaults.child("pool_size"), section.pool_size, 1);
    for (name, plugin) in &config.plugins.plugins {
        let table = plugins.child(name);
        if let Some(deadline_ms) = plugin.deadline_ms {
            checks.at_least(table.child("deadline_ms"), deadline_ms, 1);
        }
        if let Some(memory_limit_mib) = plugin.memory_limit_mib {
            checks.within(
                table.child("memory_limit_mib"),
                memory_limit_mib,
                1,
                MAX_MEMORY_LIMIT_MIB,
            );
        }
        if let Some(multiplier) = plugin.multiplier {
            checks.finite(table.child("multiplier"), multiplier);
        }
        if let Some(minimum) = plugin.normalization_min {
            checks.finite(table.child("normalization_min"), minimum);
        }
    }

    let notifications = root("notifications");
    let section = &config.notifications;
    checks.at_least(
        notifications.child("poll_interval_ms"),
        section.poll_interval_ms,
        1,
    );
    checks.at_least(
        notifications.child("hook_max_attempts"),
        section.hook_max_attempts,
        1,
    );
    for (index, webhook) in section.webhooks.iter().enumerate() {
        let table = notifications.child("webhooks").index(index);
        checks.at_least(table.child("timeout_ms"), webhook.timeout_ms, 1);
        checks.at_least(table.child("max_attempts"), webhook.max_attempts, 1);
        checks.at_least(
            table.child("backoff_initial_ms"),
            webhook.backoff_initial_ms,
            1,
        );
        checks.at_least(
            table.child("backoff_max_ms"),
            webhook.backoff_max_ms,
            webhook.backoff_initial_ms,
        );
        checks.at_least(table.child("concurrency"), webhook.concurrency, 1);
    }

    let metrics = root("metrics");
    if let Some(listen) = config.metrics.listen {
        if !config.metrics.enabled {
            checks.fail(
                metrics.child("listen"),
                "needs `metrics.enabled = true` (metrics are off: nothing to serve)".to_string(),
            );
        }
        if same_port(listen, config.listen) {
            checks.fail(
                metrics.child("listen"),
                format!(
                    "must differ from the API's `listen` ({}): /metrics is served there already (to admins)",
                    config.listen
                ),
            );
        }
    }

    let quota = root("quota");
    let section = &config.quota;
    for (key, limit) in [
        ("instances", section.instances),
        ("cores", section.cores),
        ("ram", section.ram),
        ("metadata_items", section.metadata_items),
        ("key_pairs", section.key_pairs),
        ("server_groups", section.server_groups),
        ("server_group_members", section.server_group_members),
        ("injected_files", section.injected_files),
        (
            "injected_file_content_bytes",
            section.injected_file_content_bytes,
        ),
        ("injected_file_path_bytes", section.injected_file_path_bytes),
    ] {
        checks.quota_limit(quota.child(key), limit);
    }

    if checks.errors.is_empty() {
        Ok(())
    } else {
        Err(InvalidConfig(checks.errors))
    }
}
