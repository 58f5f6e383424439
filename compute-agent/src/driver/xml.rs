//! libvirt XML: reading the capabilities document, writing domain definitions and
//! test-driver node files.

use std::fmt::Write as _;

use novum_wire::{CpuInfo, CpuTopology, InterfaceSpec, SpawnSpec, SupportedInstance};
use uuid::Uuid;

use super::DriverError;
use super::console::{SerialListen, serial_xml};

/// VM mode used when the image does not ask for one.
pub const DEFAULT_VM_MODE: &str = "hvm";

/// Hypervisor types preferred, best first, when the image does not name one.
const PREFERRED_HV_TYPES: [&str; 3] = ["kvm", "qemu", "test"];

/// What the capabilities document says about the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The host CPU.
    pub cpu: CpuInfo,
    /// Every (arch, hv_type, vm_mode) with a guest definition.
    pub supported_instances: Vec<SupportedInstance>,
}

/// Parse libvirt's capabilities XML (`virConnectGetCapabilities`).
pub fn parse_capabilities(xml: &str) -> Result<Capabilities, DriverError> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| DriverError::Xml(format!("capabilities: {e}")))?;
    let root = doc.root_element();
    let host_cpu = child(root, "host").and_then(|host| child(host, "cpu"));
    let text_of = |name: &str| {
        host_cpu
            .and_then(|cpu| child(cpu, name))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let arch = text_of("arch").ok_or_else(|| {
        DriverError::Xml("capabilities: no <host><cpu><arch> element".to_string())
    })?;
    let mut features = Vec::new();
    let mut topology = CpuTopology::default();
    if let Some(cpu) = host_cpu {
        for node in cpu.children().filter(roxmltree::Node::is_element) {
            match node.tag_name().name() {
                // QEMU/KVM hosts: <feature name='vmx'/>.
                "feature" => features.extend(node.attribute("name").map(str::to_string)),
                // Older drivers (and the test driver): <features><pae/></features>.
                "features" => features.extend(
                    node.children()
                        .filter(roxmltree::Node::is_element)
                        .map(|f| f.tag_name().name().to_string()),
                ),
                "topology" => {
                    let attr = |name| {
                        node.attribute(name)
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0)
                    };
                    topology = CpuTopology {
                        sockets: attr("sockets"),
                        cores: attr("cores"),
                        threads: attr("threads"),
                    };
                }
                _ => {}
            }
        }
    }
    features.sort();
    features.dedup();

    let mut supported_instances = Vec::new();
    for guest in root.children().filter(|n| n.has_tag_name("guest")) {
        let Some(vm_mode) = child(guest, "os_type").and_then(|n| n.text()) else {
            continue;
        };
        for arch_node in guest.children().filter(|n| n.has_tag_name("arch")) {
            let Some(guest_arch) = arch_node.attribute("name") else {
                continue;
            };
            for domain in arch_node.children().filter(|n| n.has_tag_name("domain")) {
                if let Some(hv_type) = domain.attribute("type") {
                    let triple = SupportedInstance {
                        arch: guest_arch.to_string(),
                        hv_type: hv_type.to_string(),
                        vm_mode: vm_mode.trim().to_string(),
                    };
                    if !supported_instances.contains(&triple) {
                        supported_instances.push(triple);
                    }
                }
            }
        }
    }

    Ok(Capabilities {
        cpu: CpuInfo {
            arch,
            model: text_of("model"),
            vendor: text_of("vendor"),
            features,
            topology,
        },
        supported_instances,
    })
}

/// The `<cpu>` document of `cpu` that Nova's `_compare_cpu` gives
/// libvirt's CPU comparison: arch, model, vendor, topology (when known)
/// and every feature required.
pub fn cpu_xml(cpu: &CpuInfo) -> String {
    let mut out = String::from("<cpu>\n");
    let _ = writeln!(out, "  <arch>{}</arch>", escape(&cpu.arch));
    if let Some(model) = &cpu.model {
        let _ = writeln!(out, "  <model>{}</model>", escape(model));
    }
    if let Some(vendor) = &cpu.vendor {
        let _ = writeln!(out, "  <vendor>{}</vendor>", escape(vendor));
    }
    let CpuTopology {
        sockets,
        cores,
        threads,
    } = cpu.topology;
    if sockets > 0 && cores > 0 && threads > 0 {
        let _ = writeln!(
            out,
            "  <topology sockets='{sockets}' cores='{cores}' threads='{threads}'/>"
        );
    }
    for feature in &cpu.features {
        let _ = writeln!(
            out,
            "  <feature policy='require' name='{}'/>",
            escape(feature)
        );
    }
    out.push_str("</cpu>\n");
    out
}

fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children().find(|n| n.has_tag_name(name))
}

/// Nova's canonical spelling of an architecture name (`amd64` → `x86_64`).
pub fn canonical_arch(arch: &str) -> String {
    let arch = arch.trim().to_ascii_lowercase();
    match arch.as_str() {
        "amd64" | "x64" => "x86_64".to_string(),
        "x86" | "i386" | "i486" | "i586" => "i686".to_string(),
        "arm64" => "aarch64".to_string(),
        _ => arch,
    }
}

/// Adds, for each of `archs` (canonical names), the (hv_type, vm_mode) pairs
/// the host already supports, as guests of that architecture.
pub fn add_guest_archs(caps: &mut Capabilities, archs: &[String]) {
    let modes: Vec<(String, String)> = caps
        .supported_instances
        .iter()
        .map(|s| (s.hv_type.clone(), s.vm_mode.clone()))
        .collect();
    for arch in archs.iter().map(|arch| canonical_arch(arch)) {
        for (hv_type, vm_mode) in &modes {
            let triple = SupportedInstance {
                arch: arch.clone(),
                hv_type: hv_type.clone(),
                vm_mode: vm_mode.clone(),
            };
            if !caps.supported_instances.contains(&triple) {
                caps.supported_instances.push(triple);
            }
        }
    }
}

/// Choose the guest (arch, hv_type, vm_mode) for an image on this host: the
/// image's properties where it sets them, otherwise the host architecture, `hvm`
/// and the best available hypervisor type.
pub fn choose_guest(
    caps: &Capabilities,
    spec: &SpawnSpec,
) -> Result<SupportedInstance, DriverError> {
    let arch = spec
        .image
        .architecture()
        .map(canonical_arch)
        .unwrap_or_else(|| caps.cpu.arch.clone());
    let vm_mode = spec
        .image
        .vm_mode()
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_else(|| DEFAULT_VM_MODE.to_string());
    let wanted_hv = spec.image.hv_type().map(|t| t.trim().to_ascii_lowercase());
    let candidates: Vec<&SupportedInstance> = caps
        .supported_instances
        .iter()
        .filter(|s| s.arch == arch && s.vm_mode == vm_mode)
        .filter(|s| wanted_hv.as_deref().is_none_or(|hv| s.hv_type == hv))
        .collect();
    let best = PREFERRED_HV_TYPES
        .iter()
        .find_map(|hv| candidates.iter().find(|s| s.hv_type == *hv))
        .or(candidates.first())
        .copied();
    best.cloned().ok_or_else(|| {
        DriverError::Unsupported(format!(
            "this host cannot run arch={arch} hv_type={} vm_mode={vm_mode} (it supports: {})",
            wanted_hv.as_deref().unwrap_or("any"),
            caps.supported_instances
                .iter()
                .map(|s| format!("{}/{}/{}", s.arch, s.hv_type, s.vm_mode))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The libvirt domain name of an instance (`instance-<uuid>`).
pub fn domain_name(instance: Uuid) -> String {
    format!("instance-{instance}")
}

/// Where the domain's disks live (the disk files themselves are not created here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskLayout {
    /// Directory holding one sub-directory per instance.
    pub instances_path: String,
    /// A direct kernel boot (an image with `kernel_id`); `None`: boot from the root disk.
    pub kernel_boot: Option<KernelBoot>,
    /// Rescue mode: boot from the rescue disk with the root disk second;
    /// `None`: the instance's own disks.
    pub rescue: Option<RescueBoot>,
}

/// A rescued domain's layout (Nova's libvirt rescue): the rescue disk
/// (`disk.rescue`) as `vda`, the instance's root disk as `vdb`, the config
/// drive; no ephemeral or swap disk. The definition to restore at unrescue
/// travels in the rescue definition's `<metadata>` (see
/// [`rescued_original`]), so it lives as long as the domain does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescueBoot {
    /// The persistent definition the domain had before the rescue.
    pub original_definition: String,
}

/// The XML namespace of novum's rescue metadata.
const RESCUE_NAMESPACE: &str = "https://novum.dev/xmlns/libvirt/rescue/1.0";

/// The `<metadata>` element of a rescue definition: the original
/// definition, base64 (libvirt keeps metadata as XML it does not read).
fn rescue_metadata(rescue: &RescueBoot) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&rescue.original_definition);
    format!(
        "  <metadata>\n    <novum:rescue xmlns:novum='{RESCUE_NAMESPACE}'>\n      \
         <novum:original>{encoded}</novum:original>\n    </novum:rescue>\n  </metadata>\n"
    )
}

/// The definition a rescued domain had before its rescue, read from the
/// metadata of its rescue definition `domain_xml`; `None` when the domain
/// is not rescued.
pub fn rescued_original(domain_xml: &str) -> Result<Option<String>, DriverError> {
    use base64::Engine as _;
    let doc = parse_domain(domain_xml)?;
    let Some(encoded) = child(doc.root_element(), "metadata")
        .and_then(|metadata| {
            metadata
                .children()
                .find(|n| n.tag_name().namespace() == Some(RESCUE_NAMESPACE))
        })
        .and_then(|rescue| child(rescue, "original"))
        .map(|original| original.text().unwrap_or_default().trim().to_string())
    else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| DriverError::Xml(format!("rescue metadata: not base64: {e}")))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| DriverError::Xml(format!("rescue metadata: not UTF-8: {e}")))
}

