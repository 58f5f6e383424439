//! Builders for plugin unit tests: a minimal [`Request`], [`QuotaRequest`] and
//! [`Notification`], and setters that fill the compressed-row columns of a
//! [`HostTable`] from plain per-host lists.

use crate::{
    Aggregate, Flavor, GroupPolicy, HostTable, Image, KeyValue, Metric, MetricLists, Notification,
    PropertyCount, PropertyCountLists, QuotaRequest, RefLists, Request, ResourceUsage, ServerGroup,
};

/// Key/value pairs from string pairs.
pub fn pairs(items: &[(&str, &str)]) -> Vec<KeyValue> {
    items
        .iter()
        .map(|(key, value)| KeyValue {
            key: (*key).to_string(),
            value: (*value).to_string(),
        })
        .collect()
}

/// A flavor named `name` with 1 vCPU, 512 MB RAM, 1 GB disk and `extra_specs`.
pub fn flavor(name: &str, extra_specs: &[(&str, &str)]) -> Flavor {
    Flavor {
        id: name.to_string(),
        name: name.to_string(),
        vcpus: 1,
        memory_mb: 512,
        root_gb: 1,
        ephemeral_gb: 0,
        swap_mb: 0,
        extra_specs: pairs(extra_specs),
    }
}

/// A request for one instance of [`flavor`]`("m1.tiny", &[])`, project
/// `project`, user `user`, no image properties, hints or group.
pub fn request() -> Request {
    Request {
        flavor: flavor("m1.tiny", &[]),
        image: Image {
            id: "image".to_string(),
            properties: Vec::new(),
        },
        project_id: "project".to_string(),
        user_id: "user".to_string(),
        availability_zone: None,
        num_instances: 1,
        scheduler_hints: Vec::new(),
        group: None,
        instance_uuids: vec!["instance".to_string()],
    }
}

/// A request (see [`request`]) in server group `id` with `policy` and no
/// members yet; `None` leaves the request without a group.
pub fn request_in_group(id: &str, policy: Option<GroupPolicy>) -> Request {
    let mut request = request();
    request.group = policy.map(|policy| ServerGroup {
        id: id.to_string(),
        policy,
        rules: Vec::new(),
        members: Vec::new(),
        hosts: Vec::new(),
    });
    request
}

/// A quota resource line.
pub fn usage(resource: &str, in_use: i64, limit: i64, requested: i64) -> ResourceUsage {
    ResourceUsage {
        resource: resource.to_string(),
        in_use,
        limit,
        requested,
    }
}

/// A quota check of `action` for project `project`, user `user`, no flavor.
pub fn quota_request(project: &str, action: &str, resources: Vec<ResourceUsage>) -> QuotaRequest {
    QuotaRequest {
        project_id: project.to_string(),
        user_id: "user".to_string(),
        action: action.to_string(),
        flavor: None,
        resources,
        flavor_usage: Vec::new(),
    }
}

/// An `INFO` notification from `nova-compute:host`.
pub fn notification(event_type: &str, timestamp: &str, payload_json: &str) -> Notification {
    Notification {
        message_id: format!("{event_type}@{timestamp}"),
        event_type: event_type.to_string(),
        priority: "INFO".to_string(),
        publisher_id: "nova-compute:host".to_string(),
        timestamp: timestamp.to_string(),
        payload_json: payload_json.to_string(),
    }
}

/// Offsets of compressed-row lists with the given per-row lengths.
fn offsets<T>(rows: &[&[T]]) -> Vec<u32> {
    let mut offsets = Vec::with_capacity(rows.len() + 1);
    let mut end = 0u32;
    offsets.push(end);
    for row in rows {
        end += row.len() as u32;
        offsets.push(end);
    }
    offsets
}

impl HostTable {
    /// The index of `text` in `strings`, adding it when new.
    pub fn intern(&mut self, text: &str) -> u32 {
        match self.strings.iter().position(|known| known == text) {
            Some(index) => index as u32,
            None => {
                self.strings.push(text.to_string());
                (self.strings.len() - 1) as u32
            }
        }
    }

    /// Fills `aggregates` and `host-aggregates`: `rows[i]` lists the indices
    /// into `aggregates` of host `i`.
    pub fn set_aggregates(&mut self, aggregates: Vec<Aggregate>, rows: &[&[u32]]) {
        self.aggregates = aggregates;
        self.host_aggregates = RefLists {
            offsets: offsets(rows),
            items: rows.concat(),
        };
    }

    /// Fills `instance-groups`: `rows[i]` lists one group uuid per grouped
    /// instance of host `i`.
    pub fn set_instance_groups(&mut self, rows: &[&[&str]]) {
        let items = rows
            .iter()
            .flat_map(|row| row.iter())
            .map(|id| self.intern(id))
            .collect();
        self.instance_groups = RefLists {
            offsets: offsets(rows),
            items,
        };
    }

    /// A table of `rows.len()` hosts with only `instance-groups` filled, as
    /// [`HostTable::set_instance_groups`] does.
    pub fn with_instance_groups(rows: &[&[&str]]) -> Self {
        let mut table = Self::with_len(rows.len() as u32);
        table.set_instance_groups(rows);
        table
    }

    /// Fills `metrics`: `rows[i]` lists host `i`'s (name, value) metrics.
    pub fn set_metrics(&mut self, rows: &[&[(&str, f64)]]) {
        let items = rows
            .iter()
            .flat_map(|row| row.iter())
            .map(|(name, value)| Metric {
                name: self.intern(name),
                value: *value,
            })
            .collect();
        self.metrics = MetricLists {
            offsets: offsets(rows),
            items,
        };
    }

    /// Fills `instance-image-properties`: `rows[i]` lists host `i`'s
    /// (key, value, instance count) triples.
    pub fn set_instance_image_properties(&mut self, rows: &[&[(&str, &str, u32)]]) {
        let items = rows
            .iter()
            .flat_map(|row| row.iter())
            .map(|(key, value, count)| PropertyCount {
                key: self.intern(key),
                value: self.intern(value),
                count: *count,
            })
            .collect();
        self.instance_image_properties = PropertyCountLists {
            offsets: offsets(rows),
            items,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostView;

    #[test]
    fn setters_build_rows_readable_through_host_view() {
        let mut table = HostTable::with_len(2);
        table.set_instance_groups(&[&["g1", "g2"], &["g1"]]);
        table.set_metrics(&[&[], &[("cpu.idle", 5.0)]]);
        table.set_instance_image_properties(&[&[("os_distro", "linux", 2)], &[]]);
        let first = HostView::new(&table, 0);
        let second = HostView::new(&table, 1);
        assert_eq!(
            first.instance_groups().collect::<Vec<_>>(),
            vec!["g1", "g2"]
        );
        assert_eq!(second.instance_groups().collect::<Vec<_>>(), vec!["g1"]);
        assert_eq!(first.metric("cpu.idle"), None);
        assert_eq!(second.metric("cpu.idle"), Some(5.0));
        assert_eq!(
            first.instance_image_properties().collect::<Vec<_>>(),
            vec![("os_distro", "linux", 2)]
        );
        assert_eq!(second.instance_image_properties().count(), 0);
    }
}
