//! `[notifications]`: the format, the allow-list and the sinks. Every key is
//! defaulted: with no table, versioned notifications go to
//! `<data_dir>/notifications.jsonl`.

use std::path::PathBuf;

use serde::Deserialize;

/// Default dispatcher poll interval (the safety net behind the wake-ups).
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 500;
/// Default time delivered events stay in the outbox (for the admin listing).
pub const DEFAULT_RETENTION_HOURS: u64 = 24;
/// Default webhook request timeout.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// Default webhook attempts before dead-lettering.
pub const DEFAULT_WEBHOOK_MAX_ATTEMPTS: u32 = 8;
/// Default first retry delay; doubled per attempt.
pub const DEFAULT_BACKOFF_INITIAL_MS: u64 = 500;
/// Default longest retry delay.
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 60_000;
/// Default ordering keys a webhook delivers concurrently.
pub const DEFAULT_WEBHOOK_CONCURRENCY: usize = 8;
/// Default hook-plugin attempts before dead-lettering.
pub const DEFAULT_HOOK_MAX_ATTEMPTS: u32 = 3;

/// Which notification format the log and webhook sinks receive (Nova's
/// `[notifications] notification_format`). Hook plugins always receive the
/// versioned format (their contract).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationFormat {
    /// Versioned notifications (`instance.create.end`, `nova_object` payloads).
    #[default]
    Versioned,
    /// Legacy notifications only (`compute.instance.create.end`, flat payloads),
    /// for the events Nova also sends in that format.
    Unversioned,
    /// Both, as two messages.
    Both,
}

/// `[notifications]`
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// `versioned` (default), `unversioned` or `both`.
    pub format: NotificationFormat,
    /// Versioned event types delivered (exact, or a prefix ending in `*`
    /// such as `instance.*`); empty: all. Events are stored either way.
    pub event_types: Vec<String>,
    /// How often the dispatcher looks for events it was not woken for.
    pub poll_interval_ms: u64,
    /// Hours events stay in the outbox once every sink settled them.
    pub retention_hours: u64,
    /// The JSON-lines log sink.
    pub jsonl: JsonlConfig,
    /// HTTP webhooks (`[[notifications.webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
    /// Names of notification-hook plugins that receive every event.
    pub hooks: Vec<String>,
    /// Attempts per event for a hook plugin before dead-lettering.
    pub hook_max_attempts: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            format: NotificationFormat::default(),
            event_types: Vec::new(),
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            retention_hours: DEFAULT_RETENTION_HOURS,
            jsonl: JsonlConfig::default(),
            webhooks: Vec::new(),
            hooks: Vec::new(),
            hook_max_attempts: DEFAULT_HOOK_MAX_ATTEMPTS,
        }
    }
}

/// `[notifications.jsonl]`
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonlConfig {
    /// Write notifications to the log file.
    pub enabled: bool,
    /// The file; default `<data_dir>/notifications.jsonl`.
    pub path: Option<PathBuf>,
}

impl Default for JsonlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
        }
    }
}

/// `[[notifications.webhooks]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook's delivery state; default: the URL. Renaming (or
    /// changing the URL of an unnamed webhook) starts a new delivery history.
    pub name: Option<String>,
    /// Where to POST each message (required).
    pub url: String,
    /// HMAC-SHA256 key: the body's signature is sent as
    /// `X-Novum-Signature: sha256=<hex>`.
    pub secret: Option<String>,
    /// Versioned event types sent (exact or `prefix*`); empty: all.
    pub event_types: Vec<String>,
    /// Projects whose events are sent; empty: all (events about no
    /// project are sent only when this is empty).
    pub projects: Vec<String>,
    /// Request timeout.
    pub timeout_ms: u64,
    /// Attempts per message before dead-lettering.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub backoff_initial_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
    /// Ordering keys delivered concurrently (events of one key stay in order).
    pub concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            name: None,
            url: String::new(),
            secret: None,
            event_types: Vec::new(),
            projects: Vec::new(),
            timeout_ms: DEFAULT_WEBHOOK_TIMEOUT_MS,
            max_attempts: DEFAULT_WEBHOOK_MAX_ATTEMPTS,
            backoff_initial_ms: DEFAULT_BACKOFF_INITIAL_MS,
            backoff_max_ms: DEFAULT_BACKOFF_MAX_MS,
            concurrency: DEFAULT_WEBHOOK_CONCURRENCY,
        }
    }
}

impl NotificationsConfig {
    /// The names the configured sinks keep their delivery state under, as
    /// the dispatcher names them: `jsonl` (when on), `webhook:<name or url>`,
    /// `hook:<plugin>`.
    pub fn sink_names(&self) -> Vec<String> {
        let jsonl = self.jsonl.enabled.then(|| JSONL_SINK.to_string());
        jsonl
            .into_iter()
            .chain(self.webhooks.iter().map(WebhookConfig::sink_name))
            .chain(self.hooks.iter().map(|hook| hook_sink_name(hook)))
            .collect()
    }
}

/// The JSON-lines log sink's name.
pub const JSONL_SINK: &str = "jsonl";

/// The sink name of notification-hook plugin `hook`.
pub fn hook_sink_name(hook: &str) -> String {
    format!("hook:{hook}")
}

impl WebhookConfig {
    /// The name its delivery state is kept under.
    pub fn sink_name(&self) -> String {
        format!("webhook:{}", self.name.as_deref().unwrap_or(&self.url))
    }
}

/// Whether `event_type` matches `patterns` (exact, or a prefix ending in
/// `*`); an empty list matches everything.
pub fn event_type_allowed(patterns: &[String], event_type: &str) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => pattern == event_type,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(event_type_allowed(&[], "instance.create.end"));
        let patterns = vec!["instance.*".to_string(), "service.update".to_string()];
        assert!(event_type_allowed(&patterns, "instance.create.end"));
        assert!(event_type_allowed(&patterns, "service.update"));
        assert!(!event_type_allowed(&patterns, "service.create"));
    }

    #[test]
    fn parses_with_defaults_and_rejects_unknown_keys() {
        let config: NotificationsConfig =
            toml::from_str("format = \"both\"\n[[webhooks]]\nurl = \"http://x\"\nsecret = \"s\"\n")
                .expect("valid");
        assert_eq!(config.format, NotificationFormat::Both);
        assert!(config.jsonl.enabled);
        assert_eq!(
            config.webhooks[0].max_attempts,
            DEFAULT_WEBHOOK_MAX_ATTEMPTS
        );
        assert_eq!(config.webhooks[0].sink_name(), "webhook:http://x");
        assert!(toml::from_str::<NotificationsConfig>("[[webhooks]]\nbogus = 1\n").is_err());
    }
}