/// The files and command line of a direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelBoot {
    /// The kernel file.
    pub kernel: String,
    /// The initial ramdisk file, when the image has a `ramdisk_id`.
    pub initrd: Option<String>,
    /// The kernel command line.
    pub cmdline: String,
}

/// The kernel command line of a direct kernel boot when the image sets no
/// `os_command_line` (Nova's libvirt driver: the root disk, and the kernel's
/// messages on the VGA and the serial console).
pub const DEFAULT_KERNEL_CMDLINE: &str = "root=/dev/vda console=tty0 console=ttyS0";

/// Machine type of x86 guests of QEMU/KVM when the image sets no
/// `hw_machine_type` (Nova's default for x86: `pc`, i440fx).
pub const DEFAULT_X86_MACHINE_TYPE: &str = "pc";

/// Domain XML for an instance, from its flavor and image, for `guest`
/// (see [`choose_guest`]).
///
/// `name` is `instance-<uuid>`, `uuid` the instance uuid, the display name goes
/// to `<title>`. Disks: the root disk as `vda`, then ephemeral (`vdb`) and swap
/// (`vdc`) when the flavor has them, as files under
/// `<instances_path>/<uuid>/`. Then one bridge interface per port, in the
/// spec's order (see [`interface_xml`]), then the serial device and console
/// (see [`serial_xml`]: logging to `<instances_path>/<uuid>/console.log`,
/// listening on `serial` when given). For the `test` hypervisor type the definition
/// stays within what libvirt's test driver accepts (no emulator, no driver
/// element).
pub fn domain_xml(
    instance: Uuid,
    spec: &SpawnSpec,
    guest: &SupportedInstance,
    disks: &DiskLayout,
    serial: Option<&SerialListen>,
) -> String {
    let is_test = guest.hv_type == "test";
    let mut xml = String::new();
    let dir = format!("{}/{instance}", disks.instances_path.trim_end_matches('/'));
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(xml, "<domain type='{}'>", escape(&guest.hv_type));
    let _ = writeln!(xml, "  <name>{}</name>", domain_name(instance));
    let _ = writeln!(xml, "  <uuid>{instance}</uuid>");
    let _ = writeln!(xml, "  <title>{}</title>", escape(&spec.name));
    if let Some(rescue) = &disks.rescue {
        xml.push_str(&rescue_metadata(rescue));
    }
    let _ = writeln!(
        xml,
        "  <memory unit='MiB'>{}</memory>",
        spec.flavor.memory_mb
    );
    let _ = writeln!(xml, "  <vcpu>{}</vcpu>", spec.flavor.vcpus.max(1));
    xml.push_str("  <os>\n");
    let machine = spec
        .image
        .machine_type()
        .or_else(|| {
            (!is_test && matches!(guest.arch.as_str(), "x86_64" | "i686"))
                .then_some(DEFAULT_X86_MACHINE_TYPE)
        })
        .map(|m| format!(" machine='{}'", escape(m)))
        .unwrap_or_default();
    let _ = writeln!(
        xml,
        "    <type arch='{}'{machine}>{}</type>",
        escape(&guest.arch),
        escape(&guest.vm_mode)
    );
    match &disks.kernel_boot {
        Some(boot) => {
            let _ = writeln!(xml, "    <kernel>{}</kernel>", escape(&boot.kernel));
            if let Some(initrd) = &boot.initrd {
                let _ = writeln!(xml, "    <initrd>{}</initrd>", escape(initrd));
            }
            let _ = writeln!(xml, "    <cmdline>{}</cmdline>", escape(&boot.cmdline));
        }
        None => xml.push_str("    <boot dev='hd'/>\n"),
    }
    xml.push_str("  </os>\n");
    if !is_test {
        xml.push_str("  <features>\n    <acpi/>\n    <apic/>\n  </features>\n");
    }
    xml.push_str("  <on_poweroff>destroy</on_poweroff>\n");
    xml.push_str("  <on_reboot>restart</on_reboot>\n");
    xml.push_str("  <on_crash>destroy</on_crash>\n");
    xml.push_str("  <devices>\n");
    let mut disk = |file: &str, dev: &str| {
        let _ = writeln!(xml, "    <disk type='file' device='disk'>");
        if !is_test {
            let _ = writeln!(xml, "      <driver name='qemu' type='qcow2'/>");
        }
        let _ = writeln!(xml, "      <source file='{}/{file}'/>", escape(&dir));
        let _ = writeln!(xml, "      <target dev='{dev}' bus='virtio'/>");
        let _ = writeln!(xml, "    </disk>");
    };
    if disks.rescue.is_some() {
        disk(super::disks::RESCUE_DISK, "vda");
        disk(super::disks::ROOT_DISK, "vdb");
    } else {
        disk(super::disks::ROOT_DISK, "vda");
        if spec.flavor.ephemeral_gb > 0 {
            disk(super::disks::EPHEMERAL_DISK, "vdb");
        }
        if spec.flavor.swap_mb > 0 {
            disk(super::disks::SWAP_DISK, "vdc");
        }
    }
    if spec.config_drive.is_some() {
        let image = format!("{dir}/{}", crate::config_drive::DISK_CONFIG);
        xml.push_str(&config_drive_xml(&image, !is_test, "    "));
    }
    for interface in &spec.interfaces {
        xml.push_str(&interface_xml(interface, "    "));
    }
    xml.push_str(&serial_xml(&dir, serial, "    "));
    if !is_test && novum_wire::qemu_guest_agent(&spec.image.properties) {
        // The QEMU guest agent's channel (Nova's `_add_qga_device`).
        xml.push_str(
            "    <channel type='unix'>\n      <source mode='bind'/>\n      \
             <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n",
        );
    }
    xml.push_str("  </devices>\n</domain>\n");
    xml
}

