//! `/metrics` over real HTTP: a controller with an embedded agent places a
//! server, and the scrape shows the decision (one more `placed` build, each
//! stage timed once), the API requests by route template and status, the
//! plugin calls, the agents up and down (an admin forcing the service down)
//! and the outbox depth. On the API listener only admins may read it; the
//! `[metrics] listen` address serves it without authentication; with
//! `[metrics] enabled = false` there is nothing to read. On SQLite and
//! PostgreSQL.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::http_cloud::{Cloud, IMAGE};
use crate::soft_delete::{server_from, wait_status};

/// One scrape: every sample by its series, `name{label="value",…}` with the
/// labels sorted.
pub(crate) struct Exposition {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Exposition {
    /// Parses the text exposition format (comments skipped).
    fn parse(text: String) -> Self {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
            samples.insert(canonical(series), value);
        }
        Self { text, samples }
    }

    /// The value of `series` (labels in any order), if present.
    fn get(&self, series: &str) -> Option<f64> {
        self.samples.get(&canonical(series)).copied()
    }

    /// The value of `series`, which must be present.
    fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no {series} in the scrape:\n{}", self.text))
    }

    /// Every series of metric `name`.
    pub(crate) fn series_of<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a f64)> {
        self.samples
            .iter()
            .filter(move |(series, _)| series.split('{').next() == Some(name))
    }
}

/// `name{b="2",a="1"}` as `name{a="1",b="2"}`.
fn canonical(series: &str) -> String {
    let Some((name, labels)) = series.split_once('{') else {
        return series.to_string();
    };
    let mut labels: Vec<&str> = labels
        .trim_end_matches('}')
        .split(',')
        .filter(|label| !label.is_empty())
        .collect();
    labels.sort_unstable();
    format!("{name}{{{}}}", labels.join(","))
}

/// `GET {base}/metrics` with `token` (none: no header): status, content
/// type and body.
async fn get_metrics(cloud: &Cloud, base: &str, token: Option<&str>) -> (u16, String, String) {
    let mut request = cloud.client.get(format!("{base}/metrics"));
    if let Some(token) = token {
        request = request.header("x-auth-token", token);
    }
    let response = request.send().await.expect("scrape");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, response.text().await.expect("body"))
}

