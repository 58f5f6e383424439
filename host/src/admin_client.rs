//! The operator commands that talk to a running controller (`novum plugin
//! list`, `novum plugin reload`, `novum plugin shadow report`, `novum
//! decision show`, `novum decision list`, `novum decision replay`, `novum
//! plan`): they authenticate like the openstack CLI,
//! from the `OS_*` environment that `<data_dir>/admin-openrc.sh` sets, and call
//! novum's admin API.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Credentials and endpoint from the `OS_*` environment.
#[derive(Clone, Debug)]
pub struct AdminClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (source <data_dir>/admin-openrc.sh)"))
}

impl AdminClient {
    /// Authenticates with `OS_AUTH_URL`, `OS_USERNAME`, `OS_PASSWORD`,
    /// `OS_PROJECT_NAME` (domains default to `Default`). The controller's base
    /// URL is the auth URL without its `/identity/v3` suffix.
    pub async fn from_env() -> anyhow::Result<Self> {
        let auth_url = env("OS_AUTH_URL")?;
        let auth_url = auth_url.trim_end_matches('/');
        let base_url = auth_url
            .trim_end_matches("/v3")
            .trim_end_matches("/identity")
            .to_string();
        let user_domain =
            std::env::var("OS_USER_DOMAIN_NAME").unwrap_or_else(|_| "Default".to_string());
        let project_domain =
            std::env::var("OS_PROJECT_DOMAIN_NAME").unwrap_or_else(|_| "Default".to_string());
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": env("OS_USERNAME")?, "password": env("OS_PASSWORD")?, "domain": {"name": user_domain}}}},
            "scope": {"project": {"name": env("OS_PROJECT_NAME")?, "domain": {"name": project_domain}}},
        }});
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{base_url}/identity/v3/auth/tokens"))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the controller at {base_url}"))?;
        if !response.status().is_success() {
            bail!(
                "authentication failed ({}): {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|value| value.to_str().ok())
            .context("the controller answered without a token")?
            .to_string();
        Ok(Self {
            http,
            base_url,
            token,
        })
    }

    /// Calls `method path` on the admin API and returns the JSON answer, or an
    /// error with the controller's message.
    pub async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        self.call_with(method, path, None).await
    }

    /// The id of image `name_or_id`: itself when the image service knows
    /// that id, else the one image of that name.
    pub async fn image_id(&self, name_or_id: &str) -> anyhow::Result<String> {
        let mut url = reqwest::Url::parse("http://novum/image/v2/images/")?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("image URL cannot take a path"))?
            .pop_if_empty()
            .push(name_or_id);
        if self.call(reqwest::Method::GET, url.path()).await.is_ok() {
            return Ok(name_or_id.to_string());
        }
        let mut url = reqwest::Url::parse("http://novum/image/v2/images")?;
        url.query_pairs_mut().append_pair("name", name_or_id);
        let listed = self
            .call(
                reqwest::Method::GET,
                &format!("{}?{}", url.path(), url.query().unwrap_or_default()),
            )
            .await?;
        let ids: Vec<&str> = listed["images"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|image| image["id"].as_str())
            .collect();
        match ids.as_slice() {
            [id] => Ok((*id).to_string()),
            // Let the controller say it does not know it (Nova's fault).
            [] => Ok(name_or_id.to_string()),
            _ => bail!("more than one image is named {name_or_id}: use its id"),
        }
    }

    /// [`AdminClient::call`] with a JSON `body`.
    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("x-auth-token", &self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body
                .as_object()
                .and_then(|fault| fault.values().next())
                .and_then(|fault| fault["message"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            bail!("{status}: {message}");
        }
        Ok(body)
    }
}

