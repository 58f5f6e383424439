//! Guest consoles: the serial device of a domain (its log file, and a TCP
//! listener when the serial console is enabled), the choice of its port,
//! and reading the log back (Nova's `get_console_output` and
//! `get_serial_console` of the libvirt driver).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::path::Path;

use novum_wire::{MAX_CONSOLE_BYTES, printable_console, tail_lines};

use super::DriverError;
use super::xml::escape;

/// Nova's `[serial_console] port_range` default.
pub const DEFAULT_SERIAL_PORT_RANGE: RangeInclusive<u16> = 10000..=20000;

/// Nova's `[serial_console] proxyclient_address`/listen default.
pub const DEFAULT_SERIAL_LISTEN: &str = "127.0.0.1";

pub use super::disks::CONSOLE_LOG;

/// The serial console of the domains a driver defines (Nova's
/// `[serial_console]` of a compute host). Without it (the default, as in
/// Nova) guests get a `pty` serial device that only logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialConsoleOptions {
    /// Address the guests' serial ports listen on (`127.0.0.1`; a host whose
    /// controller runs elsewhere needs an address the controller reaches).
    pub listen: String,
    /// Address the controller's console proxy connects to; `None`: `listen`
    /// (`run_agent` puts the host's IP here when `listen` is `0.0.0.0`/`::`).
    pub proxyclient_address: Option<String>,
    /// TCP ports to choose from; a port in use (bound on the host, or in
    /// another domain's definition) is skipped.
    pub port_range: RangeInclusive<u16>,
}

impl Default for SerialConsoleOptions {
    fn default() -> Self {
        Self {
            listen: DEFAULT_SERIAL_LISTEN.to_string(),
            proxyclient_address: None,
            port_range: DEFAULT_SERIAL_PORT_RANGE,
        }
    }
}

impl SerialConsoleOptions {
    /// The address the console proxy connects to.
    pub fn proxy_address(&self) -> &str {
        self.proxyclient_address.as_deref().unwrap_or(&self.listen)
    }
}

/// Parses a port range written as Nova writes it (`10000:20000`).
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (start, end) = text
        .split_once(':')
        .ok_or_else(|| format!("port range {text:?} is not <first>:<last>"))?;
    let parse = |port: &str| {
        port.trim()
            .parse::<u16>()
            .map_err(|_| format!("port range {text:?}: {port:?} is not a port"))
    };
    let (start, end) = (parse(start)?, parse(end)?);
    if start == 0 || start > end {
        return Err(format!("port range {text:?} is empty"));
    }
    Ok(start..=end)
}

/// Where a guest's serial console listens (a `tcp` serial device in bind mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialListen {
    /// Listen address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// The serial device and console of a domain, each line indented by
/// `indent`: serial port 0 logs to `<instance_dir>/console.log` (written
/// afresh at each start), and listens on `listen` (raw TCP) when given,
/// else is a `pty`.
pub fn serial_xml(instance_dir: &str, listen: Option<&SerialListen>, indent: &str) -> String {
    let log = format!(
        "<log file='{}/{CONSOLE_LOG}' append='off'/>",
        escape(instance_dir)
    );
    let mut xml = String::new();
    // Writing to a String cannot fail.
    match listen {
        Some(listen) => {
            let source = format!(
                "<source mode='bind' host='{}' service='{}'/>",
                escape(&listen.host),
                listen.port
            );
            let _ = writeln!(xml, "{indent}<serial type='tcp'>");
            let _ = writeln!(xml, "{indent}  {source}");
            let _ = writeln!(xml, "{indent}  <protocol type='raw'/>");
            let _ = writeln!(xml, "{indent}  {log}");
            let _ = writeln!(xml, "{indent}  <target port='0'/>");
            let _ = writeln!(xml, "{indent}</serial>");
            let _ = writeln!(xml, "{indent}<console type='tcp'>");
            let _ = writeln!(xml, "{indent}  {source}");
            let _ = writeln!(xml, "{indent}  <protocol type='raw'/>");
            let _ = writeln!(xml, "{indent}  <target type='serial' port='0'/>");
            let _ = writeln!(xml, "{indent}</console>");
        }
        None => {
            let _ = writeln!(xml, "{indent}<serial type='pty'>");
            let _ = writeln!(xml, "{indent}  {log}");
            let _ = writeln!(xml, "{indent}  <target port='0'/>");
            let _ = writeln!(xml, "{indent}</serial>");
            let _ = writeln!(xml, "{indent}<console type='pty'>");
            let _ = writeln!(xml, "{indent}  <target type='serial' port='0'/>");
            let _ = writeln!(xml, "{indent}</console>");
        }
    }
    xml
}

