//! Scheduler hints that name instances by uuid (`same_host`,
//! `different_host`): whether a host runs any of them. Reads
//! `Column::Instances`.

use crate::{HostView, Request};

/// Where the instances named by a scheduler hint stand for one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintedInstances<'a> {
    /// The request has no such hint, or an empty one.
    NoHint,
    /// The host runs this hinted instance (the first one in the host's list).
    OnHost(&'a str),
    /// The host runs none of the hinted instances.
    NotOnHost,
}

/// Whether `host` runs one of the instances scheduler hint `hint` names.
pub fn hinted_instances<'a>(
    request: &Request,
    host: &HostView<'a>,
    hint: &str,
) -> HintedInstances<'a> {
    let Some(uuids) = request.hint(hint).filter(|uuids| !uuids.is_empty()) else {
        return HintedInstances::NoHint;
    };
    match host
        .instances()
        .find(|instance| uuids.iter().any(|uuid| uuid == instance))
    {
        Some(instance) => HintedInstances::OnHost(instance),
        None => HintedInstances::NotOnHost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;
    use crate::fixtures::request;
    use crate::testing::{hint, hosts_running, table};

    #[test]
    fn finds_the_first_hinted_instance_on_the_host() {
        let hosts = table(&[Column::Instances], &hosts_running(&[&["i1", "i2"], &[]]));
        let request = Request {
            scheduler_hints: vec![hint("near", &["i3", "i2", "i1"]), hint("none", &[])],
            ..request()
        };
        let on = |row, name| hinted_instances(&request, &HostView::new(&hosts, row), name);
        assert_eq!(on(0, "near"), HintedInstances::OnHost("i1"));
        assert_eq!(on(1, "near"), HintedInstances::NotOnHost);
        assert_eq!(on(0, "none"), HintedInstances::NoHint);
        assert_eq!(on(0, "absent"), HintedInstances::NoHint);
    }
}
