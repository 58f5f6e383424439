//! Quota policies: allow a request, or deny it with a reason.

use crate::{Config, QuotaDenial, QuotaRequest};

/// A quota policy. Policies may keep state between calls (a burst window, say):
/// the controller keeps an instance alive until the plugin set is reloaded or
/// the plugin traps.
pub trait QuotaPolicy {
    /// One line on what the policy enforces.
    const DESCRIPTION: &'static str;

    /// `Ok(())` to allow, or the denial.
    fn check(&mut self, config: &Config, request: &QuotaRequest) -> Result<(), QuotaDenial>;
}

/// Runs policy `P` on one request, keeping its state in `state`.
pub fn run_quota_policy<P: QuotaPolicy>(
    state: &mut P,
    config: &Config,
    request: &QuotaRequest,
) -> Result<(), QuotaDenial> {
    state.check(config, request)
}

/// Exports a [`QuotaPolicy`] (which must be `Default`) as the `quota-policy`
/// world of a wasm component.
#[macro_export]
macro_rules! export_quota_policy {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct NovumQuotaPolicyExport;
            thread_local! {
                static STATE: ::std::cell::RefCell<$policy> = ::std::cell::RefCell::new(<$policy as Default>::default());
            }
            impl $crate::bindings::quota_policy::Guest for NovumQuotaPolicyExport {
                fn describe() -> $crate::PluginInfo {
                    $crate::plugin_info(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                        <$policy as $crate::QuotaPolicy>::DESCRIPTION,
                        &[],
                    )
                }
                fn check_quota(request: $crate::QuotaRequest) -> Result<(), $crate::QuotaDenial> {
                    let config = $crate::host_config();
                    STATE.with(|state| $crate::run_quota_policy(&mut *state.borrow_mut(), &config, &request))
                }
            }
            $crate::bindings::quota_policy::export_quota_policy_world!(NovumQuotaPolicyExport);
        };
    };
}
