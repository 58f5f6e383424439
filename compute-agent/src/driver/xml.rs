//! libvirt XML: reading the capabilities document, writing domain definitions and
//! test-driver node files.

use std::fmt::Write as _;

use novum_wire::{CpuInfo, CpuTopology, SpawnSpec, SupportedInstance};
use uuid::Uuid;

use super::DriverError;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLayout {
    /// Directory holding one sub-directory per instance.
    pub instances_path: String,
}

/// Domain XML for an instance, from its flavor and image, for `guest`
/// (see [`choose_guest`]).
///
/// `name` is `instance-<uuid>`, `uuid` the instance uuid, the display name goes
/// to `<title>`. Disks: the root disk as `vda`, then ephemeral (`vdb`) and swap
/// (`vdc`) when the flavor has them, as files under
/// `<instances_path>/<uuid>/`. For the `test` hypervisor type the definition
/// stays within what libvirt's test driver accepts (no emulator, no driver
/// element).
pub fn domain_xml(
    instance: Uuid,
    spec: &SpawnSpec,
    guest: &SupportedInstance,
    disks: &DiskLayout,
) -> String {
    let is_test = guest.hv_type == "test";
    let mut xml = String::new();
    let dir = format!("{}/{instance}", disks.instances_path.trim_end_matches('/'));
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(xml, "<domain type='{}'>", escape(&guest.hv_type));
    let _ = writeln!(xml, "  <name>{}</name>", domain_name(instance));
    let _ = writeln!(xml, "  <uuid>{instance}</uuid>");
    let _ = writeln!(xml, "  <title>{}</title>", escape(&spec.name));
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
        .map(|m| format!(" machine='{}'", escape(m)))
        .unwrap_or_default();
    let _ = writeln!(
        xml,
        "    <type arch='{}'{machine}>{}</type>",
        escape(&guest.arch),
        escape(&guest.vm_mode)
    );
    xml.push_str("    <boot dev='hd'/>\n  </os>\n");
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
    disk("disk", "vda");
    if spec.flavor.ephemeral_gb > 0 {
        disk("disk.eph0", "vdb");
    }
    if spec.flavor.swap_mb > 0 {
        disk("disk.swap", "vdc");
    }
    xml.push_str("  </devices>\n</domain>\n");
    xml
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
    use novum_wire::{FlavorSpec, ImageSpec};
    use std::collections::BTreeMap;

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
        };
        let xml = domain_xml(id, &spec, &guest, &layout);
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
}
