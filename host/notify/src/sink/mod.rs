//! Sinks: where the dispatcher delivers. Each sink has its own durable
//! delivery state (named by [`Sink::name`]), retry policy and concurrency,
//! and its own worker, so a slow sink never holds up another.

pub mod hook;
pub mod jsonl;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use super::config::{NotificationFormat, event_type_allowed};
use super::envelope::Envelope;
use super::outbox::StoredEvent;

pub use hook::HookSink;
pub use jsonl::JsonlSink;
pub use webhook::WebhookSink;

/// How often and how patiently a sink retries one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before the event is dead-lettered; `None`: retry forever
    /// (the log file: losing a line is worse than waiting).
    pub max_attempts: Option<u32>,
    /// Delay after the first failure; doubled after each further one.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based):
    /// `initial × 2^(attempt−1)`, capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Whether `attempts` failed attempts exhaust the policy.
    pub fn exhausted(&self, attempts: u32) -> bool {
        self.max_attempts.is_some_and(|max| attempts >= max)
    }
}

/// What a sink does with a message.
pub enum SinkKind {
    /// Appends to the JSON-lines file.
    Jsonl(JsonlSink),
    /// POSTs to a webhook.
    Webhook(WebhookSink),
    /// Calls a notification-hook plugin.
    Hook(Arc<dyn HookSink>),
}

/// A configured sink.
pub struct Sink {
    /// The name its delivery state is kept under.
    pub name: String,
    /// What it does.
    pub kind: SinkKind,
    /// Its retry policy.
    pub retry: RetryPolicy,
    /// Ordering keys delivered concurrently.
    pub concurrency: usize,
    /// Event types it takes (on top of the global allow-list); empty: all.
    pub event_types: Vec<String>,
    /// Projects it takes; empty: all.
    pub projects: Vec<String>,
    /// The format(s) it receives.
    pub format: NotificationFormat,
}

impl Sink {
    /// The messages `event` becomes for this sink: none when filtered out
    /// (by `allowed`, the global allow-list, or the sink's own filters), or
    /// when the format asks for a legacy message the event does not have.
    pub fn messages(&self, event: &StoredEvent, allowed: &[String]) -> Vec<Envelope> {
        if !event_type_allowed(allowed, &event.event_type)
            || !event_type_allowed(&self.event_types, &event.event_type)
        {
            return Vec::new();
        }
        if !self.projects.is_empty()
            && !event
                .project_id
                .as_ref()
                .is_some_and(|project| self.projects.contains(project))
        {
            return Vec::new();
        }
        let versioned = || event.envelope.clone();
        match self.format {
            NotificationFormat::Versioned => vec![versioned()],
            NotificationFormat::Unversioned => event.legacy.iter().cloned().collect(),
            NotificationFormat::Both => std::iter::once(versioned())
                .chain(event.legacy.iter().cloned())
                .collect(),
        }
    }

    /// Delivers `messages` (one event's); an error is retried by policy.
    pub async fn deliver(&self, messages: &[Envelope]) -> Result<(), String> {
        match &self.kind {
            SinkKind::Jsonl(sink) => sink.deliver(messages).await,
            SinkKind::Webhook(sink) => {
                for message in messages {
                    sink.deliver(message).await?;
                }
                Ok(())
            }
            SinkKind::Hook(hook) => {
                for message in messages {
                    let hook = Arc::clone(hook);
                    let message = message.clone();
                    tokio::task::spawn_blocking(move || hook.deliver(&message))
                        .await
                        .map_err(|error| format!("hook task failed: {error}"))??;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: Some(3),
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        assert_eq!(policy.delay(1), Duration::from_millis(100));
        assert_eq!(policy.delay(2), Duration::from_millis(200));
        assert_eq!(policy.delay(3), Duration::from_millis(350));
        assert_eq!(policy.delay(40), Duration::from_millis(350));
        assert!(!policy.exhausted(2));
        assert!(policy.exhausted(3));
    }
}
