//! The envelope of a notification, exactly as Nova's notifier sends it:
//! `priority`, `event_type`, `timestamp`, `publisher_id`, `message_id`,
//! `payload`; and [`Notification`], an envelope plus what novum needs to
//! store and route it (ordering key, project, instance, legacy form).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::payload::{NovaObject, Versioned};

/// Notification priority. Nova sends `INFO`, and `ERROR` for `*.error`
/// events and `compute.exception`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Priority {
    /// `INFO`.
    Info,
    /// `ERROR`.
    Error,
}

impl Priority {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Info => "INFO",
            Priority::Error => "ERROR",
        }
    }
}

/// The phase of an action (`instance.power_off.start`, `.end`, `.error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `start`.
    Start,
    /// `end`.
    End,
    /// `error`.
    Error,
    /// `progress`.
    Progress,
}

impl Phase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::End => "end",
            Phase::Error => "error",
            Phase::Progress => "progress",
        }
    }
}

/// A versioned event type: `object.action[.phase]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventType {
    /// `instance`, `aggregate`, `service`, `compute`, ...
    pub object: String,
    /// `create`, `power_off`, `update`, `exception`, ...
    pub action: String,
    /// The phase, for actions that have them.
    pub phase: Option<Phase>,
}

impl EventType {
    /// `object.action.phase` (or `object.action` without a phase).
    pub fn new(object: &str, action: &str, phase: Option<Phase>) -> Self {
        Self {
            object: object.to_string(),
            action: action.to_string(),
            phase,
        }
    }

    /// The priority Nova gives this event: ERROR for `*.error` and
    /// `compute.exception`, else INFO.
    pub fn priority(&self) -> Priority {
        if self.phase == Some(Phase::Error)
            || (self.object == "compute" && self.action == "exception")
        {
            Priority::Error
        } else {
            Priority::Info
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{}", self.object, self.action)?;
        if let Some(phase) = self.phase {
            write!(formatter, ".{}", phase.as_str())?;
        }
        Ok(())
    }
}

/// Who sends a notification: Nova's `<binary>:<host>` publisher id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publisher {
    /// `nova-api`, `nova-compute`, `nova-scheduler`, `nova-conductor`.
    pub binary: String,
    /// The host name.
    pub host: String,
}

impl Publisher {
    /// A publisher.
    pub fn new(binary: &str, host: &str) -> Self {
        Self {
            binary: binary.to_string(),
            host: host.to_string(),
        }
    }
    /// `nova-api:<host>`.
    pub fn api(host: &str) -> Self {
        Self::new("nova-api", host)
    }
    /// `nova-compute:<host>` (events about an instance on a compute host).
    pub fn compute(host: &str) -> Self {
        Self::new("nova-compute", host)
    }
    /// `nova-scheduler:<host>`.
    pub fn scheduler(host: &str) -> Self {
        Self::new("nova-scheduler", host)
    }
    /// `nova-conductor:<host>`.
    pub fn conductor(host: &str) -> Self {
        Self::new("nova-conductor", host)
    }
    /// `<binary>:<host>`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.binary, self.host)
    }
}

/// The wire message: Nova's (oslo.messaging's) notification envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// `INFO` or `ERROR`.
    pub priority: Priority,
    /// `object.action[.phase]` (versioned) or a legacy name.
    pub event_type: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS.ffffff` as oslo.messaging writes it.
    pub timestamp: String,
    /// `<binary>:<host>`.
    pub publisher_id: String,
    /// A uuid, unique per message.
    pub message_id: String,
    /// The versioned payload (`nova_object.*`) or the legacy flat dict.
    pub payload: serde_json::Value,
}

/// The envelope timestamp format (oslo.messaging: `str(utcnow())`).
pub fn envelope_timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// A notification to emit: the versioned envelope, optionally its legacy
/// (unversioned) twin, and routing data that is stored beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The versioned message.
    pub envelope: Envelope,
    /// The unversioned message, for events Nova also sends in the legacy
    /// format.
    pub legacy: Option<Envelope>,
    /// Events with the same key are delivered in emission order (the
    /// instance uuid, the aggregate uuid, ...).
    pub ordering_key: String,
    /// The project the event is about (webhook `projects` filters).
    pub project_id: Option<String>,
    /// The instance the event is about (the admin listing's `instance` filter).
    pub instance_uuid: Option<String>,
}

impl Notification {
    /// A versioned notification of `payload` from `publisher`, ordered by
    /// `ordering_key`; the priority follows from the event type.
    pub fn new<T: NovaObject>(
        publisher: &Publisher,
        event_type: &EventType,
        ordering_key: impl Into<String>,
        payload: T,
    ) -> Self {
        let now = chrono::Utc::now();
        Self {
            envelope: Envelope {
                priority: event_type.priority(),
                event_type: event_type.to_string(),
                timestamp: envelope_timestamp(now),
                publisher_id: publisher.id(),
                message_id: uuid::Uuid::new_v4().to_string(),
                payload: Versioned(payload).to_value(),
            },
            legacy: None,
            ordering_key: ordering_key.into(),
            project_id: None,
            instance_uuid: None,
        }
    }

    /// Adds the legacy (unversioned) form: `event_type` and a flat payload,
    /// with the same publisher, priority and timestamp and its own message id.
    pub fn with_legacy(
        mut self,
        event_type: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        self.legacy = Some(Envelope {
            event_type: event_type.into(),
            message_id: uuid::Uuid::new_v4().to_string(),
            payload,
            ..self.envelope.clone()
        });
        self
    }

    /// Sets the project the event is about.
    pub fn with_project(mut self, project_id: Option<&str>) -> Self {
        self.project_id = project_id.map(str::to_string);
        self
    }

    /// Sets the instance the event is about.
    pub fn with_instance(mut self, instance_uuid: &str) -> Self {
        self.instance_uuid = Some(instance_uuid.to_string());
        self
    }

    /// The versioned event type.
    pub fn event_type(&self) -> &str {
        &self.envelope.event_type
    }

    /// The versioned message id.
    pub fn message_id(&self) -> &str {
        &self.envelope.message_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_and_priorities() {
        let end = EventType::new("instance", "power_off", Some(Phase::End));
        assert_eq!(end.to_string(), "instance.power_off.end");
        assert_eq!(end.priority(), Priority::Info);
        let error = EventType::new("instance", "create", Some(Phase::Error));
        assert_eq!(error.priority(), Priority::Error);
        let exception = EventType::new("compute", "exception", None);
        assert_eq!(exception.to_string(), "compute.exception");
        assert_eq!(exception.priority(), Priority::Error);
        assert_eq!(Publisher::compute("host1").id(), "nova-compute:host1");
    }

    #[test]
    fn envelope_timestamp_is_oslo_format() {
        let at = chrono::DateTime::parse_from_rfc3339("2012-10-29T13:42:11.186178Z")
            .map(|at| at.with_timezone(&chrono::Utc))
            .expect("valid");
        assert_eq!(envelope_timestamp(at), "2012-10-29 13:42:11.186178");
    }
}
