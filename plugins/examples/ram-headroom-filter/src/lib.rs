//! RamHeadroomFilter: passes a host only if it keeps `headroom_mb` (config,
//! default 1024) of RAM free after the instance lands.

use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The README's "Write your own filter" example.
#[derive(Default)]
pub struct RamHeadroomFilter {
    headroom_mb: i64,
}

impl Filter for RamHeadroomFilter {
    const DESCRIPTION: &'static str = "keeps RAM headroom on every host";
    const NEEDS: &'static [Column] = &[Column::Memory];

    fn prepare(config: &Config, _request: &Request) -> Self {
        Self {
            headroom_mb: config.u64_or("headroom_mb", 1024) as i64,
        }
    }

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let left = host.memory_free_mb() - request.flavor.memory_mb as i64;
        if left >= self.headroom_mb {
            Ok(())
        } else {
            Err(format!(
                "only {left} MB would be left, {} MB headroom wanted",
                self.headroom_mb
            ))
        }
    }
}

novum_plugin_sdk::export_filter!(RamHeadroomFilter);

#[cfg(test)]
mod tests {
    use novum_plugin_sdk::testing::{HostSpec, filter_verdicts};

    use super::*;

    #[test]
    fn rejects_hosts_that_would_run_short() {
        let mut request = novum_plugin_sdk::fixtures::request();
        request.flavor.memory_mb = 512;
        let config = Config::from_pairs(&[("headroom_mb", "1024")]);
        let hosts = [
            HostSpec {
                memory_total_mb: 8192,
                memory_used_mb: 4096,
                ..HostSpec::named("roomy")
            },
            HostSpec {
                memory_total_mb: 8192,
                memory_used_mb: 6992,
                ..HostSpec::named("tight")
            },
        ];
        let verdicts = filter_verdicts::<RamHeadroomFilter>(&config, &request, &hosts);
        assert_eq!(verdicts[0], Ok(()));
        assert_eq!(
            verdicts[1],
            Err("only 688 MB would be left, 1024 MB headroom wanted".to_string())
        );
    }
}
