//! Configuration: one TOML file, every key defaulted, so `novum serve` with no
//! file runs an all-in-one cloud. Unknown keys are errors that name the key and
//! the line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use novum_identity::IdentityConfig;
use serde::Deserialize;

pub mod validate;

pub use validate::{InvalidConfig, InvalidValue};

/// The controller's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite database, image files, keys and caches live.
    pub data_dir: PathBuf,
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// The URL clients reach the API at (catalog endpoints are built from it);
    /// default `http://<listen>`.
    pub public_url: Option<String>,
    /// Region name in the catalog.
    pub region: String,
    /// This controller's host name (Nova's `[DEFAULT] host`): the `<host>` of
    /// the `nova-api:<host>`, `nova-scheduler:<host>` and `nova-conductor:<host>`
    /// notification publishers. Default: the machine's host name.
    pub host: String,
    /// Database settings.
    pub database: DatabaseConfig,
    /// Identity settings.
    pub identity: IdentityConfig,
    /// Compute API settings.
    pub compute: ComputeConfig,
    /// Scheduler settings (filters, weighers, attempts).
    pub scheduler: novum_scheduler::SchedulerConfig,
    /// Plugin runtime settings.
    pub plugins: crate::plugins::PluginsConfig,
    /// Compute agent settings (enrollment, embedded agents).
    pub agent: AgentConfig,
    /// Notification settings.
    pub notifications: novum_notify::NotificationsConfig,
    /// Quota defaults and policies.
    pub quota: novum_quota::QuotaConfig,
    /// Image service settings (upload size cap, per-project storage quota).
    pub images: novum_images::ImagesConfig,
    /// The file this configuration was read from (for reloads); not a key.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("novum-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8774)),
            public_url: None,
            region: "RegionOne".to_string(),
            host: system_host_name(),
            database: DatabaseConfig::default(),
            identity: IdentityConfig::default(),
            compute: ComputeConfig::default(),
            scheduler: novum_scheduler::SchedulerConfig::default(),
            plugins: crate::plugins::PluginsConfig::default(),
            agent: AgentConfig::default(),
            notifications: novum_notify::NotificationsConfig::default(),
            quota: novum_quota::QuotaConfig::default(),
            images: novum_images::ImagesConfig::default(),
            source: None,
        }
    }
}

/// `[database]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; default: SQLite file `novum.db` in the data directory.
    pub url: Option<String>,
}

/// `[compute]`
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    /// The availability zone of hosts in no zone aggregate.
    pub default_availability_zone: String,
    /// Seconds without a heartbeat after which a compute service is down.
    pub service_down_time: u64,
    /// The largest `limit` a list accepts.
    pub max_limit: usize,
    /// Initial CPU allocation ratio of new compute nodes.
    pub cpu_allocation_ratio: f64,
    /// Initial RAM allocation ratio of new compute nodes.
    pub ram_allocation_ratio: f64,
    /// Initial disk allocation ratio of new compute nodes.
    pub disk_allocation_ratio: f64,
    /// Memory (MB) kept back for the hypervisor on every compute node.
    pub reserved_host_memory_mb: i64,
    /// Seconds an agent holds a task before it is offered again.
    pub task_lease_seconds: u64,
    /// Seconds after which an unfinished task fails (so nothing stays in a
    /// transitional state forever).
    pub task_timeout_seconds: u64,
    /// Seconds between sweeps for expired leases and timed-out tasks.
    pub reaper_interval_seconds: u64,
    /// Create Nova's default flavors (m1.tiny … m1.xlarge) at first start.
    pub default_flavors: bool,
    /// Let a resize land on the instance's own host (Nova's option of that
    /// name; Nova defaults to false, devstack and novum's all-in-one to true,
    /// so that a one-host cloud can resize).
    pub allow_resize_to_same_host: bool,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            default_availability_zone: "nova".to_string(),
            service_down_time: 60,
            max_limit: 1000,
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            reserved_host_memory_mb: 512,
            task_lease_seconds: 300,
            task_timeout_seconds: 900,
            reaper_interval_seconds: 5,
            default_flavors: true,
            allow_resize_to_same_host: true,
        }
    }
}