/// The config drive device: the volume `path` as a read-only raw CD-ROM
/// `hdd` on the IDE bus (Nova's), each line indented by `indent`; without
/// the `<driver>` element when not `with_driver` (libvirt's test driver
/// does not take it).
pub fn config_drive_xml(path: &str, with_driver: bool, indent: &str) -> String {
    let mut xml = String::new();
    let _ = writeln!(xml, "{indent}<disk type='file' device='cdrom'>");
    if with_driver {
        let _ = writeln!(xml, "{indent}  <driver name='qemu' type='raw'/>");
    }
    let _ = writeln!(xml, "{indent}  <source file='{}'/>", escape(path));
    let _ = writeln!(xml, "{indent}  <target dev='hdd' bus='ide'/>");
    let _ = writeln!(xml, "{indent}  <readonly/>");
    let _ = writeln!(xml, "{indent}</disk>");
    xml
}

/// The `<interface type='bridge'>` device of one port, each line indented
/// by `indent`: its MAC (lower case, as libvirt writes it), the bridge, the
/// host device `tap<port id[..11]>`, a virtio model and the network's MTU
/// when known. The same text defines the domain and hot-plugs the port.
pub fn interface_xml(interface: &InterfaceSpec, indent: &str) -> String {
    let mut xml = String::new();
    let _ = writeln!(xml, "{indent}<interface type='bridge'>");
    let _ = writeln!(
        xml,
        "{indent}  <mac address='{}'/>",
        escape(&interface.mac_address.to_ascii_lowercase())
    );
    let _ = writeln!(
        xml,
        "{indent}  <source bridge='{}'/>",
        escape(&interface.bridge)
    );
    let _ = writeln!(
        xml,
        "{indent}  <target dev='{}'/>",
        escape(&interface.tap_name())
    );
    let _ = writeln!(xml, "{indent}  <model type='virtio'/>");
    if let Some(mtu) = interface.mtu {
        let _ = writeln!(xml, "{indent}  <mtu size='{mtu}'/>");
    }
    let _ = writeln!(xml, "{indent}</interface>");
    xml
}

/// A bridge interface of a domain definition, as libvirt wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInterface {
    /// Its MAC address, lower case.
    pub mac_address: String,
    /// The bridge it plugs into, when it names one.
    pub bridge: Option<String>,
    /// Its `<mtu size>`, when set.
    pub mtu: Option<u32>,
    /// Its host-side device (`<target dev>`), when the definition names one
    /// (a running domain's live definition does).
    pub target: Option<String>,
    /// The element's text in the document (to detach exactly that device).
    pub xml: String,
}

