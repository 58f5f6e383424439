//! Burst quota policy: at most `max_creates` (default 10) create requests per
//! project in any `window_seconds` (default 60) sliding window.
//!
//! Only `create` checks count; a request that is allowed is recorded at the
//! controller's clock ([`novum_plugin_sdk::now_ms`]), a denied one is not. The
//! window is kept in the policy's state, which lives until the plugin set is
//! reloaded or the plugin traps (then counting starts over). A create that
//! another policy denies later still counts.

use novum_plugin_sdk::collections::BTreeMap;
use novum_plugin_sdk::{Config, QuotaDenial, QuotaPolicy, QuotaRequest, now_ms};
use std::collections::VecDeque;

/// Rate-limits create requests per project.
#[derive(Default)]
pub struct BurstQuotaPolicy {
    /// Times (ms) of the allowed creates within the window, oldest first.
    creates: BTreeMap<String, VecDeque<u64>>,
}

impl BurstQuotaPolicy {
    /// [`QuotaPolicy::check`] at time `now` (milliseconds since the epoch).
    pub fn check_at(
        &mut self,
        config: &Config,
        request: &QuotaRequest,
        now: u64,
    ) -> Result<(), QuotaDenial> {
        if request.action != "create" {
            return Ok(());
        }
        let max_creates = config.u64_or("max_creates", 10);
        let window_seconds = config.u64_or("window_seconds", 60);
        let window_start = now.saturating_sub(window_seconds.saturating_mul(1000));
        // Forget creates that left the window, and projects with none left.
        self.creates.retain(|_, times| {
            while times.front().is_some_and(|time| *time <= window_start) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = self.creates.entry(request.project_id.clone()).or_default();
        if times.len() as u64 >= max_creates {
            return Err(QuotaDenial {
                resource: "create_requests".to_string(),
                message: format!(
                    "Quota exceeded for create_requests: at most {max_creates} server create requests per {window_seconds} seconds"
                ),
            });
        }
        times.push_back(now);
        Ok(())
    }
}

impl QuotaPolicy for BurstQuotaPolicy {
    const DESCRIPTION: &'static str =
        "at most max_creates create requests per project per window_seconds";

    fn check(&mut self, config: &Config, request: &QuotaRequest) -> Result<(), QuotaDenial> {
        self.check_at(config, request, now_ms())
    }
}

novum_plugin_sdk::export_quota_policy!(BurstQuotaPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::quota_request;

    const T0: u64 = 1_700_000_000_000;

    fn config() -> Config {
        Config::from_pairs(&[("max_creates", "2"), ("window_seconds", "10")])
    }

    #[test]
    fn denies_the_create_over_the_limit_within_the_window() {
        let mut policy = BurstQuotaPolicy::default();
        let create = quota_request("p1", "create", Vec::new());
        assert_eq!(policy.check_at(&config(), &create, T0), Ok(()));
        assert_eq!(policy.check_at(&config(), &create, T0 + 1_000), Ok(()));
        let denial = policy.check_at(&config(), &create, T0 + 2_000).unwrap_err();
        assert_eq!(denial.resource, "create_requests");
        assert!(
            denial
                .message
                .contains("at most 2 server create requests per 10 seconds")
        );
    }

    #[test]
    fn the_window_slides() {
        let mut policy = BurstQuotaPolicy::default();
        let create = quota_request("p1", "create", Vec::new());
        policy.check_at(&config(), &create, T0).unwrap();
        policy.check_at(&config(), &create, T0 + 5_000).unwrap();
        assert!(policy.check_at(&config(), &create, T0 + 9_999).is_err());
        // The first create leaves the window at T0 + 10 s; the denied one never counted.
        assert_eq!(policy.check_at(&config(), &create, T0 + 10_000), Ok(()));
        assert!(policy.check_at(&config(), &create, T0 + 14_999).is_err());
        assert_eq!(policy.check_at(&config(), &create, T0 + 15_000), Ok(()));
    }

    #[test]
    fn projects_and_other_actions_are_separate() {
        let mut policy = BurstQuotaPolicy::default();
        let p1 = quota_request("p1", "create", Vec::new());
        let p2 = quota_request("p2", "create", Vec::new());
        let resize = quota_request("p1", "resize", Vec::new());
        policy.check_at(&config(), &p1, T0).unwrap();
        policy.check_at(&config(), &p1, T0).unwrap();
        assert!(policy.check_at(&config(), &p1, T0).is_err());
        assert_eq!(policy.check_at(&config(), &p2, T0), Ok(()));
        assert_eq!(policy.check_at(&config(), &resize, T0), Ok(()));
    }

    #[test]
    fn defaults_allow_ten_per_minute_and_idle_projects_are_forgotten() {
        let mut policy = BurstQuotaPolicy::default();
        let create = quota_request("p1", "create", Vec::new());
        for second in 0..10 {
            assert_eq!(
                policy.check_at(&Config::default(), &create, T0 + second * 1_000),
                Ok(())
            );
        }
        assert!(
            policy
                .check_at(&Config::default(), &create, T0 + 59_000)
                .is_err()
        );
        let other = quota_request("p2", "create", Vec::new());
        policy
            .check_at(&Config::default(), &other, T0 + 120_000)
            .unwrap();
        assert_eq!(policy.creates.keys().collect::<Vec<_>>(), vec!["p2"]);
    }
}
