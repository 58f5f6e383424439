//! A real guest for tests: novum's test guest (target/test-guest, built by
//! tests/guest/build.sh) booted on `qemu:///system` under TCG, from its
//! kernel and initramfs, with a config drive CD-ROM, one NIC on a Linux
//! bridge, and its serial console in a file. Every piece (the directory,
//! the bridge, the domain) goes when its guard is dropped, even on failure.
//! Shared by the agent's and the controller suite's real-guest tests
//! (`#[path]`-included).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use novum_agent::driver::{config_drive_xml, ensure_bridge, interface_xml};
use novum_wire::InterfaceSpec;
use uuid::Uuid;

/// How long a guest may take to reach NOVUM-READY (TCG on a loaded
/// 2-core machine; it takes ~5 s alone).
pub const READY_WITHIN: Duration = Duration::from_secs(150);

/// A directory readable by the libvirt-qemu user; removed when dropped.
pub struct TestDir(pub PathBuf);

impl TestDir {
    /// A fresh directory under the temp dir, mode 0755.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("novum-guest-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("test dir");
        set_mode(&dir, 0o755);
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sets the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A Linux bridge made with the agent's `ensure_bridge`, deleted when dropped.
pub struct Bridge(pub String);

impl Bridge {
    /// Makes (or takes) bridge `name`.
    pub fn new(name: &str) -> Self {
        ensure_bridge(name, None).expect("bridge");
        Bridge(name.to_string())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// A running transient domain; destroyed (and so gone) when dropped.
pub struct Guest {
    domain: virt::domain::Domain,
    conn: virt::connect::Connect,
    /// Its serial console's log.
    pub console: PathBuf,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.domain.destroy();
        let _ = self.conn.close();
    }
}

impl Guest {
    /// Boots the test guest as instance `instance` in `dir`, with the
    /// config drive `config_drive` (an ISO) and the NIC `interface`.
    pub fn boot(
        dir: &TestDir,
        instance: Uuid,
        config_drive: &Path,
        interface: &InterfaceSpec,
    ) -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("target/test-guest"))
            .find(|dir| dir.join("vmlinuz").exists())
            .expect(
                "the test guest is missing: run tests/guest/build.sh (tests/bootstrap.sh does)",
            );
        for name in ["vmlinuz", "initrd.img"] {
            std::fs::copy(source.join(name), dir.0.join(name)).expect("copy the test guest");
            set_mode(&dir.0.join(name), 0o644);
        }
        let console = dir.0.join("console.log");
        let xml = format!(
            "<domain type='qemu'>
  <name>novum-test-{short}</name>
  <uuid>{instance}</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
{cdrom}{nic}    <serial type='file'>
      <source path='{console}'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>",
            short = &instance.to_string()[..8],
            kernel = dir.0.join("vmlinuz").display(),
            initrd = dir.0.join("initrd.img").display(),
            cdrom = config_drive_xml(&config_drive.display().to_string(), true, "    "),
            nic = interface_xml(interface, "    "),
            console = console.display(),
        );
        let conn = virt::connect::Connect::open(Some("qemu:///system")).expect("qemu:///system");
        let domain = virt::domain::Domain::create_xml(&conn, &xml, 0).expect("start the guest");
        Guest {
            domain,
            conn,
            console,
        }
    }

    /// The console log once it holds `marker` (or the time is up).
    pub fn console_until(&self, marker: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.console).unwrap_or_default();
            if text.contains(marker) || start.elapsed() > limit {
                return text;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// User data that fetches `path` from the metadata service and prints the
/// body on one console line `NOVUM-MD <body>`. (busybox-static's wget
/// segfaults in the test guest: a plain HTTP/1.0 request through nc does
/// what it would.)
pub fn fetch_script(path: &str) -> String {
    format!(
        "#!/bin/sh\necho \"NOVUM-MD $(printf 'GET {path} HTTP/1.0\\r\\nHost: 169.254.169.254\\r\\n\\r\\n' | nc -w 10 169.254.169.254 80 2>&1 | tail -n 1)\"\n"
    )
}

/// The `NOVUM-MD` line of a console (what [`fetch_script`] fetched).
pub fn fetched(console: &str) -> &str {
    console
        .lines()
        .find_map(|line| line.strip_prefix("NOVUM-MD "))
        .unwrap_or_else(|| panic!("no NOVUM-MD line: {console}"))
}
