//! Token payloads: what a Fernet token carries. Tokens are stateless: the
//! payload names the user, the scope, the methods, the expiry and the audit
//! chain; everything else (names, roles, enabled flags) is read from the
//! database when the token is validated, so a removed role or a disabled user
//! takes effect at once.

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The payload format version.
const PAYLOAD_VERSION: u8 = 1;

/// What a token carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPayload {
    /// Format version.
    #[serde(rename = "v")]
    pub version: u8,
    /// The user id.
    #[serde(rename = "u")]
    pub user_id: String,
    /// The scoped project id (none: unscoped).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Authentication methods (`password`, `token`).
    #[serde(rename = "m")]
    pub methods: Vec<String>,
    /// Issued at, Unix seconds.
    #[serde(rename = "i")]
    pub issued_at: i64,
    /// Expires at, Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// Audit ids: this token's, then the one it was rescoped from.
    #[serde(rename = "a")]
    pub audit_ids: Vec<String>,
}

impl TokenPayload {
    /// A payload for a new token of `user_id`, valid for `lifetime_seconds`.
    pub fn new(
        user_id: String,
        project_id: Option<String>,
        methods: Vec<String>,
        lifetime_seconds: u64,
    ) -> Self {
        let issued_at = Utc::now().timestamp();
        Self {
            version: PAYLOAD_VERSION,
            user_id,
            project_id,
            methods,
            issued_at,
            expires_at: issued_at
                .saturating_add(i64::try_from(lifetime_seconds).unwrap_or(i64::MAX)),
            audit_ids: vec![new_audit_id()],
        }
    }

    /// The bytes to encrypt.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings and integers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses decrypted bytes; `None` for another format.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|payload| payload.version == PAYLOAD_VERSION)
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        now.timestamp() >= self.expires_at
    }

    /// The expiry as Keystone prints it.
    pub fn expires_at_text(&self) -> String {
        keystone_time(self.expires_at)
    }

    /// The issue time as Keystone prints it.
    pub fn issued_at_text(&self) -> String {
        keystone_time(self.issued_at)
    }
}

/// A Unix time in Keystone's format (`2024-01-01T00:00:00.000000Z`).
pub fn keystone_time(seconds: i64) -> String {
    Utc.timestamp_opt(seconds, 0)
        .single()
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S.000000Z")
        .to_string()
}

/// A new audit id: 16 random bytes, URL-safe base64 without padding (as Keystone).
pub fn new_audit_id() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_expires() {
        let payload =
            TokenPayload::new("u1".into(), Some("p1".into()), vec!["password".into()], 60);
        assert_eq!(
            TokenPayload::decode(&payload.encode()),
            Some(payload.clone())
        );
        assert_eq!(payload.audit_ids[0].len(), 22);
        assert!(!payload.is_expired_at(Utc::now()));
        assert!(payload.is_expired_at(Utc::now() + chrono::Duration::seconds(61)));
        assert!(TokenPayload::decode(b"{\"v\":9}").is_none());
        assert!(payload.expires_at_text().ends_with(".000000Z"));
    }
}
