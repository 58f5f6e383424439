//! AvailabilityZoneFilter: when the request names an availability zone,
//! passes the hosts in that zone. The controller computes each host's zone
//! (its aggregates' `availability_zone` metadata, else the default zone). A
//! request without a zone (or with an empty one) passes every host.

use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// Nova's AvailabilityZoneFilter.
#[derive(Default)]
pub struct AvailabilityZoneFilter;

impl Filter for AvailabilityZoneFilter {
    const DESCRIPTION: &'static str = "host is in the requested availability zone";
    const NEEDS: &'static [Column] = &[Column::AvailabilityZone];

    /// Zones only when the request names one.
    fn needs(_config: &Config, request: &Request) -> Vec<Column> {
        match request.availability_zone.as_deref() {
            Some(zone) if !zone.is_empty() => Self::NEEDS.to_vec(),
            _ => Vec::new(),
        }
    }

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        match request.availability_zone.as_deref() {
            Some(zone) if !zone.is_empty() && host.availability_zone() != zone => {
                Err(format!("host is not in availability zone {zone}"))
            }
            _ => Ok(()),
        }
    }
}

novum_plugin_sdk::export_filter!(AvailabilityZoneFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::Config;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_verdicts};

    fn check(zone: Option<&str>) -> Vec<Result<(), String>> {
        let hosts = [
            HostSpec {
                availability_zone: "nova".into(),
                ..HostSpec::named("a")
            },
            HostSpec {
                availability_zone: "az2".into(),
                ..HostSpec::named("b")
            },
        ];
        let request = Request {
            availability_zone: zone.map(str::to_string),
            ..request()
        };
        filter_verdicts::<AvailabilityZoneFilter>(&Config::default(), &request, &hosts)
    }

    #[test]
    fn requested_zone_only() {
        assert_eq!(
            check(Some("az2")),
            [
                Err("host is not in availability zone az2".to_string()),
                Ok(())
            ]
        );
        assert_eq!(
            check(Some("nova")),
            [
                Ok(()),
                Err("host is not in availability zone nova".to_string())
            ]
        );
        assert!(check(Some("az3")).iter().all(Result::is_err));
    }

    #[test]
    fn zones_are_case_sensitive() {
        assert!(check(Some("AZ2")).iter().all(Result::is_err));
    }

    #[test]
    fn no_zone_passes_every_host() {
        assert_eq!(check(None), [Ok(()), Ok(())]);
        assert_eq!(check(Some("")), [Ok(()), Ok(())]);
    }

    #[test]
    fn needs_zones_only_for_a_named_zone() {
        let mut wanting = request();
        assert!(AvailabilityZoneFilter::needs(&Config::default(), &wanting).is_empty());
        wanting.availability_zone = Some(String::new());
        assert!(AvailabilityZoneFilter::needs(&Config::default(), &wanting).is_empty());
        wanting.availability_zone = Some("az1".into());
        assert_eq!(
            AvailabilityZoneFilter::needs(&Config::default(), &wanting),
            [Column::AvailabilityZone]
        );
    }
}
