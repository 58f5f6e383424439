//! What the libvirt driver does inside or about a running guest without
//! changing its state: set a user's password through the QEMU guest agent,
//! inject an NMI (a crash dump), read its statistics (diagnostics). Each
//! maps libvirt's answers to the ones Nova's libvirt driver gives.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_uint};

use novum_wire::{
    CpuDiagnostics, DiskDiagnostics, GuestDiagnostics, NicCounters, NicDiagnostics, PowerState,
    Refusal, TaskAnswer,
};
use virt::domain::Domain;
use virt::error::ErrorNumber;
use virt::sys;

use super::xml;
use super::{DriverError, lv};

/// Whether the hypervisor type `hypervisor` sets passwords through the QEMU
/// guest agent (Nova: `kvm` and `qemu`; the test driver stands for QEMU).
fn agent_hypervisor(hypervisor: &str) -> bool {
    matches!(hypervisor, "kvm" | "qemu" | "test")
}

/// Sets `user`'s password in the guest of `domain` (in `power_state`) on a
/// hypervisor of type `hypervisor`, as Nova's `set_admin_password`: not
/// running, no guest agent in the image, a hypervisor without the call, or
/// an agent that does not answer are refusals the API words as Nova.
pub(super) fn set_password(
    domain: &Domain,
    hypervisor: &str,
    power_state: PowerState,
    user: &str,
    password: &str,
    qemu_guest_agent: bool,
) -> Result<TaskAnswer, DriverError> {
    let refused = |refusal| Ok(TaskAnswer::Refused { refusal });
    if power_state != PowerState::Running {
        return refused(Refusal::NotRunning { power_state });
    }
    if !agent_hypervisor(hypervisor) {
        return refused(Refusal::NotSupported);
    }
    if !qemu_guest_agent {
        return refused(Refusal::GuestAgentNotEnabled);
    }
    let user = super::libvirt_text("user name", user)?;
    let password = super::libvirt_text("password", password)?;
    match domain.set_user_password(user, password, 0) {
        Ok(_) => Ok(TaskAnswer::PasswordSet),
        Err(error)
            if matches!(
                error.code(),
                ErrorNumber::AgentUnresponsive | ErrorNumber::NoSupport
            ) =>
        {
            refused(Refusal::NotImplemented)
        }
        Err(error) => Err(lv("set user password")(error)),
    }
}

/// Injects an NMI into the guest of `domain` (`virDomainInjectNMI`, which
/// the `virt` crate does not wrap). A hypervisor without it, or a guest
/// that does not run, fails with libvirt's message.
pub(super) fn inject_nmi(domain: &Domain) -> Result<(), DriverError> {
    // SAFETY: `domain` holds a valid virDomainPtr for the call's duration;
    // virDomainInjectNMI takes no buffers, flags must be 0.
    let ret = unsafe { sys::virDomainInjectNMI(domain.as_ptr(), 0) };
    if ret == -1 {
        let error = virt::error::Error::last_error();
        return Err(match error.code() {
            ErrorNumber::NoSupport => {
                DriverError::Unsupported("triggering a crash dump".to_string())
            }
            _ => lv("inject NMI")(error),
        });
    }
    Ok(())
}

/// The time of each vCPU of `domain` (`virDomainGetVcpus`, which the `virt`
/// crate does not wrap), for `count` vCPUs at most.
fn vcpu_times(domain: &Domain, count: u32) -> Result<Vec<CpuDiagnostics>, DriverError> {
    let capacity = count.max(1) as usize;
    let mut info: Vec<sys::virVcpuInfo> = Vec::with_capacity(capacity);
    // SAFETY: `info` has room for `capacity` entries and libvirt writes at
    // most `maxinfo` of them; no CPU maps are asked for (NULL, 0).
    let ret = unsafe {
        sys::virDomainGetVcpus(
            domain.as_ptr(),
            info.as_mut_ptr(),
            capacity as c_int,
            std::ptr::null_mut(),
            0,
        )
    };
    if ret < 0 {
        return Err(lv("get vcpus")(virt::error::Error::last_error()));
    }
    // SAFETY: libvirt initialised the first `ret` (≤ capacity) entries.
    unsafe { info.set_len((ret as usize).min(capacity)) };
    Ok(info
        .iter()
        .map(|vcpu| CpuDiagnostics {
            id: vcpu.number as c_uint,
            time_ns: vcpu.cpuTime,
        })
        .collect())
}