fn domain_devices<'a, 'input>(
    doc: &'a roxmltree::Document<'input>,
) -> Result<roxmltree::Node<'a, 'input>, DriverError> {
    child(doc.root_element(), "devices")
        .ok_or_else(|| DriverError::Xml("domain: no <devices> element".to_string()))
}

fn parse_domain(xml: &str) -> Result<roxmltree::Document<'_>, DriverError> {
    roxmltree::Document::parse(xml).map_err(|e| DriverError::Xml(format!("domain: {e}")))
}

/// Every `<interface>` with a MAC address of a domain definition, in
/// document order.
pub fn domain_interfaces(domain_xml: &str) -> Result<Vec<DomainInterface>, DriverError> {
    let doc = parse_domain(domain_xml)?;
    let devices = domain_devices(&doc)?;
    Ok(devices
        .children()
        .filter(|n| n.has_tag_name("interface"))
        .filter_map(|node| {
            let mac = child(node, "mac")?.attribute("address")?;
            Some(DomainInterface {
                mac_address: mac.to_ascii_lowercase(),
                bridge: child(node, "source")
                    .and_then(|source| source.attribute("bridge"))
                    .map(str::to_string),
                mtu: child(node, "mtu")
                    .and_then(|mtu| mtu.attribute("size"))
                    .and_then(|size| size.parse().ok()),
                target: child(node, "target")
                    .and_then(|target| target.attribute("dev"))
                    .map(str::to_string),
                xml: domain_xml[node.range()].to_string(),
            })
        })
        .collect())
}

/// The target devices (`vda`, `hdd`, …) of every `<disk>` of a domain
/// definition, in document order (Nova's `_get_io_devices` volumes).
pub fn domain_disk_targets(domain_xml: &str) -> Result<Vec<String>, DriverError> {
    let doc = parse_domain(domain_xml)?;
    let devices = domain_devices(&doc)?;
    Ok(devices
        .children()
        .filter(|n| n.has_tag_name("disk"))
        .filter_map(|node| child(node, "target")?.attribute("dev").map(str::to_string))
        .collect())
}

/// The interface with MAC `mac_address` (any case) of a domain definition.
pub fn find_interface(
    domain_xml: &str,
    mac_address: &str,
) -> Result<Option<DomainInterface>, DriverError> {
    Ok(domain_interfaces(domain_xml)?
        .into_iter()
        .find(|i| i.mac_address.eq_ignore_ascii_case(mac_address)))
}

/// `domain_xml` with `device` added as the last of its devices.
pub fn with_device(domain_xml: &str, device: &str) -> Result<String, DriverError> {
    let doc = parse_domain(domain_xml)?;
    let devices = domain_devices(&doc)?;
    let range = devices.range();
    let element = &domain_xml[range.clone()];
    let mut out = String::with_capacity(domain_xml.len() + device.len() + 16);
    if element.ends_with("/>") {
        // `<devices/>`: open it.
        out.push_str(&domain_xml[..range.end - 2]);
        out.push_str(">\n");
        out.push_str(device);
        out.push_str("</devices>");
    } else {
        let close = range.end - "</devices>".len();
        // Before the closing tag's line when it has one of its own.
        let line = domain_xml[..close].trim_end_matches([' ', '\t']).len();
        if domain_xml[..line].ends_with('\n') {
            out.push_str(&domain_xml[..line]);
            out.push_str(device);
            out.push_str(&domain_xml[line..range.end]);
        } else {
            out.push_str(&domain_xml[..close]);
            out.push('\n');
            out.push_str(device);
            out.push_str(&domain_xml[close..range.end]);
        }
    }
    out.push_str(&domain_xml[range.end..]);
    Ok(out)
}

/// `domain_xml` without the interface whose MAC is `mac_address` (any
/// case); `None` when it has no such interface.
pub fn without_interface(
    domain_xml: &str,
    mac_address: &str,
) -> Result<Option<String>, DriverError> {
    let doc = parse_domain(domain_xml)?;
    let devices = domain_devices(&doc)?;
    let found = devices.children().find(|node| {
        node.has_tag_name("interface")
            && child(*node, "mac")
                .and_then(|mac| mac.attribute("address"))
                .is_some_and(|mac| mac.eq_ignore_ascii_case(mac_address))
    });
    Ok(found.map(|node| {
        let range = node.range();
        // Take the line's indentation and end with the element.
        let start = domain_xml[..range.start]
            .trim_end_matches([' ', '\t'])
            .len();
        let end = if domain_xml[range.end..].starts_with('\n') {
            range.end + 1
        } else {
            range.end
        };
        let start = if end > range.end { start } else { range.start };
        format!("{}{}", &domain_xml[..start], &domain_xml[end..])
    }))
}

