//! MetricsFilter: passes hosts that report every metric named in the
//! configuration key `weight_setting` (as Nova's `[metrics] weight_setting`:
//! `name=ratio` entries, a JSON array or a comma separated string; malformed
//! entries are ignored), so that the metrics weigher finds them. Without a
//! weight setting every host passes.

use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// Nova's MetricsFilter.
#[derive(Default)]
pub struct MetricsFilter {
    names: Vec<String>,
}

impl Filter for MetricsFilter {
    const DESCRIPTION: &'static str = "host reports every metric of the weight setting";
    const NEEDS: &'static [Column] = &[Column::Metrics];

    fn prepare(config: &Config, _request: &Request) -> Self {
        let mut names: Vec<String> = config
            .ratios("weight_setting")
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.sort();
        names.dedup();
        Self { names }
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let missing: Vec<&str> = self
            .names
            .iter()
            .map(String::as_str)
            .filter(|name| !host.metrics().any(|(metric, _)| metric == *name))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("host lacks metrics {}", missing.join(", ")))
        }
    }
}

novum_plugin_sdk::export_filter!(MetricsFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_verdicts};

    fn verdicts(setting: &str, metrics: &[&str]) -> Result<(), String> {
        let host = HostSpec {
            metrics: metrics.iter().map(|name| (name.to_string(), 1.0)).collect(),
            ..HostSpec::named("h")
        };
        let config = Config::from_pairs(&[("weight_setting", setting)]);
        filter_verdicts::<MetricsFilter>(&config, &request(), &[host]).remove(0)
    }

    #[test]
    fn all_metrics_present_passes() {
        assert_eq!(
            verdicts(
                "cpu.frequency=1, numa.membw.current=2",
                &["cpu.frequency", "numa.membw.current"]
            ),
            Ok(())
        );
        assert_eq!(
            verdicts(r#"["cpu.frequency=1"]"#, &["cpu.frequency", "other"]),
            Ok(())
        );
    }

    #[test]
    fn missing_metrics_fail() {
        assert_eq!(
            verdicts("foo=1, bar=2", &["cpu.frequency"]),
            Err("host lacks metrics bar, foo".to_string())
        );
        assert_eq!(
            verdicts("foo=1", &[]),
            Err("host lacks metrics foo".to_string())
        );
    }

    #[test]
    fn empty_or_malformed_setting_passes() {
        assert_eq!(verdicts("", &[]), Ok(()));
        assert_eq!(verdicts("foo, =2, bar=x", &[]), Ok(()));
        let host = HostSpec::named("h");
        assert_eq!(
            filter_verdicts::<MetricsFilter>(&Config::default(), &request(), &[host]),
            [Ok(())]
        );
    }
}
