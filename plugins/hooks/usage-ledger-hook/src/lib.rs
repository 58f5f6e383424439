//! Usage ledger hook: instance-seconds per project and flavor, kept from the
//! versioned instance notifications.
//!
//! An instance accrues time while it runs:
//! - `instance.create.end` starts tracking it (running when its `state` is
//!   `active`, or has no state);
//! - `instance.power_off.end` stops the clock, `instance.power_on.end` restarts it;
//! - `instance.resize_finish.end` books the time so far under the old flavor and
//!   continues under the new one;
//! - `instance.delete.end` books the time so far and forgets the instance.
//!
//! Times are the notifications' envelope timestamps. The fields read from
//! `nova_object.data` are `uuid`, `tenant_id`, `state` and `flavor`'s
//! `nova_object.data.name`. An event for an instance the ledger has not seen
//! (say, created before the hook was loaded) starts tracking it from that event.
//! Other event types are ignored; a relevant event whose payload or timestamp
//! cannot be read is an error.
//!
//! `report()` returns `{"projects": {project: {flavor: seconds}},
//! "running_instances": n, "tracked_instances": n}`, running instances counted
//! up to the controller's clock. The ledger lives in the plugin's memory until
//! the plugin set is reloaded or the plugin traps.

use novum_plugin_sdk::collections::BTreeMap;
use novum_plugin_sdk::notifications::{nested_data, payload_project};
use novum_plugin_sdk::{Config, Notification, NotificationHook, now_ms};
use serde_json::{Value, json};

/// One instance the ledger follows.
struct Tracked {
    project: String,
    flavor: String,
    /// When the current running period began (ms), if the instance runs.
    running_since: Option<u64>,
}

/// Instance-seconds per project and flavor.
#[derive(Default)]
pub struct UsageLedgerHook {
    instances: BTreeMap<String, Tracked>,
    /// Milliseconds of finished running periods, by project, then flavor.
    booked: BTreeMap<String, BTreeMap<String, u64>>,
}

/// What an instance event does to the ledger.
#[derive(Clone, Copy, PartialEq)]
enum Event {
    Create,
    PowerOff,
    PowerOn,
    Resize,
    Delete,
}

impl Event {
    fn of(event_type: &str) -> Option<Self> {
        Some(match event_type {
            "instance.create.end" => Self::Create,
            "instance.power_off.end" => Self::PowerOff,
            "instance.power_on.end" => Self::PowerOn,
            "instance.resize_finish.end" => Self::Resize,
            "instance.delete.end" => Self::Delete,
            _ => return None,
        })
    }
}

fn text<'a>(data: &'a Value, field: &str, event_type: &str) -> Result<&'a str, String> {
    data.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{event_type}: payload has no `{field}`"))
}

impl UsageLedgerHook {
    /// Books the running period of `tracked` up to `at`, and stops its clock.
    fn book(booked: &mut BTreeMap<String, BTreeMap<String, u64>>, tracked: &mut Tracked, at: u64) {
        if let Some(since) = tracked.running_since.take() {
            let flavors = booked.entry(tracked.project.clone()).or_default();
            *flavors.entry(tracked.flavor.clone()).or_default() += at.saturating_sub(since);
        }
    }

    /// The ledger as JSON, running instances counted up to `now` (ms).
    pub fn report_at(&self, now: u64) -> Value {
        let mut totals = self.booked.clone();
        for tracked in self.instances.values() {
            if let Some(since) = tracked.running_since {
                let flavors = totals.entry(tracked.project.clone()).or_default();
                *flavors.entry(tracked.flavor.clone()).or_default() += now.saturating_sub(since);
            }
        }
        let projects: serde_json::Map<String, Value> = totals
            .into_iter()
            .map(|(project, flavors)| {
                let flavors: serde_json::Map<String, Value> = flavors
                    .into_iter()
                    .map(|(flavor, millis)| (flavor, json!(millis as f64 / 1000.0)))
                    .collect();
                (project, Value::Object(flavors))
            })
            .collect();
        json!({
            "projects": projects,
            "running_instances": self.instances.values().filter(|tracked| tracked.running_since.is_some()).count(),
            "tracked_instances": self.instances.len(),
        })
    }
}