/// A node file for libvirt's test driver describing a host with `vcpus` CPUs and
/// `memory_mb` MiB of memory, and one storage pool named `default`.
///
/// Write it to a file and open `test:///<absolute path>`: every connection opened
/// from a file has its own private state.
pub fn test_node_xml(vcpus: u32, memory_mb: u64) -> String {
    format!(
        "<node>\n\
         \x20 <cpu>\n\
         \x20   <mhz>2400</mhz>\n\
         \x20   <model>x86_64</model>\n\
         \x20   <active>{vcpus}</active>\n\
         \x20   <nodes>1</nodes>\n\
         \x20   <sockets>1</sockets>\n\
         \x20   <cores>{vcpus}</cores>\n\
         \x20   <threads>1</threads>\n\
         \x20 </cpu>\n\
         \x20 <memory>{memory_kib}</memory>\n\
         \x20 <pool type='dir'>\n\
         \x20   <name>default</name>\n\
         \x20   <target><path>/var/lib/novum/instances</path></target>\n\
         \x20 </pool>\n\
         </node>\n",
        memory_kib = memory_mb * 1024
    )
}

/// Escape text for an XML attribute or element.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use novum_wire::{FlavorSpec, ImageSpec, bridge_name};
    use std::collections::BTreeMap;

    #[test]
    fn a_cpu_is_written_as_nova_gives_it_to_the_comparison() {
        let cpu = CpuInfo {
            arch: "x86_64".into(),
            model: Some("Haswell".into()),
            vendor: Some("Intel".into()),
            features: vec!["avx2".into(), "a<b".into()],
            topology: CpuTopology {
                sockets: 1,
                cores: 4,
                threads: 2,
            },
        };
        assert_eq!(
            cpu_xml(&cpu),
            "<cpu>\n  <arch>x86_64</arch>\n  <model>Haswell</model>\n  <vendor>Intel</vendor>\n  \
             <topology sockets='1' cores='4' threads='2'/>\n  <feature policy='require' name='avx2'/>\n  \
             <feature policy='require' name='a&lt;b'/>\n</cpu>\n"
        );
        // What is not known is left out.
        let bare = CpuInfo {
            arch: "i686".into(),
            ..CpuInfo::default()
        };
        assert_eq!(cpu_xml(&bare), "<cpu>\n  <arch>i686</arch>\n</cpu>\n");
    }

    const QEMU_CAPS: &str = r#"<capabilities>
  <host>
    <cpu>
      <arch>x86_64</arch>
      <model>Skylake-Client-IBRS</model>
      <vendor>Intel</vendor>
      <topology sockets='1' dies='1' cores='4' threads='2'/>
      <feature name='vmx'/>
      <feature name='avx2'/>
    </cpu>
  </host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <domain type='qemu'/>
      <domain type='kvm'/>
    </arch>
  </guest>
  <guest>
    <os_type>hvm</os_type>
    <arch name='aarch64'>
      <domain type='qemu'/>
    </arch>
  </guest>
