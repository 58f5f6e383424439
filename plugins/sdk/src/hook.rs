//! Notification hooks: hear notifications off the request path.

use crate::{Config, Notification};

/// A notification hook. Hooks keep state between calls until the plugin set is
/// reloaded or the plugin traps.
pub trait NotificationHook {
    /// One line on what the hook does.
    const DESCRIPTION: &'static str;

    /// Handles one notification; an error is counted and retried by policy.
    fn on_notification(
        &mut self,
        config: &Config,
        notification: &Notification,
    ) -> Result<(), String>;

    /// The hook's state as JSON, for the admin API.
    fn report(&self) -> String {
        "{}".to_string()
    }
}

/// Runs hook `H` on one notification.
pub fn run_notification_hook<H: NotificationHook>(
    state: &mut H,
    config: &Config,
    notification: &Notification,
) -> Result<(), String> {
    state.on_notification(config, notification)
}

/// Exports a [`NotificationHook`] (which must be `Default`) as the
/// `notification-hook` world of a wasm component.
#[macro_export]
macro_rules! export_notification_hook {
    ($hook:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct NovumHookExport;
            thread_local! {
                static STATE: ::std::cell::RefCell<$hook> = ::std::cell::RefCell::new(<$hook as Default>::default());
            }
            impl $crate::bindings::notification_hook::Guest for NovumHookExport {
                fn describe() -> $crate::PluginInfo {
                    $crate::plugin_info(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                        <$hook as $crate::NotificationHook>::DESCRIPTION,
                        &[],
                    )
                }
                fn on_notification(notification: $crate::Notification) -> Result<(), String> {
                    let config = $crate::host_config();
                    STATE.with(|state| $crate::run_notification_hook(&mut *state.borrow_mut(), &config, &notification))
                }
                fn report() -> String {
                    STATE.with(|state| <$hook as $crate::NotificationHook>::report(&*state.borrow()))
                }
            }
            $crate::bindings::notification_hook::export_notification_hook_world!(NovumHookExport);
        };
    };
}
