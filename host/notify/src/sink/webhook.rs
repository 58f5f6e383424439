//! The HTTP webhook sink: each message is POSTed as JSON, signed with
//! HMAC-SHA256 when a secret is configured.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::WebhookConfig;
use crate::envelope::Envelope;

/// The signature header: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Novum-Signature";
/// The event type header.
pub const EVENT_TYPE_HEADER: &str = "X-Novum-Event-Type";
/// The message id header.
pub const MESSAGE_ID_HEADER: &str = "X-Novum-Message-Id";

/// `sha256=<hex>`: the signature of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A webhook.
pub struct WebhookSink {
    url: String,
    secret: Option<String>,
    client: reqwest::Client,
}

impl WebhookSink {
    /// A webhook from its configuration.
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        if config.url.is_empty() {
            return Err("a webhook needs a `url`".to_string());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|error| format!("webhook {}: {error}", config.url))?;
        Ok(Self {
            url: config.url.clone(),
            secret: config.secret.clone(),
            client,
        })
    }

    /// POSTs `message`; any 2xx answer acknowledges it.
    pub async fn deliver(&self, message: &Envelope) -> Result<(), String> {
        let body = serde_json::to_vec(message)
            .map_err(|error| format!("cannot encode message: {error}"))?;
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_TYPE_HEADER, &message.event_type)
            .header(MESSAGE_ID_HEADER, &message.message_id);
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|error| format!("POST {}: {error}", self.url))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {}: HTTP {status}", self.url))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_rfc4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
