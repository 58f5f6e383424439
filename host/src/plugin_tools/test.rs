//! `novum plugin test PLUGIN.wasm`: one component loaded in the real plugin
//! host (the controller's engine, empty WASI context, deadline and memory
//! cap) and run once, its answers printed:
//!
//! - a filter: per host of a synthetic cloud (`novum_scheduler::synthetic`,
//!   seeded), `pass` or `reject` with the plugin's reason;
//! - a weigher: per host, its raw weight and the weight normalized over the
//!   hosts as the scheduler does (min..max to 0..1);
//! - a quota policy: `allow` or `deny` with resource and message for a few
//!   quota checks of the requested flavor (an empty project, one with room
//!   for exactly one more server, one at its instance limit);
//! - with `--decisions-from`, filters and weighers run each recorded
//!   decision's request (flavor, image, project, zone, hints, group) instead
//!   of the synthetic one, and the recorded outcome is printed beside; over
//!   the hosts that decision's plugins saw when the log still keeps its
//!   inputs (fetched from the controller: `GET
//!   /novum/v1/decisions/{request_id}/inputs`), else over the synthetic
//!   cloud.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use novum_plugin_host::bindings::ConvertedRequest;
use novum_plugin_host::set::load_plugin;
use novum_plugin_host::{
    Backend, CallContext, LoadedPlugin, PluginConfig, PluginEngine, PluginKind, PluginsConfig,
};
use novum_plugin_sdk::fixtures::{flavor, quota_request, request as sample_request, usage};
use novum_plugin_sdk::{GroupPolicy, Image, KeyValue, Request, SchedulerHint, ServerGroup};
use novum_scheduler::explain::{Decision, Outcome, RequestSummary};
use novum_scheduler::pipeline::normalize;
use novum_scheduler::synthetic;
use novum_scheduler::table::{HostRows, build_table};
use novum_scheduler::whatif::DecisionInputs;
use serde_json::Value;

/// The request id plugin calls of `plugin test` carry in their log lines.
const REQUEST_ID: &str = "plugin-test";

/// What `novum plugin test` runs.
#[derive(Clone, Debug)]
pub struct TestOptions {
    /// The component.
    pub plugin: PathBuf,
    /// Hosts of the synthetic cloud.
    pub hosts: usize,
    /// Seed of the synthetic cloud.
    pub seed: u64,
    /// The plugin's configuration (`key=value`, as `config = {...}` in its
    /// `[plugins.<name>]` table).
    pub config: Vec<(String, String)>,
    /// vCPUs of the requested flavor.
    pub vcpus: u32,
    /// RAM of the requested flavor, MB.
    pub ram_mb: u64,
    /// Call deadline, ms.
    pub deadline_ms: Option<u64>,
    /// Memory cap, MiB (default: the controller's).
    pub memory_limit_mib: Option<u64>,
}

/// Loads the component of `options` as the controller would load it from a
/// `[plugins.<name>]` table with its `path` (the name: the file's stem).
pub fn load(engine: &Arc<PluginEngine>, options: &TestOptions) -> anyhow::Result<LoadedPlugin> {
    let name = options
        .plugin
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("plugin")
        .to_string();
    let mut table = toml::Table::new();
    for (key, value) in &options.config {
        table.insert(key.clone(), toml::Value::String(value.clone()));
    }
    let mut plugins = PluginsConfig::default();
    plugins.plugins.insert(
        name.clone(),
        PluginConfig {
            path: Some(options.plugin.clone()),
            deadline_ms: options.deadline_ms,
            memory_limit_mib: options.memory_limit_mib,
            config: table,
            ..PluginConfig::default()
        },
    );
    Ok(load_plugin(engine, Backend::Wasm, &name, &plugins)?)
}

