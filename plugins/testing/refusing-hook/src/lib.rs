//! Test plugin: a notification hook that refuses the event types listed in
//! its `refuse` configuration key (a JSON array or comma-separated list) and
//! records, in order, the event types and message ids it accepts; `report`
//! returns them as `{"accepted": [[event_type, message_id], ...]}`.

#![cfg(target_arch = "wasm32")]

use novum_plugin_sdk::{Config, Notification, NotificationHook};

#[derive(Default)]
struct RefusingHook {
    accepted: Vec<(String, String)>,
}

impl NotificationHook for RefusingHook {
    const DESCRIPTION: &'static str =
        "records accepted notifications, refuses configured event types";

    fn on_notification(
        &mut self,
        config: &Config,
        notification: &Notification,
    ) -> Result<(), String> {
        if config.strings("refuse").contains(&notification.event_type) {
            return Err(format!("refusing {}", notification.event_type));
        }
        // The payload must be a versioned notification.
        let data = notification.payload_data()?;
        if data.is_null() {
            return Err("payload without data".to_string());
        }
        self.accepted.push((
            notification.event_type.clone(),
            notification.message_id.clone(),
        ));
        Ok(())
    }

    fn report(&self) -> String {
        serde_json::json!({ "accepted": self.accepted }).to_string()
    }
}

novum_plugin_sdk::export_notification_hook!(RefusingHook);
