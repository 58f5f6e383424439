//! Configuration: one TOML file, every key defaulted, so `novum serve` with no
//! file runs an all-in-one cloud. Unknown keys are errors that name the key and
//! the line.

#![deny(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use novum_compute::{AgentConfig, ComputeConfig, MetadataConfig};
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
    pub plugins: novum_plugin_host::PluginsConfig,
    /// Compute agent settings (enrollment, embedded agents).
    pub agent: AgentConfig,
    /// Notification settings.
    pub notifications: novum_notify::NotificationsConfig,
    /// Quota defaults and policies.
    pub quota: novum_quota::QuotaConfig,
    /// Image service settings (upload size cap, per-project storage quota).
    pub images: novum_images::ImagesConfig,
    /// Network service settings (backend, the default network, quotas).
    pub network: novum_network::NetworkConfig,
    /// Metadata service settings (the proxies' shared secret).
    pub metadata: MetadataConfig,
    /// The Prometheus `/metrics` endpoint.
    pub metrics: MetricsConfig,
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
            plugins: novum_plugin_host::PluginsConfig::default(),
            agent: AgentConfig::default(),
            notifications: novum_notify::NotificationsConfig::default(),
            quota: novum_quota::QuotaConfig::default(),
            images: novum_images::ImagesConfig::default(),
            network: novum_network::NetworkConfig::default(),
            metadata: MetadataConfig::default(),
            metrics: MetricsConfig::default(),
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

/// `[metrics]`: the controller's metrics in Prometheus's text format.
///
/// With `enabled` (the default), `GET /metrics` on the API listener answers
/// callers holding the `admin` role (an `X-Auth-Token`, like every admin
/// endpoint). `listen` adds a second listener that serves only `/metrics`,
/// without authentication, for a Prometheus server that scrapes over a
/// management network: bind it to an address only that network reaches.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Record and serve metrics; `false`: nothing is recorded and `/metrics`
    /// answers 404.
    pub enabled: bool,
    /// An address serving `/metrics` without authentication (e.g.
    /// `"10.0.0.5:9180"`); none by default.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
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
                .join(novum_plugin_host::config::DEFAULT_CACHE_DIR_NAME)
        })
    }

    /// Loads the scheduler's plugins (`[scheduler]` lists, `[plugins]`
    /// settings, the compile cache in effect); a configured plugin that is
    /// neither built in nor found at its `path` is an error naming it.
    pub fn load_scheduler_plugins(
        &self,
    ) -> anyhow::Result<std::sync::Arc<novum_plugin_host::Plugins>> {
        let engine = novum_plugin_host::PluginEngine::new(self.plugin_cache_dir())?;
        let selection = self.scheduler.plugin_selection();
        Ok(std::sync::Arc::new(novum_plugin_host::Plugins::load(
            engine,
            self.scheduler.backend,
            &selection,
            &self.plugins,
        )?))
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
