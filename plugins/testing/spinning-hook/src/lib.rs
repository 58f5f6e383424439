//! Test plugin: a notification hook whose `on-notification` never returns.
//! The controller's epoch deadline stops each call; the end-to-end tests use
//! it to show that a stuck hook never slows the API.

#![cfg(target_arch = "wasm32")]

use novum_plugin_sdk::{Config, Notification, NotificationHook};

#[derive(Default)]
struct SpinningHook;

impl NotificationHook for SpinningHook {
    const DESCRIPTION: &'static str = "never returns from on-notification";

    fn on_notification(
        &mut self,
        _config: &Config,
        notification: &Notification,
    ) -> Result<(), String> {
        loop {
            std::hint::black_box(&notification.message_id);
        }
    }
}

novum_plugin_sdk::export_notification_hook!(SpinningHook);