</capabilities>"#;

    fn spec(props: &[(&str, &str)]) -> SpawnSpec {
        SpawnSpec {
            name: "web <1> & 'two'".into(),
            flavor: FlavorSpec {
                name: "m1.small".into(),
                vcpus: 2,
                memory_mb: 2048,
                root_gb: 20,
                ephemeral_gb: 0,
                swap_mb: 512,
            },
            image: ImageSpec {
                id: "img".into(),
                properties: props
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            },
            user_data: None,
            metadata: BTreeMap::new(),
            interfaces: Vec::new(),
            project_id: None,
            config_drive: None,
        }
    }

    #[test]
    fn parses_qemu_capabilities() {
        let caps = parse_capabilities(QEMU_CAPS).unwrap();
        assert_eq!(caps.cpu.arch, "x86_64");
        assert_eq!(caps.cpu.model.as_deref(), Some("Skylake-Client-IBRS"));
        assert_eq!(caps.cpu.vendor.as_deref(), Some("Intel"));
        assert_eq!(caps.cpu.features, vec!["avx2", "vmx"]);
        assert_eq!(caps.cpu.topology.cores, 4);
        assert_eq!(caps.cpu.topology.threads, 2);
        assert_eq!(caps.supported_instances.len(), 3);
    }

    #[test]
    fn chooses_guest_from_image_properties() {
        let caps = parse_capabilities(QEMU_CAPS).unwrap();
        let kvm = choose_guest(&caps, &spec(&[])).unwrap();
        assert_eq!((kvm.arch.as_str(), kvm.hv_type.as_str()), ("x86_64", "kvm"));
        let qemu = choose_guest(&caps, &spec(&[("img_hv_type", "QEMU")])).unwrap();
        assert_eq!(qemu.hv_type, "qemu");
        let arm = choose_guest(&caps, &spec(&[("hw_architecture", "arm64")])).unwrap();
        assert_eq!(
            (arm.arch.as_str(), arm.hv_type.as_str()),
            ("aarch64", "qemu")
        );
        let err = choose_guest(&caps, &spec(&[("hw_architecture", "ppc64le")])).unwrap_err();
        assert!(err.to_string().contains("ppc64le"), "{err}");
        assert!(choose_guest(&caps, &spec(&[("hw_vm_mode", "xen")])).is_err());
    }

    #[test]
    fn domain_xml_is_well_formed_and_escaped() {
        let id = Uuid::new_v4();
        let caps = parse_capabilities(QEMU_CAPS).unwrap();
        let spec = spec(&[("hw_machine_type", "q35")]);
        let guest = choose_guest(&caps, &spec).unwrap();
        let layout = DiskLayout {
            instances_path: "/var/lib/novum/instances/".into(),
            ..DiskLayout::default()
        };
        let xml = domain_xml(id, &spec, &guest, &layout, None);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.attribute("type"), Some("kvm"));
        assert_eq!(
            child(root, "title").and_then(|n| n.text()),
            Some(spec.name.as_str())
        );
        let expected_name = format!("instance-{id}");
        assert_eq!(
            child(root, "name").and_then(|n| n.text()),
            Some(expected_name.as_str())
        );
        let os_type = child(root, "os").and_then(|os| child(os, "type")).unwrap();
        assert_eq!(os_type.attribute("machine"), Some("q35"));
        let disks: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("source"))
            .filter_map(|n| n.attribute("file"))
            .collect();
        assert_eq!(
            disks,
            vec![
                format!("/var/lib/novum/instances/{id}/disk"),
                format!("/var/lib/novum/instances/{id}/disk.swap"),
            ]
        );
    }

    #[test]
    fn a_guest_agent_image_gets_the_agents_channel() {
        let caps = parse_capabilities(QEMU_CAPS).unwrap();
        let layout = DiskLayout::default();
        let channels = |properties: &[(&str, &str)]| {
            let spec = spec(properties);
            let guest = choose_guest(&caps, &spec).unwrap();
            let xml = domain_xml(Uuid::new_v4(), &spec, &guest, &layout, None);
            let doc = roxmltree::Document::parse(&xml).unwrap();
            doc.descendants()
                .filter(|n| n.has_tag_name("channel"))
                .filter_map(|n| child(n, "target")?.attribute("name").map(str::to_string))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            channels(&[("hw_qemu_guest_agent", "yes")]),
            ["org.qemu.guest_agent.0"]
        );
        assert_eq!(
            channels(&[("hw_qemu_guest_agent", "True")]),
            ["org.qemu.guest_agent.0"]
        );
        assert!(channels(&[("hw_qemu_guest_agent", "no")]).is_empty());
        assert!(channels(&[]).is_empty());
    }

    #[test]
    fn added_guest_archs_copy_the_hosts_modes() {
        let mut caps = parse_capabilities(QEMU_CAPS).unwrap();
        add_guest_archs(&mut caps, &["amd64".to_string(), "ppc64le".to_string()]);
        let triples: Vec<String> = caps
            .supported_instances
            .iter()
            .map(|s| format!("{}/{}/{}", s.arch, s.hv_type, s.vm_mode))
            .collect();
        assert!(
            triples.contains(&"ppc64le/qemu/hvm".to_string()),
            "{triples:?}"
        );
        assert!(
            triples.contains(&"ppc64le/kvm/hvm".to_string()),
            "{triples:?}"
        );
        // x86_64 was there already: no duplicates.
        assert_eq!(
            triples.iter().filter(|t| t.starts_with("x86_64/")).count(),
            2,
            "{triples:?}"
        );
        assert!(!triples.iter().any(|t| t.starts_with("amd64")));
    }

    fn port(n: u8, mtu: Option<u32>) -> InterfaceSpec {
        let network = Uuid::from_u128(0xdacd568d_5be6_4786_91fe_750c374b7800 + u128::from(n));
        InterfaceSpec {
            port_id: Uuid::from_u128(0x1a81968a_797a_400f_8a80_567f997eb900 + u128::from(n)),
            mac_address: format!("FA:16:3E:00:00:{n:02X}"),
            network_id: network,
            network_name: format!("net{n}"),
            mtu,
            bridge: bridge_name(network),
            fixed_ips: Vec::new(),
        }
    }

    #[test]
    fn domain_xml_has_one_bridge_interface_per_port_in_order() {
        let caps = parse_capabilities(QEMU_CAPS).unwrap();
        let mut spec = spec(&[]);
        spec.interfaces = vec![port(2, Some(1450)), port(1, None)];
        let guest = choose_guest(&caps, &spec).unwrap();
        let layout = DiskLayout {
            instances_path: "/i".into(),
            ..DiskLayout::default()
        };
        let xml = domain_xml(Uuid::new_v4(), &spec, &guest, &layout, None);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let interfaces: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("interface"))
            .collect();
        assert_eq!(interfaces.len(), 2, "{xml}");
        for (node, port) in interfaces.iter().zip(&spec.interfaces) {
            assert_eq!(node.attribute("type"), Some("bridge"));
            let attr = |element: &str, name: &str| {
                child(*node, element)
                    .and_then(|n| n.attribute(name))
                    .map(str::to_string)
            };
            assert_eq!(
                attr("mac", "address"),
                Some(port.mac_address.to_ascii_lowercase())
            );
            assert_eq!(attr("source", "bridge"), Some(port.bridge.clone()));
            assert_eq!(attr("target", "dev"), Some(port.tap_name()));
            assert_eq!(attr("model", "type").as_deref(), Some("virtio"));
            assert_eq!(attr("mtu", "size"), port.mtu.map(|m| m.to_string()));
        }
        assert_eq!(
            domain_interfaces(&xml)
                .unwrap()
                .iter()
                .map(|i| (i.mac_address.as_str(), i.mtu))
                .collect::<Vec<_>>(),
            vec![
                ("fa:16:3e:00:00:02", Some(1450)),
                ("fa:16:3e:00:00:01", None)
            ]
        );
    }

    #[test]
    fn interface_text_is_escaped() {
        let mut odd = port(1, None);
        odd.bridge = "br'<&>\"".into();
        let xml = interface_xml(&odd, "");
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(
            child(doc.root_element(), "source").and_then(|n| n.attribute("bridge")),
            Some("br'<&>\"")
        );
    }

    #[test]
    fn devices_are_added_found_and_removed() {
        let domain = "<domain type='test'>\n  <name>x</name>\n  <devices>\n    <disk/>\n  </devices>\n</domain>\n";
        let one = with_device(domain, &interface_xml(&port(1, Some(1500)), "    ")).unwrap();
        let two = with_device(&one, &interface_xml(&port(2, None), "    ")).unwrap();
        assert!(
            two.contains("    <interface type='bridge'>\n      <mac address='fa:16:3e:00:00:01'/>"),
            "{two}"
        );
        assert!(
            two.ends_with("</interface>\n  </devices>\n</domain>\n"),
            "{two}"
        );
        let found = find_interface(&two, "FA:16:3E:00:00:02").unwrap().unwrap();
        assert_eq!(found.bridge, Some(port(2, None).bridge));
        assert!(found.xml.starts_with("<interface") && found.xml.ends_with("</interface>"));
        assert_eq!(find_interface(&two, "fa:16:3e:00:00:03").unwrap(), None);

        let back = without_interface(&two, "fa:16:3e:00:00:02")
            .unwrap()
            .unwrap();
        assert_eq!(back, one);
        assert_eq!(
            without_interface(&back, "fa:16:3e:00:00:01")
                .unwrap()
                .unwrap(),
            domain
        );
        assert_eq!(
            without_interface(domain, "fa:16:3e:00:00:01").unwrap(),
            None
        );

        let empty = with_device("<domain><devices/></domain>", "<interface/>").unwrap();
        assert_eq!(empty, "<domain><devices>\n<interface/></devices></domain>");
        let inline = with_device(
            "<domain><devices><disk/></devices></domain>",
            "<interface/>",
        )
        .unwrap();
        assert_eq!(
            inline,
            "<domain><devices><disk/>\n<interface/></devices></domain>"
        );
        assert!(matches!(
            with_device("<domain/>", "<interface/>"),
            Err(DriverError::Xml(_))
        ));
        assert!(matches!(
            domain_interfaces("<domain"),
            Err(DriverError::Xml(_))
        ));
    }
}