/// The request of a synthetic run: one instance of a flavor with `vcpus`
/// and `ram_mb`.
fn synthetic_request(options: &TestOptions) -> Request {
    let mut request = sample_request();
    request.flavor.vcpus = options.vcpus;
    request.flavor.memory_mb = options.ram_mb;
    request.flavor.name = format!("{}vcpu-{}mb", options.vcpus, options.ram_mb);
    request
}

/// Runs `plugin` on the synthetic cloud of `options` (or, for a filter or
/// weigher, each recorded request of `decisions`), and returns what it
/// answered, as text.
pub fn run(
    plugin: &LoadedPlugin,
    options: &TestOptions,
    decisions: &[Recorded],
) -> anyhow::Result<String> {
    let info = plugin.info();
    let mut text = format!(
        "{} ({}, version {}): {}\n",
        plugin.name(),
        plugin.kind(),
        info.version,
        info.description
    );
    match plugin.kind() {
        PluginKind::Filter | PluginKind::Weigher => {
            let synthetic_cloud = synthetic::cloud(options.seed, options.hosts);
            let synthetic_line = format!(
                "synthetic cloud: {} hosts (seed {})",
                synthetic_cloud.hosts().len(),
                options.seed
            );
            if decisions.is_empty() {
                let request = synthetic_request(options);
                writeln!(
                    text,
                    "\nrequest: flavor {}\n{synthetic_line}",
                    describe_flavor(&request)
                )?;
                run_scheduler_plugin(plugin, &synthetic_cloud, &request, &mut text)?;
            }
            for recorded in decisions {
                let (what, request) = recorded_request(&recorded.decision);
                match &recorded.inputs {
                    Some(inputs) => {
                        let cloud = inputs.snapshot();
                        writeln!(
                            text,
                            "\nrequest: {what}\nrecorded hosts: {} (as the decision's plugins saw them)",
                            cloud.hosts().len()
                        )?;
                        run_scheduler_plugin(plugin, &cloud, &inputs.request.request, &mut text)?;
                    }
                    None => {
                        writeln!(
                            text,
                            "\nrequest: {what}\n{synthetic_line} (the decision's hosts are no longer kept)"
                        )?;
                        run_scheduler_plugin(plugin, &synthetic_cloud, &request, &mut text)?;
                    }
                }
            }
        }
        PluginKind::QuotaPolicy => run_quota_policy(plugin, options, &mut text)?,
        PluginKind::NotificationHook => {
            anyhow::bail!(
                "{} is a notification hook: plugin test runs filters, weighers and quota policies",
                plugin.name()
            )
        }
    }
    Ok(text)
}

fn describe_flavor(request: &Request) -> String {
    let flavor = &request.flavor;
    format!(
        "{} ({} vCPU, {} MB RAM, {} GB disk)",
        flavor.name, flavor.vcpus, flavor.memory_mb, flavor.root_gb
    )
}

/// One filter or weigher call over every host of `cloud`, printed per host.
fn run_scheduler_plugin(
    plugin: &LoadedPlugin,
    cloud: &novum_scheduler::CloudSnapshot,
    request: &Request,
    text: &mut String,
) -> anyhow::Result<()> {
    let rows = HostRows::new(cloud);
    let candidates: Vec<usize> = (0..rows.len()).collect();
    let converted = ConvertedRequest::new(request);
    let context = CallContext {
        request_id: REQUEST_ID,
        request: &converted,
    };
    let table = |needs: &[novum_plugin_sdk::Column]| build_table(&rows, &candidates, needs);
    let name = |row: usize| rows.get(row).name.as_str();
    if plugin.kind() == PluginKind::Filter {
        let outcome = plugin.filter(&context, table)?;
        let mut passed = 0;
        for (row, verdict) in outcome.verdicts.iter().enumerate() {
            match verdict {
                0 => {
                    passed += 1;
                    writeln!(text, "  {:<14} pass", name(row))?;
                }
                reason => writeln!(
                    text,
                    "  {:<14} reject  {}",
                    name(row),
                    outcome.reasons[*reason as usize - 1]
                )?,
            }
        }
        writeln!(text, "passed {passed} of {} hosts", rows.len())?;
        writeln!(text, "{}", call_time(plugin))?;
    } else {
        let raw = plugin.weigh(&context, table)?;
        let normalized = normalize(&raw, None);
        writeln!(
            text,
            "  {:<14} {:>14} {:>11}",
            "host", "raw weight", "normalized"
        )?;
        for (row, (raw, normalized)) in raw.iter().zip(&normalized).enumerate() {
            writeln!(text, "  {:<14} {raw:>14.3} {normalized:>11.4}", name(row))?;
        }
        writeln!(text, "{}", call_time(plugin))?;
    }
    Ok(())
}

