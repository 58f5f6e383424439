//! The `[plugins]` section of the controller's configuration.
//!
//! ```toml
//! [plugins]
//! cache_dir = "/var/cache/novum/plugins"   # compiled components; default <data_dir>/plugin-cache
//!
//! [plugins.defaults]
//! deadline_ms = 50
//! memory_limit_mib = 64
//! on_error = "reject-host"
//! pool_size = 4
//!
//! [plugins.ram-weigher]          # optional, one table per plugin
//! path = "/path/to/x.wasm"      # absent: the builtin of that name
//! multiplier = 1.0
//! deadline_ms = 20
//! config = { anything = 1 }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::limits::{DEFAULT_DEADLINE_MS, DEFAULT_MEMORY_LIMIT_MIB, DEFAULT_POOL_SIZE, Limits};

/// What happens to a scheduling request when a plugin fails (traps, overruns
/// its deadline or memory, or answers something malformed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Filters: every host of that call is rejected with the reason
    /// "plugin X failed: …". Weighers cannot reject: they contribute 0, as
    /// with `ignore`.
    #[default]
    RejectHost,
    /// The plugin is skipped: a filter passes every host, a weigher
    /// contributes 0.
    Ignore,
    /// The scheduling request fails with an error naming the plugin.
    FailRequest,
}

/// The compile cache directory under `data_dir` unless `cache_dir` says
/// otherwise.
pub const DEFAULT_CACHE_DIR_NAME: &str = "plugin-cache";

/// The `[plugins]` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginsConfig {
    /// Where compiled components are cached; `None`:
    /// `<data_dir>/plugin-cache` ([`DEFAULT_CACHE_DIR_NAME`]). The directory
    /// is created 0700 and must belong to the controller's user and be
    /// writable by no one else (see [`crate::engine`]).
    pub cache_dir: Option<PathBuf>,
    /// Settings every plugin gets unless its own table overrides them.
    pub defaults: PluginDefaults,
    /// Per-plugin tables, by plugin name.
    #[serde(flatten)]
    pub plugins: BTreeMap<String, PluginConfig>,
}

/// `[plugins.defaults]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginDefaults {
    /// Time budget of one call, in milliseconds.
    pub deadline_ms: u64,
    /// Linear memory cap, in MiB.
    pub memory_limit_mib: u64,
    /// Failure policy.
    pub on_error: OnError,
    /// Warm instances kept per plugin.
    pub pool_size: usize,
}

impl Default for PluginDefaults {
    fn default() -> Self {
        Self {
            deadline_ms: DEFAULT_DEADLINE_MS,
            memory_limit_mib: DEFAULT_MEMORY_LIMIT_MIB,
            on_error: OnError::default(),
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

/// `[plugins.<name>]`: one plugin's overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// A component file; absent: the builtin plugin of this name.
    pub path: Option<PathBuf>,
    /// Weighers: the multiplier (default: the weigher's Nova default).
    pub multiplier: Option<f64>,
    /// Weighers: the aggregate metadata key overriding the multiplier
    /// (default: the weigher's Nova option name, e.g. `ram_weight_multiplier`).
    pub multiplier_key: Option<String>,
    /// Weighers: the floor of normalization. Weights normalize over
    /// `normalization_min ..= max` instead of `min ..= max` (Nova's
    /// `minval`); default: 0.0 for the RAM, CPU, disk and I/O ops weighers,
    /// else the smallest weight among the candidates.
    pub normalization_min: Option<f64>,
    /// Time budget of one call, in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Linear memory cap, in MiB.
    pub memory_limit_mib: Option<u64>,
    /// Failure policy.
    pub on_error: Option<OnError>,
    /// The plugin's own configuration, handed to it by the `config` import.
    pub config: toml::Table,
}

/// One plugin's effective settings: its table merged over the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSettings {
    /// Call limits.
    pub limits: Limits,
    /// Failure policy.
    pub on_error: OnError,
    /// Warm instances kept.
    pub pool_size: usize,
    /// Configuration as the plugin sees it: scalars as text, arrays and
    /// tables as JSON.
    pub config: Vec<(String, String)>,
}

impl PluginsConfig {
    /// The table of plugin `name`, if any.
    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.get(name)
    }

    /// The effective settings of plugin `name`.
    pub fn settings(&self, name: &str) -> PluginSettings {
        let own = self.plugins.get(name);
        let defaults = &self.defaults;
        PluginSettings {
            limits: Limits::new(
                own.and_then(|own| own.deadline_ms)
                    .unwrap_or(defaults.deadline_ms),
                own.and_then(|own| own.memory_limit_mib)
                    .unwrap_or(defaults.memory_limit_mib),
            ),
            on_error: own
                .and_then(|own| own.on_error)
                .unwrap_or(defaults.on_error),
            pool_size: defaults.pool_size,
            config: own
                .map(|own| flatten_config(&own.config))
                .unwrap_or_default(),
        }
    }
}

/// A TOML table as key/value text: scalars as their text, arrays and tables as
/// JSON.
pub fn flatten_config(table: &toml::Table) -> Vec<(String, String)> {
    table
        .iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Float(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                toml::Value::Datetime(when) => when.to_string(),
                toml::Value::Array(_) | toml::Value::Table(_) => {
                    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
                }
            };
            (key.clone(), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_plugin_tables() {
        let config: PluginsConfig = toml::from_str(
            r#"
            cache_dir = "/tmp/x"
            [defaults]
            deadline_ms = 30
            on_error = "ignore"
            [ram-weigher]
            multiplier = 2.0
            deadline_ms = 20
            config = { anything = 1, list = ["a", "b"], name = "x" }
            "#,
        )
        .expect("valid config");
        let settings = config.settings("ram-weigher");
        assert_eq!(settings.limits.deadline.as_millis(), 20);
        assert_eq!(settings.on_error, OnError::Ignore);
        assert_eq!(settings.limits.memory_bytes, 64 << 20);
        assert!(
            settings
                .config
                .contains(&("anything".to_string(), "1".to_string()))
        );
        assert!(
            settings
                .config
                .contains(&("list".to_string(), r#"["a","b"]"#.to_string()))
        );
        assert!(
            settings
                .config
                .contains(&("name".to_string(), "x".to_string()))
        );
        assert_eq!(config.settings("other").limits.deadline.as_millis(), 30);
    }

    #[test]
    fn rejects_unknown_plugin_keys() {
        let error = toml::from_str::<PluginsConfig>("[ram-weigher]\nmultiplyer = 2.0\n");
        assert!(error.is_err());
        let error = toml::from_str::<PluginsConfig>("[defaults]\non_error = \"explode\"\n");
        assert!(error.is_err());
    }
}
