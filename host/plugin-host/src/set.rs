//! [`PluginSet`]: the loaded, configured plugins of one configuration, and
//! [`Plugins`], which holds the current set and swaps it atomically on
//! reload. A request takes an `Arc` of the current set and finishes on it even
//! if a reload swaps in a new one meanwhile.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use super::config::{PluginSettings, PluginsConfig};
use super::engine::PluginEngine;
use super::wasm::WasmPlugin;
use super::weigher_defaults::{weigher_defaults, weigher_normalization_min};
use super::{LoadedPlugin, MetricsSnapshot, PluginBackend, PluginKind, PluginSource, builtin};

/// How plugins run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Sandboxed WebAssembly components (builtin or from `path`).
    #[default]
    Wasm,
    /// The plugin crates compiled into the controller (no sandbox; `path` is
    /// not supported). For reference runs and benchmarks; needs the `native`
    /// feature, without which loading fails with a [`LoadError`].
    Native,
}

/// Which plugins to load, by name and role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginSelection {
    /// Filters, in run order.
    pub filters: Vec<String>,
    /// Weighers.
    pub weighers: Vec<String>,
    /// Quota policies.
    pub quota_policies: Vec<String>,
    /// Notification hooks.
    pub notification_hooks: Vec<String>,
}

/// A plugin that could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin}: {reason}")]
pub struct LoadError {
    /// The plugin's configured name.
    pub plugin: String,
    /// Why it could not be loaded.
    pub reason: String,
}

/// A weigher with its multiplier settings.
#[derive(Clone, Debug)]
pub struct WeigherEntry {
    /// The weigher.
    pub plugin: Arc<LoadedPlugin>,
    /// The multiplier applied to its normalized weights.
    pub multiplier: f64,
    /// Aggregate metadata key overriding `multiplier` for hosts in that
    /// aggregate (several aggregates: the minimum).
    pub multiplier_key: String,
    /// The floor of normalization (Nova's `minval`); `None`: the smallest
    /// weight among the candidates.
    pub normalization_min: Option<f64>,
}

/// What the API and CLI show of a plugin.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PluginSummary {
    /// Configured name.
    pub name: String,
    /// Kind.
    pub kind: PluginKind,
    /// The plugin's own version.
    pub version: String,
    /// The plugin's description.
    pub description: String,
    /// Host columns it reads.
    pub needs: Vec<String>,
    /// Where it came from.
    pub source: PluginSource,
    /// Weighers: the multiplier.
    pub multiplier: Option<f64>,
    /// Call metrics.
    pub metrics: MetricsSnapshot,
}

/// The plugins of one configuration, loaded and ready.
#[derive(Debug, Default)]
pub struct PluginSet {
    filters: Vec<Arc<LoadedPlugin>>,
    weighers: Vec<WeigherEntry>,
    quota_policies: Vec<Arc<LoadedPlugin>>,
    notification_hooks: Vec<Arc<LoadedPlugin>>,
    backend: Backend,
}