/// The plugin's last call time, from its metrics (the first call of an
/// instance includes instantiating it: for a Python plugin, CPython).
fn call_time(plugin: &LoadedPlugin) -> String {
    let latency = plugin.metrics().snapshot().latency;
    format!(
        "calls so far: {}, mean {:.3} ms each (the first includes instantiating the component)",
        latency.count,
        latency.total_us as f64 / latency.count.max(1) as f64 / 1000.0
    )
}

/// The quota checks a policy is shown: the requested flavor for an empty
/// project, for one with room for exactly one more server, and for one at
/// its instance limit.
fn run_quota_policy(
    plugin: &LoadedPlugin,
    options: &TestOptions,
    text: &mut String,
) -> anyhow::Result<()> {
    let (vcpus, ram) = (i64::from(options.vcpus), options.ram_mb as i64);
    let checks = [
        ("empty project, default limits", 0, 0, 0),
        (
            "one server short of every limit",
            9,
            20 - vcpus,
            51_200 - ram,
        ),
        ("at the instance limit", 10, 10, 5_120),
    ];
    let mut requested = flavor(&format!("{vcpus}vcpu-{ram}mb"), &[]);
    requested.vcpus = options.vcpus;
    requested.memory_mb = options.ram_mb;
    writeln!(
        text,
        "\nquota checks of a create of flavor {} ({vcpus} vCPU, {ram} MB RAM); limits: 10 instances, 20 cores, 51200 MB RAM",
        requested.name
    )?;
    for (what, instances, cores, ram_used) in checks {
        let mut quota = quota_request(
            "project",
            "create",
            vec![
                usage("instances", instances, 10, 1),
                usage("cores", cores, 20, vcpus),
                usage("ram", ram_used, 51_200, ram),
            ],
        );
        quota.flavor = Some(requested.clone());
        match plugin.check_quota(REQUEST_ID, quota)? {
            Ok(()) => writeln!(text, "  {what:<34} allow")?,
            Err(denial) => writeln!(
                text,
                "  {what:<34} deny    {}: {}",
                denial.resource, denial.message
            )?,
        }
    }
    Ok(())
}

/// A recorded decision, with the inputs it kept (the request and the hosts
/// its plugins saw) when the controller still has them.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The decision as the log keeps it.
    pub decision: Decision,
    /// Its inputs, decoded.
    pub inputs: Option<DecisionInputs>,
}