/// The TCP listeners of a domain's serial devices, in document order.
pub fn serial_listeners(domain_xml: &str) -> Result<Vec<SerialListen>, DriverError> {
    let document =
        roxmltree::Document::parse(domain_xml).map_err(|e| DriverError::Xml(e.to_string()))?;
    let listeners = document
        .descendants()
        .filter(|node| node.has_tag_name("serial") && node.attribute("type") == Some("tcp"))
        .filter_map(|serial| {
            let source = serial.children().find(|node| {
                node.has_tag_name("source") && node.attribute("mode") == Some("bind")
            })?;
            Some(SerialListen {
                host: source
                    .attribute("host")
                    .unwrap_or(DEFAULT_SERIAL_LISTEN)
                    .to_string(),
                port: source.attribute("service")?.parse().ok()?,
            })
        })
        .collect();
    Ok(listeners)
}

/// A free port of `options.port_range`: in no other domain's definition
/// (`taken`) and bindable on the listen address now (Nova's
/// `acquire_port`). The caller keeps others from choosing until the domain
/// that gets it is defined.
pub fn choose_port(
    options: &SerialConsoleOptions,
    taken: &HashSet<u16>,
) -> Result<u16, DriverError> {
    options
        .port_range
        .clone()
        .filter(|port| !taken.contains(port))
        .find(|&port| TcpListener::bind((options.listen.as_str(), port)).is_ok())
        .ok_or_else(|| {
            DriverError::Unsupported(format!(
                "no free serial console port in {}:{} on {}",
                options.port_range.start(),
                options.port_range.end(),
                options.listen
            ))
        })
}

/// The guest's console log at `path`: its last [`MAX_CONSOLE_BYTES`],
/// tailed to `lines` (see [`tail_lines`]), as printable text. A log that
/// does not exist (the guest never ran, or libvirt's test driver, which
/// runs nothing) is empty.
pub fn read_console_log(path: &Path, lines: Option<u32>) -> Result<String, DriverError> {
    let unreadable = |error: std::io::Error| DriverError::Libvirt {
        op: "read the console log",
        message: format!("{}: {error}", path.display()),
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(error) => return Err(unreadable(error)),
    };
    let length = file.metadata().map_err(unreadable)?.len();
    let start = length.saturating_sub(MAX_CONSOLE_BYTES as u64);
    file.seek(SeekFrom::Start(start)).map_err(unreadable)?;
    let mut bytes = Vec::with_capacity(MAX_CONSOLE_BYTES.min(length as usize));
    file.take(MAX_CONSOLE_BYTES as u64)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(printable_console(tail_lines(&text, lines)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_device_logs_and_listens_when_asked() {
        let listen = SerialListen {
            host: "10.0.0.2".into(),
            port: 10001,
        };
        let xml = format!(
            "<domain><devices>\n{}</devices></domain>",
            serial_xml("/var/lib/novum/i'1", Some(&listen), "    ")
        );
        assert!(xml.contains("<log file='/var/lib/novum/i&apos;1/console.log' append='off'/>"));
        assert_eq!(serial_listeners(&xml).unwrap(), vec![listen]);
        let pty = format!(
            "<domain><devices>{}</devices></domain>",
            serial_xml("/d", None, "")
        );
        assert!(pty.contains("<serial type='pty'>") && pty.contains("/d/console.log"));
        assert!(serial_listeners(&pty).unwrap().is_empty());
    }

    #[test]
    fn ports_in_use_are_skipped() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        let options = SerialConsoleOptions {
            port_range: busy..=busy.saturating_add(2),
            ..SerialConsoleOptions::default()
        };
        let taken = HashSet::from([busy.saturating_add(1)]);
        match choose_port(&options, &taken) {
            Ok(port) => assert_eq!(port, busy.saturating_add(2)),
            // Someone else holds the last one: still never a busy port.
            Err(error) => assert!(error.to_string().contains("no free serial console port")),
        }
        let one = SerialConsoleOptions {
            port_range: busy..=busy,
            ..SerialConsoleOptions::default()
        };
        assert!(
            choose_port(&one, &HashSet::new()).is_err(),
            "bound port chosen"
        );
        assert_eq!(parse_port_range("10000:20000"), Ok(10000..=20000));
        assert!(parse_port_range("20000:10000").is_err());
        assert!(parse_port_range("10000").is_err());
    }

    #[test]
    fn console_log_is_bounded_tailed_and_printable() {
        let dir = std::env::temp_dir().join(format!("novum-console-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONSOLE_LOG);
        assert_eq!(read_console_log(&path, None).unwrap(), "", "no log yet");
        let mut log = "x".repeat(MAX_CONSOLE_BYTES);
        log.push_str("\nboot\u{1b}[0m\r\nNOVUM-READY\n");
        std::fs::write(&path, &log).unwrap();
        let all = read_console_log(&path, None).unwrap();
        assert!(all.len() <= MAX_CONSOLE_BYTES && all.ends_with("boot[0m\nNOVUM-READY\n"));
        assert_eq!(read_console_log(&path, Some(2)).unwrap(), "NOVUM-READY\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
