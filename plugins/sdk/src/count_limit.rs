//! A per-host count kept under a limit: what Nova's IoOpsFilter,
//! NumInstancesFilter and their aggregate variants check. The limit is the
//! integer configuration key named after it (else a default); the aggregate
//! variants let the host's aggregates override it with metadata of the same
//! key ([`limit_with_override`]: several aggregates, the minimum wins).

use crate::aggregate_metadata::{limit_with_override, parse_int};
use crate::{Config, HostView};

/// A counted quantity of a host and the limit it must stay under.
pub struct CountLimit {
    /// The configuration key of the limit, also the aggregate metadata key
    /// that overrides it (e.g. `max_io_ops_per_host`).
    pub key: &'static str,
    /// The limit when the configuration sets none (or a non-integer).
    pub default: i64,
    /// What is counted, plural, for the rejection reason (`instances`).
    pub noun: &'static str,
    /// Reads the count of one host.
    pub count: fn(&HostView<'_>) -> u32,
}

/// I/O-heavy tasks in progress under `max_io_ops_per_host` (default 8).
pub const IO_OPS: CountLimit = CountLimit {
    key: "max_io_ops_per_host",
    default: 8,
    noun: "I/O operations",
    count: |host| host.num_io_ops(),
};

/// Instances on the host under `max_instances_per_host` (default 50).
pub const INSTANCES: CountLimit = CountLimit {
    key: "max_instances_per_host",
    default: 50,
    noun: "instances",
    count: |host| host.num_instances(),
};

impl CountLimit {
    /// The configured limit: configuration key [`CountLimit::key`] as an
    /// integer, else [`CountLimit::default`].
    pub fn configured(&self, config: &Config) -> i64 {
        config
            .get(self.key)
            .and_then(parse_int)
            .unwrap_or(self.default)
    }

    /// `Ok(())` when the host's count is below `max`, else why not.
    pub fn check(&self, host: &HostView<'_>, max: i64) -> Result<(), String> {
        if i64::from((self.count)(host)) < max {
            Ok(())
        } else {
            Err(format!(
                "host has too many {} ({} {max})",
                self.noun, self.key
            ))
        }
    }

    /// [`CountLimit::check`] against the host's aggregates' limit (metadata
    /// [`CountLimit::key`], the minimum wins), else `configured`. Needs
    /// `Column::Aggregates` besides the counted column.
    pub fn check_with_aggregate_override(
        &self,
        host: &HostView<'_>,
        configured: i64,
    ) -> Result<(), String> {
        self.check(host, limit_with_override(host, self.key, configured))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;
    use crate::testing::{HostSpec, aggregates_setting, table};

    fn io_host(io_ops: u32, limits: &[&str]) -> crate::HostTable {
        table(
            &[Column::NumIoOps, Column::Aggregates],
            &[HostSpec {
                num_io_ops: io_ops,
                aggregates: aggregates_setting(IO_OPS.key, limits),
                ..HostSpec::named("h")
            }],
        )
    }

    #[test]
    fn configured_reads_an_integer_else_the_default() {
        assert_eq!(IO_OPS.configured(&Config::default()), 8);
        assert_eq!(INSTANCES.configured(&Config::default()), 50);
        let config = Config::from_pairs(&[("max_io_ops_per_host", " 3 ")]);
        assert_eq!(IO_OPS.configured(&config), 3);
        assert_eq!(INSTANCES.configured(&config), 50);
        let bad = Config::from_pairs(&[("max_io_ops_per_host", "2.5")]);
        assert_eq!(IO_OPS.configured(&bad), 8);
    }

    #[test]
    fn check_passes_strictly_below_the_limit() {
        let hosts = io_host(3, &[]);
        let host = HostView::new(&hosts, 0);
        assert_eq!(IO_OPS.check(&host, 4), Ok(()));
        assert_eq!(
            IO_OPS.check(&host, 3),
            Err("host has too many I/O operations (max_io_ops_per_host 3)".to_string())
        );
    }

    #[test]
    fn aggregate_override_wins_in_both_directions() {
        let hosts = io_host(3, &["5", "4"]);
        let host = HostView::new(&hosts, 0);
        assert_eq!(IO_OPS.check_with_aggregate_override(&host, 2), Ok(()));
        let hosts = io_host(3, &["3"]);
        assert_eq!(
            IO_OPS.check_with_aggregate_override(&HostView::new(&hosts, 0), 10),
            Err("host has too many I/O operations (max_io_ops_per_host 3)".to_string())
        );
        let hosts = io_host(3, &[]);
        assert!(
            IO_OPS
                .check_with_aggregate_override(&HostView::new(&hosts, 0), 3)
                .is_err()
        );
    }
}
