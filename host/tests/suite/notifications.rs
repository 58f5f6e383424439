//! Notifications end to end: real databases (SQLite, and PostgreSQL when
//! reachable), the real dispatcher, a real JSON-lines file and a real HTTP
//! webhook receiver (axum on 127.0.0.1:0).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use novum_db::Db;
use novum_notify::builders::{InstanceAction, InstanceInfo, RequestContext, instance_action};
use novum_notify::payload::{FlavorPayload, InstanceActionPayload, Versioned};
use novum_notify::{
    Dispatcher, DispatcherHandle, Envelope, Notification, NotificationsConfig, Phase, Publisher,
    WebhookConfig, emit,
};
use sha2::Sha256;

const SECRET: &str = "s3cret";

// ---------------------------------------------------------------- fixtures

/// A fresh directory under the target's test tmpdir.
fn temp_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("notify-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `scenario` on SQLite and, when reachable, on PostgreSQL.
macro_rules! on_both_databases {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = super::temp_dir();
                let db = novum_db::testing::sqlite(&dir).await.expect("sqlite");
                super::$scenario(db, dir).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = novum_db::testing::postgres().await else {
                    return;
                };
                super::$scenario(db, super::temp_dir()).await;
            }
        }
    };
}

fn instance(uuid: &str) -> InstanceInfo {
    InstanceInfo {
        uuid: uuid.to_string(),
        display_name: Some(format!("server-{uuid}")),
        user_id: Some("user".into()),
        project_id: Some("project".into()),
        host: Some("host1".into()),
        node: Some("host1".into()),
        availability_zone: Some("nova".into()),
        flavor: FlavorPayload {
            flavorid: Some("1".into()),
            name: "m1.tiny".into(),
            memory_mb: Some(512),
            vcpus: Some(1),
            root_gb: Some(1),
            ephemeral_gb: Some(0),
            is_public: true,
            ..FlavorPayload::default()
        },
        vm_state: "active".into(),
        power_state: Some(1),
        created_at: Some(novum_db::now()),
        ..InstanceInfo::default()
    }
}

fn event(uuid: &str, action: InstanceAction, phase: Phase) -> Notification {
    instance_action(
        &Publisher::compute("host1"),
        &instance(uuid),
        action,
        phase,
        &RequestContext {
            request_id: Some("req-test".into()),
            user_id: Some("user".into()),
            project_id: Some("project".into()),
        },
        None,
    )
}

/// Emits `notification` in its own committed transaction.
async fn emit_committed(db: &Db, notification: &Notification) -> i64 {
    let mut tx = db.begin().await.expect("begin");
    let seq = emit(&mut tx, notification).await.expect("emit");
    novum_notify::commit(tx).await.expect("commit");
    seq
}

fn config(dir: &Path, webhooks: Vec<WebhookConfig>) -> NotificationsConfig {
    let mut config = NotificationsConfig {
        poll_interval_ms: 100,
        webhooks,
        ..NotificationsConfig::default()
    };
    config.jsonl.path = Some(dir.join("notifications.jsonl"));
    config
}

fn webhook(addr: SocketAddr) -> WebhookConfig {
    WebhookConfig {
        name: Some("receiver".into()),
        url: format!("http://{addr}/hook"),
        secret: Some(SECRET.into()),
        timeout_ms: 2_000,
        backoff_initial_ms: 50,
        backoff_max_ms: 400,
        ..WebhookConfig::default()
    }
}

fn start(db: &Db, config: &NotificationsConfig, dir: &Path) -> DispatcherHandle {
    Dispatcher::new(db.clone(), config, dir, Vec::new())
        .expect("dispatcher")
        .start()
}

/// The messages of the JSON-lines file.
fn jsonl(dir: &Path) -> Vec<Envelope> {
    std::fs::read_to_string(dir.join("notifications.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is an envelope"))
        .collect()
}