impl NotificationHook for UsageLedgerHook {
    const DESCRIPTION: &'static str = "instance-seconds per project and flavor";

    fn on_notification(
        &mut self,
        _config: &Config,
        notification: &Notification,
    ) -> Result<(), String> {
        let event_type = notification.event_type.as_str();
        let Some(event) = Event::of(event_type) else {
            return Ok(());
        };
        let at = notification.timestamp_ms().ok_or_else(|| {
            format!(
                "{event_type}: unreadable timestamp `{}`",
                notification.timestamp
            )
        })?;
        let data = notification.payload_data()?;
        let uuid = text(&data, "uuid", event_type)?;
        let project = payload_project(&data)
            .ok_or_else(|| format!("{event_type}: payload has no `tenant_id`"))?;
        let flavor = nested_data(&data, "flavor")
            .and_then(|flavor| flavor.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{event_type}: payload has no flavor name"))?;
        let runs_at_create = data
            .get("state")
            .and_then(Value::as_str)
            .is_none_or(|state| state == "active");

        let tracked = self
            .instances
            .entry(uuid.to_string())
            .or_insert_with(|| Tracked {
                project: project.to_string(),
                flavor: flavor.to_string(),
                running_since: match event {
                    Event::Create => runs_at_create.then_some(at),
                    Event::PowerOn | Event::Resize => Some(at),
                    Event::PowerOff | Event::Delete => None,
                },
            });
        match event {
            Event::Create => {}
            Event::PowerOff => Self::book(&mut self.booked, tracked, at),
            Event::PowerOn => {
                tracked.running_since.get_or_insert(at);
            }
            Event::Resize => {
                let was_running = tracked.running_since.is_some();
                Self::book(&mut self.booked, tracked, at);
                tracked.flavor = flavor.to_string();
                tracked.running_since = was_running.then_some(at);
            }
            Event::Delete => {
                Self::book(&mut self.booked, tracked, at);
                self.instances.remove(uuid);
            }
        }
        Ok(())
    }

    fn report(&self) -> String {
        self.report_at(now_ms()).to_string()
    }
}

novum_plugin_sdk::export_notification_hook!(UsageLedgerHook);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::notification;
    use novum_plugin_sdk::notifications::parse_timestamp_ms;

    const NOON: &str = "2024-05-01T12:00:00Z";

    /// An instance notification with Nova's versioned payload shape.
    fn event(
        event_type: &str,
        timestamp: &str,
        uuid: &str,
        project: &str,
        flavor: &str,
        state: &str,
    ) -> Notification {
        let payload = json!({
            "nova_object.name": "InstanceActionPayload",
            "nova_object.namespace": "nova",
            "nova_object.version": "1.8",
            "nova_object.data": {
                "uuid": uuid,
                "tenant_id": project,
                "state": state,
                "flavor": {"nova_object.name": "FlavorPayload", "nova_object.data": {"name": flavor, "vcpus": 1}},
            },
        });
        notification(event_type, timestamp, &payload.to_string())
    }

