//! Personality files against the injected-file quotas.

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{Cloud, server};

/// Personality files (before 2.57) count against injected_files,
/// injected_file_path_bytes and injected_file_content_bytes through the
/// quota policies; 2.57 removed the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn personality_files_are_limited_by_the_injected_file_quotas() {
    let cloud = Cloud::start(|config| config.agent.embedded = false).await;
    let (_, _, member) = cloud.tenant("personal", "writer", "member").await;
    let create = |files: Vec<Value>, version: &'static str| {
        let mut body = server("files", "1");
        body["server"]["personality"] = json!(files);
        if version == "2.1" {
            // `networks: "none"` exists from 2.37 on.
            if let Some(server) = body["server"].as_object_mut() {
                server.remove("networks");
            }
        }
        let cloud = &cloud;
        let member = member.clone();
        async move {
            cloud
                .compute(&member, Method::POST, "/servers", Some(body), version)
                .await
        }
    };
    let file = |path: &str, contents: &str| json!({"path": path, "contents": contents});
    let five: Vec<Value> = (0..5)
        .map(|n| file(&format!("/etc/f{n}"), "aGVsbG8="))
        .collect();
    let (status, body) = create(five.clone(), "2.1").await;
    assert_eq!(status, 202, "five files fit the default of 5: {body}");

    let mut six = five.clone();
    six.push(file("/etc/f5", "aGVsbG8="));
    let (status, body) = create(six, "2.1").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["forbidden"]["message"],
        "Quota exceeded for injected_files: Requested 6, but already used 0 of 5 injected_files"
    );

    let long_path = format!("/{}", "p".repeat(255));
    let (status, body) = create(vec![file(&long_path, "aGVsbG8=")], "2.1").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["forbidden"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Quota exceeded for injected_file_path_bytes: Requested 256"),
        "{body}"
    );

    let (status, body) = create(vec![file("/etc/x", "not base64!")], "2.1").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = create(vec![file("/etc/x", "aGVsbG8=")], "2.57").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Additional properties are not allowed ('personality' was unexpected)"
    );
    cloud.stop().await;
}
