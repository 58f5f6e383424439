//! Issue 14's real-guest live migration: two libvirt daemons on this
//! machine, each in its own network namespace and mount namespace (its own
//! run, state, cache, log and config directories, its own host UUID,
//! listening on TCP inside its namespace), a real QEMU (TCG) guest — the
//! test guest of tests/guest, configured from a config drive — on a bridge
//! in the first, a peer namespace on the same layer-2 segment as both
//! hosts' bridges. The peer pings the guest every 50 ms while novum's
//! libvirt driver (`VirtDriver::live_migrate` on the source's daemon, then
//! `post_live_migration` on the destination's: peer to peer,
//! `LIVE | PERSIST_DEST | UNDEFINE_SOURCE`) moves it to the second daemon.
//! The test prints the measured loss, the migration's wall time and QEMU's
//! downtime, and requires the guest to keep answering from its new host
//! with nothing left on the old one. It skips, saying why, on a machine
//! without root, `ip`, `libvirtd`, QEMU or the test guest.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use novum_agent::driver::{LibvirtDriver, LibvirtOptions, LiveMigrationJob, VirtDriver, VirtType};
use novum_tests::fleet::{self, Libvirtd};
use novum_wire::{ConfigDriveFile, FlavorSpec, ImageSpec, SpawnSpec};
use uuid::Uuid;

/// The guest's address and its peer's (inside the test's namespaces only).
const GUEST_IP: &str = "10.251.249.10";
const PEER_IP: &str = "10.251.249.1";
const MAC: &str = "52:54:00:4e:4d:01";

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program).args(args).output()?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args)
}

/// Why this machine cannot run the test, if it cannot.
fn unavailable(guest: &Path) -> Option<String> {
    if let Some(reason) = fleet::libvirtd_unavailable() {
        return Some(reason);
    }
    if !guest.join("vmlinuz").exists() {
        return Some(format!(
            "no test guest in {} (tests/bootstrap.sh builds it)",
            guest.display()
        ));
    }
    None
}

/// Two daemon namespaces, a peer namespace, their links and the daemons;
/// all removed when dropped (also when the test fails).
struct TwoDaemons {
    tag: String,
    dir: PathBuf,
    /// The daemons (the harness's, as a fleet host's), dropped before the
    /// namespaces go.
    daemons: Vec<Libvirtd>,
}

impl TwoDaemons {
    fn namespace(&self, which: &str) -> String {
        format!("{}{which}", self.tag)
    }

    /// The libvirt URI of daemon `n` (1 or 2), through its socket.
    fn uri(&self, n: usize) -> String {
        self.daemons[n - 1].uri()
    }