/// A scrape of the API listener as the admin.
pub(crate) async fn scrape(cloud: &Cloud) -> Exposition {
    let (status, content_type, text) = get_metrics(cloud, &cloud.base, Some(&cloud.admin)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    Exposition::parse(text)
}

/// Scrapes until `ready` holds (a state read at scrape time, or a request
/// counted after its response went out), at most 30 s.
async fn scrape_until(
    cloud: &Cloud,
    what: &str,
    ready: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scraped = scrape(cloud).await;
        if ready(&scraped) {
            return scraped;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{}", scraped.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many events the admin listing shows (the outbox, no dispatcher
/// running in these clouds).
async fn outbox_events(cloud: &Cloud) -> f64 {
    let (status, body) = cloud
        .call(
            &cloud.admin,
            Method::GET,
            "/novum/v1/notifications?limit=1000",
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["notifications"].as_array().expect("a list").len() as f64
}

const PLACED_BUILDS: &str = r#"novum_scheduler_decisions_total{purpose="build",outcome="placed"}"#;
const SERVER_ROUTE: &str = "/compute/v2.1/servers/{id}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_shows_in_the_series_sqlite() {
    a_placement_shows_in_the_decision_route_agent_plugin_and_outbox_series(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_shows_in_the_series_postgres() {
    a_placement_shows_in_the_decision_route_agent_plugin_and_outbox_series(true).await;
}

/// On SQLite, or on a fresh PostgreSQL database (skipped, reason printed,
/// when none answers).
async fn a_placement_shows_in_the_decision_route_agent_plugin_and_outbox_series(postgres: bool) {
    let database_url = if postgres {
        let Some(url) = novum_db::testing::postgres_url().await else {
            return;
        };
        Some(url)
    } else {
        None
    };
    let cloud = Cloud::start(|config| {
        config.database.url = database_url;
        config.metrics.listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    cloud.wait_for_hosts(1).await;

    let before = scrape(&cloud).await;
    assert_eq!(before.value(PLACED_BUILDS), 0.0, "registered at zero");
    for stage in ["wait", "state", "pipeline", "claim"] {
        assert_eq!(
            before.value(&format!(
                r#"novum_scheduler_stage_duration_seconds_count{{stage="{stage}"}}"#
            )),
            0.0
        );
    }

    let id = server_from(&cloud, &cloud.admin, "1", IMAGE, "ACTIVE").await;
    let missing = "/compute/v2.1/no-such-resource-metrics-probe";
    let (status, _) = cloud
        .call(&cloud.admin, Method::GET, missing, None, "2.1")
        .await;
    assert_eq!(status, 404);
    let get_server =
        format!(r#"novum_api_requests_total{{method="GET",route="{SERVER_ROUTE}",status="200"}}"#);
    let events_before = outbox_events(&cloud).await;
    let after = scrape_until(&cloud, "the requests counted", |scraped| {
        scraped.get(&get_server).is_some()
            && scraped
                .get(r#"novum_api_requests_total{method="GET",route="unmatched",status="404"}"#)
                .is_some()
    })
    .await;
    let events_after = outbox_events(&cloud).await;

    // One decision, placed, each stage timed once with a plausible time.
    assert_eq!(after.value(PLACED_BUILDS), 1.0, "{}", after.text);
    for outcome in ["no_valid_host", "claims_lost", "error"] {
        assert_eq!(
            after.value(&format!(
                r#"novum_scheduler_decisions_total{{purpose="build",outcome="{outcome}"}}"#
            )),
            0.0
        );
    }
    let mut stages = 0.0;
    for stage in ["wait", "state", "pipeline", "claim"] {
        let count = after.value(&format!(
            r#"novum_scheduler_stage_duration_seconds_count{{stage="{stage}"}}"#
        ));
        let sum = after.value(&format!(
            r#"novum_scheduler_stage_duration_seconds_sum{{stage="{stage}"}}"#
        ));
        assert_eq!(count, 1.0, "{stage}");
        assert!((0.0..30.0).contains(&sum), "{stage} took {sum} s");
        stages += sum;
    }
    for stage in ["state", "pipeline", "claim"] {
        let sum = after.value(&format!(
            r#"novum_scheduler_stage_duration_seconds_sum{{stage="{stage}"}}"#
        ));
        assert!(sum > 0.0, "{stage} took no time");
    }
    let decision = after.value("novum_scheduler_decision_duration_seconds_sum");
    assert!(
        (decision - stages).abs() < 1e-6,
        "{decision} s vs {stages} s in stages"
    );
    assert_eq!(
        after.value(r#"novum_scheduler_stage_duration_seconds_bucket{stage="state",le="+Inf"}"#),
        1.0
    );
    assert_eq!(
        after.value(r#"novum_scheduler_claims_total{outcome="won"}"#),
        1.0
    );
    assert_eq!(
        after.value(r#"novum_scheduler_claims_total{outcome="lost"}"#),
        0.0
    );

    // Requests by route template and status; latency by route.
    assert_eq!(
        after.value(
            r#"novum_api_requests_total{method="POST",route="/compute/v2.1/servers",status="202"}"#
        ),
        1.0
    );
    assert!(after.value(&get_server) >= 1.0);
    assert!(
        after.value(&format!(
            r#"novum_api_request_duration_seconds_count{{method="GET",route="{SERVER_ROUTE}"}}"#
        )) >= after.value(&get_server)
    );
    assert!(
        after.value(r#"novum_api_requests_total{method="POST",route="/rpc/v1/agents/{host}/heartbeat",status="204"}"#)
            >= 1.0,
        "the agent's heartbeats are requests too"
    );
    // Bounded labels: no id, no raw path.
    assert!(!after.text.contains(&id), "a server id in a label");
    assert!(
        !after.text.contains("no-such-resource"),
        "a raw path in a label"
    );
    for (series, _) in after.series_of("novum_api_requests_total") {
        assert!(
            series.contains(r#"route="/"#) || series.contains(r#"route="unmatched""#),
            "{series}"
        );
    }

    // The plugins that placed it, through the plugin host's own counters.
    // (One host: the weighers have nothing to choose between and are not called.)
    for plugin in [
        "compute-filter",
        "availability-zone-filter",
        "standard-quota-policy",
    ] {
        assert!(
            after.value(&format!(
                r#"novum_plugin_call_duration_seconds_count{{plugin="{plugin}"}}"#
            )) >= 1.0,
            "{plugin} called"
        );
        assert_eq!(
            after.value(&format!(
                r#"novum_plugin_errors_total{{plugin="{plugin}",error="trap"}}"#
            )),
            0.0
        );
    }
    let (status, plugins) = cloud
        .call(&cloud.admin, Method::GET, "/novum/v1/plugins", None, "2.1")
        .await;
    assert_eq!(status, 200, "{plugins}");
    let listed_calls = plugins["plugins"]
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|plugin| plugin["name"] == "compute-filter")
        })
        .map(|plugin| plugin["metrics"]["calls"].as_f64().unwrap_or_default())
        .expect("compute-filter listed");
    assert_eq!(
        after.value(r#"novum_plugin_call_duration_seconds_count{plugin="compute-filter"}"#),
        listed_calls,
        "one count, two views"
    );

    // The embedded agent is up and heartbeating (every second here).
    assert_eq!(after.value(r#"novum_agents{state="up"}"#), 1.0);
    assert_eq!(after.value(r#"novum_agents{state="down"}"#), 0.0);
    let lag = after.value("novum_agent_heartbeat_lag_max_seconds");
    assert!((0.0..=10.0).contains(&lag), "lag {lag} s");
    assert!(after.value("novum_agent_heartbeat_lag_mean_seconds") <= lag);

    // The outbox: nothing delivers in this cloud, so the log sink's depth is
    // every event emitted (the build's among them).
    let depth = after.value(r#"novum_notification_outbox_depth{sink="jsonl"}"#);
    assert!(
        depth > 0.0 && (events_before..=events_after).contains(&depth),
        "depth {depth}, events {events_before}..{events_after}"
    );
    assert_eq!(
        after.value(r#"novum_metrics_collector_up{collector="outbox"}"#),
        1.0
    );
    assert_eq!(
        after.value(r#"novum_metrics_collector_up{collector="agents"}"#),
        1.0
    );

    // An admin forces the service down: the agent counts as down.
    let (status, services) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            "/os-services?binary=nova-compute",
            None,
            "2.53",
        )
        .await;
    assert_eq!(status, 200, "{services}");
    let service = services["services"][0]["id"]
        .as_str()
        .expect("service id")
        .to_string();
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::PUT,
            &format!("/os-services/{service}"),
            Some(json!({"forced_down": true})),
            "2.53",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let down = scrape(&cloud).await;
    assert_eq!(down.value(r#"novum_agents{state="up"}"#), 0.0);
    assert_eq!(down.value(r#"novum_agents{state="down"}"#), 1.0);

    // The scrape address: the same series, no token needed, nothing else.
    let metrics_base = cloud.metrics_base.clone().expect("[metrics] listen bound");
    let (status, content_type, text) = get_metrics(&cloud, &metrics_base, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    let unauthenticated = Exposition::parse(text);
    assert_eq!(unauthenticated.value(PLACED_BUILDS), 1.0);
    let other = cloud
        .client
        .get(format!("{metrics_base}/compute/v2.1/servers"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        other.status().as_u16(),
        404,
        "only /metrics is served there"
    );

    wait_status(&cloud, &id, "ACTIVE").await;
    cloud.stop().await;
}

#[tokio::test]
async fn the_api_listener_serves_metrics_to_admins_only() {
    let cloud = Cloud::start(|_| {}).await;
    assert!(cloud.metrics_base.is_none(), "no scrape address by default");
    let (status, _, body) = get_metrics(&cloud, &cloud.base, None).await;
    assert_eq!(status, 401, "{body}");
    let (_, _, member) = cloud.tenant("metrics", "metrics-member", "member").await;
    let (status, _, body) = get_metrics(&cloud, &cloud.base, Some(&member)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("novum:metrics"), "{body}");
    let scraped = scrape(&cloud).await;
    assert!(
        scraped
            .text
            .contains("# TYPE novum_api_requests_total counter")
    );
    assert!(
        scraped
            .text
            .contains("# TYPE novum_scheduler_stage_duration_seconds histogram")
    );
    assert!(scraped.text.contains("# HELP novum_agents "));
    // The refused scrapes are requests like any other.
    let refused = scrape_until(&cloud, "the refused scrapes counted", |scraped| {
        scraped
            .get(r#"novum_api_requests_total{method="GET",route="/metrics",status="403"}"#)
            .is_some()
    })
    .await;
    assert_eq!(
        refused.value(r#"novum_api_requests_total{method="GET",route="/metrics",status="401"}"#),
        1.0
    );
    cloud.stop().await;
}

#[tokio::test]
async fn metrics_turned_off_record_and_serve_nothing() {
    let cloud = Cloud::start(|config| config.metrics.enabled = false).await;
    let (status, _, body) = get_metrics(&cloud, &cloud.base, Some(&cloud.admin)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("itemNotFound"), "{body}");
    cloud.stop().await;
}

#[test]
fn the_scrape_address_is_checked() {
    let error = novum_config::Config::parse(
        "listen = \"127.0.0.1:8774\"\n[metrics]\nlisten = \"127.0.0.1:8774\"\n",
    )
    .expect_err("the API's own port");
    let message = format!("{error:#}");
    assert!(
        message.contains("line 3") && message.contains("metrics.listen"),
        "{message}"
    );
    let error = novum_config::Config::parse(
        "listen = \"127.0.0.1:8774\"\n[metrics]\nlisten = \"0.0.0.0:8774\"\n",
    )
    .expect_err("every address takes the API's port too");
    assert!(format!("{error:#}").contains("must differ"), "{error:#}");
    let error =
        novum_config::Config::parse("[metrics]\nenabled = false\nlisten = \"127.0.0.1:9180\"\n")
            .expect_err("a scrape address with metrics off");
    assert!(
        format!("{error:#}").contains("metrics.enabled = true"),
        "{error:#}"
    );
    let error = novum_config::Config::parse("[metrics]\nlisten = \"not an address\"\n")
        .expect_err("not an address");
    assert!(format!("{error:#}").contains("listen"), "{error:#}");
    let config = novum_config::Config::parse("[metrics]\nlisten = \"127.0.0.1:9180\"\n")
        .expect("a scrape address");
    assert_eq!(
        config.metrics.listen,
        Some("127.0.0.1:9180".parse().expect("address"))
    );
    assert!(config.metrics.enabled);
    let error = novum_config::Config::parse("[metrics]\nport = 9180\n").expect_err("unknown key");
    assert!(format!("{error:#}").contains("port"), "{error:#}");
}
