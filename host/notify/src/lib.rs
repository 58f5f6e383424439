//! Notifications: Nova's versioned notifications (and, on request, its
//! legacy unversioned ones), with no message broker.
//!
//! - [`envelope`]: the wire envelope and [`Notification`].
//! - [`payload`]: the versioned payloads (`nova_object`s), their versions.
//! - [`builders`]: from novum's plain structs to notifications.
//! - [`outbox`]: [`emit`] in the caller's transaction, [`commit`]/[`wake`],
//!   the admin queries.
//! - [`dispatcher`]: delivery to the [`sink`]s, at least once, in order per
//!   ordering key, durable across restarts.
//! - [`config`]: the `[notifications]` table.
//!
//! This crate knows nothing of HTTP: the admin endpoints are in the novum
//! crate's `api::notifications`, which maps [`NotifyError`] to its faults.
//!
//! Use from a workflow:
//!
//! ```ignore
//! let mut tx = db.begin().await?;
//! // ... change the instance ...
//! let event = notify::builders::instance_action(&Publisher::compute(&host), &info,
//!     InstanceAction::PowerOff, Phase::End, &context, None);
//! notify::emit(&mut tx, &event).await?;
//! notify::commit(tx).await?; // commits and wakes the dispatcher
//! ```

#![deny(missing_docs)]

pub mod builders;
pub mod config;
pub mod dispatcher;
pub mod envelope;
pub mod outbox;
pub mod payload;
pub mod sink;

pub use config::{NotificationFormat, NotificationsConfig, WebhookConfig};
pub use dispatcher::{Dispatcher, DispatcherHandle};
pub use envelope::{Envelope, EventType, Notification, Phase, Priority, Publisher};
pub use outbox::{NotifyError, commit, commit_with, emit, emit_all, emit_all_into, wake};
pub use sink::HookSink;
