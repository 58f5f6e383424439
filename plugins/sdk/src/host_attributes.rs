//! Host attributes by their Nova `HostState` names, for filters that let the
//! user name an attribute: ComputeCapabilitiesFilter (`capabilities:free_ram_mb`)
//! and JsonFilter (`$free_ram_mb`).
//!
//! | Nova name | value | column |
//! |---|---|---|
//! | `host`, `nodename`, `hypervisor_hostname` | host name | `name` |
//! | `free_ram_mb` | total − used RAM (Nova's raw figure, no allocation ratio) | `memory` |
//! | `total_usable_ram_mb` | total RAM | `memory` |
//! | `free_disk_mb` | total − used disk | `disk` |
//! | `total_usable_disk_gb` | total disk in GiB (rounded down) | `disk` |
//! | `vcpus_total`, `vcpus_used` | vCPUs | `vcpus` |
//! | `num_instances`, `num_io_ops` | counters | `num-instances`, `num-io-ops` |
//! | `hypervisor_type`, `hypervisor_version` | hypervisor | `hypervisor` |
//! | `cpu_info` (`arch`, `features`) | CPU | `cpu` |
//! | `host_ip` | IP address | `host-ip` |
//! | `metrics` (by metric name) | metrics | `metrics` |
//!
//! A filter that resolves attributes declares [`COLUMNS`] in its `NEEDS`.

use std::fmt;

use crate::{Column, HostView};

/// Every column an attribute of this module reads.
pub const COLUMNS: &[Column] = &[
    Column::Name,
    Column::Memory,
    Column::Disk,
    Column::Vcpus,
    Column::NumInstances,
    Column::NumIoOps,
    Column::Hypervisor,
    Column::Cpu,
    Column::HostIp,
    Column::Metrics,
];

/// The attribute names this module resolves.
pub const NAMES: &[&str] = &[
    "host",
    "nodename",
    "hypervisor_hostname",
    "free_ram_mb",
    "total_usable_ram_mb",
    "free_disk_mb",
    "total_usable_disk_gb",
    "vcpus_total",
    "vcpus_used",
    "num_instances",
    "num_io_ops",
    "hypervisor_type",
    "hypervisor_version",
    "cpu_info",
    "host_ip",
    "metrics",
];

/// The column attribute `name` (the first segment of a path) reads; `None`
/// for names this module does not resolve (their lookup reads nothing).
pub fn column_of(name: &str) -> Option<Column> {
    Some(match name {
        "host" | "nodename" | "hypervisor_hostname" => Column::Name,
        "free_ram_mb" | "total_usable_ram_mb" => Column::Memory,
        "free_disk_mb" | "total_usable_disk_gb" => Column::Disk,
        "vcpus_total" | "vcpus_used" => Column::Vcpus,
        "num_instances" => Column::NumInstances,
        "num_io_ops" => Column::NumIoOps,
        "hypervisor_type" | "hypervisor_version" => Column::Hypervisor,
        "cpu_info" => Column::Cpu,
        "host_ip" => Column::HostIp,
        "metrics" => Column::Metrics,
        _ => return None,
    })
}

/// The columns resolving paths that start with `names` read: a subset of
/// [`COLUMNS`], in its order, each once.
pub fn columns_for<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Column> {
    let wanted: Vec<Column> = names.into_iter().filter_map(column_of).collect();
    COLUMNS
        .iter()
        .copied()
        .filter(|column| wanted.contains(column))
        .collect()
}

/// Whether `name` is a host attribute (a top-level Nova `HostState` name this
/// module resolves).
pub fn is_attribute(name: &str) -> bool {
    NAMES.contains(&name)
}

/// The value of a host attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// An integer figure.
    Int(i64),
    /// A real figure (metrics).
    Float(f64),
    /// A string.
    Text(&'a str),
    /// A list of strings (CPU features).
    List(Vec<&'a str>),
    /// A nested record (`cpu_info`, `metrics`).
    Map(Vec<(&'a str, Value<'a>)>),
}

/// Formats a float as Python's `str(float)` does for ordinary values
/// (`1.0`, `0.5`, `inf`, `nan`).
pub fn python_float(value: f64) -> String {
    if value.is_nan() {
        "nan".to_string()
    } else if value.is_infinite() {
        if value > 0.0 {
            "inf".to_string()
        } else {
            "-inf".to_string()
        }
    } else if value.fract() == 0.0 && value.abs() < 1e16 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

impl Value<'_> {
    fn write_quoted(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(text) => write!(out, "'{text}'"),
            other => write!(out, "{other}"),
        }
    }
}

