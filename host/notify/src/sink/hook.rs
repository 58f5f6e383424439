//! Notification-hook plugins as a sink: [`HookSink`], implemented for the
//! plugin runtime's hooks by [`PluginHook`].

use std::sync::Arc;

use novum_plugin_host::{
    Backend, LoadError, PluginEngine, PluginKind, PluginSelection, Plugins, PluginsConfig,
};

use crate::config::NotificationsConfig;
use crate::envelope::Envelope;

/// The plugin selection of the `[notifications] hooks`.
pub fn selection(notifications: &NotificationsConfig) -> PluginSelection {
    PluginSelection {
        notification_hooks: notifications.hooks.clone(),
        ..PluginSelection::default()
    }
}

/// Loads the `[notifications] hooks` as WebAssembly components in `engine`
/// (the controller's one engine; whatever the scheduler backend, like the
/// quota policies), each configured by its `[plugins.<name>]` table of
/// `plugins_config`. Reload them with [`reload`].
pub fn load(
    engine: &Arc<PluginEngine>,
    notifications: &NotificationsConfig,
    plugins_config: &PluginsConfig,
) -> Result<Arc<Plugins>, LoadError> {
    Ok(Arc::new(Plugins::load(
        Arc::clone(engine),
        Backend::Wasm,
        &selection(notifications),
        plugins_config,
    )?))
}

/// Reloads the hooks of `notifications` (configured by `plugins_config`)
/// into `plugins` (component files are read again; each hook starts with a
/// fresh instance, so its in-memory state starts over). Deliveries look the
/// hook up at each message, so the next one uses the new set; on error the
/// running set stays.
pub fn reload(
    plugins: &Plugins,
    notifications: &NotificationsConfig,
    plugins_config: &PluginsConfig,
) -> Result<(), LoadError> {
    plugins
        .reload(Backend::Wasm, &selection(notifications), plugins_config)
        .map(|_| ())
}

/// Something that hears versioned notifications synchronously (a
/// notification-hook plugin). Called off the request path, on a blocking
/// thread; an `Err` is retried up to `hook_max_attempts`, then dead-lettered.
pub trait HookSink: Send + Sync {
    /// The name its delivery state is kept under (`hook:<name>`).
    fn name(&self) -> &str;
    /// Delivers one message.
    fn deliver(&self, message: &Envelope) -> Result<(), String>;
}

/// The notification-hook plugin `name` of the plugin runtime, looked up in
/// the current plugin set at each delivery (so a reload takes effect). The
/// plugin must be loaded: list it in the `PluginSelection`'s
/// `notification_hooks` (from `[notifications] hooks`).
pub struct PluginHook {
    plugins: Arc<Plugins>,
    name: String,
}

impl PluginHook {
    /// The hook `name` of `plugins`.
    pub fn new(plugins: Arc<Plugins>, name: &str) -> Self {
        Self {
            plugins,
            name: name.to_string(),
        }
    }

    /// One [`PluginHook`] per name.
    pub fn all(plugins: &Arc<Plugins>, names: &[String]) -> Vec<Arc<dyn HookSink>> {
        names
            .iter()
            .map(|name| Arc::new(Self::new(Arc::clone(plugins), name)) as Arc<dyn HookSink>)
            .collect()
    }
}

impl HookSink for PluginHook {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&self, message: &Envelope) -> Result<(), String> {
        let set = self.plugins.current();
        let plugin = set
            .plugin(&self.name)
            .ok_or_else(|| format!("notification hook {} is not loaded", self.name))?;
        if plugin.kind() != PluginKind::NotificationHook {
            return Err(format!(
                "plugin {} is a {}, not a notification hook",
                self.name,
                plugin.kind()
            ));
        }
        let notification = novum_plugin_sdk::Notification {
            message_id: message.message_id.clone(),
            event_type: message.event_type.clone(),
            priority: message.priority.as_str().to_string(),
            publisher_id: message.publisher_id.clone(),
            timestamp: message.timestamp.clone(),
            payload_json: message.payload.to_string(),
        };
        match plugin.on_notification(&message.message_id, notification) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(format!("hook {} refused: {reason}", self.name)),
            Err(failure) => Err(format!("hook {} failed: {failure}", self.name)),
        }
    }
}