    fn start(dir: PathBuf) -> anyhow::Result<Self> {
        let tag = format!("lm{}", std::process::id() % 10_000);
        std::fs::create_dir_all(&dir)?;
        let mut this = Self {
            tag,
            dir,
            daemons: Vec::new(),
        };
        let (one, two, peer) = (
            this.namespace("a"),
            this.namespace("b"),
            this.namespace("p"),
        );
        for ns in [&one, &two, &peer] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // The daemons' link (migration traffic).
        let (ua, ub) = (format!("{}ma", this.tag), format!("{}mb", this.tag));
        ip(&["link", "add", &ua, "type", "veth", "peer", "name", &ub])?;
        for (end, ns, address) in [
            (&ua, &one, "10.251.248.1/24"),
            (&ub, &two, "10.251.248.2/24"),
        ] {
            ip(&["link", "set", end, "netns", ns])?;
            ip(&["-n", ns, "addr", "add", address, "dev", end])?;
            ip(&["-n", ns, "link", "set", end, "up"])?;
        }
        // One layer-2 segment: each host's bridge `lmbr` to the peer's.
        ip(&["-n", &peer, "link", "add", "pbr", "type", "bridge"])?;
        ip(&["-n", &peer, "link", "set", "pbr", "up"])?;
        ip(&[
            "-n",
            &peer,
            "addr",
            "add",
            &format!("{PEER_IP}/24"),
            "dev",
            "pbr",
        ])?;
        for (n, ns) in [(1, &one), (2, &two)] {
            let (host_end, peer_end) = (format!("{}h{n}", this.tag), format!("{}p{n}", this.tag));
            ip(&["-n", ns, "link", "add", "lmbr", "type", "bridge"])?;
            ip(&["-n", ns, "link", "set", "lmbr", "up"])?;
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &peer_end,
            ])?;
            ip(&["link", "set", &host_end, "netns", ns])?;
            ip(&["link", "set", &peer_end, "netns", &peer])?;
            ip(&["-n", ns, "link", "set", &host_end, "master", "lmbr"])?;
            ip(&["-n", ns, "link", "set", &host_end, "up"])?;
            ip(&["-n", &peer, "link", "set", &peer_end, "master", "pbr"])?;
            ip(&["-n", &peer, "link", "set", &peer_end, "up"])?;
        }
        for (n, ns) in [(1, &one), (2, &two)] {
            let daemon =
                Libvirtd::start(ns, this.dir.join(format!("h{n}")), &format!("lm-host-{n}"))?;
            this.daemons.push(daemon);
        }
        Ok(this)
    }
}

