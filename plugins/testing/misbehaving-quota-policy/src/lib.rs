//! Test plugin: a quota policy that misbehaves the way its `mode`
//! configuration key says, so the controller's tests can check that a failing
//! policy follows its `on_error`.
//!
//! Modes: `loop` (never returns), `alloc` (allocates without bound), `panic`
//! (traps), `deny` (well-behaved: denies every request naming resource
//! `misbehaving`); anything else allows.

use novum_plugin_sdk::testing::misbehave;
use novum_plugin_sdk::{Config, QuotaDenial, QuotaPolicy, QuotaRequest};

/// Misbehaves as configured.
#[derive(Default)]
pub struct MisbehavingQuotaPolicy;

impl QuotaPolicy for MisbehavingQuotaPolicy {
    const DESCRIPTION: &'static str = "misbehaves as configured";

    fn check(&mut self, config: &Config, request: &QuotaRequest) -> Result<(), QuotaDenial> {
        match config.get("mode").unwrap_or("allow") {
            "loop" => misbehave::spin(request),
            "alloc" => misbehave::hoard(),
            "panic" => panic!("misbehaving quota policy panics on purpose"),
            "deny" => Err(QuotaDenial {
                resource: "misbehaving".to_string(),
                message: format!(
                    "misbehaving policy denies {} for {}",
                    request.action, request.project_id
                ),
            }),
            _ => Ok(()),
        }
    }
}

novum_plugin_sdk::export_quota_policy!(MisbehavingQuotaPolicy);