/// Polls `condition` every 20 ms for up to `seconds`.
async fn eventually(seconds: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- receiver

#[derive(Clone, Debug)]
enum Mode {
    Accept,
    /// Answers 503 to everything.
    Down,
    /// Answers 500 to this event type, 200 to the rest.
    FailEventType(String),
    /// Answers after a delay.
    Slow(Duration),
    /// Never answers.
    Hang,
}

#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    body: Bytes,
    signature: Option<String>,
    envelope: Envelope,
}

#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
}

impl Receiver {
    async fn start(mode: Mode) -> (Self, SocketAddr) {
        let receiver = Self {
            received: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    fn message_ids(&self) -> HashSet<String> {
        self.all()
            .into_iter()
            .map(|received| received.envelope.message_id)
            .collect()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let envelope: Envelope = serde_json::from_slice(&body).expect("the body is an envelope");
    let mode = receiver.mode.lock().expect("lock").clone();
    receiver.received.lock().expect("lock").push(Received {
        at: Instant::now(),
        signature: headers
            .get("x-novum-signature")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
        body,
        envelope: envelope.clone(),
    });
    match mode {
        Mode::Accept => StatusCode::OK,
        Mode::Down => StatusCode::SERVICE_UNAVAILABLE,
        Mode::FailEventType(failing) if failing == envelope.event_type => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Mode::FailEventType(_) => StatusCode::OK,
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
        Mode::Hang => std::future::pending().await,
    }
}

/// Verifies `sha256=<hex>` over `body` with the receiver's copy of the secret.
fn signature_valid(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(digest) = hex::decode(hex_digest) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

// ---------------------------------------------------------------- scenarios

/// Three instances, four events each, interleaved; the JSONL sink and the
/// webhook get all of them, in order per instance, with valid versioned
/// payloads and a verifiable signature.
async fn delivers_in_order_to_jsonl_and_webhook(db: Db, dir: PathBuf) {
    let (receiver, addr) = Receiver::start(Mode::Accept).await;
    let mut hook = webhook(addr);
    hook.concurrency = 3;
    let dispatcher = start(&db, &config(&dir, vec![hook]), &dir);
    let steps = [
        (InstanceAction::Create, Phase::Start),
        (InstanceAction::Create, Phase::End),
        (InstanceAction::PowerOff, Phase::Start),
        (InstanceAction::PowerOff, Phase::End),
    ];
    let uuids: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut emitted = Vec::new();
    for (action, phase) in steps {
        for uuid in &uuids {
            let notification = event(uuid, action, phase);
            emit_committed(&db, &notification).await;
            emitted.push(notification.envelope.message_id.clone());
        }
    }
    eventually(10, "12 webhook deliveries", || receiver.all().len() >= 12).await;
    eventually(10, "12 log lines", || jsonl(&dir).len() >= 12).await;
    dispatcher.shutdown().await;

    // The log is in emission order (one writer, sequence order).
    let logged: Vec<String> = jsonl(&dir).into_iter().map(|m| m.message_id).collect();
    assert_eq!(logged, emitted);

    let received = receiver.all();
    assert_eq!(received.len(), 12, "each message once");
    let expected_order: Vec<&str> = vec![
        "instance.create.start",
        "instance.create.end",
        "instance.power_off.start",
        "instance.power_off.end",
    ];
    for uuid in &uuids {
        let mut order = Vec::new();
        for message in &received {
            let header = message.signature.as_deref().expect("signed");
            assert!(signature_valid(SECRET, &message.body, header), "valid HMAC");
            assert!(!signature_valid("wrong", &message.body, header));
            let envelope = &message.envelope;
            assert_eq!(
                envelope.payload["nova_object.name"],
                "InstanceActionPayload"
            );
            assert_eq!(envelope.payload["nova_object.namespace"], "nova");
            assert_eq!(envelope.payload["nova_object.version"], "1.9");
            let payload: Versioned<InstanceActionPayload> =
                serde_json::from_value(envelope.payload.clone()).expect("a valid payload");
            if payload.0.instance.uuid == *uuid {
                assert_eq!(envelope.publisher_id, "nova-compute:host1");
                assert_eq!(payload.0.instance.flavor.0.name, "m1.tiny");
                order.push(envelope.event_type.clone());
            }
        }
        assert_eq!(order, expected_order, "events of {uuid} in order");
    }
}
on_both_databases!(delivers_in_order_to_jsonl_and_webhook);

/// An emit in a rolled-back transaction is never stored nor delivered.
async fn rollback_emits_nothing(db: Db, dir: PathBuf) {
    let rolled_back = event("rolled-back", InstanceAction::Create, Phase::Start);
    let mut tx = db.begin().await.expect("begin");
    emit(&mut tx, &rolled_back).await.expect("emit");
    tx.rollback().await.expect("rollback");
    let committed = event("committed", InstanceAction::Create, Phase::Start);
    let seq = emit_committed(&db, &committed).await;
    if db.backend() == novum_db::Backend::Sqlite {
        // One writer at a time: a rolled-back AUTOINCREMENT id is given again.
        assert_eq!(seq, 1, "the rolled-back emit took no sequence number");
    } else {
        // The identity moved on: seq 1 is a gap the dispatcher waits for
        // without holding back what came after it.
        assert_eq!(seq, 2);
    }

    let dispatcher = start(&db, &config(&dir, Vec::new()), &dir);
    eventually(10, "one log line", || !jsonl(&dir).is_empty()).await;
    // Give a wrongly delivered second event a chance to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    dispatcher.shutdown().await;
    let logged = jsonl(&dir);
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].message_id, committed.envelope.message_id);
    let stored = novum_notify::outbox::list_events(
        &db,
        &novum_notify::outbox::EventFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(stored.len(), 1);
}
on_both_databases!(rollback_emits_nothing);

/// Stops the dispatcher with events undelivered — first with the receiver
/// down, then mid-way through slow deliveries — and starts a new one on the
/// same database: every message id arrives at least once, acknowledged ones
/// are not replayed wholesale.
async fn restart_delivers_everything(db: Db, dir: PathBuf) {
    const EVENTS: usize = 20;
    let (receiver, addr) = Receiver::start(Mode::Down).await;
    let mut hook = webhook(addr);
    hook.concurrency = 1;
    hook.max_attempts = 1000;
    let config = config(&dir, vec![hook]);

    // Phase 1: the receiver is down.
    let first = start(&db, &config, &dir);
    let mut ids = HashSet::new();
    for index in 0..EVENTS / 2 {
        let notification = event(
            &format!("i-{}", index % 3),
            InstanceAction::Reboot,
            Phase::End,
        );
        emit_committed(&db, &notification).await;
        ids.insert(notification.envelope.message_id.clone());
    }
    eventually(10, "delivery attempts", || !receiver.all().is_empty()).await;
    first.shutdown().await;
    assert!(receiver.message_ids().len() < EVENTS / 2 + 1);

    // Phase 2: the receiver answers slowly; cancel mid-way.
    receiver.set_mode(Mode::Slow(Duration::from_millis(60)));
    receiver.received.lock().expect("lock").clear();
    let second = start(&db, &config, &dir);
    for index in EVENTS / 2..EVENTS {
        let notification = event(
            &format!("i-{}", index % 3),
            InstanceAction::Reboot,
            Phase::End,
        );
        emit_committed(&db, &notification).await;
        ids.insert(notification.envelope.message_id.clone());
    }
    eventually(10, "some slow deliveries", || receiver.all().len() >= 4).await;
    second.shutdown().await;
    let acknowledged_before_restart = receiver.all().len();
    assert!(receiver.message_ids().len() < EVENTS, "stopped mid-way");

    // Phase 3: a new dispatcher finishes the job.
    receiver.set_mode(Mode::Accept);
    let third = start(&db, &config, &dir);
    eventually(20, "every message id at the receiver", || {
        receiver.message_ids().is_superset(&ids)
    })
    .await;
    eventually(10, "every message id in the log", || {
        jsonl(&dir)
            .into_iter()
            .map(|message| message.message_id)
            .collect::<HashSet<_>>()
            .is_superset(&ids)
    })
    .await;
    third.shutdown().await;
    // At least once, but the acknowledged ones are not all replayed: at most
    // the one delivery in flight at the stop is repeated.
    assert!(
        receiver.all().len() <= EVENTS + 1,
        "{} deliveries for {EVENTS} events ({acknowledged_before_restart} before the restart)",
        receiver.all().len()
    );
}
on_both_databases!(restart_delivers_everything);

/// A webhook that fails one event retries it with growing delays, then
/// dead-letters it; the events after it on the same key still arrive.
async fn failing_webhook_retries_then_dead_letters(db: Db, dir: PathBuf) {
    let (receiver, addr) =
        Receiver::start(Mode::FailEventType("instance.create.error".into())).await;
    let mut hook = webhook(addr);
    hook.max_attempts = 3;
    hook.backoff_initial_ms = 100;
    let dispatcher = start(&db, &config(&dir, vec![hook]), &dir);
    let failing = event("i-1", InstanceAction::Create, Phase::Error);
    let next = event("i-1", InstanceAction::Delete, Phase::Start);
    emit_committed(&db, &failing).await;
    emit_committed(&db, &next).await;

    eventually(10, "the next event", || {
        receiver.message_ids().contains(&next.envelope.message_id)
    })
    .await;
    dispatcher.shutdown().await;

    let attempts: Vec<Received> = receiver
        .all()
        .into_iter()
        .filter(|received| received.envelope.message_id == failing.envelope.message_id)
        .collect();
    assert_eq!(attempts.len(), 3, "max_attempts");
    let first_gap = attempts[1].at - attempts[0].at;
    let second_gap = attempts[2].at - attempts[1].at;
    assert!(
        first_gap >= Duration::from_millis(90),
        "backoff {first_gap:?}"
    );
    assert!(
        second_gap >= Duration::from_millis(190),
        "doubled backoff {second_gap:?}"
    );
    let next_at = receiver
        .all()
        .into_iter()
        .find(|received| received.envelope.message_id == next.envelope.message_id)
        .map(|received| received.at)
        .expect("delivered");
    assert!(
        next_at > attempts[2].at,
        "the key waited for its failing event"
    );

    let letters = novum_notify::outbox::list_dead_letters(&db, 10)
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].message_id, failing.envelope.message_id);
    assert_eq!(letters[0].sink, "webhook:receiver");
    assert_eq!(letters[0].attempts, 3);
    assert!(
        letters[0].last_error.contains("500"),
        "{}",
        letters[0].last_error
    );
    assert_eq!(letters[0].notification["priority"], "ERROR");
}
on_both_databases!(failing_webhook_retries_then_dead_letters);

/// Emit+commit latencies of `count` events (median, slowest).
async fn emit_latency(db: &Db, count: usize) -> (Duration, Duration) {
    let mut samples = Vec::new();
    for index in 0..count {
        let notification = event(&format!("lat-{index}"), InstanceAction::Pause, Phase::End);
        let started = Instant::now();
        emit_committed(db, &notification).await;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

/// A webhook that never answers delays neither emit nor the log sink. The
/// check is causal, not a timing ratio (which a loaded machine breaks): the
/// webhook holds each call for a minute, and the emits are measured while
/// it already holds one, so an emit that waited on it would take a minute.
async fn hanging_webhook_delays_nothing(db: Db, dir: PathBuf) {
    const EVENTS: usize = 30;
    const WEBHOOK_HOLDS: Duration = Duration::from_secs(60);
    let (receiver, addr) = Receiver::start(Mode::Hang).await;
    let mut hook = webhook(addr);
    hook.timeout_ms = u64::try_from(WEBHOOK_HOLDS.as_millis()).unwrap_or(u64::MAX);
    let with = start(&db, &config(&dir, vec![hook]), &dir);
    emit_committed(&db, &event("first", InstanceAction::Pause, Phase::End)).await;
    eventually(10, "the webhook is holding a call", || {
        !receiver.all().is_empty()
    })
    .await;
    let started = Instant::now();
    let (median, slowest) = emit_latency(&db, EVENTS).await;
    eventually(10, "log lines despite the hanging webhook", || {
        jsonl(&dir).len() > EVENTS
    })
    .await;
    let logged_in = started.elapsed();
    with.shutdown().await;

    println!("emit latency with a hanging webhook: median {median:?}, slowest {slowest:?}");
    assert!(
        slowest < WEBHOOK_HOLDS / 6,
        "an emit waited on the hanging webhook: {slowest:?}"
    );
    assert!(
        logged_in < WEBHOOK_HOLDS / 6,
        "log sink held up: {logged_in:?}"
    );
}
on_both_databases!(hanging_webhook_delays_nothing);

// ---------------------------------------------------------------- admin API

mod admin_api {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use novum_api::auth::AuthContext;
    use novum_api::{AppState, app};
    use tower::ServiceExt;

    fn caller(roles: &[&str]) -> AuthContext {
        AuthContext {
            user_id: "u".into(),
            user_name: "u".into(),
            project_id: "p".into(),
            project_name: "p".into(),
            roles: roles.iter().map(|role| role.to_string()).collect(),
            token: "t".into(),
        }
    }

    async fn get(state: &AppState, uri: &str, roles: &[&str]) -> (StatusCode, serde_json::Value) {
        let mut request = Request::get(uri).body(Body::empty()).expect("request");
        request.extensions_mut().insert(caller(roles));
        let response = app(state.clone()).oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    async fn lists_recent_events(db: Db, dir: PathBuf) {
        let before = novum_db::now();
        for (uuid, action, phase) in [
            ("a", InstanceAction::Create, Phase::Start),
            ("b", InstanceAction::Create, Phase::Start),
            ("a", InstanceAction::Create, Phase::End),
            ("a", InstanceAction::PowerOff, Phase::End),
        ] {
            emit_committed(&db, &event(uuid, action, phase)).await;
        }
        let mut config = novum_config::Config {
            data_dir: dir,
            ..novum_config::Config::default()
        };
        // A loaded test machine must not turn a descheduled plugin call into
        // a failure; deadlines are the sandbox tests' subject.
        config.plugins.defaults.deadline_ms = 1_000;
        let state = novum::server::build_state_with_db(config, db)
            .await
            .expect("state");

        let (status, body) = get(&state, "/novum/v1/notifications", &["admin"]).await;
        assert_eq!(status, StatusCode::OK);
        let types: Vec<&str> = body["notifications"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|item| item["notification"]["event_type"].as_str())
            .collect();
        assert_eq!(
            types,
            [
                "instance.power_off.end",
                "instance.create.end",
                "instance.create.start",
                "instance.create.start"
            ],
            "newest first"
        );
        let first = &body["notifications"][0];
        assert_eq!(
            first["legacy_notification"]["event_type"],
            "compute.instance.power_off.end"
        );

        let (_, body) = get(
            &state,
            "/novum/v1/notifications?event_type=instance.create.*&instance=a",
            &["admin"],
        )
        .await;
        assert_eq!(body["notifications"].as_array().map(Vec::len), Some(2));
        let (_, body) = get(
            &state,
            "/novum/v1/notifications?event_type=instance.create.end",
            &["admin"],
        )
        .await;
        assert_eq!(body["notifications"].as_array().map(Vec::len), Some(1));
        let (_, body) = get(&state, "/novum/v1/notifications?limit=1", &["admin"]).await;
        assert_eq!(body["notifications"].as_array().map(Vec::len), Some(1));
        let since: String = before.replace('+', "%2B");
        let (status, body) = get(
            &state,
            &format!("/novum/v1/notifications?since={since}"),
            &["admin"],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["notifications"].as_array().map(Vec::len), Some(4));
        let (_, body) = get(
            &state,
            "/novum/v1/notifications?since=2999-01-01T00:00:00Z",
            &["admin"],
        )
        .await;
        assert_eq!(body["notifications"].as_array().map(Vec::len), Some(0));

        let (status, body) = get(&state, "/novum/v1/notifications?limit=x", &["admin"]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["badRequest"]["message"].as_str().is_some());
        let (status, _) = get(
            &state,
            "/novum/v1/notifications?since=yesterday",
            &["admin"],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = get(&state, "/novum/v1/notifications", &["member"]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = get(&state, "/novum/v1/notifications/dead-letters", &["admin"]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["dead_letters"], serde_json::json!([]));
        let (status, _) = get(&state, "/novum/v1/notifications/dead-letters", &["reader"]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    on_both_databases!(lists_recent_events);
}

// ---------------------------------------------------------------- hook plugins

/// A real notification-hook component (plugins/testing/refusing-hook) as a
/// sink: it hears the versioned events in order; the one it refuses is
/// retried, then dead-lettered, and the key moves on.
async fn hook_plugin_hears_events(db: Db, dir: PathBuf) {
    use novum_notify::sink::hook::PluginHook;
    use novum_plugin_host::{
        Backend, PluginConfig, PluginEngine, PluginSelection, Plugins, PluginsConfig,
    };

    let engine = PluginEngine::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"))
        .expect("engine");
    let mut plugin_config = PluginConfig {
        path: Some(novum_plugin_host::builtin::built_component_path(
            "refusing-hook",
        )),
        ..PluginConfig::default()
    };
    plugin_config
        .config
        .insert("refuse".into(), "instance.create.error".into());
    let mut plugins_config = PluginsConfig::default();
    plugins_config
        .plugins
        .insert("refusing-hook".into(), plugin_config);
    let selection = PluginSelection {
        notification_hooks: vec!["refusing-hook".into()],
        ..PluginSelection::default()
    };
    let plugins = Arc::new(
        Plugins::load(engine, Backend::Wasm, &selection, &plugins_config).expect("hook loads"),
    );

    let mut config = config(&dir, Vec::new());
    config.jsonl.enabled = false;
    config.hooks = vec!["refusing-hook".into()];
    config.hook_max_attempts = 2;
    let hooks = PluginHook::all(&plugins, &config.hooks);
    let dispatcher = Dispatcher::new(db.clone(), &config, &dir, hooks)
        .expect("dispatcher")
        .start();
    let events = [
        event("h-1", InstanceAction::Create, Phase::Start),
        event("h-1", InstanceAction::Create, Phase::Error),
        event("h-1", InstanceAction::Delete, Phase::End),
    ];
    for notification in &events {
        emit_committed(&db, notification).await;
    }
    let report = || -> serde_json::Value {
        let set = plugins.current();
        let plugin = set.plugin("refusing-hook").expect("loaded");
        serde_json::from_str(&plugin.report().expect("report")).expect("json")
    };
    eventually(20, "the hook hears two events", || {
        report()["accepted"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    dispatcher.shutdown().await;

    let accepted = report();
    assert_eq!(
        accepted["accepted"],
        serde_json::json!([
            ["instance.create.start", events[0].envelope.message_id],
            ["instance.delete.end", events[2].envelope.message_id],
        ])
    );
    let letters = novum_notify::outbox::list_dead_letters(&db, 10)
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].sink, "hook:refusing-hook");
    assert_eq!(letters[0].message_id, events[1].envelope.message_id);
    assert_eq!(letters[0].attempts, 2);
    assert!(
        letters[0]
            .last_error
            .contains("refusing instance.create.error"),
        "{}",
        letters[0].last_error
    );
}
on_both_databases!(hook_plugin_hears_events);

/// How many times message `id` is in the JSON-lines log.
fn logged_times(dir: &Path, id: &str) -> usize {
    jsonl(dir)
        .iter()
        .filter(|message| message.message_id == id)
        .count()
}

/// The durable cursor of the JSON-lines sink.
async fn jsonl_cursor(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT seq FROM notification_sink_cursors WHERE sink = 'jsonl'")
        .fetch_optional(db.pool())
        .await
        .expect("cursor")
        .unwrap_or(0)
}

/// PostgreSQL numbers events as they are written, not committed: an event
/// whose transaction is held open (lower seq) commits after one written
/// later (higher seq) was delivered. The dispatcher delivers the higher one
/// at once, keeps its durable cursor below the gap, delivers the lower one
/// when it commits, and each exactly once, also across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_after_a_later_one_is_delivered_once_postgres() {
    let Some(db) = novum_db::testing::postgres().await else {
        return;
    };
    let dir = temp_dir();
    let config = config(&dir, Vec::new());
    let early = event("slow-writer", InstanceAction::Create, Phase::Start);
    let late = event("fast-writer", InstanceAction::Create, Phase::Start);
    let mut held = db.begin().await.expect("begin");
    let early_seq = emit(&mut held, &early).await.expect("emit");
    // (A counter row bumped per event would make this wait for `held`.)
    let late_seq = tokio::time::timeout(Duration::from_secs(10), emit_committed(&db, &late))
        .await
        .expect("an emit waited for another transaction's");
    assert!(early_seq < late_seq, "{early_seq} < {late_seq}");

    let dispatcher = start(&db, &config, &dir);
    eventually(10, "the later event", || {
        logged_times(&dir, &late.envelope.message_id) == 1
    })
    .await;
    // Several polls (100 ms) with the gap open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(logged_times(&dir, &early.envelope.message_id), 0);
    assert!(
        jsonl_cursor(&db).await < early_seq,
        "the durable cursor passed an event not yet committed"
    );

    novum_notify::commit(held).await.expect("commit");
    eventually(10, "the earlier event, once committed", || {
        logged_times(&dir, &early.envelope.message_id) == 1
    })
    .await;
    let after = event("after", InstanceAction::Reboot, Phase::End);
    let after_seq = emit_committed(&db, &after).await;
    eventually(10, "an event after both", || {
        logged_times(&dir, &after.envelope.message_id) == 1
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while jsonl_cursor(&db).await < after_seq {
        assert!(
            Instant::now() < deadline,
            "the cursor never moved past the gap"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    dispatcher.shutdown().await;

    // A new dispatcher redelivers nothing.
    let again = start(&db, &config, &dir);
    let last = event("last", InstanceAction::Reboot, Phase::End);
    emit_committed(&db, &last).await;
    eventually(10, "the last event", || {
        logged_times(&dir, &last.envelope.message_id) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    again.shutdown().await;
    for notification in [&early, &late, &after, &last] {
        assert_eq!(
            logged_times(&dir, &notification.envelope.message_id),
            1,
            "{}",
            notification.envelope.message_id
        );
    }
    assert_eq!(jsonl(&dir).len(), 4);
}

/// Emitters that commit in any order while the dispatcher runs: every event
/// is delivered exactly once.
async fn concurrent_emitters_are_each_delivered_once(db: Db, dir: PathBuf) {
    const WRITERS: usize = 8;
    const EACH: usize = 15;
    let dispatcher = start(&db, &config(&dir, Vec::new()), &dir);
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for index in 0..EACH {
                    let notification = event(
                        &format!("writer-{writer}"),
                        InstanceAction::Reboot,
                        Phase::End,
                    );
                    let mut tx = db.begin().await.expect("begin");
                    emit(&mut tx, &notification).await.expect("emit");
                    // Hold it a while, longer for some: commits come out
                    // of seq order.
                    let pause = ((writer * 7 + index * 13) % 5) as u64 * 10;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    novum_notify::commit(tx).await.expect("commit");
                    ids.push(notification.envelope.message_id.clone());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for writer in writers {
        ids.extend(writer.await.expect("writer"));
    }
    eventually(30, "every event", || jsonl(&dir).len() >= ids.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    dispatcher.shutdown().await;
    let logged = jsonl(&dir);
    assert_eq!(logged.len(), ids.len(), "no event delivered twice");
    let logged: HashSet<String> = logged.into_iter().map(|m| m.message_id).collect();
    assert_eq!(logged, ids.into_iter().collect::<HashSet<_>>());
}
on_both_databases!(concurrent_emitters_are_each_delivered_once);

/// The upgrade to generated sequence numbers (migration 0103) on a
/// database an older novum wrote: the stored events keep their numbers, the
/// counter's last number (above the events left after pruning) is never
/// given again, and the dispatcher picks up after its saved cursor.
async fn the_upgrade_numbers_above_the_counter(db: Db, dir: PathBuf) {
    novum_db::testing::migrate_to(&db, 102)
        .await
        .expect("migrate up to 0102");
    let kept = event("kept", InstanceAction::Create, Phase::Start);
    sqlx::query(
        "INSERT INTO notification_outbox (seq, message_id, ordering_key, event_type, priority, \
         publisher_id, created_at, body) VALUES (40, $1, 'kept', 'instance.create.start', 'INFO', \
         'nova-compute:host1', $2, $3)",
    )
    .bind(&kept.envelope.message_id)
    .bind(novum_db::now())
    .bind(serde_json::to_string(&kept.envelope).expect("json"))
    .execute(db.pool())
    .await
    .expect("an old event");
    // Events 41..50 were delivered and pruned.
    sqlx::query("UPDATE notification_counters SET value = 50 WHERE name = 'outbox'")
        .execute(db.pool())
        .await
        .expect("counter");
    sqlx::query(
        "INSERT INTO notification_sink_cursors (sink, seq, updated_at) VALUES ('jsonl', 50, $1)",
    )
    .bind(novum_db::now())
    .execute(db.pool())
    .await
    .expect("cursor");
    db.migrate().await.expect("the upgrade");

    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM notification_outbox ORDER BY seq")
        .fetch_all(db.pool())
        .await
        .expect("seqs");
    assert_eq!(seqs, vec![40]);
    let first = event("first", InstanceAction::Create, Phase::Start);
    assert_eq!(emit_committed(&db, &first).await, 51);
    let second = event("second", InstanceAction::Create, Phase::End);
    assert_eq!(emit_committed(&db, &second).await, 52);
    let dispatcher = start(&db, &config(&dir, Vec::new()), &dir);
    eventually(10, "the new events", || jsonl(&dir).len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    dispatcher.shutdown().await;
    let logged: Vec<String> = jsonl(&dir).into_iter().map(|m| m.message_id).collect();
    assert_eq!(
        logged,
        vec![
            first.envelope.message_id.clone(),
            second.envelope.message_id.clone()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_to_generated_seqs_numbers_above_the_counter_sqlite() {
    let dir = temp_dir();
    let url = format!("sqlite://{}?mode=rwc", dir.join("novum.db").display());
    let db = Db::connect(&url).await.expect("sqlite");
    the_upgrade_numbers_above_the_counter(db, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_to_generated_seqs_numbers_above_the_counter_postgres() {
    let Some(url) = novum_db::testing::postgres_url().await else {
        return;
    };
    let db = Db::connect(&url).await.expect("postgres");
    the_upgrade_numbers_above_the_counter(db, temp_dir()).await;
}
