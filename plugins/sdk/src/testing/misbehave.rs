//! Shared by the misbehaving test plugins (`plugins/testing`): which
//! misbehaviour a request asks for, and the misbehaviours every kind of
//! plugin has in common.

use crate::{Column, Config, PluginInfo, Request};

/// The misbehaviour asked for: the request's `misbehave` scheduler hint, else
/// configuration key `mode`.
pub fn mode<'a>(request: &'a Request, config: &'a Config) -> Option<&'a str> {
    request.hint_value("misbehave").or(config.get("mode"))
}

/// What a misbehaving plugin `name` `version` reports: it reads host names.
pub fn describe(name: &str, version: &str) -> PluginInfo {
    crate::plugin_info(name, version, "misbehaves as configured", &[Column::Name])
}

/// Never returns: spins until the controller's deadline stops the guest.
pub fn spin<T>(value: T) -> ! {
    loop {
        std::hint::black_box(&value);
    }
}

/// Does `rounds` rounds of busy arithmetic and returns: a well-behaved
/// plugin whose call takes CPU time in proportion to `rounds`.
pub fn work(rounds: u64) -> u64 {
    (0..rounds).fold(0u64, |sum, round| {
        std::hint::black_box(sum.wrapping_mul(31).wrapping_add(round))
    })
}

/// Allocates without bound, until the controller's memory limit stops the
/// guest.
pub fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::request;
    use crate::testing::hint;

    #[test]
    fn the_hint_wins_over_the_configured_mode() {
        let config = Config::from_pairs(&[("mode", "loop")]);
        let hinted = Request {
            scheduler_hints: vec![hint("misbehave", &["panic"])],
            ..request()
        };
        assert_eq!(mode(&hinted, &config), Some("panic"));
        assert_eq!(mode(&request(), &config), Some("loop"));
        assert_eq!(mode(&request(), &Config::default()), None);
    }
}