/// One line per plugin: name, kind, calls, rejections, errors, p50/p99 latency.
pub fn format_plugins(body: &Value) -> String {
    let mut out = format!(
        "{:<42} {:<18} {:>8} {:>10} {:>7} {:>8} {:>8}\n",
        "plugin", "kind", "calls", "rejected", "errors", "p50 µs", "p99 µs"
    );
    for plugin in body["plugins"].as_array().into_iter().flatten() {
        let metrics = &plugin["metrics"];
        let count = |value: &Value| value.as_u64().unwrap_or(0);
        let errors: u64 = metrics["errors"]
            .as_object()
            .map(|kinds| kinds.values().map(count).sum())
            .unwrap_or(0);
        out.push_str(&format!(
            "{:<42} {:<18} {:>8} {:>10} {:>7} {:>8} {:>8}\n",
            plugin["name"].as_str().unwrap_or("?"),
            plugin["kind"].as_str().unwrap_or("?"),
            count(&metrics["calls"]),
            count(&metrics["rejections"]),
            errors,
            count(&metrics["latency"]["p50_us"]),
            count(&metrics["latency"]["p99_us"]),
        ));
    }
    out
}

/// `novum decision show`: each decision of a request, readably — the
/// request in brief and its outcome, the rejected hosts grouped by plugin
/// and reason, Nova's filter results, and the ranking with every weigher's
/// part. A member's summary has no hosts: its rejections are counts.
pub fn format_decisions(body: &Value) -> String {
    let decisions = body["decisions"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    for (index, decision) in decisions.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&format_decision(decision, index + 1, decisions.len()));
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn plural(count: u64, one: &str) -> String {
    if count == 1 {
        format!("{count} {one}")
    } else {
        format!("{count} {one}s")
    }
}

fn field_line(out: &mut String, name: &str, value: impl std::fmt::Display) {
    out.push_str(&format!("  {name:<10} {value}\n"));
}

fn format_decision(decision: &Value, number: usize, of: usize) -> String {
    let mut out = format!(
        "Decision {number} of {of} for request {} ({}, {}",
        text(&decision["request_id"]),
        text(&decision["purpose"]),
        text(&decision["decided_at"]),
    );
    if let Some(controller) = decision["controller"].as_str() {
        out.push_str(&format!(", controller {controller}"));
    }
    out.push_str(")\n");
    let request = &decision["request"];
    let instances: Vec<String> = decision["instance_uuids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    field_line(&mut out, "instance", instances.join(", "));
    field_line(
        &mut out,
        "project",
        format!(
            "{} (user {})",
            text(&request["project_id"]),
            text(&request["user_id"])
        ),
    );
    let flavor = &request["flavor"];
    field_line(
        &mut out,
        "flavor",
        format!(
            "{} (id {}): {} vCPU, {} MiB RAM, {} GiB root disk, {} GiB ephemeral, {} MiB swap",
            text(&flavor["name"]),
            text(&flavor["id"]),
            text(&flavor["vcpus"]),
            text(&flavor["memory_mb"]),
            text(&flavor["root_gb"]),
            text(&flavor["ephemeral_gb"]),
            text(&flavor["swap_mb"]),
        ),
    );
    if let Some(specs) = flavor["extra_specs"]
        .as_object()
        .filter(|specs| !specs.is_empty())
    {
        let specs: Vec<String> = specs
            .iter()
            .map(|(key, value)| format!("{key}={}", text(value)))
            .collect();
        field_line(&mut out, "specs", specs.join(" "));
    }
    field_line(&mut out, "image", text(&request["image"]));
    if let Some(zone) = request["availability_zone"].as_str() {
        field_line(&mut out, "zone", zone);
    }
    if let Some(hints) = request["hints"]
        .as_object()
        .filter(|hints| !hints.is_empty())
    {
        let hints: Vec<String> = hints
            .iter()
            .map(|(name, values)| {
                let values: Vec<String> =
                    values.as_array().into_iter().flatten().map(text).collect();
                format!("{name}={}", values.join(","))
            })
            .collect();
        field_line(&mut out, "hints", hints.join(" "));
    }
    if request["group"].is_object() {
        let group = &request["group"];
        field_line(
            &mut out,
            "group",
            format!(
                "{} ({}, {} before this request)",
                text(&group["id"]),
                text(&group["policy"]),
                plural(group["members"].as_u64().unwrap_or(0), "member"),
            ),
        );
    }
    for (key, name) in [("ignore_hosts", "ignoring"), ("force_hosts", "forced to")] {
        let hosts: Vec<String> = request[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        if !hosts.is_empty() {
            field_line(&mut out, name, hosts.join(", "));
        }
    }
    // A whole decision has `outcome`; a member's summary `result`/`message`.
    let outcome = &decision["outcome"];
    let result = outcome["result"]
        .as_str()
        .or(decision["result"].as_str())
        .unwrap_or("?");
    let message = outcome["message"].as_str().or(decision["message"].as_str());
    match (result, message) {
        ("placed", _) => {
            let selections: Vec<String> = outcome["selections"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|selection| {
                    let alternates: Vec<String> = selection["alternates"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    format!(
                        "{} (weight {:.3}; alternates: {})",
                        text(&selection["host"]),
                        selection["weight"].as_f64().unwrap_or(0.0),
                        if alternates.is_empty() {
                            "none".to_string()
                        } else {
                            alternates.join(", ")
                        }
                    )
                })
                .collect();
            if selections.is_empty() {
                field_line(&mut out, "result", "placed");
            } else {
                field_line(
                    &mut out,
                    "result",
                    format!("placed on {}", selections.join("; ")),
                );
            }
        }
        (other, Some(message)) => field_line(&mut out, "result", format!("{other}: {message}")),
        (other, None) => field_line(&mut out, "result", other),
    }
    if let (Some(total), Some(passed)) = (
        decision["hosts_total"].as_u64(),
        decision["hosts_passed"].as_u64(),
    ) {
        field_line(
            &mut out,
            "hosts",
            format!("{total} known, {passed} passed the filters"),
        );
    }
    format_rejections(&mut out, decision);
    format_ranking(&mut out, decision);
    out
}

fn format_rejections(out: &mut String, decision: &Value) {
    let groups = decision["rejections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let reasons = decision["reasons"].as_array().cloned().unwrap_or_default();
    if reasons.is_empty() {
        return;
    }
    out.push_str("\nRejected hosts, by plugin\n");
    for reason in &reasons {
        let plugin = text(&reason["plugin"]);
        out.push_str(&format!(
            "  {plugin}: {}\n",
            plural(reason["hosts"].as_u64().unwrap_or(0), "host")
        ));
        for group in groups
            .iter()
            .filter(|group| group["plugin"] == reason["plugin"])
        {
            let hosts: Vec<String> = group["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let why = group["reason"]
                .as_str()
                .filter(|why| !why.is_empty())
                .unwrap_or("(no reason given)");
            out.push_str(&format!("    {why}: {}\n", hosts.join(", ")));
        }
    }
    let results: Vec<String> = decision["filter_results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|count| {
            format!(
                "{} {} → {}",
                text(&count["plugin"]),
                text(&count["hosts_in"]),
                text(&count["hosts_out"])
            )
        })
        .collect();
    if !results.is_empty() {
        out.push_str(&format!("  filter results: {}\n", results.join(", ")));
    }
    let lost: Vec<String> = decision["lost_claims"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    if !lost.is_empty() {
        out.push_str(&format!("  claims lost: {}\n", lost.join(", ")));
    }
}

fn format_ranking(out: &mut String, decision: &Value) {
    let ranking = decision["ranking"].as_array().cloned().unwrap_or_default();
    if ranking.is_empty() {
        return;
    }
    out.push_str(&format!(
        "\nRanking (best {} of {} candidates; weighted = normalized × multiplier)\n",
        ranking.len(),
        text(&decision["hosts_passed"])
    ));
    out.push_str(&format!(
        "  {:>4}  {:<32} {:>10}  {}\n",
        "rank", "host", "total", "selected"
    ));
    for ranked in &ranking {
        out.push_str(&format!(
            "  {:>4}  {:<32} {:>10.4}  {}\n",
            text(&ranked["rank"]),
            text(&ranked["host"]),
            ranked["total"].as_f64().unwrap_or(0.0),
            if ranked["selected"] == Value::Bool(true) {
                "*"
            } else {
                ""
            }
        ));
        let weighers = ranked["weighers"].as_array().cloned().unwrap_or_default();
        if weighers.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "        {:<40} {:>14} {:>10} {:>10} {:>10}\n",
            "weigher", "raw", "normalized", "multiplier", "weighted"
        ));
        for part in &weighers {
            let number = |value: &Value, digits: usize| {
                value
                    .as_f64()
                    // `+ 0.0` shows a negative zero as 0.
                    .map_or_else(
                        || "-".to_string(),
                        |number| format!("{:.digits$}", number + 0.0),
                    )
            };
            out.push_str(&format!(
                "        {:<40} {:>14} {:>10} {:>10} {:>10}{}\n",
                text(&part["weigher"]),
                number(&part["raw"], 2),
                number(&part["normalized"], 4),
                number(&part["multiplier"], 2),
                number(&part["weighted"], 4),
                part["note"]
                    .as_str()
                    .map(|note| format!("  ({note})"))
                    .unwrap_or_default()
            ));
        }
    }
}

/// `novum decision list`: one line per decision, newest first.
pub fn format_decision_list(body: &Value) -> String {
    let mut out = format!(
        "{:>8}  {:<40} {:<9} {:<14} {:<27} {}\n",
        "id", "request", "purpose", "result", "decided at", "instance"
    );
    for entry in body["decisions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:>8}  {:<40} {:<9} {:<14} {:<27} {}\n",
            text(&entry["id"]),
            text(&entry["request_id"]),
            text(&entry["purpose"]),
            text(&entry["result"]),
            text(&entry["decided_at"]),
            text(&entry["instance_uuid"]),
        ));
    }
    out
}

/// How one decision judged one host (a `Verdict` of the what-if API).
fn verdict(value: &Value) -> String {
    match value["verdict"].as_str() {
        Some("passed") => {
            let mut out = match value["rank"].as_u64() {
                Some(rank) => format!(
                    "passed, rank {rank} (weight {:.4})",
                    value["weight"].as_f64().unwrap_or(0.0) + 0.0
                ),
                None => "passed (rank not kept)".to_string(),
            };
            if value["selected"] == Value::Bool(true) {
                out.push_str(", chosen");
            }
            out
        }
        Some("rejected") => {
            let reason = value["reason"].as_str().unwrap_or("");
            if reason.is_empty() {
                format!("rejected by {}", text(&value["plugin"]))
            } else {
                format!("rejected by {}: {reason}", text(&value["plugin"]))
            }
        }
        _ => "not seen".to_string(),
    }
}

fn hosts_or_none(value: &Value) -> String {
    let hosts: Vec<String> = value.as_array().into_iter().flatten().map(text).collect();
    if hosts.is_empty() {
        "no host".to_string()
    } else {
        hosts.join(", ")
    }
}

/// A comparison of two decisions (`before` → `after`): the choices, then
/// every host whose verdict differs.
fn format_comparison(out: &mut String, comparison: &Value, before: &str, after: &str) {
    let same = comparison["same_choice"] == Value::Bool(true);
    out.push_str(&format!(
        "  {before:<10} {} ({})\n  {after:<10} {} ({})\n",
        hosts_or_none(&comparison["before"]),
        text(&comparison["before_result"]),
        hosts_or_none(&comparison["after"]),
        text(&comparison["after_result"]),
    ));
    out.push_str(if same {
        "  same choice\n"
    } else {
        "  CHOICE DIFFERS\n"
    });
    let changes = comparison["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = comparison["changed_hosts"].as_u64().unwrap_or(0);
    if changes.is_empty() {
        out.push_str("  no host's verdict differs\n");
        return;
    }
    out.push_str(&format!(
        "  {} with a different verdict ({before} → {after}):\n",
        plural(total, "host")
    ));
    for change in &changes {
        out.push_str(&format!(
            "    {}: {} → {}\n",
            text(&change["host"]),
            verdict(&change["before"]),
            verdict(&change["after"])
        ));
    }
    if total > changes.len() as u64 {
        out.push_str(&format!("    … {} more\n", total - changes.len() as u64));
    }
}

fn format_set(set: &Value) -> String {
    let filters: Vec<String> = set["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let weighers: Vec<String> = set["weighers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pair| format!("{}×{}", text(&pair[0]), text(&pair[1])))
        .collect();
    format!(
        "filters: {}; weighers: {}",
        if filters.is_empty() {
            "none".to_string()
        } else {
            filters.join(", ")
        },
        if weighers.is_empty() {
            "none".to_string()
        } else {
            weighers.join(", ")
        }
    )
}

fn format_fits(out: &mut String, name: &str, places: &Value) {
    let places: Vec<String> = places
        .as_array()
        .into_iter()
        .flatten()
        .map(|place| {
            format!(
                "{} {} ({})",
                text(&place["name"]),
                text(&place["fits"]),
                plural(place["hosts"].as_u64().unwrap_or(0), "host")
            )
        })
        .collect();
    if !places.is_empty() {
        field_line(out, name, places.join(", "));
    }
}

fn format_plan_run(out: &mut String, title: &str, run: &Value, flavor: &str) {
    let decision = &run["decision"];
    out.push_str(&format!("\n{title} set ({})\n", format_set(&run["set"])));
    match decision["outcome"]["result"].as_str() {
        Some("placed") => {
            let selections: Vec<String> = decision["outcome"]["selections"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|selection| {
                    format!(
                        "{} (weight {:.4})",
                        text(&selection["host"]),
                        selection["weight"].as_f64().unwrap_or(0.0) + 0.0
                    )
                })
                .collect();
            field_line(out, "would go", selections.join("; "));
        }
        Some(other) => field_line(
            out,
            "would go",
            format!(
                "nowhere: {other}: {}",
                text(&decision["outcome"]["message"])
            ),
        ),
        None => field_line(out, "would go", "?"),
    }
    field_line(
        out,
        "hosts",
        format!(
            "{} known, {} passed the filters",
            text(&decision["hosts_total"]),
            text(&decision["hosts_passed"])
        ),
    );
    let capacity = &run["capacity"];
    field_line(
        out,
        "fits",
        format!(
            "{} more {flavor} on the hosts that pass",
            text(&capacity["total"])
        ),
    );
    format_fits(out, "per host", &capacity["hosts"]);
    format_fits(out, "per zone", &capacity["availability_zones"]);
    format_fits(out, "per aggr.", &capacity["aggregates"]);
    format_rejections(out, decision);
    format_ranking(out, decision);
}

/// `novum plan`: the request, each set's answer (where it would go, how
/// many fit, why hosts were rejected, the ranking) and the differences.
pub fn format_plan(body: &Value) -> String {
    let plan = &body["plan"];
    let request = &plan["request"];
    let flavor = &request["flavor"];
    let flavor_name = text(&flavor["name"]);
    let mut out = format!(
        "What if {} × {} ({} vCPU, {} MiB RAM, {} GiB disk), image {}",
        text(&request["num_instances"]),
        flavor_name,
        text(&flavor["vcpus"]),
        text(&flavor["memory_mb"]),
        text(&flavor["root_gb"]),
        text(&request["image"]),
    );
    if let Some(zone) = request["availability_zone"].as_str() {
        out.push_str(&format!(", zone {zone}"));
    }
    if request["group"].is_object() {
        out.push_str(&format!(
            ", group {} ({})",
            text(&request["group"]["id"]),
            text(&request["group"]["policy"])
        ));
    }
    out.push_str(" — nothing is claimed\n");
    format_plan_run(&mut out, "Live", &plan["live"], &flavor_name);
    if plan["candidate"].is_object() {
        format_plan_run(&mut out, "Candidate", &plan["candidate"], &flavor_name);
        out.push_str("\nDifferences (live → candidate)\n");
        format_comparison(&mut out, &plan["differences"], "live", "candidate");
    }
    out
}

/// `novum decision replay`: per decision, what was decided against what
/// the replay decides, the differing verdicts, the replay's ranking.
pub fn format_replays(body: &Value) -> String {
    let mut out = String::new();
    for replay in body["replays"].as_array().into_iter().flatten() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "Replay of decision {} of request {} (decided {}; {} of {} hosts kept: those its plugins saw)\n",
            text(&replay["id"]),
            text(&body["request_id"]),
            text(&replay["decided_at"]),
            text(&replay["hosts_kept"]),
            text(&replay["hosts_total"]),
        ));
        out.push_str(&format!(
            "  with the {} set ({})\n",
            text(&replay["set"]["name"]),
            format_set(&replay["set"])
        ));
        format_comparison(&mut out, &replay["comparison"], "original", "replayed");
        format_ranking(&mut out, &replay["replayed"]);
    }
    out
}

