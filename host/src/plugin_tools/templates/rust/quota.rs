//! __NAME__: a novum quota policy. Denies a server whose flavor has more
//! than `max_vcpus_per_server` (configuration, default 8) vCPUs.

use novum_plugin_sdk::{Config, QuotaDenial, QuotaPolicy, QuotaRequest};

/// The policy.
#[derive(Default)]
pub struct Plugin;

impl QuotaPolicy for Plugin {
    const DESCRIPTION: &'static str = "at most max_vcpus_per_server vCPUs per server";

    fn check(&mut self, config: &Config, request: &QuotaRequest) -> Result<(), QuotaDenial> {
        let limit = config.u64_or("max_vcpus_per_server", 8);
        match &request.flavor {
            Some(flavor) if u64::from(flavor.vcpus) > limit => Err(QuotaDenial {
                resource: "cores".to_string(),
                message: format!(
                    "Flavor {} has {} vCPUs, more than {limit} per server",
                    flavor.name, flavor.vcpus
                ),
            }),
            _ => Ok(()),
        }
    }
}

novum_plugin_sdk::export_quota_policy!(Plugin);
