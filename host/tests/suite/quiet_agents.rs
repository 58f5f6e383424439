//! An idle agent leaves out the heartbeats that would tell the controller
//! nothing new, against the real controller over real HTTP: the real agent
//! (`run_agent_with_driver`) on a simulated hypervisor the test holds, its
//! heartbeats counted by the controller's `/metrics` (requests by route).
//! The service stays up on the long polls alone, a full report still goes
//! every `full_report_every` intervals, and a power state changed behind
//! novum's back reaches the controller at once.

use std::sync::Arc;
use std::time::Duration;

use novum_agent::driver::{SimulatedDriver, SimulatedHost, VirtDriver};
use novum_agent::{AgentConfig, run_agent_with_driver};
use reqwest::Method;
use tokio::time::Instant;

use crate::http_cloud::{Cloud, ENROLLMENT_TOKEN};
use crate::metrics::scrape;

const HOST: &str = "quiet1";
/// The heartbeat interval the controller asks for, seconds.
const HEARTBEAT_SECONDS: u64 = 2;
/// A full report at least every this many intervals.
const FULL_REPORT_EVERY: u32 = 4;

/// How many heartbeats the controller answered so far.
async fn heartbeats(cloud: &Cloud) -> f64 {
    scrape(cloud)
        .await
        .series_of("novum_api_requests_total")
        .filter(|(series, _)| {
            series.contains(r#"method="POST""#) && series.contains("/heartbeat\"")
        })
        .map(|(_, count)| count)
        .sum()
}

/// The state (`up`/`down`) `os-services` shows for [`HOST`].
async fn service_state(cloud: &Cloud) -> String {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/os-services?host={HOST}"),
            None,
            "2.53",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["services"][0]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A server's `OS-EXT-STS:power_state`.
async fn power_state(cloud: &Cloud, id: &str) -> serde_json::Value {
    crate::resize::show(cloud, id).await["OS-EXT-STS:power_state"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_stays_up_on_its_polls_and_beats_only_with_news() {
    let cloud = Cloud::start(|config| {
        config.agent.embedded = false;
        config.agent.heartbeat_seconds = HEARTBEAT_SECONDS;
        // Down after 4 s without a request: two intervals.
        config.compute.service_down_time = 2 * HEARTBEAT_SECONDS;
    })
    .await;
    let driver = Arc::new(SimulatedDriver::new(SimulatedHost {
        hostname: HOST.to_string(),
        vcpus: 8,
        memory_mb: 16384,
        disk_gb: 100,
        spawn_delay: Duration::ZERO,
    }));
    let config = AgentConfig {
        enrollment_token: Some(ENROLLMENT_TOKEN.to_string()),
        // The controller's answer sets the interval.
        heartbeat_interval: Duration::from_millis(300),
        full_report_every: FULL_REPORT_EVERY,
        poll_wait: Duration::from_secs(1),
        reconcile_interval: Duration::from_millis(200),
        host_ip: Some("127.0.0.1".to_string()),
        ..AgentConfig::new(cloud.base.clone(), HOST)
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_driver: Arc<dyn VirtDriver> = driver.clone();
    let agent = tokio::spawn(run_agent_with_driver(config, agent_driver, async {
        let _ = stopped.await;
    }));
    cloud.wait_for_hosts(1).await;
    let id = cloud.create_server("quiet", "1", "2.53").await;
    cloud.wait_status(&id, "ACTIVE").await;
    // The beats the spawn called for (its result, the new domain and the
    // second look at it) are over within two intervals.
    tokio::time::sleep(Duration::from_secs(2 * HEARTBEAT_SECONDS + 1)).await;

    // Idle: eight intervals, the service up all along, and only the full
    // reports (one every four intervals) among the beats.
    let intervals = 8;
    let before = heartbeats(&cloud).await;
    let end = Instant::now() + Duration::from_secs(intervals * HEARTBEAT_SECONDS);
    while Instant::now() < end {
        assert_eq!(
            service_state(&cloud).await,
            "up",
            "the long polls keep it up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle = heartbeats(&cloud).await - before;
    let full_reports = f64::from(u32::try_from(intervals).expect("few") / FULL_REPORT_EVERY);
    assert!(
        (full_reports - 1.0..=full_reports + 1.0).contains(&idle),
        "{idle} heartbeats in {intervals} idle intervals; {full_reports} full reports expected"
    );

    // Right after a beat, the loop's next wake is an interval away, the
    // next full report four: a guest powered off behind novum's back is
    // heard at once (its agent samples power states every 200 ms), within
    // half an interval.
    let last = heartbeats(&cloud).await;
    let deadline =
        Instant::now() + Duration::from_secs(u64::from(FULL_REPORT_EVERY + 1) * HEARTBEAT_SECONDS);
    while heartbeats(&cloud).await == last {
        assert!(Instant::now() < deadline, "no full report in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let uuid = id.parse().expect("uuid");
    let powered = Arc::clone(&driver);
    tokio::task::spawn_blocking(move || powered.power_off(uuid))
        .await
        .expect("join")
        .expect("power off behind novum's back");
    let changed_at = Instant::now();
    while power_state(&cloud, &id).await != 4 {
        assert!(
            changed_at.elapsed() < Duration::from_secs(HEARTBEAT_SECONDS) / 2,
            "the power state change was not heard within half an interval"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(service_state(&cloud).await, "up");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), agent)
        .await
        .expect("agent stops in time")
        .expect("agent task")
        .expect("agent ends cleanly");
}
