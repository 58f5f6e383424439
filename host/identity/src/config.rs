//! `[identity]`: the identity service's configuration section (the novum
//! crate's `Config` composes it; its ranges are checked there too).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[identity]`
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Name of the admin user created at first start.
    pub admin_user: String,
    /// Name of the admin project created at first start.
    pub admin_project: String,
    /// The admin password; else `NOVUM_ADMIN_PASSWORD`; else generated and printed once.
    pub admin_password: Option<String>,
    /// Token lifetime in seconds.
    pub token_expiration_seconds: u64,
    /// Where the Fernet keys live; default `<data_dir>/fernet-keys`.
    pub key_repository: Option<PathBuf>,
    /// How many Fernet keys to keep (primary, secondaries, staged).
    pub max_active_keys: usize,
    /// Consecutive failed password authentications after which a user is
    /// locked out for `lockout_duration` (Keystone's `[security_compliance]`
    /// option of that name); 0 turns lockout off.
    pub lockout_failure_attempts: u32,
    /// Seconds a locked-out user stays locked (Keystone's option of that name).
    pub lockout_duration: u64,
}

/// Default of `[identity] lockout_failure_attempts`.
pub const DEFAULT_LOCKOUT_FAILURE_ATTEMPTS: u32 = 10;
/// Default of `[identity] lockout_duration`, seconds.
pub const DEFAULT_LOCKOUT_DURATION_SECONDS: u64 = 300;

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            admin_user: "admin".to_string(),
            admin_project: "admin".to_string(),
            admin_password: None,
            token_expiration_seconds: 3600,
            key_repository: None,
            max_active_keys: 3,
            lockout_failure_attempts: DEFAULT_LOCKOUT_FAILURE_ATTEMPTS,
            lockout_duration: DEFAULT_LOCKOUT_DURATION_SECONDS,
        }
    }
}

impl IdentityConfig {
    /// The key repository directory in effect: `key_repository`, else
    /// `<data_dir>/fernet-keys`.
    pub fn key_repository(&self, data_dir: &Path) -> PathBuf {
        self.key_repository
            .clone()
            .unwrap_or_else(|| data_dir.join("fernet-keys"))
    }
}