impl PluginSet {
    /// Loads every selected plugin. Fails on the first plugin that cannot be
    /// loaded, or that is not of the role it is listed under.
    pub fn load(
        engine: &Arc<PluginEngine>,
        backend: Backend,
        selection: &PluginSelection,
        config: &PluginsConfig,
    ) -> Result<Self, LoadError> {
        let mut loaded: BTreeMap<String, Arc<LoadedPlugin>> = BTreeMap::new();
        let mut role = |name: &String, kind: PluginKind| -> Result<Arc<LoadedPlugin>, LoadError> {
            if let Some(plugin) = loaded.get(name) {
                return Ok(Arc::clone(plugin));
            }
            let plugin = Arc::new(load_plugin(engine, backend, name, config)?);
            if plugin.kind() != kind {
                return Err(LoadError {
                    plugin: name.clone(),
                    reason: format!("is a {}, but it is configured as a {kind}", plugin.kind()),
                });
            }
            loaded.insert(name.clone(), Arc::clone(&plugin));
            Ok(plugin)
        };
        let filters = selection
            .filters
            .iter()
            .map(|name| role(name, PluginKind::Filter))
            .collect::<Result<Vec<_>, _>>()?;
        let weighers = selection
            .weighers
            .iter()
            .map(|name| {
                let plugin = role(name, PluginKind::Weigher)?;
                let (default_key, default_multiplier) = weigher_defaults(name);
                let own = config.plugin(name);
                Ok(WeigherEntry {
                    plugin,
                    multiplier: own
                        .and_then(|own| own.multiplier)
                        .unwrap_or(default_multiplier),
                    multiplier_key: own
                        .and_then(|own| own.multiplier_key.clone())
                        .unwrap_or(default_key),
                    normalization_min: own
                        .and_then(|own| own.normalization_min)
                        .or_else(|| weigher_normalization_min(name)),
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let quota_policies = selection
            .quota_policies
            .iter()
            .map(|name| role(name, PluginKind::QuotaPolicy))
            .collect::<Result<Vec<_>, _>>()?;
        let notification_hooks = selection
            .notification_hooks
            .iter()
            .map(|name| role(name, PluginKind::NotificationHook))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            filters,
            weighers,
            quota_policies,
            notification_hooks,
            backend,
        })
    }

    /// Filters, in run order.
    pub fn filters(&self) -> &[Arc<LoadedPlugin>] {
        &self.filters
    }

    /// Weighers with their multipliers.
    pub fn weighers(&self) -> &[WeigherEntry] {
        &self.weighers
    }

    /// Quota policies.
    pub fn quota_policies(&self) -> &[Arc<LoadedPlugin>] {
        &self.quota_policies
    }

    /// Notification hooks.
    pub fn notification_hooks(&self) -> &[Arc<LoadedPlugin>] {
        &self.notification_hooks
    }

    /// The backend the set was loaded with.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.all().find(|plugin| plugin.name() == name)
    }

    fn all(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.filters
            .iter()
            .chain(self.weighers.iter().map(|entry| &entry.plugin))
            .chain(&self.quota_policies)
            .chain(&self.notification_hooks)
    }

    /// Every plugin of the set, once each, with metrics.
    pub fn list(&self) -> Vec<PluginSummary> {
        let mut seen = std::collections::BTreeSet::new();
        self.all()
            .filter(|plugin| seen.insert(plugin.name().to_string()))
            .map(|plugin| {
                let info = plugin.info();
                PluginSummary {
                    name: plugin.name().to_string(),
                    kind: plugin.kind(),
                    version: info.version.clone(),
                    description: info.description.clone(),
                    needs: info
                        .needs
                        .iter()
                        .map(|column| super::column_name(*column).to_string())
                        .collect(),
                    source: plugin.source(),
                    multiplier: self
                        .weighers
                        .iter()
                        .find(|entry| entry.plugin.name() == plugin.name())
                        .map(|entry| entry.multiplier),
                    metrics: plugin.metrics().snapshot(),
                }
            })
            .collect()
    }
}

/// Loads plugin `name` with the given backend and its configuration.
pub fn load_plugin(
    engine: &Arc<PluginEngine>,
    backend: Backend,
    name: &str,
    config: &PluginsConfig,
) -> Result<LoadedPlugin, LoadError> {
    let failed = |reason: String| LoadError {
        plugin: name.to_string(),
        reason,
    };
    let settings = config.settings(name);
    let path = config.plugin(name).and_then(|own| own.path.clone());
    let (backend, kind, info): (Box<dyn PluginBackend>, _, _) = match backend {
        Backend::Native => {
            if path.is_some() {
                return Err(failed(
                    "the native backend cannot load a component file (`path`)".to_string(),
                ));
            }
            native_backend(name, &settings).map_err(failed)?
        }
        Backend::Wasm => {
            let (bytes, source) = component_bytes(name, path).map_err(failed)?;
            let (plugin, kind, info) =
                WasmPlugin::load(engine, name, source, &bytes, &settings).map_err(failed)?;
            (Box::new(plugin), kind, info)
        }
    };
    Ok(LoadedPlugin::new(
        name.to_string(),
        kind,
        info,
        settings,
        backend,
    ))
}

/// A loaded plugin's backend, kind and self-description.
type Backed = (
    Box<dyn PluginBackend>,
    PluginKind,
    novum_plugin_sdk::PluginInfo,
);

/// The native build of plugin `name`.
#[cfg(feature = "native")]
fn native_backend(name: &str, settings: &PluginSettings) -> Result<Backed, String> {
    let plugin = super::native::native_plugin(name)
        .ok_or_else(|| "no native build of this plugin".to_string())?;
    let (native, kind, info) = super::native::NativeBackend::new(plugin, settings);
    Ok((Box::new(native), kind, info))
}

/// Without the `native` feature no plugin has a native build.
#[cfg(not(feature = "native"))]
fn native_backend(_name: &str, _settings: &PluginSettings) -> Result<Backed, String> {
    Err("the native backend is not built into this binary (feature `native`)".to_string())
}

fn component_bytes(
    name: &str,
    path: Option<PathBuf>,
) -> Result<(std::borrow::Cow<'static, [u8]>, PluginSource), String> {
    match path {
        Some(path) => match std::fs::read(&path) {
            Ok(bytes) => Ok((bytes.into(), PluginSource::File(path))),
            Err(error) => Err(format!("reading {}: {error}", path.display())),
        },
        None => match builtin::builtin(name) {
            Some(plugin) => Ok((plugin.bytes.into(), PluginSource::Builtin)),
            None => Err("no builtin plugin of this name and no `path` configured".to_string()),
        },
    }
}

/// The controller's plugins: the current [`PluginSet`], swapped atomically by
/// [`Plugins::reload`].
pub struct Plugins {
    engine: Arc<PluginEngine>,
    current: RwLock<Arc<PluginSet>>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Plugins")
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

impl Plugins {
    /// Loads the selected plugins; fails like [`PluginSet::load`].
    pub fn load(
        engine: Arc<PluginEngine>,
        backend: Backend,
        selection: &PluginSelection,
        config: &PluginsConfig,
    ) -> Result<Self, LoadError> {
        let set = PluginSet::load(&engine, backend, selection, config)?;
        Ok(Self {
            engine,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// The engine plugins run in.
    pub fn engine(&self) -> &Arc<PluginEngine> {
        &self.engine
    }

    /// The current set; a request keeps using it until it finishes.
    pub fn current(&self) -> Arc<PluginSet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads a new set and swaps it in. If any plugin fails to load, the
    /// running set stays in place and the error names the plugin.
    pub fn reload(
        &self,
        backend: Backend,
        selection: &PluginSelection,
        config: &PluginsConfig,
    ) -> Result<Arc<PluginSet>, LoadError> {
        let set = Arc::new(PluginSet::load(&self.engine, backend, selection, config)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&set);
        tracing::info!(plugins = set.list().len(), "plugin set reloaded");
        Ok(set)
    }

    /// The plugins of the current set, with metrics.
    pub fn list(&self) -> Vec<PluginSummary> {
        self.current().list()
    }
}