/// Nova's name of a `virDomainMemoryStats` tag (libvirt-python's keys).
fn memory_stat_name(tag: u32) -> Option<&'static str> {
    Some(match tag {
        sys::VIR_DOMAIN_MEMORY_STAT_SWAP_IN => "swap_in",
        sys::VIR_DOMAIN_MEMORY_STAT_SWAP_OUT => "swap_out",
        sys::VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT => "major_fault",
        sys::VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT => "minor_fault",
        sys::VIR_DOMAIN_MEMORY_STAT_UNUSED => "unused",
        sys::VIR_DOMAIN_MEMORY_STAT_AVAILABLE => "available",
        sys::VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON => "actual",
        sys::VIR_DOMAIN_MEMORY_STAT_RSS => "rss",
        sys::VIR_DOMAIN_MEMORY_STAT_USABLE => "usable",
        sys::VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE => "last_update",
        sys::VIR_DOMAIN_MEMORY_STAT_DISK_CACHES => "disk_caches",
        sys::VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGALLOC => "hugetlb_pgalloc",
        sys::VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGFAIL => "hugetlb_pgfail",
        _ => return None,
    })
}

/// The statistics of the guest of `domain` (in `power_state`, live
/// definition `live_xml`) on a hypervisor of type `hypervisor`, as Nova's
/// libvirt driver reads them: what the hypervisor cannot say (vCPU times,
/// a disk's or an interface's counters, memory statistics) is left out
/// rather than failing the whole answer. A guest that does not run is
/// refused with its power state.
pub(super) fn diagnostics(
    domain: &Domain,
    hypervisor: &str,
    power_state: PowerState,
    live_xml: &str,
) -> Result<TaskAnswer, DriverError> {
    if power_state != PowerState::Running {
        return Ok(TaskAnswer::Refused {
            refusal: Refusal::NotRunning { power_state },
        });
    }
    let info = domain.get_info().map_err(lv("get info"))?;
    let max_memory_kib = domain.get_max_memory().map_err(lv("get max memory"))?;
    let cpus = vcpu_times(domain, info.nr_virt_cpu).unwrap_or_default();
    let disks = xml::domain_disk_targets(live_xml)?
        .into_iter()
        .filter_map(|device| {
            let stats = domain.get_block_stats(&device).ok()?;
            Some(DiskDiagnostics {
                read_requests: stats.rd_req,
                read_bytes: stats.rd_bytes,
                write_requests: stats.wr_req,
                write_bytes: stats.wr_bytes,
                errors: stats.errs,
                device,
            })
        })
        .collect();
    let nics = xml::domain_interfaces(live_xml)?
        .into_iter()
        .map(|interface| {
            let stats = interface
                .target
                .as_deref()
                .and_then(|device| domain.interface_stats(device).ok())
                .map(|stats| NicCounters {
                    rx_bytes: stats.rx_bytes,
                    rx_packets: stats.rx_packets,
                    rx_errors: stats.rx_errs,
                    rx_drop: stats.rx_drop,
                    tx_bytes: stats.tx_bytes,
                    tx_packets: stats.tx_packets,
                    tx_errors: stats.tx_errs,
                    tx_drop: stats.tx_drop,
                });
            NicDiagnostics {
                mac_address: interface.mac_address,
                device: interface.target,
                stats,
            }
        })
        .collect();
    let memory_stats: BTreeMap<String, u64> = domain
        .memory_stats(0)
        .map(|stats| {
            stats
                .iter()
                .filter_map(|stat| Some((memory_stat_name(stat.tag)?.to_string(), stat.val)))
                .collect()
        })
        .unwrap_or_default();
    Ok(TaskAnswer::Diagnostics(GuestDiagnostics {
        power_state,
        hypervisor: hypervisor.to_string(),
        max_memory_kib,
        memory_kib: info.memory,
        cpus,
        disks,
        nics,
        memory_stats,
    }))
}