/// The decisions of `source`: a file holding `novum decision show ID
/// --json` (or `GET /novum/v1/decisions/{id}`), or that answer fetched
/// from the controller of the `OS_*` environment, by request id or URL —
/// then with their kept inputs.
pub async fn decisions_from(source: &str) -> anyhow::Result<Vec<Recorded>> {
    let (body, inputs): (Value, Option<Value>) = if Path::new(source).is_file() {
        (
            serde_json::from_str(&std::fs::read_to_string(source)?)?,
            None,
        )
    } else {
        let path = match source.find("/novum/v1/decisions/") {
            Some(start) => source[start..].trim_end_matches('/').to_string(),
            None => format!("/novum/v1/decisions/{}", percent_encode(source)),
        };
        let client = crate::admin_client::AdminClient::from_env().await?;
        let body = client.call(reqwest::Method::GET, &path).await?;
        let inputs = client
            .call(reqwest::Method::GET, &format!("{path}/inputs"))
            .await?;
        (body, Some(inputs))
    };
    let shown = body
        .get("decisions")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{source}: no `decisions` in the answer"))?;
    if shown.is_empty() {
        anyhow::bail!("{source}: no decisions");
    }
    let kept_inputs = |id: Option<i64>| -> anyhow::Result<Option<DecisionInputs>> {
        let Some(encoded) = inputs
            .as_ref()
            .and_then(|inputs| inputs.get("inputs"))
            .and_then(Value::as_array)
            .and_then(|all| {
                all.iter()
                    .find(|entry| entry.get("id").and_then(Value::as_i64) == id)
            })
            .and_then(|entry| entry.get("inputs"))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let (decoded, _) = DecisionInputs::decode(encoded)
            .map_err(|error| anyhow::anyhow!("{source}: the kept inputs: {error}"))?;
        Ok(Some(decoded))
    };
    shown
        .into_iter()
        .map(|value| {
            let id = value.get("id").and_then(Value::as_i64);
            let decision: Decision = serde_json::from_value(value).map_err(|error| {
                anyhow::anyhow!("{source}: not the decisions an admin sees ({error})")
            })?;
            Ok(Recorded {
                decision,
                inputs: kept_inputs(id)?,
            })
        })
        .collect()
}

/// A request id as one path segment.
fn percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A recorded decision's request as plugins saw it (the group's members
/// are known by number only), described with the recorded outcome.
fn recorded_request(decision: &Decision) -> (String, Request) {
    let RequestSummary {
        flavor: summary,
        image,
        project_id,
        user_id,
        availability_zone,
        num_instances,
        hints,
        group,
        ..
    } = &decision.request;
    let pairs = |map: &std::collections::BTreeMap<String, String>| {
        map.iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    };
    let request = Request {
        flavor: novum_plugin_sdk::Flavor {
            id: summary.id.clone(),
            name: summary.name.clone(),
            vcpus: summary.vcpus,
            memory_mb: summary.memory_mb,
            root_gb: summary.root_gb,
            ephemeral_gb: summary.ephemeral_gb,
            swap_mb: summary.swap_mb,
            extra_specs: pairs(&summary.extra_specs),
        },
        image: Image {
            id: image.clone(),
            properties: Vec::new(),
        },
        project_id: project_id.clone(),
        user_id: user_id.clone(),
        availability_zone: availability_zone.clone(),
        num_instances: *num_instances,
        scheduler_hints: hints
            .iter()
            .map(|(name, values)| SchedulerHint {
                name: name.clone(),
                values: values.clone(),
            })
            .collect(),
        group: group.as_ref().map(|group| ServerGroup {
            id: group.id.clone(),
            policy: match group.policy.as_str() {
                "affinity" => GroupPolicy::Affinity,
                "soft-affinity" => GroupPolicy::SoftAffinity,
                "soft-anti-affinity" => GroupPolicy::SoftAntiAffinity,
                _ => GroupPolicy::AntiAffinity,
            },
            rules: Vec::new(),
            members: Vec::new(),
            hosts: Vec::new(),
        }),
        instance_uuids: decision.instance_uuids.clone(),
    };
    let outcome = match &decision.outcome {
        Outcome::Placed { selections } => format!(
            "placed on {}",
            selections
                .iter()
                .map(|selection| selection.host.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!(
            "{} ({} hosts rejected)",
            other.label(),
            decision.hosts_total - decision.hosts_passed
        ),
    };
    (
        format!(
            "recorded decision of {} ({}), flavor {}; recorded outcome over {} hosts: {outcome}",
            decision.request_id,
            decision.decided_at,
            describe_flavor(&request),
            decision.hosts_total
        ),
        request,
    )
}
