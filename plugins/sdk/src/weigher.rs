//! Weighers: a raw weight per host. The controller normalizes the weights of
//! all candidates to 0..1 and applies the configured multiplier.

use crate::{Column, Config, HostTable, HostView, Request};

/// A scheduler weigher.
pub trait Weigher: Sized {
    /// One line on what the weigher prefers.
    const DESCRIPTION: &'static str;
    /// The host columns the weigher reads; only these cross the boundary.
    const NEEDS: &'static [Column];

    /// The columns one request reads: a subset of [`Weigher::NEEDS`] (the
    /// controller rejects any other column). Columns left out are not sent,
    /// so a request the plugin decides without host data (no matching
    /// server group, no relevant extra spec) costs no table at all. The
    /// default is every column of `NEEDS`.
    fn needs(config: &Config, request: &Request) -> Vec<Column> {
        let _ = (config, request);
        Self::NEEDS.to_vec()
    }

    /// Prepares the weigher for one request. Types that are `Default` get this
    /// for free.
    fn prepare(config: &Config, request: &Request) -> Self
    where
        Self: Default,
    {
        let _ = (config, request);
        Self::default()
    }

    /// The raw weight of `host`: larger is preferred when the multiplier is
    /// positive.
    fn weigh(&self, request: &Request, host: &HostView<'_>) -> f64;
}

/// Runs weigher `W` over every host: one raw weight per row.
pub fn run_weigher<W: Weigher + Default>(
    config: &Config,
    request: &Request,
    hosts: &HostTable,
) -> Vec<f64> {
    let weigher = W::prepare(config, request);
    hosts
        .hosts()
        .map(|host| weigher.weigh(request, &host))
        .collect()
}

/// Exports a [`Weigher`] as the `weigher` world of a wasm component; in
/// native builds, defines `pub const NATIVE_PLUGIN: NativePlugin` instead.
#[macro_export]
macro_rules! export_weigher {
    ($weigher:ty) => {
        /// This plugin, compiled natively (the controller's reference pipeline).
        #[cfg(not(target_arch = "wasm32"))]
        pub const NATIVE_PLUGIN: $crate::NativePlugin = $crate::NativePlugin::Weigher {
            info: || {
                $crate::plugin_info(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                    <$weigher as $crate::Weigher>::DESCRIPTION,
                    <$weigher as $crate::Weigher>::NEEDS,
                )
            },
            needs: <$weigher as $crate::Weigher>::needs,
            run: $crate::run_weigher::<$weigher>,
        };
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct NovumWeigherExport;
            impl $crate::bindings::weigher::Guest for NovumWeigherExport {
                fn begin(request: $crate::Request) -> Vec<$crate::Column> {
                    let needs =
                        <$weigher as $crate::Weigher>::needs(&$crate::host_config(), &request);
                    $crate::hold_request(request);
                    needs
                }
                fn describe() -> $crate::PluginInfo {
                    $crate::plugin_info(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                        <$weigher as $crate::Weigher>::DESCRIPTION,
                        <$weigher as $crate::Weigher>::NEEDS,
                    )
                }
                fn weigh_hosts(hosts: $crate::HostTable) -> Vec<f64> {
                    $crate::with_held_request(|request| {
                        $crate::run_weigher::<$weigher>(&$crate::host_config(), request, &hosts)
                    })
                }
            }
            $crate::bindings::weigher::export_weigher_world!(NovumWeigherExport);
        };
    };
}
