//! The Linux bridge of a network on this host, made with `ip link` (iproute2).
//!
//! Each network an instance on this host has a port on gets one bridge
//! (`brq<network id[..11]>`, see [`novum_wire::bridge_name`]); libvirt makes
//! the instance's tap device and plugs it into the bridge when the domain
//! starts or the interface is hot-plugged. The agent only makes sure the
//! bridge exists and is up. Bridges are never removed here: other instances
//! may still use them, and an empty bridge costs nothing.

use std::io;
use std::path::Path;
use std::process::Command;

use tracing::info;

use super::DriverError;

/// Longest Linux network device name, in bytes (`IFNAMSIZ` - 1).
pub const MAX_DEVICE_NAME: usize = 15;

/// Where Linux shows its network devices.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// Whether `name` can name a Linux network device and be passed to `ip`
/// as is: 1 to 15 bytes of ASCII letters, digits, `-`, `_` and `.`, and
/// not `.` or `..`.
pub fn valid_device_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DEVICE_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a device name stands for on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// No such device.
    Missing,
    /// A Linux bridge.
    Bridge,
    /// A device that is not a bridge.
    Other,
}

/// What `name` is on this host (read from `/sys/class/net`).
pub fn device_kind(name: &str) -> io::Result<DeviceKind> {
    let dir = Path::new(SYS_CLASS_NET).join(name);
    if !dir.try_exists()? {
        return Ok(DeviceKind::Missing);
    }
    Ok(if dir.join("bridge").try_exists()? {
        DeviceKind::Bridge
    } else {
        DeviceKind::Other
    })
}

fn failure(bridge: &str, message: impl Into<String>) -> DriverError {
    DriverError::HostNetwork {
        bridge: bridge.to_string(),
        message: message.into(),
    }
}

/// Runs `ip` with `args`; its stderr is the error.
fn ip(bridge: &str, args: &[&str]) -> Result<(), DriverError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| failure(bridge, format!("cannot run `ip {}`: {e}", args.join(" "))))?;
    if output.status.success() {
        return Ok(());
    }
    Err(failure(
        bridge,
        format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    ))
}

/// Makes sure the Linux bridge `name` exists and is up: a missing one is
/// created (`ip link add <name> type bridge`) with `mtu` when given, then
/// set up. A bridge that exists is only set up (its MTU is left as it is: an
/// operator's bridge is the operator's). Idempotent, and safe against a
/// concurrent creator. A name that is not a device name, or a device of that
/// name that is not a bridge, is an error.
pub fn ensure_bridge(name: &str, mtu: Option<u32>) -> Result<(), DriverError> {
    if !valid_device_name(name) {
        return Err(failure(name, "not a valid Linux device name"));
    }
    let kind = |name| device_kind(name).map_err(|e| failure(name, e.to_string()));
    match kind(name)? {
        DeviceKind::Bridge => {}
        DeviceKind::Other => {
            return Err(failure(
                name,
                "a network device of that name exists and is not a bridge",
            ));
        }
        DeviceKind::Missing => {
            let created = ip(name, &["link", "add", "name", name, "type", "bridge"]);
            match (created, kind(name)?) {
                (Ok(()), _) => {
                    info!(bridge = name, ?mtu, "created the network's bridge");
                    if let Some(mtu) = mtu {
                        ip(name, &["link", "set", "dev", name, "mtu", &mtu.to_string()])?;
                    }
                }
                // Someone else made it meanwhile.
                (Err(_), DeviceKind::Bridge) => {}
                (Err(e), _) => return Err(e),
            }
        }
    }
    ip(name, &["link", "set", "dev", name, "up"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert!(valid_device_name("brq1a81968a-79"));
        assert!(valid_device_name("br_0.100"));
        for bad in [
            "",
            ".",
            "..",
            "brq1a81968a-79x1",
            "br q",
            "br/q",
            "br:0",
            "brq\u{0}",
            "bré",
        ] {
            assert!(!valid_device_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_invalid_name_fails_before_running_anything() {
        match ensure_bridge("../etc", None) {
            Err(DriverError::HostNetwork { bridge, message }) => {
                assert_eq!(bridge, "../etc");
                assert!(message.contains("not a valid"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn loopback_is_not_a_bridge() {
        if !Path::new(SYS_CLASS_NET).join("lo").exists() {
            eprintln!("skipped: no /sys/class/net/lo on this machine");
            return;
        }
        assert_eq!(device_kind("lo").unwrap(), DeviceKind::Other);
        match ensure_bridge("lo", Some(1500)) {
            Err(DriverError::HostNetwork { message, .. }) => {
                assert!(message.contains("not a bridge"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
