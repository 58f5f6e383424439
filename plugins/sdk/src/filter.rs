//! Filters: pass or reject each candidate host, with a reason.

use std::collections::BTreeMap;

use crate::{Column, Config, FilterOutcome, HostTable, HostView, Request};

/// A scheduler filter. Implement [`Filter::host_passes`]; the SDK loops over
/// the hosts and collects the reasons.
pub trait Filter: Sized {
    /// One line on what the filter checks.
    const DESCRIPTION: &'static str;
    /// The host columns the filter reads; only these cross the boundary.
    const NEEDS: &'static [Column];

    /// The columns one request reads: a subset of [`Filter::NEEDS`] (the
    /// controller rejects any other column). Columns left out are not sent,
    /// so a request the plugin decides without host data (no matching
    /// server group, no relevant extra spec) costs no table at all. The
    /// default is every column of `NEEDS`.
    fn needs(config: &Config, request: &Request) -> Vec<Column> {
        let _ = (config, request);
        Self::NEEDS.to_vec()
    }

    /// Prepares the filter for one request (parse configuration or extra specs
    /// once). Types that are `Default` get this for free.
    fn prepare(config: &Config, request: &Request) -> Self
    where
        Self: Default,
    {
        let _ = (config, request);
        Self::default()
    }

    /// `Ok(())` when `host` passes; otherwise why it does not.
    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String>;
}

/// Runs filter `F` over every host of `hosts`: the one loop both the wasm
/// export and the controller's native pipeline use.
pub fn run_filter<F: Filter + Default>(
    config: &Config,
    request: &Request,
    hosts: &HostTable,
) -> FilterOutcome {
    let filter = F::prepare(config, request);
    let mut reasons: Vec<String> = Vec::new();
    let mut reason_numbers: BTreeMap<String, u32> = BTreeMap::new();
    let verdicts: Vec<u32> = hosts
        .hosts()
        .map(|host| match filter.host_passes(request, &host) {
            Ok(()) => 0,
            Err(reason) => *reason_numbers.entry(reason).or_insert_with_key(|reason| {
                reasons.push(reason.clone());
                reasons.len() as u32
            }),
        })
        .collect();
    // Every host passed: the empty list says so without sending one entry per host.
    let verdicts = if reasons.is_empty() {
        Vec::new()
    } else {
        verdicts
    };
    FilterOutcome { verdicts, reasons }
}

/// Exports a [`Filter`] as the `filter` world of a wasm component; in native
/// builds, defines `pub const NATIVE_PLUGIN: NativePlugin` instead, through
/// which the controller runs the same code without the boundary.
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        /// This plugin, compiled natively (the controller's reference pipeline).
        #[cfg(not(target_arch = "wasm32"))]
        pub const NATIVE_PLUGIN: $crate::NativePlugin = $crate::NativePlugin::Filter {
            info: || {
                $crate::plugin_info(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                    <$filter as $crate::Filter>::DESCRIPTION,
                    <$filter as $crate::Filter>::NEEDS,
                )
            },
            needs: <$filter as $crate::Filter>::needs,
            run: $crate::run_filter::<$filter>,
        };
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct NovumFilterExport;
            impl $crate::bindings::filter::Guest for NovumFilterExport {
                fn begin(request: $crate::Request) -> Vec<$crate::Column> {
                    let needs =
                        <$filter as $crate::Filter>::needs(&$crate::host_config(), &request);
                    $crate::hold_request(request);
                    needs
                }
                fn describe() -> $crate::PluginInfo {
                    $crate::plugin_info(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                        <$filter as $crate::Filter>::DESCRIPTION,
                        <$filter as $crate::Filter>::NEEDS,
                    )
                }
                fn filter_hosts(hosts: $crate::HostTable) -> $crate::FilterOutcome {
                    $crate::with_held_request(|request| {
                        $crate::run_filter::<$filter>(&$crate::host_config(), request, &hosts)
                    })
                }
            }
            $crate::bindings::filter::export_filter_world!(NovumFilterExport);
        };
    };
}