/// `[agent]`: how compute agents enroll, and the agents `novum serve` runs
/// in-process in the all-in-one setup.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The enrollment token agents register with; default: generated into
    /// `<data_dir>/agent-enrollment-token` at first start.
    pub enrollment_token: Option<String>,
    /// Heartbeat interval asked of agents, seconds.
    pub heartbeat_seconds: u64,
    /// Longest long-poll wait the controller grants, seconds.
    pub max_poll_wait_seconds: u64,
    /// Run compute agents inside `novum serve` (libvirt test driver).
    pub embedded: bool,
    /// How many embedded agents (hosts `<embedded_host_prefix>1`, `2`, …).
    pub embedded_hosts: u32,
    /// Host name prefix of the embedded agents.
    pub embedded_host_prefix: String,
    /// vCPUs of each embedded host.
    pub embedded_vcpus: u32,
    /// Memory (MiB) of each embedded host.
    pub embedded_memory_mb: u64,
    /// Disk (GiB) of each embedded host.
    pub embedded_disk_gb: u64,
    /// libvirt URI of the embedded agents; default: the test driver with a
    /// node file of the sizes above.
    pub embedded_libvirt_uri: Option<String>,
    /// Guest architectures the embedded hosts report on top of libvirt's test
    /// driver's own `i686` (only on the test driver): images asking for one of
    /// these boot; any other architecture is still refused by the
    /// ImagePropertiesFilter.
    pub embedded_guest_archs: Vec<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            enrollment_token: None,
            heartbeat_seconds: 10,
            max_poll_wait_seconds: 30,
            embedded: true,
            embedded_hosts: 1,
            embedded_host_prefix: "compute".to_string(),
            embedded_vcpus: 8,
            embedded_memory_mb: 16384,
            embedded_disk_gb: 200,
            embedded_libvirt_uri: None,
            embedded_guest_archs: vec!["x86_64".to_string()],
        }
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`,
/// else `localhost`).
pub fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Config {
    /// Reads `path`, or the defaults when `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        let mut config = Self::parse(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses TOML text and checks every value's range
    /// ([`Config::validate`]); the error names the key and the line.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text)?;
        config
            .validate()
            .map_err(|invalid| invalid.located_in(text))?;
        Ok(config)
    }

    /// Checks the range of every number and credential (see [`validate`]);
    /// the error names each offending key.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        validate::validate(self)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("novum.db").display()
            )
        })
    }

    /// The compiled-plugin cache directory in effect: `plugins.cache_dir`,
    /// else `<data_dir>/plugin-cache`.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.plugins.cache_dir.clone().unwrap_or_else(|| {
            self.data_dir
                .join(crate::plugins::config::DEFAULT_CACHE_DIR_NAME)
        })
    }

    /// The public base URL, without a trailing slash.
    pub fn public_base_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "[scheduler]\nmax_attempts = 0\n",
                "scheduler.max_attempts",
                2,
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
             [identity]\nadmin_password = \"x\"\nlockout_failure_attempts = 0\n",
        )
        .expect("-1 is unlimited, 0 is a limit, a fractional ratio is a ratio");
        assert_eq!(config.quota.instances, -1);
        assert_eq!(config.identity.lockout_failure_attempts, 0);
    }

    #[test]
    fn a_configuration_built_in_code_is_checked_too() {
        let mut config = Config::default();
        config.compute.cpu_allocation_ratio = f64::NAN;
        let error = config.validate().expect_err("nan refused").to_string();
        assert!(error.contains("`compute.cpu_allocation_ratio`"), "{error}");
        assert!(!error.contains("line"), "no file, no line: {error}");
    }
}