/// `novum plugin shadow report`: how often the shadow set agreed, where it
/// differs most, and its newest disagreements with why.
pub fn format_shadow(body: &Value) -> String {
    let shadow = &body["shadow"];
    let count = |key: &str| shadow[key].as_u64().unwrap_or(0);
    let compared = count("compared");
    let share = |part: u64| {
        if compared == 0 {
            "-".to_string()
        } else {
            format!("{:.1} %", part as f64 * 100.0 / compared as f64)
        }
    };
    let weighers: Vec<String> = shadow["weighers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pair| format!("{}×{}", text(&pair[0]), text(&pair[1])))
        .collect();
    let filters: Vec<String> = shadow["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let mut out = format!(
        "Shadow set {} (filters: {}; weighers: {}), sample rate {}\n",
        text(&shadow["plugins"]),
        filters.join(", "),
        weighers.join(", "),
        text(&shadow["sample_rate"]),
    );
    out.push_str(&format!(
        "  compared {compared}: agreed {} ({}), disagreed {} ({}), dropped {}\n",
        count("agreed"),
        share(count("agreed")),
        count("disagreed"),
        share(count("disagreed")),
        count("dropped"),
    ));
    let pairs = shadow["by_hosts"].as_array().cloned().unwrap_or_default();
    if !pairs.is_empty() {
        out.push_str("\nWhere it differs (production → shadow: decisions)\n");
        for pair in &pairs {
            out.push_str(&format!(
                "  {} → {}: {}\n",
                text(&pair["production"]),
                text(&pair["shadow"]),
                text(&pair["count"])
            ));
        }
    }
    let recent = shadow["recent"].as_array().cloned().unwrap_or_default();
    if !recent.is_empty() {
        out.push_str("\nNewest disagreements\n");
        for disagreement in &recent {
            out.push_str(&format!(
                "  request {} ({}): production {}, shadow {}\n",
                text(&disagreement["request_id"]),
                text(&disagreement["decided_at"]),
                hosts_or_none(&disagreement["production"]),
                hosts_or_none(&disagreement["shadow"]),
            ));
            for change in disagreement["why"].as_array().into_iter().flatten().take(4) {
                out.push_str(&format!(
                    "    {}: production {} / shadow {}\n",
                    text(&change["host"]),
                    verdict(&change["before"]),
                    verdict(&change["after"])
                ));
            }
        }
    }
    out
}