impl Drop for TwoDaemons {
    fn drop(&mut self) {
        // Their domains destroyed, the daemons stopped.
        self.daemons.clear();
        for which in ["a", "b", "p"] {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.namespace(which)])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config_drive(uuid: Uuid, path: &Path) -> anyhow::Result<()> {
    let file = |path: &str, content: String| ConfigDriveFile {
        path: path.to_string(),
        content_base64: base64::engine::general_purpose::STANDARD.encode(content),
    };
    let files = [
        file(
            "openstack/latest/meta_data.json",
            format!("{{\"uuid\": \"{uuid}\", \"hostname\": \"lmguest\"}}"),
        ),
        file(
            "openstack/latest/network_data.json",
            format!(
                "{{\"links\": [{{\"id\": \"tap0\", \"type\": \"bridge\", \"ethernet_mac_address\": \"{MAC}\"}}], \
                 \"networks\": [{{\"id\": \"n0\", \"type\": \"ipv4\", \"link\": \"tap0\", \"ip_address\": \"{GUEST_IP}\", \"netmask\": \"255.255.255.0\"}}]}}"
            ),
        ),
    ];
    novum_agent::config_drive::build(&files, path)?;
    Ok(())
}

fn spec() -> SpawnSpec {
    SpawnSpec {
        name: "lmguest".to_string(),
        flavor: FlavorSpec {
            name: "tiny".to_string(),
            vcpus: 1,
            memory_mb: 256,
            root_gb: 0,
            ephemeral_gb: 0,
            swap_mb: 0,
        },
        image: ImageSpec {
            id: String::new(),
            properties: Default::default(),
        },
        user_data: None,
        metadata: Default::default(),
        interfaces: Vec::new(),
        project_id: None,
        config_drive: None,
    }
}

#[test]
fn a_real_guest_keeps_answering_while_it_live_migrates_between_two_libvirt_daemons() {
    let guest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("target/test-guest");
    if let Some(reason) = unavailable(&guest) {
        eprintln!("skipped: {reason}");
        return;
    }
    let _turn = novum_tests::shared_turn();
    let dir = std::env::temp_dir().join(format!("novum-live-real-{}", std::process::id()));
    let daemons = TwoDaemons::start(dir.clone()).expect("two libvirt daemons");
    let uuid = Uuid::new_v4();
    let iso = dir.join("config.iso");
    config_drive(uuid, &iso).expect("config drive");
    let xml = format!(
        "<domain type='qemu'><name>lmguest</name><uuid>{uuid}</uuid><memory unit='MiB'>256</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kernel}</kernel><initrd>{initrd}</initrd>\
         <cmdline>console=ttyS0</cmdline></os><features><acpi/></features><devices>\
         <disk type='file' device='cdrom'><source file='{iso}'/><target dev='hdc' bus='ide'/><readonly/></disk>\
         <interface type='bridge'><source bridge='lmbr'/><mac address='{MAC}'/><model type='virtio'/></interface>\
         <serial type='file'><source path='{console}'/></serial></devices></domain>",
        kernel = guest.join("vmlinuz").display(),
        initrd = guest.join("initrd.img").display(),
        iso = iso.display(),
        console = dir.join("console.log").display(),
    );
    let xml_file = dir.join("guest.xml");
    std::fs::write(&xml_file, xml).expect("domain xml");
    run(
        "virsh",
        &[
            "-c",
            &daemons.uri(1),
            "create",
            &xml_file.display().to_string(),
        ],
    )
    .expect("the guest starts on the first daemon");
    let peer = daemons.namespace("p");
    let answered = |count: &str, wait: &str| {
        Command::new("ip")
            .args([
                "netns", "exec", &peer, "ping", "-c", count, "-W", wait, GUEST_IP,
            ])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !answered("1", "1") {
        assert!(
            Instant::now() < deadline,
            "the guest never answered; console:\n{}",
            std::fs::read_to_string(dir.join("console.log")).unwrap_or_default()
        );
    }
    let options = |n: u8| LibvirtOptions {
        instances_path: dir.join(format!("h{n}/instances")).display().to_string(),
        virt_type: VirtType::Qemu,
        ..LibvirtOptions::default()
    };
    let source = LibvirtDriver::open(&daemons.uri(1), options(1)).expect("source driver");
    let destination = LibvirtDriver::open(&daemons.uri(2), options(2)).expect("destination driver");
    // 50 ms pings for 20 s around the move.
    let pinger = Command::new("ip")
        .args([
            "netns", "exec", &peer, "ping", "-i", "0.05", "-w", "20", GUEST_IP,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_secs(2));
    let spec = spec();
    let started = Instant::now();
    source
        .live_migrate(
            uuid,
            &LiveMigrationJob {
                destination: "second",
                destination_ip: "10.251.248.2",
                block_migration: false,
                spec: &spec,
            },
        )
        .expect("live migration");
    let took = started.elapsed();
    destination
        .post_live_migration(uuid, &spec)
        .expect("post live migration");
    let output = pinger.wait_with_output().expect("ping ends");
    let text = String::from_utf8_lossy(&output.stdout);
    let summary = text
        .lines()
        .find(|line| line.contains("packets transmitted"))
        .unwrap_or_default()
        .to_string();
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect();
    let (sent, received) = (
        numbers.first().copied().unwrap_or(0),
        numbers.get(1).copied().unwrap_or(0),
    );
    let downtime = run(
        "virsh",
        &[
            "-c",
            &daemons.uri(2),
            "domjobinfo",
            "lmguest",
            "--completed",
        ],
    )
    .unwrap_or_default()
    .lines()
    .find(|line| line.starts_with("Total downtime"))
    .unwrap_or("Total downtime: unknown")
    .to_string();
    eprintln!(
        "measured: live migration of a 256 MiB TCG guest between two libvirt daemons in {:.2} s; \
         {} of {sent} pings (50 ms apart) lost; {downtime}",
        took.as_secs_f64(),
        sent - received
    );
    assert!(sent > 0 && received > 0, "{text}");
    assert!(
        sent - received <= 20,
        "the guest stopped answering for over a second: {summary}"
    );
    assert_eq!(
        source.power_state(uuid).expect("source state"),
        None,
        "nothing left on the source"
    );
    assert_eq!(
        destination.power_state(uuid).expect("destination state"),
        Some(novum_wire::PowerState::Running)
    );
    assert!(answered("3", "1"), "the guest answers from its new host");
    drop(source);
    drop(destination);
    drop(daemons);
}