/// Renders the value as Python's `str()` would: lists and records in
/// Python's literal syntax (`['aes', 'avx']`), so that substring operators
/// such as `<in>` behave as in Nova.
impl fmt::Display for Value<'_> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(value) => write!(out, "{value}"),
            Value::Float(value) => out.write_str(&python_float(*value)),
            Value::Text(text) => out.write_str(text),
            Value::List(items) => {
                out.write_str("[")?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.write_str(", ")?;
                    }
                    write!(out, "'{item}'")?;
                }
                out.write_str("]")
            }
            Value::Map(entries) => {
                out.write_str("{")?;
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.write_str(", ")?;
                    }
                    write!(out, "'{key}': ")?;
                    value.write_quoted(out)?;
                }
                out.write_str("}")
            }
        }
    }
}

fn cpu_info<'a>(host: &HostView<'a>) -> Value<'a> {
    Value::Map(vec![
        ("arch", Value::Text(host.cpu_arch())),
        ("features", Value::List(host.cpu_features().collect())),
    ])
}

fn metrics<'a>(host: &HostView<'a>) -> Value<'a> {
    Value::Map(
        host.metrics()
            .map(|(name, value)| (name, Value::Float(value)))
            .collect(),
    )
}

fn top_level<'a>(host: &HostView<'a>, name: &str) -> Option<Value<'a>> {
    Some(match name {
        "host" | "nodename" | "hypervisor_hostname" => Value::Text(host.name()),
        "free_ram_mb" => Value::Int(host.memory_total_mb() - host.memory_used_mb()),
        "total_usable_ram_mb" => Value::Int(host.memory_total_mb()),
        "free_disk_mb" => Value::Int(host.disk_total_mb() - host.disk_used_mb()),
        "total_usable_disk_gb" => Value::Int(host.disk_total_mb().div_euclid(1024)),
        "vcpus_total" => Value::Int(i64::from(host.vcpus_total())),
        "vcpus_used" => Value::Int(i64::from(host.vcpus_used())),
        "num_instances" => Value::Int(i64::from(host.num_instances())),
        "num_io_ops" => Value::Int(i64::from(host.num_io_ops())),
        "hypervisor_type" => Value::Text(host.hypervisor_type()),
        "hypervisor_version" => {
            Value::Int(i64::try_from(host.hypervisor_version()).unwrap_or(i64::MAX))
        }
        "cpu_info" => cpu_info(host),
        "host_ip" => Value::Text(host.host_ip()),
        "metrics" => metrics(host),
        _ => return None,
    })
}

