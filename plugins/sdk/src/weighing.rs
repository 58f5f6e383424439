//! Helpers shared by weighers: Nova's `name=ratio` settings, per-aggregate
//! weight multipliers and server group member counts.

use crate::{Column, Config, GroupPolicy, HostView, Request};

/// Parses Nova-style `name=ratio` items (as `nova.scheduler.utils.parse_options`
/// does with a float converter): each item is split at its first `=`; items
/// without `=`, with an empty name or with a ratio that is not a number are
/// ignored. Names and ratios are trimmed. Order and duplicates are kept.
pub fn parse_ratios<S: AsRef<str>>(items: &[S]) -> Vec<(String, f64)> {
    items
        .iter()
        .filter_map(|item| {
            let (name, ratio) = item.as_ref().split_once('=')?;
            let name = name.trim();
            let ratio: f64 = ratio.trim().parse().ok()?;
            (!name.is_empty() && ratio.is_finite()).then(|| (name.to_string(), ratio))
        })
        .collect()
}

impl Config {
    /// Setting `key` as `name=ratio` pairs: a JSON array of items or one
    /// comma-separated string (`"name1=1.0, name2=-1.0"`). See [`parse_ratios`].
    pub fn ratios(&self, key: &str) -> Vec<(String, f64)> {
        parse_ratios(&self.strings(key))
    }
}

/// The weight multiplier of `host` as Nova's `get_weight_multiplier` computes
/// it: the minimum of aggregate metadata `key` over the host's aggregates, or
/// `default` when no aggregate sets it or when any of the values is not a
/// number. Needs `Column::Aggregates`.
pub fn weight_multiplier(host: &HostView<'_>, key: &str, default: f64) -> f64 {
    let mut minimum: Option<f64> = None;
    for text in host.aggregate_metadata(key) {
        match text.trim().parse::<f64>() {
            Ok(value) => minimum = Some(minimum.map_or(value, |current| current.min(value))),
            Err(_) => return default,
        }
    }
    minimum.unwrap_or(default)
}

/// How many members of the request's server group run on `host` when the
/// group's policy is `policy`; 0 when the request has no group or the group
/// has another policy. Counts the host's `instance_groups` entries equal to
/// the group's id, so it needs `Column::InstanceGroups`.
pub fn group_members_on_host(request: &Request, host: &HostView<'_>, policy: GroupPolicy) -> u32 {
    match &request.group {
        Some(group) if group.policy == policy => {
            host.instance_groups().filter(|id| *id == group.id).count() as u32
        }
        _ => 0,
    }
}

/// `needs` when the request's server group has `policy`, else no column:
/// the `needs` of plugins that only look at hosts for such a group.
pub fn group_needs(request: &Request, policy: GroupPolicy, needs: &[Column]) -> Vec<Column> {
    match &request.group {
        Some(group) if group.policy == policy => needs.to_vec(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Aggregate, HostTable, KeyValue, RefLists};

    #[test]
    fn parse_ratios_keeps_valid_items_like_nova() {
        assert_eq!(parse_ratios(&["idle=1"]), vec![("idle".to_string(), 1.0)]);
        assert_eq!(
            parse_ratios(&["idle=1", "kernel=-2.1"]),
            vec![("idle".to_string(), 1.0), ("kernel".to_string(), -2.1)]
        );
        assert_eq!(
            parse_ratios(&["idle=a1", "kernel=-2.1"]),
            vec![("kernel".to_string(), -2.1)]
        );
        assert_eq!(
            parse_ratios(&["idle", "kernel=-2.1"]),
            vec![("kernel".to_string(), -2.1)]
        );
        assert_eq!(
            parse_ratios(&["=5", "kernel=-2.1"]),
            vec![("kernel".to_string(), -2.1)]
        );
        assert_eq!(
            parse_ratios(&["kernel = 2.0t"]),
            Vec::<(String, f64)>::new()
        );
        assert_eq!(
            parse_ratios(&["a=1", "a=-2"]),
            vec![("a".to_string(), 1.0), ("a".to_string(), -2.0)]
        );
    }

    #[test]
    fn config_ratios_accepts_comma_string_and_json_array() {
        let text = Config::from_pairs(&[("weight_setting", "name1=1.0, name2=-1.0")]);
        let json = Config::from_pairs(&[("weight_setting", r#"["name1=1.0", "name2=-1.0"]"#)]);
        let expected = vec![("name1".to_string(), 1.0), ("name2".to_string(), -1.0)];
        assert_eq!(text.ratios("weight_setting"), expected);
        assert_eq!(json.ratios("weight_setting"), expected);
        assert!(text.ratios("absent").is_empty());
    }

    fn aggregate(key: &str, value: &str) -> Aggregate {
        Aggregate {
            name: "agg".into(),
            metadata: vec![KeyValue {
                key: key.into(),
                value: value.into(),
            }],
        }
    }

    /// One host in every aggregate given.
    fn host_in(aggregates: Vec<Aggregate>) -> HostTable {
        let mut table = HostTable::with_len(1);
        let count = aggregates.len() as u32;
        table.aggregates = aggregates;
        table.host_aggregates = RefLists {
            offsets: vec![0, count],
            items: (0..count).collect(),
        };
        table
    }

    #[test]
    fn group_members_counted_only_for_the_policy() {
        use crate::fixtures::{request, request_in_group};
        let hosts = HostTable::with_instance_groups(&[&["g1", "g1", "other"], &[]]);
        let soft = request_in_group("g1", Some(GroupPolicy::SoftAffinity));
        let count = |request: &Request, row, policy| {
            group_members_on_host(request, &HostView::new(&hosts, row), policy)
        };
        assert_eq!(count(&soft, 0, GroupPolicy::SoftAffinity), 2);
        assert_eq!(count(&soft, 1, GroupPolicy::SoftAffinity), 0);
        assert_eq!(count(&soft, 0, GroupPolicy::SoftAntiAffinity), 0);
        assert_eq!(count(&request(), 0, GroupPolicy::SoftAffinity), 0);
    }

    #[test]
    fn group_needs_only_for_the_policy() {
        use crate::fixtures::{request, request_in_group};
        let needs = [Column::InstanceGroups];
        assert!(group_needs(&request(), GroupPolicy::SoftAffinity, &needs).is_empty());
        let soft = request_in_group("g1", Some(GroupPolicy::SoftAffinity));
        assert_eq!(group_needs(&soft, GroupPolicy::SoftAffinity, &needs), needs);
        assert!(group_needs(&soft, GroupPolicy::AntiAffinity, &needs).is_empty());
    }

    #[test]
    fn weight_multiplier_takes_the_minimum_aggregate_value() {
        let key = "metrics_weight_multiplier";
        let none = host_in(vec![]);
        assert_eq!(weight_multiplier(&HostView::new(&none, 0), key, -1.0), -1.0);
        let one = host_in(vec![aggregate(key, "2")]);
        assert_eq!(weight_multiplier(&HostView::new(&one, 0), key, -1.0), 2.0);
        let two = host_in(vec![
            aggregate(key, "2"),
            aggregate(key, "1.5"),
            aggregate("other", "0"),
        ]);
        assert_eq!(weight_multiplier(&HostView::new(&two, 0), key, -1.0), 1.5);
        let bad = host_in(vec![aggregate(key, "2"), aggregate(key, "x")]);
        assert_eq!(weight_multiplier(&HostView::new(&bad, 0), key, -1.0), -1.0);
    }
}
