//! Project filter hook: picks out the notifications of selected projects.
//!
//! Configuration: `projects`, a list of project ids (a JSON array or a
//! comma-separated string). A notification belongs to the project named by its
//! payload's `tenant_id` or `project_id` (inside `nova_object.data` for the
//! versioned format). Notifications of the selected projects are counted by
//! project and event type; all others (including those with no project) are
//! only counted as ignored, and the hook answers `Ok` either way. A payload
//! that is not JSON is an error. Delivering the matched notifications to a
//! webhook is the controller's part.
//!
//! `report()` returns `{"matched": {project: {event_type: count}},
//! "ignored": n}`.

use novum_plugin_sdk::collections::BTreeMap;
use novum_plugin_sdk::notifications::payload_project;
use novum_plugin_sdk::{Config, Notification, NotificationHook};
use serde_json::json;

/// Counts the notifications of the configured projects.
#[derive(Default)]
pub struct ProjectFilterHook {
    matched: BTreeMap<String, BTreeMap<String, u64>>,
    ignored: u64,
}

impl NotificationHook for ProjectFilterHook {
    const DESCRIPTION: &'static str = "count the notifications of the configured projects";

    fn on_notification(
        &mut self,
        config: &Config,
        notification: &Notification,
    ) -> Result<(), String> {
        let data = notification.payload_data()?;
        let projects = config.strings("projects");
        match payload_project(&data)
            .filter(|project| projects.iter().any(|wanted| wanted == project))
        {
            Some(project) => {
                let events = self.matched.entry(project.to_string()).or_default();
                *events.entry(notification.event_type.clone()).or_default() += 1;
            }
            None => self.ignored += 1,
        }
        Ok(())
    }

    fn report(&self) -> String {
        json!({"matched": self.matched, "ignored": self.ignored}).to_string()
    }
}

novum_plugin_sdk::export_notification_hook!(ProjectFilterHook);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::notification;
    use serde_json::Value;

    const NOON: &str = "2024-05-01T12:00:00Z";

    fn instance_event(event_type: &str, project: &str) -> Notification {
        let payload = json!({"nova_object.name": "InstanceActionPayload", "nova_object.data": {"uuid": "i1", "tenant_id": project}});
        notification(event_type, NOON, &payload.to_string())
    }

    fn report(hook: &ProjectFilterHook) -> Value {
        serde_json::from_str(&hook.report()).unwrap()
    }

    #[test]
    fn counts_events_of_selected_projects_only() {
        let mut hook = ProjectFilterHook::default();
        let config = Config::from_pairs(&[("projects", r#"["p1", "p3"]"#)]);
        for event in [
            instance_event("instance.create.end", "p1"),
            instance_event("instance.create.end", "p1"),
            instance_event("instance.delete.end", "p1"),
            instance_event("instance.create.end", "p2"),
            notification(
                "keypair.create.end",
                NOON,
                r#"{"nova_object.data": {"project_id": "p3"}}"#,
            ),
            notification(
                "aggregate.create.end",
                NOON,
                r#"{"nova_object.data": {"name": "agg"}}"#,
            ),
        ] {
            assert_eq!(hook.on_notification(&config, &event), Ok(()));
        }
        assert_eq!(
            report(&hook),
            json!({
                "matched": {"p1": {"instance.create.end": 2, "instance.delete.end": 1}, "p3": {"keypair.create.end": 1}},
                "ignored": 2,
            })
        );
    }

    #[test]
    fn no_projects_configured_matches_nothing_and_bad_json_is_an_error() {
        let mut hook = ProjectFilterHook::default();
        let comma = Config::from_pairs(&[("projects", "p1, p2")]);
        hook.on_notification(&comma, &instance_event("instance.create.end", "p2"))
            .unwrap();
        hook.on_notification(
            &Config::default(),
            &instance_event("instance.create.end", "p2"),
        )
        .unwrap();
        assert!(
            hook.on_notification(&comma, &notification("instance.create.end", NOON, "{"))
                .is_err()
        );
        assert_eq!(
            report(&hook),
            json!({"matched": {"p2": {"instance.create.end": 1}}, "ignored": 1})
        );
    }
}
