//! Consoles over real HTTP on an embedded compute host (libvirt's test
//! driver, which runs nothing): `os-getConsoleOutput` (an empty log),
//! `remote-consoles` and `os-getSerialConsole` (their validation and
//! refusals, the URL and its one-time token), the console proxy piping a
//! websocket to the TCP port the agent chose (a listener of the test's own
//! stands in for the guest), and the query tasks behind them (an agent that
//! does not answer in time). SQLite, and PostgreSQL when it answers.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest as _};

use crate::http_cloud::{self, Cloud};
use novum_compute::conductor::tasks::{self, QueryEnd, TaskBoard};
use novum_wire::TaskAction;

const WAIT: Duration = Duration::from_secs(20);

async fn cloud(database_url: Option<String>) -> Cloud {
    let cloud = Cloud::start(|config| {
        config.database.url = database_url;
        config.agent.embedded = true;
        config.agent.embedded_hosts = 1;
        config.agent.embedded_vcpus = 8;
        config.compute.cpu_allocation_ratio = 1.0;
    })
    .await;
    cloud.wait_for_hosts(1).await;
    cloud
}

async fn flavor(cloud: &Cloud, name: &str, vcpus: u32) -> String {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/flavors",
            Some(json!({"flavor": {"name": name, "vcpus": vcpus, "ram": 64, "disk": 1}})),
            "2.61",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["flavor"]["id"]
        .as_str()
        .expect("flavor id")
        .to_string()
}

/// Creates a server and waits until it shows `wanted`.
async fn server(cloud: &Cloud, flavor: &str, wanted: &str) -> String {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/servers",
            Some(http_cloud::server("console", flavor)),
            "2.37",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, body) = cloud
            .compute(
                &cloud.admin,
                Method::GET,
                &format!("/servers/{id}"),
                None,
                "2.1",
            )
            .await;
        if body["server"]["status"] == wanted {
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server never {wanted}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn action(cloud: &Cloud, id: &str, body: Value, version: &str) -> (u16, Value) {
    cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(body),
            version,
        )
        .await
}

async fn remote_console(cloud: &Cloud, id: &str, body: Value, version: &str) -> (u16, Value) {
    cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/remote-consoles"),
            Some(body),
            version,
        )
        .await
}

/// The status of a websocket handshake at `url` refused over HTTP.
async fn refused_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("not an HTTP refusal: {other}"),
        Ok(_) => panic!("{url} was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consoles_on_sqlite() {
    consoles(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consoles_on_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        consoles(Some(url)).await;
    }
}

