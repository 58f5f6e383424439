//! The snapshot task on libvirt's test driver: the agent fetches the
//! instance's base image through its image cache (the test driver's
//! guests never write a disk) and uploads it as the snapshot with
//! `PUT /rpc/v1/agents/{host}/images/{id}/file`, its format, size and
//! SHA-256 in the headers; no domain, or a controller refusing the
//! upload, fails the task.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use novum_agent::agent::ControllerImages;
use novum_agent::driver::{LibvirtDriver, LibvirtOptions, TestNode, VirtDriver};
use novum_agent::execute::execute;
use novum_wire::{
    FlavorSpec, ImageFileInfo, ImageSpec, PowerState, SpawnSpec, Task, TaskAction, TaskOutcome,
};
use uuid::Uuid;

const HOST: &str = "snapshot-host";
const BASE: &str = "base-image";
const BASE_DATA: &[u8] = b"the base image's bytes";

/// What the fake controller received: (image id, headers, body).
type Uploads = Arc<Mutex<Vec<(String, BTreeMap<String, String>, Vec<u8>)>>>;

async fn download(UrlPath((_, id)): UrlPath<(String, String)>) -> Response {
    if id != BASE {
        return (StatusCode::NOT_FOUND, "{\"error\": \"no such image\"}").into_response();
    }
    let info = ImageFileInfo {
        disk_format: Some("raw".into()),
        size: Some(BASE_DATA.len() as u64),
        checksum: Some(hex::encode(<md5::Md5 as md5::Digest>::digest(BASE_DATA))),
        ..ImageFileInfo::default()
    };
    let mut response = axum::body::Body::from(BASE_DATA).into_response();
    for (name, value) in info.headers() {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

async fn upload(
    State(uploads): State<Uploads>,
    UrlPath((_, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if id == "refused" {
        return (StatusCode::CONFLICT, "{\"error\": \"not queued\"}").into_response();
    }
    let headers = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-image-meta-"))
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    uploads
        .lock()
        .expect("uploads")
        .push((id, headers, body.to_vec()));
    StatusCode::NO_CONTENT.into_response()
}

fn spawn_spec() -> SpawnSpec {
    SpawnSpec {
        name: "snap-vm".into(),
        flavor: FlavorSpec::tiny(),
        image: ImageSpec {
            id: BASE.into(),
            properties: BTreeMap::new(),
        },
        user_data: None,
        metadata: BTreeMap::new(),
        interfaces: Vec::new(),
        project_id: None,
        config_drive: None,
    }
}

fn task(instance: Uuid, action: TaskAction) -> Task {
    Task {
        id: Uuid::new_v4(),
        instance_uuid: instance,
        request_id: Some("req-snapshot".into()),
        action,
    }
}

fn snapshot(image_id: &str) -> TaskAction {
    TaskAction::Snapshot {
        image_id: image_id.into(),
        base_image_id: BASE.into(),
    }
}

#[test]
fn the_test_driver_uploads_the_base_image_as_the_snapshot() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let uploads: Uploads = Arc::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route(
            "/rpc/v1/agents/{host}/images/{id}/file",
            axum::routing::get(download).put(upload),
        )
        .with_state(Arc::clone(&uploads));
    runtime.spawn(async move { axum::serve(listener, app).await });

    let node = TestNode::create(4, 8192).expect("node");
    let dir = std::env::temp_dir().join(format!("novum-snapshot-{}", Uuid::new_v4()));
    let options = LibvirtOptions {
        instances_path: dir.to_string_lossy().into_owned(),
        ..LibvirtOptions::default()
    };
    let driver = LibvirtDriver::open(&node.uri(), options).expect("test driver");
    let source = ControllerImages::new(&base, HOST, Some("token".into()), runtime.handle().clone())
        .expect("image source");
    driver.set_image_source(Arc::new(source));

    // No domain: the task fails, nothing is uploaded.
    let nobody = Uuid::new_v4();
    let outcome = execute(&driver, &task(nobody, snapshot("snap-0")));
    assert!(
        matches!(&outcome, TaskOutcome::Failed { message, .. } if message.contains("no domain")),
        "{outcome:?}"
    );

    let instance = Uuid::new_v4();
    let outcome = execute(&driver, &task(instance, TaskAction::Spawn(spawn_spec())));
    assert_eq!(
        outcome,
        TaskOutcome::Succeeded {
            power_state: PowerState::Running
        }
    );
    let outcome = execute(&driver, &task(instance, snapshot("snap-1")));
    assert_eq!(
        outcome,
        TaskOutcome::Succeeded {
            power_state: PowerState::Running
        },
        "the guest runs on after its snapshot"
    );
    {
        let uploads = uploads.lock().expect("uploads");
        assert_eq!(uploads.len(), 1);
        let (id, headers, body) = &uploads[0];
        assert_eq!(id, "snap-1");
        assert_eq!(body.as_slice(), BASE_DATA);
        assert_eq!(headers["x-image-meta-disk-format"], "raw");
        assert_eq!(headers["x-image-meta-size"], BASE_DATA.len().to_string());
        assert_eq!(headers["x-image-meta-os-hash-algo"], "sha256");
        assert_eq!(
            headers["x-image-meta-os-hash-value"],
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(BASE_DATA))
        );
    }

    // A controller refusing the upload fails the task with its reason; a
    // bad image id never reaches it.
    let outcome = execute(&driver, &task(instance, snapshot("refused")));
    assert!(
        matches!(&outcome, TaskOutcome::Failed { message, .. } if message.contains("not queued")),
        "{outcome:?}"
    );
    let outcome = execute(&driver, &task(instance, snapshot("../escape")));
    assert!(matches!(outcome, TaskOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(uploads.lock().expect("uploads").len(), 1);
    let _ = execute(&driver, &task(instance, TaskAction::Destroy));
    let _ = std::fs::remove_dir_all(&dir);
}
