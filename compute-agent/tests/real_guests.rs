//! Real guests on `qemu:///system`: the project's test guest (built by
//! `tests/guest/build.sh`) served as images over HTTP by a small stand-in
//! of the controller's image endpoint, downloaded by the agent's own
//! [`ControllerImages`] with its bearer credential, verified, cached, and
//! booted by the libvirt driver with real disks.
//!
//! Two guests boot concurrently and serve every check: a qcow2 disk image
//! that boots from its disk (with an ephemeral and a swap disk), and an
//! AMI whose `kernel_id`/`ramdisk_id` boot it by direct kernel boot.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use novum_agent::agent::ControllerImages;
use novum_agent::driver::{
    BASE_DIR, DriverError, LibvirtDriver, LibvirtOptions, VirtDriver, VirtType, disk_info,
};
use novum_wire::{FlavorSpec, ImageFileInfo, ImageSpec, PowerState, SpawnSpec};
use uuid::Uuid;
use virt::connect::Connect;
use virt::domain::Domain;

const URI: &str = "qemu:///system";
const HOST: &str = "real-guests-host";
const TOKEN: &str = "agent-token-of-the-test";
const GIB: u64 = 1024 * 1024 * 1024;
/// How long a guest may take to print a console marker (TCG, 2 busy cores).
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// The test guest's files, built (or found cached) by `tests/guest/build.sh`.
fn test_guest() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("target/test-guest");
    let status = Command::new("bash")
        .arg(root.join("tests/guest/build.sh"))
        .arg(&out)
        .status()
        .expect("running tests/guest/build.sh");
    assert!(status.success(), "building the test guest failed");
    out
}

/// One image the stand-in image service serves.
#[derive(Clone)]
struct Served {
    data: Arc<Vec<u8>>,
    info: ImageFileInfo,
}

fn sha512(data: &[u8]) -> String {
    hex::encode(<sha2::Sha512 as sha2::Digest>::digest(data))
}

fn sha256(data: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data))
}

fn md5(data: &[u8]) -> String {
    hex::encode(<md5::Md5 as md5::Digest>::digest(data))
}

fn served(data: Vec<u8>, disk_format: &str, hash: &str) -> Served {
    let info = ImageFileInfo {
        disk_format: Some(disk_format.into()),
        size: Some(data.len() as u64),
        checksum: Some(md5(&data)),
        os_hash_algo: (hash != "md5").then(|| hash.to_string()),
        os_hash_value: match hash {
            "sha512" => Some(sha512(&data)),
            "sha256" => Some(sha256(&data)),
            _ => None,
        },
    };
    Served {
        data: Arc::new(data),
        info,
    }
}

/// `GET /rpc/v1/agents/{host}/images/{id}/file` as the controller answers it.
/// The images the stand-in image service holds (snapshots are added by
/// their upload).
type Images = Arc<std::sync::Mutex<HashMap<String, Served>>>;

