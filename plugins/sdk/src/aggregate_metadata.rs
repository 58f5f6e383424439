//! Reading a host's aggregate metadata the way Nova's filters do
//! (`nova/scheduler/filters/utils.py`). All functions read `Column::Aggregates`.

use std::collections::{BTreeMap, BTreeSet};

use crate::HostView;

/// Every metadata key of the host's aggregates with the union of its values;
/// each value is split on commas and trimmed (`"a, b"` gives `a` and `b`).
pub fn merged<'a>(host: &HostView<'a>) -> BTreeMap<&'a str, BTreeSet<&'a str>> {
    let mut metadata: BTreeMap<&'a str, BTreeSet<&'a str>> = BTreeMap::new();
    for aggregate in host.aggregates() {
        for pair in &aggregate.metadata {
            metadata
                .entry(pair.key.as_str())
                .or_default()
                .extend(pair.value.split(',').map(str::trim));
        }
    }
    metadata
}

/// The distinct values of metadata `key` across the host's aggregates, as
/// written (not split on commas).
pub fn values<'a>(host: &HostView<'a>, key: &'a str) -> BTreeSet<&'a str> {
    host.aggregate_metadata(key).collect()
}

/// Parses an integer as Python's `int()` does for the usual spellings
/// (surrounding whitespace, a sign, `_` between digits).
pub fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    text.replace('_', "").parse().ok()
}

/// A per-host limit that aggregates may override: the minimum of the integer
/// values of metadata `key` across the host's aggregates, or `default` when no
/// aggregate sets it. As in Nova, if any of the values is not an integer the
/// overrides are ignored altogether and `default` applies.
pub fn limit_with_override(host: &HostView<'_>, key: &str, default: i64) -> i64 {
    let mut minimum: Option<i64> = None;
    for value in host
        .aggregates()
        .filter_map(|aggregate| aggregate.metadata(key))
    {
        match parse_int(value) {
            Some(limit) => minimum = Some(minimum.map_or(limit, |current| current.min(limit))),
            None => {
                crate::log(
                    crate::Level::Warn,
                    "could not decode aggregate limit",
                    &[("key", key), ("value", value)],
                );
                return default;
            }
        }
    }
    minimum.unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;
    use crate::testing::{HostSpec, aggregate, table};

    fn host_in(aggregates: Vec<crate::Aggregate>) -> crate::HostTable {
        table(
            &[Column::Aggregates],
            &[HostSpec {
                aggregates,
                ..HostSpec::named("h")
            }],
        )
    }

    #[test]
    fn merged_splits_and_unions() {
        let hosts = host_in(vec![
            aggregate("a", &[("os", "linux, windows"), ("ssd", "true")]),
            aggregate("b", &[("os", "bsd"), ("ssd", "true")]),
        ]);
        let metadata = merged(&HostView::new(&hosts, 0));
        assert_eq!(metadata["os"], BTreeSet::from(["linux", "windows", "bsd"]));
        assert_eq!(metadata["ssd"], BTreeSet::from(["true"]));
        assert_eq!(metadata.len(), 2);
        assert!(merged(&HostView::new(&host_in(vec![]), 0)).is_empty());
    }

    #[test]
    fn values_are_not_split() {
        let hosts = host_in(vec![
            aggregate("a", &[("t", "x, y")]),
            aggregate("b", &[("t", "x, y")]),
            aggregate("c", &[]),
        ]);
        assert_eq!(
            values(&HostView::new(&hosts, 0), "t"),
            BTreeSet::from(["x, y"])
        );
    }

    #[test]
    fn limit_minimum_wins() {
        let hosts = host_in(vec![
            aggregate("a", &[("max", "10")]),
            aggregate("b", &[("max", " 4 ")]),
            aggregate("c", &[]),
        ]);
        assert_eq!(limit_with_override(&HostView::new(&hosts, 0), "max", 50), 4);
    }

    #[test]
    fn limit_defaults_without_override() {
        let hosts = host_in(vec![aggregate("a", &[("other", "1")])]);
        assert_eq!(
            limit_with_override(&HostView::new(&hosts, 0), "max", 50),
            50
        );
    }

    #[test]
    fn limit_any_invalid_value_falls_back_to_default() {
        let hosts = host_in(vec![
            aggregate("a", &[("max", "2")]),
            aggregate("b", &[("max", "many")]),
        ]);
        assert_eq!(
            limit_with_override(&HostView::new(&hosts, 0), "max", 50),
            50
        );
        let hosts = host_in(vec![aggregate("a", &[("max", "2.5")])]);
        assert_eq!(
            limit_with_override(&HostView::new(&hosts, 0), "max", 50),
            50
        );
    }

    #[test]
    fn python_int_spellings() {
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int("_1"), None);
        assert_eq!(parse_int("1__0"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("1.0"), None);
    }
}