    /// Feeds `hook` one [`event`] per line:
    /// `event_type timestamp uuid project flavor state`.
    fn feed(hook: &mut UsageLedgerHook, lines: &[&str]) {
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [event_type, timestamp, uuid, project, flavor, state] = fields[..] else {
                panic!("test event needs six fields: {line}");
            };
            let event = event(event_type, timestamp, uuid, project, flavor, state);
            hook.on_notification(&Config::default(), &event).unwrap();
        }
    }

    fn ms(timestamp: &str) -> u64 {
        parse_timestamp_ms(timestamp).unwrap()
    }

    #[test]
    fn books_running_time_per_project_and_flavor() {
        let mut hook = UsageLedgerHook::default();
        feed(
            &mut hook,
            &[
                "instance.create.end 2024-05-01T12:00:00Z i1 p1 m1.small active",
                "instance.create.end 2024-05-01T12:00:00Z i2 p1 m1.large active",
                "instance.create.end 2024-05-01T12:00:00Z i3 p2 m1.small active",
                "instance.power_off.end 2024-05-01T12:01:00Z i1 p1 m1.small stopped",
                "instance.power_on.end 2024-05-01T12:05:00Z i1 p1 m1.small active",
                "instance.delete.end 2024-05-01T12:06:00Z i1 p1 m1.small deleted",
                "instance.delete.end 2024-05-01T12:00:30.5Z i3 p2 m1.small deleted",
            ],
        );
        let report = hook.report_at(ms("2024-05-01T12:10:00Z"));
        assert_eq!(
            report,
            json!({
                "projects": {"p1": {"m1.small": 120.0, "m1.large": 600.0}, "p2": {"m1.small": 30.5}},
                "running_instances": 1,
                "tracked_instances": 1,
            })
        );
    }

    #[test]
    fn resize_switches_flavor_and_stopped_time_is_free() {
        let mut hook = UsageLedgerHook::default();
        feed(
            &mut hook,
            &[
                "instance.create.end 2024-05-01T12:00:00Z i1 p1 m1.small active",
                "instance.resize_finish.end 2024-05-01T12:00:10Z i1 p1 m1.large resized",
                "instance.power_off.end 2024-05-01T12:00:30Z i1 p1 m1.large stopped",
                "instance.power_off.end 2024-05-01T12:00:40Z i1 p1 m1.large stopped",
            ],
        );
        let report = hook.report_at(ms("2024-05-01T13:00:00Z"));
        assert_eq!(
            report["projects"],
            json!({"p1": {"m1.small": 10.0, "m1.large": 20.0}})
        );
        assert_eq!(report["running_instances"], json!(0));
    }

    #[test]
    fn unseen_instances_are_tracked_from_their_first_event_and_other_events_ignored() {
        let mut hook = UsageLedgerHook::default();
        feed(
            &mut hook,
            &[
                "instance.power_on.end 2024-05-01T12:00:00Z old p1 m1.tiny active",
                "instance.delete.end 2024-05-01T12:00:05Z gone p1 m1.tiny deleted",
                "instance.create.start 2024-05-01T12:00:00Z i9 p1 m1.tiny building",
            ],
        );
        hook.on_notification(
            &Config::default(),
            &notification("keypair.create.end", NOON, "not even json"),
        )
        .unwrap();
        let report = hook.report_at(ms("2024-05-01T12:00:42Z"));
        assert_eq!(report["projects"], json!({"p1": {"m1.tiny": 42.0}}));
        assert_eq!(report["tracked_instances"], json!(1));
    }

    #[test]
    fn unreadable_relevant_events_are_errors() {
        let mut hook = UsageLedgerHook::default();
        let config = Config::default();
        assert!(
            hook.on_notification(&config, &notification("instance.create.end", NOON, "{"))
                .is_err()
        );
        let no_flavor = notification(
            "instance.create.end",
            NOON,
            r#"{"nova_object.data": {"uuid": "i1", "tenant_id": "p1"}}"#,
        );
        assert!(
            hook.on_notification(&config, &no_flavor)
                .unwrap_err()
                .contains("flavor")
        );
        let bad_time = event(
            "instance.create.end",
            "noon",
            "i1",
            "p1",
            "m1.small",
            "active",
        );
        assert!(
            hook.on_notification(&config, &bad_time)
                .unwrap_err()
                .contains("timestamp")
        );
        assert_eq!(hook.report_at(0)["tracked_instances"], json!(0));
    }
}