async fn consoles(database_url: Option<String>) {
    let cloud = cloud(database_url).await;
    let small = flavor(&cloud, "console.small", 1).await;
    let id = server(&cloud, &small, "ACTIVE").await;

    // Console output: the test driver runs no guest; its log is the
    // agent's record of the domain, tailed to `length` lines.
    for (args, most_lines) in [
        (json!({"length": 2}), 2),
        (json!({}), usize::MAX),
        (json!({"length": "-1"}), usize::MAX),
        (json!({"length": null}), usize::MAX),
    ] {
        let (status, body) = action(&cloud, &id, json!({"os-getConsoleOutput": args}), "2.1").await;
        assert_eq!(status, 200, "{args}: {body}");
        let output = body["output"].as_str().unwrap_or_default();
        assert!(output.contains("] running"), "{args}: {output}");
        assert!(output.split('\n').count() <= most_lines, "{args}: {output}");
    }
    for args in [
        json!({"length": -2}),
        json!({"length": "ten"}),
        json!({"length": 1.5}),
        json!({"lines": 1}),
    ] {
        let (status, body) = action(&cloud, &id, json!({"os-getConsoleOutput": args}), "2.1").await;
        assert_eq!(status, 400, "{args}: {body}");
        assert_eq!(body["badRequest"]["code"], 400, "{body}");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, body) = action(
        &cloud,
        &unknown,
        json!({"os-getConsoleOutput": {"length": 1}}),
        "2.1",
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // A server on no host has no console yet (Nova's InstanceNotReady).
    let huge = flavor(&cloud, "console.huge", 16).await;
    let nowhere = server(&cloud, &huge, "ERROR").await;
    let (status, body) = action(&cloud, &nowhere, json!({"os-getConsoleOutput": {}}), "2.1").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Instance {nowhere} is not ready")
    );

    // Serial console URLs.
    let serial = json!({"remote_console": {"protocol": "serial", "type": "serial"}});
    let (status, body) = remote_console(&cloud, &id, serial.clone(), "2.6").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["remote_console"]["protocol"], "serial");
    assert_eq!(body["remote_console"]["type"], "serial");
    // The URL is on the controller's public URL (its configured listen
    // address here; the test serves on another port).
    let public = body["remote_console"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let token = public
        .strip_prefix("ws://127.0.0.1:8774/serial-console?token=")
        .unwrap_or_else(|| panic!("not a console URL of the controller: {public}"));
    assert_eq!(token.len(), 64, "{public}");
    let prefix = format!(
        "{}/serial-console?token=",
        cloud.base.replacen("http", "ws", 1)
    );
    let url = format!("{prefix}{token}");
    let (status, _) = remote_console(&cloud, &id, serial.clone(), "2.5").await;
    assert_eq!(status, 404, "remote-consoles came with 2.6");
    for (body, message) in [
        (
            json!({"remote_console": {"protocol": "vnc", "type": "novnc"}}),
            Some("Unavailable console type novnc."),
        ),
        (
            json!({"remote_console": {"protocol": "serial", "type": "novnc"}}),
            Some("Invalid console type novnc"),
        ),
        (json!({"remote_console": {"protocol": "serial"}}), None),
        (
            json!({"remote_console": {"protocol": "telnet", "type": "serial"}}),
            None,
        ),
    ] {
        let (status, reply) = remote_console(&cloud, &id, body.clone(), "2.6").await;
        assert_eq!(status, 400, "{body}: {reply}");
        if let Some(message) = message {
            assert_eq!(reply["badRequest"]["message"], message);
        }
    }
    let (status, body) = remote_console(&cloud, &unknown, serial.clone(), "2.6").await;
    assert_eq!(status, 404, "{body}");
    let (status, legacy) = action(
        &cloud,
        &id,
        json!({"os-getSerialConsole": {"type": "serial"}}),
        "2.1",
    )
    .await;
    assert_eq!(status, 200, "{legacy}");
    assert_eq!(legacy["console"]["type"], "serial");
    let legacy_url = legacy["console"]["url"]
        .as_str()
        .and_then(|url| url.split_once("?token="))
        .map(|(_, token)| format!("{prefix}{token}"))
        .expect("url");
    let (status, _) = action(
        &cloud,
        &id,
        json!({"os-getSerialConsole": {"type": "novnc"}}),
        "2.1",
    )
    .await;
    assert_eq!(status, 400);

    // The proxy: the agent chose a port that nothing listens on (the test
    // driver runs nothing); the test listens there instead of a guest.
    let db = novum_db::Db::connect(&cloud.database_url)
        .await
        .expect("db");
    let port: i64 =
        sqlx::query_scalar("SELECT port FROM console_auth_tokens WHERE instance_uuid = $1 LIMIT 1")
            .bind(&id)
            .fetch_one(db.pool())
            .await
            .expect("a token row");
    let port = u16::try_from(port).expect("port");
    assert!((10000..=20000).contains(&port), "Nova's port range: {port}");
    let guest = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the chosen port is free");
    let echo = tokio::spawn(async move {
        let (mut stream, _) = guest.accept().await.expect("the proxy connects");
        stream.write_all(b"login: ").await.expect("write");
        let mut buffer = [0_u8; 64];
        let count = stream.read(&mut buffer).await.expect("read");
        let mut answer = b"you typed ".to_vec();
        answer.extend_from_slice(&buffer[..count]);
        stream.write_all(&answer).await.expect("write");
    });
    // A plain GET (no websocket handshake) is a 400 in Nova's shape and
    // leaves the token unused.
    let plain = reqwest::get(format!("{}/serial-console?token={token}", cloud.base))
        .await
        .expect("plain GET");
    assert_eq!(plain.status(), 400);
    let body: serde_json::Value = plain.json().await.expect("a JSON fault");
    assert!(body["badRequest"]["message"].is_string(), "{body}");
    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "binary, base64".parse().expect("header"),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("binary")
    );
    let mut received = Vec::new();
    let mut sent = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    use futures_util::{SinkExt as _, StreamExt as _};
    while !String::from_utf8_lossy(&received).ends_with("you typed root\n") {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("console answers in time")
            .expect("console open")
            .expect("frame");
        match message {
            Message::Binary(bytes) => received.extend_from_slice(&bytes),
            Message::Close(_) => break,
            other => panic!("unexpected frame {other:?}"),
        }
        if !sent && received.ends_with(b"login: ") {
            socket
                .send(Message::Binary(b"root\n".to_vec().into()))
                .await
                .expect("send");
            sent = true;
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&received),
        "login: you typed root\n"
    );
    echo.await.expect("echo");
    let _ = socket.close(None).await;

    // A token opens once; unknown, missing and expired ones are refused.
    assert_eq!(refused_status(&url).await, 401, "a used token");
    assert_eq!(
        refused_status(&format!("{prefix}{}", "0".repeat(64))).await,
        401
    );
    let bare = prefix.trim_end_matches("?token=");
    assert_eq!(refused_status(bare).await, 401);
    sqlx::query("UPDATE console_auth_tokens SET expires_at = $1")
        .bind("2000-01-01T00:00:00.000000Z")
        .execute(db.pool())
        .await
        .expect("expire");
    assert_eq!(refused_status(&legacy_url).await, 401, "an expired token");

    // A query nobody answers ends in time and is cancelled, so that a late
    // answer is dropped.
    let board = TaskBoard::default();
    let task = tasks::enqueue_query(
        &db,
        &board,
        "no-such-host",
        &id,
        &TaskAction::ConsoleOutput { lines: None },
        "req-test",
    )
    .await
    .expect("enqueue");
    let started = std::time::Instant::now();
    let end = tasks::wait_answer(&db, &board, &task, Duration::from_millis(600))
        .await
        .expect("wait");
    assert_eq!(end, QueryEnd::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5));
    let state: String = sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1")
        .bind(&task)
        .fetch_one(db.pool())
        .await
        .expect("task");
    assert_eq!(state, tasks::state::CANCELLED);
    // Queries belong to no operation: the server's state never moved.
    let (_, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(body["server"]["status"], "ACTIVE");

    // A deleted server's console URL opens nothing.
    let (status, body) = remote_console(&cloud, &id, serial, "2.6").await;
    assert_eq!(status, 200, "{body}");
    let token = body["remote_console"]["url"]
        .as_str()
        .and_then(|url| url.split_once("?token="))
        .map(|(_, token)| token.to_string())
        .expect("url");
    let (status, _) = cloud
        .compute(
            &cloud.admin,
            Method::DELETE,
            &format!("/servers/{id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    let deadline = tokio::time::Instant::now() + WAIT;
    while cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{id}"),
            None,
            "2.1",
        )
        .await
        .0
        != 404
    {
        assert!(tokio::time::Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refused_status(&format!("{prefix}{token}")).await, 401);
    db.close().await;
    cloud.stop().await;
}