/// Resolves an attribute path such as `["free_ram_mb"]`, `["cpu_info",
/// "arch"]` or `["metrics", "cpu", "percent"]` on `host`; `None` when the
/// path names nothing.
///
/// Below `metrics`, the remaining segments are joined with `.` to form the
/// metric name, so `$metrics.cpu.percent` (JsonFilter) and
/// `capabilities:metrics:cpu.percent` (ComputeCapabilitiesFilter) both name
/// metric `cpu.percent`.
pub fn lookup<'a>(host: &HostView<'a>, path: &[&str]) -> Option<Value<'a>> {
    let (first, rest) = path.split_first()?;
    if *first == "metrics" && !rest.is_empty() {
        return host.metric(&rest.join(".")).map(Value::Float);
    }
    let mut value = top_level(host, first)?;
    for segment in rest {
        let Value::Map(entries) = value else {
            return None;
        };
        value = entries
            .into_iter()
            .find(|(key, _)| key == segment)
            .map(|(_, value)| value)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{HostSpec, table};

    fn host() -> HostSpec {
        HostSpec {
            memory_total_mb: 4096,
            memory_used_mb: 1024,
            // The free column (4096 × 1.5 − 1024 = 5120) is not Nova's
            // free_ram_mb, which ignores the ratio.
            ram_allocation_ratio: 1.5,
            disk_total_mb: 10 * 1024 + 512,
            disk_used_mb: 512,
            vcpus_total: 8,
            vcpus_used: 3,
            num_instances: 4,
            num_io_ops: 2,
            hypervisor_type: "QEMU".into(),
            hypervisor_version: 8_002_000,
            cpu_arch: "x86_64".into(),
            cpu_features: vec!["aes".into(), "avx2".into()],
            host_ip: "10.0.0.5".into(),
            metrics: vec![
                ("cpu.percent".into(), 0.25),
                ("cpu.frequency".into(), 2400.0),
            ],
            ..HostSpec::named("compute-1")
        }
    }

    #[test]
    fn resolves_every_name_with_only_the_declared_columns() {
        let hosts = table(COLUMNS, &[host()]);
        let view = HostView::new(&hosts, 0);
        for name in NAMES {
            assert!(lookup(&view, &[name]).is_some(), "{name}");
        }
        assert_eq!(lookup(&view, &["host"]), Some(Value::Text("compute-1")));
        assert_eq!(
            lookup(&view, &["hypervisor_hostname"]),
            Some(Value::Text("compute-1"))
        );
        assert_eq!(lookup(&view, &["free_ram_mb"]), Some(Value::Int(3072)));
        assert_eq!(
            lookup(&view, &["total_usable_ram_mb"]),
            Some(Value::Int(4096))
        );
        assert_eq!(
            lookup(&view, &["free_disk_mb"]),
            Some(Value::Int(10 * 1024))
        );
        assert_eq!(
            lookup(&view, &["total_usable_disk_gb"]),
            Some(Value::Int(10))
        );
        assert_eq!(lookup(&view, &["vcpus_total"]), Some(Value::Int(8)));
        assert_eq!(lookup(&view, &["vcpus_used"]), Some(Value::Int(3)));
        assert_eq!(lookup(&view, &["num_instances"]), Some(Value::Int(4)));
        assert_eq!(lookup(&view, &["num_io_ops"]), Some(Value::Int(2)));
        assert_eq!(
            lookup(&view, &["hypervisor_type"]),
            Some(Value::Text("QEMU"))
        );
        assert_eq!(
            lookup(&view, &["hypervisor_version"]),
            Some(Value::Int(8_002_000))
        );
        assert_eq!(lookup(&view, &["host_ip"]), Some(Value::Text("10.0.0.5")));
    }

    #[test]
    fn nested_paths() {
        let hosts = table(COLUMNS, &[host()]);
        let view = HostView::new(&hosts, 0);
        assert_eq!(
            lookup(&view, &["cpu_info", "arch"]),
            Some(Value::Text("x86_64"))
        );
        assert_eq!(
            lookup(&view, &["cpu_info", "features"]),
            Some(Value::List(vec!["aes", "avx2"]))
        );
        assert_eq!(lookup(&view, &["cpu_info", "vendor"]), None);
        assert_eq!(lookup(&view, &["cpu_info", "arch", "deeper"]), None);
        assert_eq!(
            lookup(&view, &["metrics", "cpu", "percent"]),
            Some(Value::Float(0.25))
        );
        assert_eq!(
            lookup(&view, &["metrics", "cpu.frequency"]),
            Some(Value::Float(2400.0))
        );
        assert_eq!(lookup(&view, &["metrics", "missing"]), None);
        assert_eq!(lookup(&view, &["free_ram_mb", "x"]), None);
        assert_eq!(lookup(&view, &["stats"]), None);
        assert_eq!(lookup(&view, &[]), None);
    }

    #[test]
    fn renders_like_python_str() {
        let hosts = table(COLUMNS, &[host()]);
        let view = HostView::new(&hosts, 0);
        let text = |path: &[&str]| lookup(&view, path).map(|value| value.to_string());
        assert_eq!(
            text(&["cpu_info", "features"]).as_deref(),
            Some("['aes', 'avx2']")
        );
        assert_eq!(
            text(&["cpu_info"]).as_deref(),
            Some("{'arch': 'x86_64', 'features': ['aes', 'avx2']}")
        );
        assert_eq!(
            text(&["metrics", "cpu.frequency"]).as_deref(),
            Some("2400.0")
        );
        assert_eq!(text(&["metrics", "cpu.percent"]).as_deref(), Some("0.25"));
        assert_eq!(text(&["vcpus_used"]).as_deref(), Some("3"));
        assert_eq!(python_float(f64::NAN), "nan");
        assert_eq!(python_float(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn every_name_reads_only_its_column() {
        for name in NAMES {
            let columns = columns_for([*name]);
            assert_eq!(columns.len(), 1, "{name}");
            let hosts = table(&columns, &[host()]);
            assert!(
                lookup(&HostView::new(&hosts, 0), &[name]).is_some(),
                "{name}"
            );
        }
        assert_eq!(
            columns_for(["metrics", "free_ram_mb", "XXYY", "free_ram_mb"]),
            [Column::Memory, Column::Metrics]
        );
        assert!(columns_for(["stats"]).is_empty());
    }

    #[test]
    fn attribute_names() {
        assert!(is_attribute("free_ram_mb"));
        assert!(is_attribute("cpu_info"));
        assert!(!is_attribute("XXYY"));
        assert!(!is_attribute("capabilities"));
    }
}
