//! Notifications end to end, with the real `novum serve` binary (embedded
//! compute agent on libvirt's test driver) over real HTTP:
//!
//! - a server's lifecycle reaches the JSON-lines log and a webhook, in
//!   order, versioned and signed; the usage-ledger hook's ledger reads back;
//! - events not yet delivered when the controller is SIGKILLed arrive after
//!   a restart on the same data directory;
//! - a hook that spins until its deadline and a webhook that never answers
//!   leave the API's latency unchanged.
//!
//! Build the binary first: `cargo build -p novum && cargo test -p novum-tests
//! --test notifications_e2e`.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use novum_tests::{ADMIN_PASSWORD, Cloud, free_port};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "e2e-webhook-secret";

// ------------------------------------------------------------------ the API

/// An admin session on a cloud.
pub(crate) struct Api {
    client: reqwest::blocking::Client,
    base: String,
    pub(crate) token: String,
    pub(crate) project_id: String,
    image: Mutex<Option<String>>,
}

impl Api {
    pub(crate) fn login(cloud: &Cloud) -> Self {
        Self::login_at(&cloud.url)
    }

    /// An admin session on the controller at `url`.
    pub(crate) fn login_at(url: &str) -> Self {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }});
        let response = client
            .post(format!("{url}/identity/v3/auth/tokens"))
            .json(&body)
            .send()
            .expect("token request");
        assert_eq!(response.status().as_u16(), 201, "admin token");
        let token = response.headers()["x-subject-token"]
            .to_str()
            .expect("token")
            .to_string();
        let body: Value = response.json().expect("token body");
        let project_id = body["token"]["project"]["id"]
            .as_str()
            .expect("project id")
            .to_string();
        Self {
            client,
            base: url.to_string(),
            token,
            project_id,
            image: Mutex::new(None),
        }
    }

    /// Lifts the project's instance, core and RAM quotas (a burst of creates).
    pub(crate) fn unlimited_quota(&self) {
        for resource in ["instances", "cores", "ram"] {
            let (status, body) = self.compute(
                Method::PUT,
                &format!("/os-quota-sets/{}", self.project_id),
                Some(json!({"quota_set": {resource: -1}})),
            );
            assert_eq!(status, 200, "{body}");
        }
    }

    /// An active image to boot from (uploaded once per session).
    pub(crate) fn image(&self) -> String {
        let mut image = self.image.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = image.as_ref() {
            return id.clone();
        }
        let (status, body) = self.call(
            Method::POST,
            "/image/v2/images",
            Some(json!({"name": "e2e-image", "disk_format": "raw", "container_format": "bare"})),
        );
        assert_eq!(status, 201, "image create: {body}");
        let id = body["id"].as_str().expect("image id").to_string();
        let response = self
            .client
            .put(format!("{}/image/v2/images/{id}/file", self.base))
            .header("x-auth-token", &self.token)
            .header("content-type", "application/octet-stream")
            .body(vec![7_u8; 4096])
            .send()
            .expect("upload");
        assert_eq!(response.status().as_u16(), 204, "image upload");
        *image = Some(id.clone());
        id
    }

    pub(crate) fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-auth-token", &self.token)
            .header("openstack-api-version", "compute 2.79");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("request");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub(crate) fn compute(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, &format!("/compute/v2.1{path}"), body)
    }

    /// Waits until a compute agent registered (its `service.create` is in
    /// the outbox).
    pub(crate) fn wait_for_compute(&self) {
        eventually(120, "a compute service registers", || {
            let (status, body) = self.call(
                Method::GET,
                "/novum/v1/notifications?event_type=service.create",
                None,
            );
            status == 200
                && body["notifications"]
                    .as_array()
                    .is_some_and(|list| !list.is_empty())
        });
    }

    pub(crate) fn create_server(&self, name: &str) -> String {
        let image = self.image();
        let (status, body) = self.compute(
            Method::POST,
            "/servers",
            Some(json!({"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}})),
        );
        assert_eq!(status, 202, "create {name}: {body}");
        body["server"]["id"]
            .as_str()
            .expect("server id")
            .to_string()
    }

    fn status(&self, id: &str) -> (u16, String) {
        let (code, body) = self.compute(Method::GET, &format!("/servers/{id}"), None);
        (
            code,
            body["server"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    pub(crate) fn wait_status(&self, id: &str, wanted: &str) {
        eventually(120, &format!("server {id} is {wanted}"), || {
            let (code, status) = self.status(id);
            assert_ne!(status, "ERROR", "server {id} went to ERROR");
            code == 200 && status == wanted
        });
    }

    pub(crate) fn action(&self, id: &str, action: Value) {
        let (status, body) =
            self.compute(Method::POST, &format!("/servers/{id}/action"), Some(action));
        assert_eq!(status, 202, "action on {id}: {body}");
    }

    fn delete_server(&self, id: &str) {
        let (status, body) = self.compute(Method::DELETE, &format!("/servers/{id}"), None);
        assert_eq!(status, 204, "delete {id}: {body}");
    }

    fn wait_gone(&self, id: &str) {
        eventually(120, &format!("server {id} is gone"), || {
            self.status(id).0 == 404
        });
    }

    /// Message ids of every event in the outbox (the admin listing).
    pub(crate) fn outbox_ids(&self) -> HashSet<String> {
        let (status, body) = self.call(Method::GET, "/novum/v1/notifications?limit=1000", None);
        assert_eq!(status, 200, "{body}");
        body["notifications"]
            .as_array()
            .expect("notifications")
            .iter()
            .filter_map(|item| item["notification"]["message_id"].as_str())
            .map(str::to_string)
            .collect()
    }
}

pub(crate) fn eventually(seconds: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting until {what}");
}

// ------------------------------------------------------------ the receivers

/// One message a webhook received.
#[derive(Clone, Debug)]
struct Received {
    envelope: Value,
    signature_valid: bool,
}

/// A webhook receiver: an axum server on 127.0.0.1 in the test process.
pub(crate) struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    address: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    /// Listens on `port` (0: any free port).
    pub(crate) fn start(port: u16) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let received = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .expect("bind the receiver");
        let address = listener.local_addr().expect("address");
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(Arc::clone(&received));
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            received,
            address,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn all(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn unique_ids(&self) -> HashSet<String> {
        self.all()
            .iter()
            .filter_map(|item| item.envelope["message_id"].as_str())
            .map(str::to_string)
            .collect()
    }
}

async fn receive(
    State(received): State<Arc<Mutex<Vec<Received>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(envelope) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let signature_valid = headers
        .get("x-novum-signature")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|header| signature_valid(&body, header));
    received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Received {
            envelope,
            signature_valid,
        });
    StatusCode::OK
}

/// Verifies `sha256=<hex>` over `body` with the test's copy of the secret.
fn signature_valid(body: &[u8], header: &str) -> bool {
    let Some(digest) = header
        .strip_prefix("sha256=")
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

/// A webhook that never answers: accepts connections, reads, never responds.
struct Blackhole {
    address: SocketAddr,
    accepted: Arc<Mutex<usize>>,
}

impl Blackhole {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the black hole");
        let address = listener.local_addr().expect("address");
        let accepted = Arc::new(Mutex::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                *count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                std::thread::spawn(move || hold(stream));
            }
        });
        Self { address, accepted }
    }

    fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads whatever comes and never writes, until the peer gives up.
fn hold(mut stream: TcpStream) {
    let mut buffer = [0_u8; 4096];
    while stream.read(&mut buffer).is_ok_and(|read| read > 0) {}
}

// ------------------------------------------------------------- the messages

/// The JSON-lines log of `cloud`.
fn jsonl(cloud: &Cloud) -> Vec<Value> {
    std::fs::read_to_string(cloud.data_dir.join("notifications.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The instance a message is about (instance payloads and request specs).
fn instance_of(envelope: &Value) -> Option<&str> {
    let data = &envelope["payload"]["nova_object.data"];
    data["uuid"]
        .as_str()
        .filter(|_| {
            envelope["event_type"]
                .as_str()
                .is_some_and(|event| event.starts_with("instance."))
        })
        .or_else(|| data["instance_uuid"].as_str())
}

fn event_types_of(messages: &[Value], uuid: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|message| instance_of(message) == Some(uuid))
        .filter_map(|message| message["event_type"].as_str())
        .map(str::to_string)
        .collect()
}

/// Whether `wanted` occurs in `seen` in this order (other events between).
fn in_order(seen: &[String], wanted: &[&str]) -> bool {
    let mut rest = seen.iter();
    wanted
        .iter()
        .all(|event| rest.any(|candidate| candidate == event))
}

/// Checks the envelope and the versioned payload of one message.
fn assert_versioned(message: &Value) {
    for key in [
        "priority",
        "event_type",
        "timestamp",
        "publisher_id",
        "message_id",
    ] {
        assert!(message[key].is_string(), "{key} missing: {message}");
    }
    let payload = &message["payload"];
    assert!(
        payload["nova_object.name"].is_string(),
        "no nova_object.name: {message}"
    );
    assert_eq!(payload["nova_object.namespace"], "nova", "{message}");
    let version = payload["nova_object.version"].as_str().unwrap_or_default();
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 2 && parts.iter().all(|part| part.parse::<u32>().is_ok()),
        "bad version {version}: {message}"
    );
    assert!(
        payload["nova_object.data"].is_object(),
        "no data: {message}"
    );
    let expected_priority = if message["event_type"]
        .as_str()
        .is_some_and(|event| event.ends_with(".error") || event == "compute.exception")
    {
        "ERROR"
    } else {
        "INFO"
    };
    assert_eq!(message["priority"], expected_priority, "{message}");
}

const LIFECYCLE: &[&str] = &[
    "scheduler.select_destinations.start",
    "scheduler.select_destinations.end",
    "instance.create.start",
    "instance.create.end",
    "instance.power_off.start",
    "instance.power_off.end",
    "instance.power_on.start",
    "instance.power_on.end",
    "instance.delete.start",
    "instance.delete.end",
];

pub(crate) fn webhook_config(url: &str, extra: &str) -> String {
    format!(
        "[[notifications.webhooks]]\nname = \"receiver\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
         backoff_initial_ms = 100\nbackoff_max_ms = 500\n{extra}\n"
    )
}

// ---------------------------------------------------------------- scenarios

/// Create, stop, start, delete over the API: the log and the webhook get the
/// lifecycle in order, versioned, signed, with real data; a flavor's
/// create/delete is notified by nova-api; the usage ledger hook books the
/// server's running time to its project.
#[test]
fn server_lifecycle_reaches_log_and_webhook_in_order() {
    let _turn = novum_tests::shared_turn();
    let receiver = Receiver::start(0);
    let config = format!(
        "[agent]\nheartbeat_seconds = 1\n\n[notifications]\npoll_interval_ms = 100\nhooks = [\"usage-ledger-hook\"]\n\n{}",
        webhook_config(&receiver.url(), "")
    );
    let cloud = Cloud::start("notify-lifecycle", &config).expect("cloud");
    let api = Api::login(&cloud);
    api.wait_for_compute();

    let id = api.create_server("lifecycle");
    api.wait_status(&id, "ACTIVE");
    // Let the ledger book a visible running time.
    std::thread::sleep(Duration::from_millis(1100));
    api.action(&id, json!({"os-stop": null}));
    api.wait_status(&id, "SHUTOFF");
    api.action(&id, json!({"os-start": null}));
    api.wait_status(&id, "ACTIVE");
    api.delete_server(&id);
    api.wait_gone(&id);
    let (status, body) = api.compute(
        Method::POST,
        "/flavors",
        Some(json!({"flavor": {"name": "e2e.flavor", "ram": 256, "vcpus": 1, "disk": 1, "id": "e2e-1"}})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = api.compute(Method::DELETE, "/flavors/e2e-1", None);
    assert_eq!(status, 202);

    let done = |messages: &[Value]| {
        messages
            .iter()
            .any(|message| message["event_type"] == "flavor.delete")
            && event_types_of(messages, &id).contains(&"instance.delete.end".to_string())
    };
    eventually(60, "the log has the whole lifecycle", || {
        done(&jsonl(&cloud))
    });
    eventually(60, "the webhook has the whole lifecycle", || {
        let envelopes: Vec<Value> = receiver.all().into_iter().map(|r| r.envelope).collect();
        done(&envelopes)
    });

    let log = jsonl(&cloud);
    let webhook: Vec<Received> = receiver.all();
    let hooked: Vec<Value> = webhook.iter().map(|r| r.envelope.clone()).collect();
    for (sink, messages) in [("log", &log), ("webhook", &hooked)] {
        let seen = event_types_of(messages, &id);
        println!("{sink}: {seen:?}");
        assert!(
            in_order(&seen, LIFECYCLE),
            "{sink} lifecycle out of order or incomplete: {seen:?}"
        );
        assert!(
            seen.iter().any(|event| event == "instance.update"),
            "{sink}: no instance.update: {seen:?}"
        );
        messages.iter().for_each(assert_versioned);
    }
    // Same messages, same order, in both sinks.
    let ids = |messages: &[Value]| -> Vec<String> {
        messages
            .iter()
            .filter(|message| instance_of(message) == Some(id.as_str()))
            .filter_map(|message| message["message_id"].as_str().map(str::to_string))
            .collect()
    };
    let mut webhook_ids = ids(&hooked);
    webhook_ids.dedup();
    assert_eq!(ids(&log), webhook_ids, "the log and the webhook differ");
    assert!(
        webhook.iter().all(|received| received.signature_valid),
        "a webhook message had a bad signature"
    );

    // Real data in the payloads.
    let find = |event: &str| -> &Value {
        log.iter()
            .find(|message| message["event_type"] == event && instance_of(message) == Some(&id))
            .unwrap_or_else(|| panic!("no {event}"))
    };
    let create_end = find("instance.create.end");
    assert_eq!(create_end["publisher_id"], "nova-compute:compute1");
    let data = &create_end["payload"]["nova_object.data"];
    assert_eq!(
        create_end["payload"]["nova_object.name"],
        "InstanceActionPayload"
    );
    assert_eq!(data["uuid"], id.as_str());
    assert_eq!(data["tenant_id"], api.project_id.as_str());
    assert!(data["user_id"].is_string());
    assert_eq!(data["host"], "compute1");
    assert_eq!(data["image_uuid"], api.image().as_str());
    assert_eq!(data["state"], "active");
    assert_eq!(data["power_state"], "running");
    assert!(data["task_state"].is_null());
    assert_eq!(data["availability_zone"], "nova");
    assert!(data["launched_at"].is_string());
    assert_eq!(data["flavor"]["nova_object.data"]["name"], "m1.tiny");
    assert_eq!(data["flavor"]["nova_object.data"]["memory_mb"], 512);
    assert!(
        data["request_id"]
            .as_str()
            .is_some_and(|request| request.starts_with("req-")),
        "no request id: {data}"
    );
    assert_eq!(data["action_initiator_project"], api.project_id.as_str());
    let power_off = &find("instance.power_off.end")["payload"]["nova_object.data"];
    assert_eq!(power_off["state"], "stopped");
    assert_eq!(power_off["power_state"], "shutdown");
    let delete_end = &find("instance.delete.end")["payload"]["nova_object.data"];
    assert_eq!(delete_end["state"], "deleted");
    assert!(delete_end["deleted_at"].is_string());
    let update = find("instance.update");
    assert_eq!(
        update["payload"]["nova_object.name"],
        "InstanceUpdatePayload"
    );
    let select = find("scheduler.select_destinations.start");
    assert!(
        select["publisher_id"]
            .as_str()
            .is_some_and(|publisher| publisher.starts_with("nova-scheduler:")),
        "{select}"
    );
    let flavor = log
        .iter()
        .find(|message| message["event_type"] == "flavor.create")
        .expect("flavor.create");
    assert!(
        flavor["publisher_id"]
            .as_str()
            .is_some_and(|publisher| publisher.starts_with("nova-api:")),
        "{flavor}"
    );
    assert_eq!(flavor["payload"]["nova_object.data"]["flavorid"], "e2e-1");
    let service = log
        .iter()
        .find(|message| message["event_type"] == "service.create")
        .expect("service.create");
    assert_eq!(service["publisher_id"], "nova-compute:compute1");
    assert_eq!(
        service["payload"]["nova_object.data"]["binary"],
        "nova-compute"
    );

    // The usage ledger hook heard the same events: its report books the
    // server's running time to the admin project under m1.tiny.
    eventually(30, "the ledger booked the server", || {
        let (status, body) = api.call(
            Method::GET,
            "/novum/v1/notifications/hooks/usage-ledger-hook/report",
            None,
        );
        assert_eq!(status, 200, "{body}");
        body["report"]["projects"][api.project_id.as_str()]["m1.tiny"]
            .as_f64()
            .is_some_and(|seconds| seconds >= 1.0)
            && body["report"]["tracked_instances"] == 0
    });
    let (status, _) = api.call(
        Method::GET,
        "/novum/v1/notifications/hooks/no-such-hook/report",
        None,
    );
    assert_eq!(status, 404);
}

/// The admin objects of the API are notified by `nova-api`, in the
/// transaction of each change: aggregates (`.start`/`.end`), key pairs,
/// server groups (with `add_member` on boot), services (disable/enable).
#[test]
fn admin_objects_are_notified() {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start(
        "notify-admin",
        "[agent]\nheartbeat_seconds = 1\n\n[notifications]\npoll_interval_ms = 100\n",
    )
    .expect("cloud");
    let api = Api::login(&cloud);
    api.wait_for_compute();

    let (status, body) = api.compute(
        Method::POST,
        "/os-aggregates",
        Some(json!({"aggregate": {"name": "agg-e2e"}})),
    );
    assert_eq!(status, 200, "{body}");
    let aggregate = body["aggregate"]["id"].as_i64().expect("aggregate id");
    for action in [
        json!({"add_host": {"host": "compute1"}}),
        json!({"set_metadata": {"metadata": {"ssd": "true"}}}),
        json!({"remove_host": {"host": "compute1"}}),
    ] {
        let (status, body) = api.compute(
            Method::POST,
            &format!("/os-aggregates/{aggregate}/action"),
            Some(action),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = api.compute(Method::DELETE, &format!("/os-aggregates/{aggregate}"), None);
    assert_eq!(status, 200);

    let (status, body) = api.compute(
        Method::POST,
        "/os-keypairs",
        Some(json!({"keypair": {"name": "key-e2e"}})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _) = api.compute(Method::DELETE, "/os-keypairs/key-e2e", None);
    assert_eq!(status, 204);

    let (status, body) = api.compute(
        Method::POST,
        "/os-server-groups",
        Some(json!({"server_group": {"name": "group-e2e", "policy": "anti-affinity"}})),
    );
    assert_eq!(status, 200, "{body}");
    let group = body["server_group"]["id"]
        .as_str()
        .expect("group id")
        .to_string();
    let image = api.image();
    let (status, body) = api.compute(
        Method::POST,
        "/servers",
        Some(json!({
            "server": {"name": "member", "imageRef": image, "flavorRef": "1", "networks": "none"},
            "os:scheduler_hints": {"group": group},
        })),
    );
    assert_eq!(status, 202, "{body}");
    let server = body["server"]["id"].as_str().expect("id").to_string();
    api.wait_status(&server, "ACTIVE");
    api.delete_server(&server);
    api.wait_gone(&server);
    let (status, _) = api.compute(Method::DELETE, &format!("/os-server-groups/{group}"), None);
    assert_eq!(status, 204);

    let (_, services) = api.compute(Method::GET, "/os-services?binary=nova-compute", None);
    let service = services["services"][0]["id"]
        .as_str()
        .expect("service uuid")
        .to_string();
    for status_change in ["disabled", "enabled"] {
        let (status, body) = api.compute(
            Method::PUT,
            &format!("/os-services/{service}"),
            Some(json!({"status": status_change})),
        );
        assert_eq!(status, 200, "{body}");
    }

    let expected = [
        "aggregate.create.start",
        "aggregate.create.end",
        "aggregate.add_host.start",
        "aggregate.add_host.end",
        "aggregate.update_metadata.start",
        "aggregate.update_metadata.end",
        "aggregate.remove_host.start",
        "aggregate.remove_host.end",
        "aggregate.delete.start",
        "aggregate.delete.end",
        "keypair.create.start",
        "keypair.create.end",
        "keypair.delete.start",
        "keypair.delete.end",
        "server_group.create",
        "server_group.add_member",
        "server_group.delete",
        "service.update",
        "service.update",
    ];
    let admin_events = |log: &[Value]| -> Vec<String> {
        log.iter()
            .filter_map(|message| message["event_type"].as_str())
            .filter(|event| {
                ["aggregate.", "keypair.", "server_group.", "service.update"]
                    .iter()
                    .any(|prefix| event.starts_with(prefix))
            })
            .map(str::to_string)
            .collect()
    };
    eventually(60, "the log has every admin event", || {
        admin_events(&jsonl(&cloud)).len() >= expected.len()
    });
    let log = jsonl(&cloud);
    let seen = admin_events(&log);
    println!("admin events: {seen:?}");
    assert_eq!(seen, expected);
    for message in log.iter().filter(|message| {
        message["event_type"]
            .as_str()
            .is_some_and(|event| seen.iter().any(|admin| admin == event))
    }) {
        assert_versioned(message);
        assert!(
            message["publisher_id"]
                .as_str()
                .is_some_and(|publisher| publisher.starts_with("nova-api:")),
            "{message}"
        );
    }
    let find = |event: &str| {
        log.iter()
            .rev()
            .find(|message| message["event_type"] == event)
            .map(|message| message["payload"]["nova_object.data"].clone())
            .unwrap_or_else(|| panic!("no {event}"))
    };
    assert_eq!(find("aggregate.add_host.end")["hosts"], json!(["compute1"]));
    assert_eq!(find("aggregate.add_host.start")["hosts"], json!([]));
    assert_eq!(
        find("aggregate.update_metadata.end")["metadata"]["ssd"],
        "true"
    );
    assert_eq!(find("keypair.create.end")["name"], "key-e2e");
    assert!(find("keypair.create.end")["fingerprint"].is_string());
    assert_eq!(
        find("server_group.add_member")["members"],
        json!([server.as_str()])
    );
    assert_eq!(find("server_group.create")["policy"], "anti-affinity");
    let disabled = log
        .iter()
        .filter(|message| message["event_type"] == "service.update")
        .map(|message| message["payload"]["nova_object.data"]["disabled"].clone())
        .collect::<Vec<_>>();
    assert_eq!(disabled, vec![json!(true), json!(false)]);
}

/// Events still undelivered (the webhook is down) when the controller is
/// SIGKILLed are all delivered after a restart on the same data directory,
/// once the receiver comes up.
#[test]
fn undelivered_events_survive_a_kill() {
    let _turn = novum_tests::shared_turn();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let config = format!(
        "[agent]\nheartbeat_seconds = 1\n\n[notifications]\npoll_interval_ms = 100\n\n{}",
        webhook_config(&url, "max_attempts = 100000")
    );
    let cloud = Cloud::start("notify-kill", &config).expect("cloud");
    let api = Api::login(&cloud);
    api.wait_for_compute();
    let id = api.create_server("survivor");
    api.wait_status(&id, "ACTIVE");
    api.action(&id, json!({"os-stop": null}));
    api.wait_status(&id, "SHUTOFF");
    let before_kill = api.outbox_ids();
    assert!(
        event_types_of(&jsonl(&cloud), &id).contains(&"instance.power_off.end".to_string()),
        "the log sink delivered meanwhile"
    );
    println!("{} events emitted before the kill", before_kill.len());

    let data_dir = cloud.kill();
    let cloud = Cloud::start_in(data_dir, &config).expect("restart");
    let receiver = Receiver::start(port);
    eventually(90, "every event emitted before the kill arrives", || {
        before_kill.is_subset(&receiver.unique_ids())
    });
    let received = receiver.all();
    let unique = receiver.unique_ids();
    println!(
        "after restart: {} messages received, {} unique, {} emitted before the kill",
        received.len(),
        unique.len(),
        before_kill.len()
    );
    assert!(received.iter().all(|message| message.signature_valid));
    let seen: Vec<String> = {
        let mut seen_ids = HashSet::new();
        received
            .iter()
            .filter(|message| {
                message.envelope["message_id"]
                    .as_str()
                    .is_some_and(|id| seen_ids.insert(id.to_string()))
            })
            .map(|message| message.envelope.clone())
            .filter(|message| instance_of(message) == Some(id.as_str()))
            .filter_map(|message| message["event_type"].as_str().map(str::to_string))
            .collect()
    };
    assert!(
        in_order(
            &seen,
            &[
                "instance.create.start",
                "instance.create.end",
                "instance.power_off.start",
                "instance.power_off.end"
            ]
        ),
        "order per instance kept across the restart: {seen:?}"
    );
    drop(cloud);
}

/// Latency figures of one cloud.
#[derive(Debug, Default)]
struct Figures {
    list: Vec<Duration>,
    create: Vec<Duration>,
    delete: Vec<Duration>,
    cycle: Vec<Duration>,
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = work();
    (value, started.elapsed())
}

fn measure_list(api: &Api, figures: &mut Figures, count: usize) {
    for _ in 0..count {
        let ((status, _), took) = timed(|| api.compute(Method::GET, "/servers", None));
        assert_eq!(status, 200);
        figures.list.push(took);
    }
}

fn measure_cycle(api: &Api, figures: &mut Figures, name: &str) {
    let started = Instant::now();
    let (id, took) = timed(|| api.create_server(name));
    figures.create.push(took);
    api.wait_status(&id, "ACTIVE");
    let ((), took) = timed(|| api.delete_server(&id));
    figures.delete.push(took);
    api.wait_gone(&id);
    figures.cycle.push(started.elapsed());
}

/// A hook spinning until its deadline on every event and a webhook that
/// never answers leave the API as fast as a cloud without them. Both clouds
/// run at once and are measured alternately, so machine noise hits both.
#[test]
fn stuck_hook_and_webhook_do_not_slow_the_api() {
    let _turn = novum_tests::shared_turn();
    let spinning = novum_tests::test_plugin("spinning-hook")
        .expect("the spinning-hook component (built by `cargo build -p novum`)");
    let blackhole = Blackhole::start();
    let base_config = "[agent]\nheartbeat_seconds = 1\n\n[notifications]\npoll_interval_ms = 100\n";
    let stuck_config = format!(
        "[agent]\nheartbeat_seconds = 1\n\n[notifications]\npoll_interval_ms = 100\nhooks = [\"spinning-hook\"]\n\n\
         [[notifications.webhooks]]\nname = \"never-answers\"\nurl = \"http://{}/hook\"\ntimeout_ms = 30000\n\
         max_attempts = 100000\nbackoff_initial_ms = 10\nbackoff_max_ms = 50\n\n\
         [plugins.spinning-hook]\npath = {:?}\ndeadline_ms = 200\n",
        blackhole.address,
        spinning.display().to_string()
    );
    let base = Cloud::start("notify-latency-base", base_config).expect("baseline cloud");
    let stuck = Cloud::start("notify-latency-stuck", &stuck_config).expect("stuck cloud");
    let base_api = Api::login(&base);
    let stuck_api = Api::login(&stuck);
    base_api.wait_for_compute();
    stuck_api.wait_for_compute();
    let mut base_figures = Figures::default();
    let mut stuck_figures = Figures::default();
    // Warm up both (first-request costs, the boot image), then measure
    // alternately.
    base_api.image();
    stuck_api.image();
    measure_list(&base_api, &mut Figures::default(), 5);
    measure_list(&stuck_api, &mut Figures::default(), 5);
    for round in 0..4 {
        measure_cycle(&base_api, &mut base_figures, &format!("base-{round}"));
        measure_cycle(&stuck_api, &mut stuck_figures, &format!("stuck-{round}"));
        measure_list(&base_api, &mut base_figures, 15);
        measure_list(&stuck_api, &mut stuck_figures, 15);
    }

    // The stuck sinks were really stuck during the measurement.
    let (status, hooks) = stuck_api.call(Method::GET, "/novum/v1/notifications/hooks", None);
    assert_eq!(status, 200, "{hooks}");
    let deadline_errors = hooks["hooks"][0]["metrics"]["errors"]["deadline"]
        .as_u64()
        .unwrap_or(0);
    println!("spinning hook: {}", hooks["hooks"][0]["metrics"]);
    assert!(
        deadline_errors > 0,
        "the spinning hook never hit its deadline: {hooks}"
    );
    assert!(
        blackhole.accepted() > 0,
        "the webhook that never answers was never called"
    );

    let report = |name: &str, figures: &Figures| {
        println!(
            "{name}: GET /servers median {:?} (n={}), POST /servers median {:?}, DELETE median {:?}, create→ACTIVE→delete→gone median {:?} (n={})",
            median(&figures.list),
            figures.list.len(),
            median(&figures.create),
            median(&figures.delete),
            median(&figures.cycle),
            figures.cycle.len()
        );
    };
    report("without stuck sinks", &base_figures);
    report("with a spinning hook and a silent webhook", &stuck_figures);
    println!("black hole connections accepted: {}", blackhole.accepted());
    // Noise margin: twice the baseline plus 25 ms per request (debug
    // builds, a shared 2-core machine); a blocked API would take the hook's
    // 200 ms deadline or the webhook's 30 s timeout.
    let within = |stuck: Duration, base: Duration| stuck <= base * 2 + Duration::from_millis(25);
    let checks: HashMap<&str, (Duration, Duration)> = HashMap::from([
        (
            "GET /servers",
            (median(&stuck_figures.list), median(&base_figures.list)),
        ),
        (
            "POST /servers",
            (median(&stuck_figures.create), median(&base_figures.create)),
        ),
        (
            "DELETE /servers/{id}",
            (median(&stuck_figures.delete), median(&base_figures.delete)),
        ),
    ]);
    for (what, (stuck_median, base_median)) in checks {
        assert!(
            within(stuck_median, base_median),
            "{what} slowed down: {stuck_median:?} with stuck sinks vs {base_median:?} without"
        );
    }
    // The full cycle depends on the agent's polling; a blocked API would add
    // seconds to it.
    assert!(
        median(&stuck_figures.cycle)
            <= median(&base_figures.cycle) * 2 + Duration::from_millis(500),
        "the create/delete cycle slowed down"
    );
}