async fn image_file(
    State(images): State<Images>,
    UrlPath((host, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if !authorized || host != HOST {
        return (StatusCode::UNAUTHORIZED, "{\"error\": \"who are you\"}").into_response();
    }
    let Some(image) = images
        .lock()
        .ok()
        .and_then(|images| images.get(&id).cloned())
    else {
        return (StatusCode::NOT_FOUND, "{\"error\": \"no such image\"}").into_response();
    };
    let mut response = axum::body::Body::from(image.data.as_ref().clone()).into_response();
    for (name, value) in image.info.headers() {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// Serves `images` as the controller's image endpoint on 127.0.0.1 (a
/// download, and a snapshot's upload into the same map), from a runtime of
/// its own: the runtime and the base URL.
fn serve_images(images: Images) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route(
            "/rpc/v1/agents/{host}/images/{id}/file",
            axum::routing::get(image_file).put(image_upload),
        )
        // A snapshot is tens of MiB: no body limit (as the controller's RPC).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(images);
    runtime.spawn(async move { axum::serve(listener, app).await });
    (runtime, base)
}

/// A TCG driver on `qemu:///system` keeping instances in `dir`, fetching
/// images from `base`.
fn open_driver(dir: &Path, base: &str, runtime: &tokio::runtime::Runtime) -> Arc<LibvirtDriver> {
    let options = LibvirtOptions {
        instances_path: dir.to_string_lossy().into_owned(),
        virt_type: VirtType::Qemu,
        clean_shutdown_timeout: Duration::from_secs(30),
        ..LibvirtOptions::default()
    };
    let driver = Arc::new(LibvirtDriver::open(URI, options).expect("qemu:///system"));
    let source = ControllerImages::new(base, HOST, Some(TOKEN.into()), runtime.handle().clone())
        .expect("image source");
    driver.set_image_source(Arc::new(source));
    driver
}

/// Removes the test's domains and files, even when the test fails.
struct Cleanup {
    instances: Vec<Uuid>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(mut conn) = Connect::open(Some(URI)) {
            for id in &self.instances {
                if let Ok(domain) = Domain::lookup_by_uuid_string(&conn, &id.to_string()) {
                    let _ = domain.destroy();
                    let _ = domain.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
                }
            }
            let _ = conn.close();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spec(name: &str, image: &str, props: &[(&str, &str)], flavor: FlavorSpec) -> SpawnSpec {
    SpawnSpec {
        name: name.into(),
        flavor,
        image: ImageSpec {
            id: image.into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        user_data: None,
        metadata: Default::default(),
        interfaces: Vec::new(),
        project_id: None,
        config_drive: None,
    }
}

fn flavor(root_gb: u64, ephemeral_gb: u64, swap_mb: u64) -> FlavorSpec {
    FlavorSpec {
        name: "real".into(),
        vcpus: 1,
        memory_mb: 256,
        root_gb,
        ephemeral_gb,
        swap_mb,
    }
}

/// Waits until the console log of `instance` holds `marker`; the time it took.
fn wait_console(dir: &Path, instance: Uuid, marker: &str, since: Instant) -> Duration {
    let log = dir.join(instance.to_string()).join("console.log");
    loop {
        let text = std::fs::read(&log).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains(marker) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < BOOT_TIMEOUT,
            "{marker} not on the console of {instance} after {BOOT_TIMEOUT:?}: {}",
            String::from_utf8_lossy(&text)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn domain_xml(instance: Uuid) -> String {
    let mut conn = Connect::open(Some(URI)).expect("libvirt");
    let domain = Domain::lookup_by_uuid_string(&conn, &instance.to_string()).expect("domain");
    let xml = domain.get_xml_desc(0).expect("xml");
    let _ = conn.close();
    xml
}

/// Types `line` into the guest's serial console (its pty).
fn type_on_console(instance: Uuid, line: &str) {
    let xml = domain_xml(instance);
    let doc = roxmltree::Document::parse(&xml).expect("domain xml");
    let pty = doc
        .descendants()
        .find(|n| n.has_tag_name("serial"))
        .and_then(|serial| serial.children().find(|n| n.has_tag_name("source")))
        .and_then(|source| source.attribute("path"))
        .expect("the serial port's pty")
        .to_string();
    let mut console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pty)
        .expect("opening the pty");
    console
        .write_all(format!("{line}\r").as_bytes())
        .expect("typing");
    // qemu reads the pty while it is open: keep it open until it has.
    std::thread::sleep(Duration::from_secs(1));
}

fn shutoff_reason(instance: Uuid) -> u32 {
    let mut conn = Connect::open(Some(URI)).expect("libvirt");
    let domain = Domain::lookup_by_uuid_string(&conn, &instance.to_string()).expect("domain");
    let (state, reason) = domain.get_state().expect("state");
    let _ = conn.close();
    assert_eq!(state, virt::sys::VIR_DOMAIN_SHUTOFF);
    reason as u32
}

#[test]
fn real_guests_boot_from_served_images_with_real_disks() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    let guest = test_guest();
    let read = |name: &str| std::fs::read(guest.join(name)).expect("test guest file");
    let disk_qcow2 = read("disk.qcow2");
    let ami = vec![0_u8; 1 << 20];
    let mut images = HashMap::new();
    let disk_image = format!("disk-{}", Uuid::new_v4());
    let kernel = format!("aki-{}", Uuid::new_v4());
    let ramdisk = format!("ari-{}", Uuid::new_v4());
    let machine = format!("ami-{}", Uuid::new_v4());
    let corrupt = format!("corrupt-{}", Uuid::new_v4());
    images.insert(
        disk_image.clone(),
        served(disk_qcow2.clone(), "qcow2", "sha256"),
    );
    images.insert(kernel.clone(), served(read("vmlinuz"), "aki", "md5"));
    images.insert(ramdisk.clone(), served(read("initrd.img"), "ari", "sha256"));
    images.insert(machine.clone(), served(ami.clone(), "ami", "sha512"));
    let mut bad = served(ami.clone(), "raw", "sha512");
    bad.info.os_hash_value = Some(sha512(b"something else"));
    images.insert(corrupt.clone(), bad);

    let (runtime, base) = serve_images(Arc::new(std::sync::Mutex::new(images)));

    let disk_guest = Uuid::new_v4();
    let kernel_guest = Uuid::new_v4();
    let failing = Uuid::new_v4();
    let unstartable_guard = Uuid::new_v4();
    let dir = std::env::temp_dir().join(format!("novum-real-guests-{}", Uuid::new_v4()));
    let _cleanup = Cleanup {
        instances: vec![disk_guest, kernel_guest, failing, unstartable_guard],
        dir: dir.clone(),
    };
    let driver = open_driver(&dir, &base, &runtime);

    // The inventory is the host's, for QEMU TCG guests only.
    let inventory = driver.inventory().expect("inventory");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    assert!(inventory.vcpus >= cpus, "{inventory:?}");
    assert!(inventory.memory_mb > 256, "{inventory:?}");
    assert!(inventory.disk_gb > 0, "{inventory:?}");
    assert!(!inventory.supported_instances.is_empty());
    assert!(
        inventory
            .supported_instances
            .iter()
            .all(|s| s.hv_type == "qemu"),
        "{:?}",
        inventory.supported_instances
    );

    // Both guests spawn at once (the AMI's kernel and ramdisk come too).
    let disk_spec = spec("disk-guest", &disk_image, &[], flavor(1, 1, 64));
    let kernel_spec = spec(
        "kernel-guest",
        &machine,
        &[
            ("kernel_id", &kernel),
            ("ramdisk_id", &ramdisk),
            ("os_command_line", "console=ttyS0 quiet"),
        ],
        flavor(0, 0, 0),
    );
    let started = Instant::now();
    let spawns = [
        (disk_guest, disk_spec.clone()),
        (kernel_guest, kernel_spec.clone()),
    ]
    .map(|(id, spec)| {
        let driver = Arc::clone(&driver);
        std::thread::spawn(move || driver.spawn(id, &spec).map(|()| Instant::now()))
    });
    // Meanwhile: an image whose data does not match its checksum fails the
    // spawn and leaves nothing behind.
    let error = driver
        .spawn(failing, &spec("corrupt", &corrupt, &[], flavor(1, 0, 0)))
        .expect_err("a corrupt image must not boot");
    assert!(matches!(error, DriverError::Image(_)), "{error}");
    assert!(error.to_string().contains("sha512"), "{error}");
    assert_eq!(driver.power_state(failing).expect("state"), None);
    assert!(!dir.join(failing.to_string()).exists());
    assert!(!dir.join(BASE_DIR).join(&corrupt).exists());
    // A guest libvirt cannot make (a machine type QEMU does not have)
    // fails the spawn, so that the conductor reschedules, and leaves no
    // domain and no disk (the image it downloaded stays cached).
    let unstartable = unstartable_guard;
    let error = driver
        .spawn(
            unstartable,
            &spec(
                "unstartable",
                &machine,
                &[("hw_machine_type", "no-such-machine")],
                flavor(1, 1, 0),
            ),
        )
        .expect_err("a machine type QEMU lacks cannot start");
    assert!(matches!(error, DriverError::Libvirt { .. }), "{error}");
    assert_eq!(driver.power_state(unstartable).expect("state"), None);
    assert!(!dir.join(unstartable.to_string()).exists());
    let [disk_started, kernel_started] =
        spawns.map(|spawn| spawn.join().expect("spawn thread").expect("spawn"));
    let spawned = started.elapsed();
    // Meanwhile `auto` probes KVM with a guest of its own and settles on
    // what runs: always QEMU TCG, KVM too only where a KVM guest runs.
    let auto = std::thread::spawn({
        let dir = dir.clone();
        move || {
            let probing = Instant::now();
            let options = LibvirtOptions {
                instances_path: dir.join("auto").to_string_lossy().into_owned(),
                virt_type: VirtType::Auto,
                ..LibvirtOptions::default()
            };
            let driver = LibvirtDriver::open(URI, options).expect("auto");
            let mut types: Vec<String> = driver
                .inventory()
                .expect("inventory")
                .supported_instances
                .into_iter()
                .map(|s| s.hv_type)
                .collect();
            types.sort();
            types.dedup();
            (types, probing.elapsed())
        }
    });
    let kernel_boot = std::thread::spawn({
        let dir = dir.clone();
        move || wait_console(&dir, kernel_guest, "NOVUM-BOOTED", kernel_started)
    });
    let disk_boot = wait_console(&dir, disk_guest, "NOVUM-BOOTED", disk_started);
    let kernel_boot = kernel_boot.join().expect("waiting for the kernel guest");
    eprintln!(
        "spawned both (downloads, disks, define, start) in {spawned:?}; NOVUM-BOOTED after the start: \
         disk image {disk_boot:?}, direct kernel boot {kernel_boot:?}"
    );

    let (auto_types, probe_time) = auto.join().expect("auto thread");
    eprintln!("virt_type auto chose {auto_types:?} in {probe_time:?}");
    assert!(
        auto_types == ["qemu"] || auto_types == ["kvm", "qemu"],
        "{auto_types:?}"
    );
    if !Path::new("/dev/kvm").exists() {
        assert_eq!(auto_types, ["qemu"]);
    }
    // The probe leaves nothing behind.
    let probe_files: Vec<_> = std::fs::read_dir(dir.join("auto"))
        .expect("auto dir")
        .collect();
    assert!(probe_files.is_empty(), "{probe_files:?}");

    // The disks: a qcow2 overlay on the cached image, sized by the flavor
    // (or the image's size for root_gb 0), ephemeral and swap disks.
    let base_dir = dir.join(BASE_DIR);
    let files = |id: Uuid| dir.join(id.to_string());
    let root = disk_info(&files(disk_guest).join("disk"), "qcow2").expect("root disk");
    assert_eq!(root.virtual_size, GIB);
    assert_eq!(
        root.backing_filename.as_deref(),
        Some(base_dir.join(&disk_image).to_str().expect("utf-8"))
    );
    assert_eq!(
        disk_info(&files(disk_guest).join("disk.eph0"), "qcow2")
            .expect("ephemeral")
            .virtual_size,
        GIB
    );
    assert_eq!(
        disk_info(&files(disk_guest).join("disk.swap"), "qcow2")
            .expect("swap")
            .virtual_size,
        64 << 20
    );
    let kernel_root = disk_info(&files(kernel_guest).join("disk"), "qcow2").expect("root");
    assert_eq!(kernel_root.virtual_size, ami.len() as u64);
    assert!(!files(kernel_guest).join("disk.eph0").exists());
    assert!(!files(kernel_guest).join("disk.swap").exists());
    // Each image is cached once, verified; no partial download is left.
    let mut cached: Vec<String> = std::fs::read_dir(&base_dir)
        .expect("cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".info"))
        .collect();
    cached.sort();
    let mut expected = vec![
        disk_image.clone(),
        kernel.clone(),
        ramdisk.clone(),
        machine.clone(),
    ];
    expected.sort();
    assert_eq!(cached, expected);

    // The domains: TCG, i440fx, the disks' driver types, the kernel boot.
    let disk_xml = domain_xml(disk_guest);
    assert!(disk_xml.contains("<domain type='qemu'"), "{disk_xml}");
    assert!(disk_xml.contains("machine='pc-i440fx"), "{disk_xml}");
    assert!(
        disk_xml.contains("<driver name='qemu' type='qcow2'/>"),
        "{disk_xml}"
    );
    assert!(!disk_xml.contains("<kernel>"), "{disk_xml}");
    let kernel_xml = domain_xml(kernel_guest);
    assert!(
        kernel_xml.contains(&format!(
            "<kernel>{}/kernel</kernel>",
            files(kernel_guest).display()
        )),
        "{kernel_xml}"
    );
    assert!(
        kernel_xml.contains("<cmdline>console=ttyS0 quiet</cmdline>"),
        "{kernel_xml}"
    );

    // A clean shutdown (the ACPI power button) powers the guest off quickly.
    wait_console(&dir, kernel_guest, "NOVUM-READY", started);
    let stopping = Instant::now();
    driver.power_off(kernel_guest).expect("power off");
    let stopped = stopping.elapsed();
    eprintln!("clean shutdown took {stopped:?}");
    assert!(stopped < Duration::from_secs(15), "{stopped:?}");
    assert_eq!(
        shutoff_reason(kernel_guest),
        virt::sys::VIR_DOMAIN_SHUTOFF_SHUTDOWN,
        "the guest was stopped hard, not shut down"
    );

    // A resize grows the root disk, and the guest boots again from it.
    let mut resized = kernel_spec.clone();
    resized.flavor.root_gb = 2;
    let rebooting = Instant::now();
    driver
        .redefine(kernel_guest, &resized, true)
        .expect("resize");
    assert_eq!(
        disk_info(&files(kernel_guest).join("disk"), "qcow2")
            .expect("root")
            .virtual_size,
        2 * GIB
    );
    wait_console(&dir, kernel_guest, "NOVUM-BOOTED", rebooting);

    // A guest that powers itself off is seen off.
    wait_console(&dir, disk_guest, "NOVUM-READY", started);
    type_on_console(disk_guest, "poweroff -f");
    let deadline = Instant::now() + Duration::from_secs(30);
    while driver.power_state(disk_guest).expect("state") != Some(PowerState::Shutdown) {
        assert!(
            Instant::now() < deadline,
            "the guest did not power itself off"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        driver
            .list_instances()
            .expect("list")
            .iter()
            .any(|p| p.uuid == disk_guest && p.power_state == PowerState::Shutdown)
    );

    // Destroy removes the domains and everything under their directories.
    for id in [disk_guest, kernel_guest] {
        driver.destroy(id).expect("destroy");
        assert_eq!(driver.power_state(id).expect("state"), None);
        assert!(!files(id).exists(), "{} is left", files(id).display());
        driver.destroy(id).expect("destroying again");
    }
}

/// `PUT /rpc/v1/agents/{host}/images/{id}/file` as the controller takes a
/// snapshot: kept with the format, size and SHA-256 its headers declare
/// (so that booting it verifies them).
async fn image_upload(
    State(images): State<Images>,
    UrlPath((host, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    if host != HOST {
        return StatusCode::UNAUTHORIZED;
    }
    let info = ImageFileInfo::from_headers(|name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    });
    if info.size != Some(body.len() as u64)
        || info.os_hash_value.as_deref() != Some(sha256(&body).as_str())
    {
        return StatusCode::BAD_REQUEST;
    }
    if let Ok(mut images) = images.lock() {
        images.insert(
            id,
            Served {
                data: Arc::new(body.to_vec()),
                info,
            },
        );
    }
    StatusCode::NO_CONTENT
}

#[test]
fn a_real_guest_snapshot_is_a_standalone_qcow2_that_boots() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    let guest = test_guest();
    let disk = std::fs::read(guest.join("disk.qcow2")).expect("test guest disk");
    let base_image = format!("disk-{}", Uuid::new_v4());
    let snapshot_image = format!("snap-{}", Uuid::new_v4());
    let images: Images = Arc::new(std::sync::Mutex::new(HashMap::from([(
        base_image.clone(),
        served(disk, "qcow2", "sha256"),
    )])));
    let (runtime, base) = serve_images(Arc::clone(&images));

    let original = Uuid::new_v4();
    let restored = Uuid::new_v4();
    let dir = std::env::temp_dir().join(format!("novum-real-snapshot-{}", Uuid::new_v4()));
    let _cleanup = Cleanup {
        instances: vec![original, restored],
        dir: dir.clone(),
    };
    let options = LibvirtOptions {
        instances_path: dir.to_string_lossy().into_owned(),
        virt_type: VirtType::Qemu,
        clean_shutdown_timeout: Duration::from_secs(30),
        ..LibvirtOptions::default()
    };
    let driver = LibvirtDriver::open(URI, options).expect("qemu:///system");
    let source = ControllerImages::new(&base, HOST, Some(TOKEN.into()), runtime.handle().clone())
        .expect("image source");
    driver.set_image_source(Arc::new(source));

    let started = Instant::now();
    driver
        .spawn(
            original,
            &spec("original", &base_image, &[], flavor(1, 0, 0)),
        )
        .expect("spawn");
    wait_console(&dir, original, "NOVUM-BOOTED", started);

    // The snapshot of the running guest: its overlay flattened into one
    // qcow2 file with no backing file, uploaded; the guest runs on.
    driver
        .snapshot(original, &snapshot_image, &base_image)
        .expect("snapshot");
    assert_eq!(
        driver.power_state(original).expect("state"),
        Some(PowerState::Running)
    );
    let uploaded = images
        .lock()
        .expect("images")
        .get(&snapshot_image)
        .cloned()
        .expect("the snapshot was uploaded");
    assert_eq!(uploaded.info.disk_format.as_deref(), Some("qcow2"));
    let file = dir.join("uploaded.qcow2");
    std::fs::write(&file, uploaded.data.as_ref()).expect("write");
    let info = disk_info(&file, "qcow2").expect("the snapshot is a qcow2 file");
    assert_eq!(info.backing_filename, None, "{info:?}");
    assert_eq!(info.virtual_size, GIB, "the flavor's root disk");
    let check = Command::new("qemu-img")
        .args(["check", "-q", "-f", "qcow2"])
        .arg(&file)
        .status()
        .expect("qemu-img check");
    assert!(check.success(), "qemu-img check of the snapshot failed");
    assert!(
        !dir.join(original.to_string())
            .join(format!(".snapshot-{snapshot_image}.qcow2"))
            .exists(),
        "the temporary copy is removed"
    );

    // A guest booted from the snapshot reaches the same point.
    let started = Instant::now();
    driver
        .spawn(
            restored,
            &spec("restored", &snapshot_image, &[], flavor(1, 0, 0)),
        )
        .expect("spawn from the snapshot");
    let booted = wait_console(&dir, restored, "NOVUM-BOOTED", started);
    eprintln!("the snapshot's guest booted in {booted:?}");
    driver.destroy(original).expect("destroy");
    driver.destroy(restored).expect("destroy");
}

/// A rescued real guest boots from the rescue disk with its root disk as
/// the second disk (`vda` and `vdb` in the guest); unrescue brings back
/// the original definition (its root disk alone, as `vda`) and removes the
/// rescue disk.
#[test]
fn a_rescued_real_guest_boots_with_two_disks_and_unrescue_restores_it() {
    let guest = test_guest();
    let disk_image = format!("disk-{}", Uuid::new_v4());
    let data = std::fs::read(guest.join("disk.qcow2")).expect("test guest disk");
    let images = HashMap::from([(disk_image.clone(), served(data, "qcow2", "sha256"))]);
    let (runtime, base) = serve_images(Arc::new(std::sync::Mutex::new(images)));
    let id = Uuid::new_v4();
    let dir = std::env::temp_dir().join(format!("novum-real-rescue-{}", Uuid::new_v4()));
    let _cleanup = Cleanup {
        instances: vec![id],
        dir: dir.clone(),
    };
    let driver = open_driver(&dir, &base, &runtime);
    let own = spec("rescuable", &disk_image, &[], flavor(1, 0, 0));
    let started = Instant::now();
    driver.spawn(id, &own).expect("spawn");
    wait_console(&dir, id, "NOVUM-READY", started);
    let original = domain_xml(id);
    let disk_list = "echo NOVUM-DISKS $(ls /sys/block | grep vd) END";

    let rescuing = Instant::now();
    let rescue_image = ImageSpec {
        id: disk_image.clone(),
        properties: Default::default(),
    };
    driver.rescue(id, &own, &rescue_image).expect("rescue");
    assert_eq!(
        driver.power_state(id).expect("state"),
        Some(PowerState::Running)
    );
    let files = dir.join(id.to_string());
    let rescue_disk = disk_info(&files.join("disk.rescue"), "qcow2").expect("rescue disk");
    assert_eq!(rescue_disk.virtual_size, GIB, "the flavor's root size");
    let rescued = domain_xml(id);
    let rescue_at = rescued.find("disk.rescue'").expect("the rescue disk");
    let root_at = rescued.find("/disk'").expect("the root disk");
    assert!(
        rescue_at < root_at,
        "the rescue disk boots first: {rescued}"
    );
    wait_console(&dir, id, "NOVUM-READY", rescuing);
    type_on_console(id, disk_list);
    wait_console(&dir, id, "NOVUM-DISKS vda vdb END", rescuing);

    let unrescuing = Instant::now();
    driver.unrescue(id).expect("unrescue");
    assert!(!files.join("disk.rescue").exists());
    let restored = domain_xml(id);
    assert!(!restored.contains("disk.rescue"), "{restored}");
    assert_eq!(
        novum_agent::driver::rescued_original(&restored).expect("xml"),
        None
    );
    let disks = |xml: &str| xml.matches("<disk type='file' device='disk'>").count();
    assert_eq!(disks(&restored), disks(&original));
    wait_console(&dir, id, "NOVUM-READY", unrescuing);
    type_on_console(id, disk_list);
    wait_console(&dir, id, "NOVUM-DISKS vda END", unrescuing);
    driver.destroy(id).expect("destroy");
    drop(runtime);
}
