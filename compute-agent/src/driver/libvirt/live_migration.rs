//! Live migration on libvirt (Nova's libvirt driver `live_migration`,
//! `pre_live_migration`, `post_live_migration_at_destination`,
//! `live_migration_abort`, `live_migration_force_complete`).
//!
//! A real hypervisor migrates peer to peer: the source's libvirtd connects
//! to the destination's ([`destination_uri`]) and moves the running guest
//! with `VIR_MIGRATE_LIVE | PEER2PEER | PERSIST_DEST | UNDEFINE_SOURCE`,
//! adding `NON_SHARED_INC` for a block migration (the destination made the
//! disk overlays on their cached base image in `pre_live_migration`, only
//! the top layers are copied). Progress comes from the domain's job info,
//! abort is `virDomainAbortJob`, force-complete pauses the guest so its
//! memory stops changing (post-copy is not enabled).
//!
//! libvirt's test driver cannot migrate: there the move is simulated. The
//! source "copies" the guest's memory at [`SIMULATED_BANDWIDTH`] (so the
//! migration can be watched, aborted or forced), then removes its domain;
//! the destination defines and starts the domain from the spec in
//! `post_live_migration`, both hosts' domain stores following.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use novum_wire::{CpuInfo, LiveMigrationControl, LiveMigrationProgress, SpawnSpec, TaskAnswer};
use tracing::{debug, info, warn};
use uuid::Uuid;
use virt::connect::Connect;
use virt::domain::MigrateParameters;
use virt::sys;

use super::{LibvirtDriver, check_spec, libvirt_text, lv, unsupported, xml};
use crate::driver::{DriverError, LiveMigrationJob, VirtDriver};

/// How fast the simulated move of the test driver copies memory (bytes/s).
pub const SIMULATED_BANDWIDTH: u64 = 64 * 1024 * 1024;

/// How often the simulated copy looks at its controls.
const SIMULATED_TICK: Duration = Duration::from_millis(50);

/// A running live migration, as the controls see it.
#[derive(Debug, Default)]
pub(super) struct Job {
    abort: AtomicBool,
    force: AtomicBool,
    progress: Mutex<LiveMigrationProgress>,
}

/// The live migrations running on this host, by instance.
#[derive(Debug, Default)]
pub(super) struct Jobs(Mutex<HashMap<Uuid, Arc<Job>>>);

impl Jobs {
    fn start(&self, instance: Uuid) -> Arc<Job> {
        let job = Arc::new(Job::default());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(instance, Arc::clone(&job));
        job
    }

    fn end(&self, instance: Uuid) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&instance);
    }

    fn get(&self, instance: Uuid) -> Option<Arc<Job>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&instance)
            .cloned()
    }
}

/// `ip` as the host part of a URI (IPv6 in brackets).
fn uri_host(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// The libvirt URI of the destination's daemon at `ip`, for a source on
/// `uri` (Nova's `live_migration_uri` default, `qemu+tcp://%s/system`; a
/// session daemon migrates to the session daemon).
pub fn destination_uri(uri: &str, ip: &str) -> String {
    let path = if uri.ends_with("/session") {
        "session"
    } else {
        "system"
    };
    format!("qemu+tcp://{}/{path}", uri_host(ip))
}

/// Where QEMU sends the guest's memory: the destination's address (Nova's
/// `live_migration_inbound_addr`), not whatever its host name resolves to.
pub fn migration_uri(ip: &str) -> String {
    format!("tcp://{}", uri_host(ip))
}

/// libvirt's message for a migration cancelled by its client.
const ABORTED: &str = "operation aborted: migration out job: canceled by client";

impl LibvirtDriver {
    pub(super) fn prepare_live_migration(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        block_migration: bool,
        source_cpu: Option<&CpuInfo>,
    ) -> Result<(), DriverError> {
        check_spec(spec)?;
        // Before anything is made here: a refusal leaves nothing behind.
        self.check_source_cpu(instance, source_cpu)?;
        if block_migration {
            // The overlays on the cached base image, for the copy to fill.
            self.prepare_files(instance, spec)?;
        }
        self.write_config_drive(instance, spec)?;
        self.ensure_bridges(|| {
            Ok(spec
                .interfaces
                .iter()
                .map(|interface| (interface.bridge.clone(), interface.mtu))
                .collect())
        })
    }

    /// Whether this hypervisor can offer `cpu`, the source host's CPU
    /// (Nova's `_compare_cpu` with the source's `cpu_info`): libvirt's
    /// `virConnectCompareHypervisorCPU` for the domain type guests run as,
    /// failing with Nova's "Unacceptable CPU info" and libvirt's reason
    /// when it cannot. Skipped, as Nova skips it, when there is nothing to
    /// compare: no CPU sent (an older controller), a CPU without a model
    /// (libvirt compares models; a test-driver source reports only its
    /// arch and features), or guests emulated by QEMU's TCG (the guest's
    /// CPU is software, whatever the host's); a driver that cannot compare
    /// (`VIR_ERR_NO_SUPPORT`, libvirt's test driver) lets it proceed.
    ///
    /// Unlike Nova, a source CPU within this host's own (same arch, model
    /// and vendor, no feature this host lacks) is accepted without asking:
    /// identical hosts always take each other's guests, even where a
    /// nested KVM offers less than the CPU it runs on reports (libvirt then
    /// finds a host's own CPU incompatible with its hypervisor).
    fn check_source_cpu(&self, instance: Uuid, cpu: Option<&CpuInfo>) -> Result<(), DriverError> {
        let Some(cpu) = cpu else {
            debug!(%instance, "the source's CPU is not known: no CPU comparison");
            return Ok(());
        };
        if cpu.model.is_none() {
            debug!(%instance, arch = %cpu.arch, "the source's CPU has no model: no CPU comparison");
            return Ok(());
        }
        let virt_type = self.hypervisor();
        if !self.test_driver && virt_type != "kvm" {
            debug!(%instance, virt_type, "guests are emulated (QEMU TCG): no CPU comparison");
            return Ok(());
        }
        let own = self.capabilities()?.cpu;
        if within(cpu, &own) {
            debug!(%instance, "the source's CPU is this host's own (or within it): compatible");
            return Ok(());
        }
        let xml = xml::cpu_xml(cpu);
        debug!(%instance, %xml, "cpu compare xml");
        let c_text = |what: &str, text: &str| {
            CString::new(libvirt_text(what, text)?).map_err(|_| {
                DriverError::InvalidInput(format!("the {what} contains a NUL character"))
            })
        };
        let xml = c_text("CPU description", &xml)?;
        let virt_type = (!self.test_driver)
            .then(|| c_text("virt type", virt_type))
            .transpose()?;
        match compare_hypervisor_cpu(&self.conn.0, virt_type.as_deref(), &xml) {
            Ok(result) if result > 0 => Ok(()),
            Ok(result) => Err(DriverError::CpuIncompatible(format!(
                "libvirt's comparison answered {result}."
            ))),
            Err(e) if unsupported(&e) => {
                debug!(%instance, uri = %self.uri, error = %e.message(),
                    "the hypervisor does not support CPU comparison; it will be proceeded though");
                Ok(())
            }
            Err(e) => {
                warn!(%instance, error = %e.message(), "the source's CPU is not acceptable here");
                Err(DriverError::CpuIncompatible(format!(
                    "{}.",
                    e.message().trim_end_matches('.')
                )))
            }
        }
    }

    pub(super) fn run_live_migration(
        &self,
        instance: Uuid,
        job: &LiveMigrationJob<'_>,
    ) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        let control = self.live_jobs.start(instance);
        let result = if self.test_driver {
            simulate_copy(&control, job.spec)
        } else {
            let uri = destination_uri(&self.uri, job.destination_ip);
            info!(%instance, destination = job.destination, %uri, block = job.block_migration, "live migration starts");
            let mut flags = sys::VIR_MIGRATE_LIVE
                | sys::VIR_MIGRATE_PEER2PEER
                | sys::VIR_MIGRATE_PERSIST_DEST
                | sys::VIR_MIGRATE_UNDEFINE_SOURCE;
            if job.block_migration {
                flags |= sys::VIR_MIGRATE_NON_SHARED_INC;
            }
            domain
                .migrate_to_uri3(
                    Some(&uri),
                    MigrateParameters {
                        uri: Some(migration_uri(job.destination_ip)),
                        bandwidth: self.options.live_migration_bandwidth,
                        ..MigrateParameters::default()
                    },
                    flags,
                )
                .map_err(lv("migrate"))
        };
        self.live_jobs.end(instance);
        result?;
        if self.test_driver {
            // The simulated move: the domain leaves this host.
            self.destroy(instance)?;
        } else {
            // UNDEFINE_SOURCE removed the domain; its files stay behind
            // unless the storage is shared (a block migration copied them).
            if job.block_migration {
                self.remove_files(instance)?;
            }
            self.remember(instance, None, None);
            self.remove_config_drive(instance)?;
        }
        info!(%instance, destination = job.destination, "live migration done");
        Ok(())
    }

    pub(super) fn finish_live_migration(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
    ) -> Result<(), DriverError> {
        match self.lookup(instance)? {
            Some(domain) => {
                let definition = Self::definition(&domain)?;
                self.remember(instance, Some(true), Some(&definition));
                Ok(())
            }
            // The simulated move of the test driver: the guest arrives.
            None if self.test_driver => self.redefine(instance, spec, true),
            None => Err(DriverError::NotFound(instance)),
        }
    }

    pub(super) fn live_migration_control(
        &self,
        instance: Uuid,
        control: LiveMigrationControl,
    ) -> Result<TaskAnswer, DriverError> {
        let Some(job) = self.live_jobs.get(instance) else {
            return Err(DriverError::InvalidInput(format!(
                "no live migration of instance {instance} runs on this host"
            )));
        };
        if !self.test_driver {
            let domain = self.domain(instance)?;
            if let Ok(stats) = domain.get_job_info() {
                let mut progress = job.progress.lock().unwrap_or_else(PoisonError::into_inner);
                *progress = LiveMigrationProgress {
                    memory_total: stats.mem_total.unwrap_or_default(),
                    memory_processed: stats.mem_processed.unwrap_or_default(),
                    memory_remaining: stats.mem_remaining.unwrap_or_default(),
                    disk_total: stats.disk_total.unwrap_or_default(),
                    disk_processed: stats.disk_processed.unwrap_or_default(),
                    disk_remaining: stats.disk_remaining.unwrap_or_default(),
                };
            }
            match control {
                LiveMigrationControl::Abort => {
                    // SAFETY: the domain pointer is valid while `domain` lives.
                    if unsafe { sys::virDomainAbortJob(domain.as_ptr()) } == -1 {
                        return Err(lv("abort job")(virt::error::Error::last_error()));
                    }
                }
                LiveMigrationControl::ForceComplete => {
                    domain.suspend().map(drop).map_err(lv("suspend"))?;
                }
                LiveMigrationControl::Progress => {}
            }
        }
        match control {
            LiveMigrationControl::Abort => job.abort.store(true, Ordering::SeqCst),
            LiveMigrationControl::ForceComplete => job.force.store(true, Ordering::SeqCst),
            LiveMigrationControl::Progress => {}
        }
        let progress = *job.progress.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(TaskAnswer::LiveMigrationControlled(progress))
    }
}

/// Whether `cpu` is within `own`: the same arch, model and vendor, and
/// none of its features missing from `own`.
fn within(cpu: &CpuInfo, own: &CpuInfo) -> bool {
    cpu.arch == own.arch
        && cpu.model.is_some()
        && cpu.model == own.model
        && cpu.vendor == own.vendor
        && cpu
            .features
            .iter()
            .all(|feature| own.features.contains(feature))
}

/// libvirt's `virConnectCompareHypervisorCPU` (which the `virt` crate does
/// not wrap): how the CPU `xml` compares with what the hypervisor can give
/// guests of domain type `virt_type` (libvirt's choice when `None`),
/// `VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE` so that an incompatible CPU
/// comes back as an error saying why.
fn compare_hypervisor_cpu(
    conn: &Connect,
    virt_type: Option<&CStr>,
    xml: &CStr,
) -> Result<sys::virCPUCompareResult, virt::error::Error> {
    // SAFETY: the connection pointer is valid while `conn` lives; the
    // strings are NUL-terminated and outlive the call, which only reads
    // them; NULL emulator, arch and machine ask libvirt for its defaults.
    let result = unsafe {
        sys::virConnectCompareHypervisorCPU(
            conn.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            virt_type.map_or(std::ptr::null(), CStr::as_ptr),
            xml.as_ptr(),
            sys::VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE,
        )
    };
    if result == sys::VIR_CPU_COMPARE_ERROR {
        return Err(virt::error::Error::last_error());
    }
    Ok(result)
}

/// The simulated copy of the guest's memory: done at
/// [`SIMULATED_BANDWIDTH`], at once when forced, failed when aborted.
fn simulate_copy(job: &Job, spec: &SpawnSpec) -> Result<(), DriverError> {
    let total = spec.flavor.memory_mb.saturating_mul(1024 * 1024);
    let per_tick = SIMULATED_BANDWIDTH / (1000 / SIMULATED_TICK.as_millis() as u64);
    let mut processed = 0_u64;
    loop {
        {
            let mut progress = job.progress.lock().unwrap_or_else(PoisonError::into_inner);
            *progress = LiveMigrationProgress {
                memory_total: total,
                memory_processed: processed,
                memory_remaining: total - processed,
                ..LiveMigrationProgress::default()
            };
        }
        if job.abort.load(Ordering::SeqCst) {
            warn!("simulated live migration aborted");
            return Err(DriverError::Libvirt {
                op: "migrate",
                message: ABORTED.to_string(),
            });
        }
        if processed >= total || job.force.load(Ordering::SeqCst) {
            return Ok(());
        }
        std::thread::sleep(SIMULATED_TICK);
        processed = (processed + per_tick).min(total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_is_within_a_host_with_its_model_vendor_and_features() {
        let own = CpuInfo {
            arch: "x86_64".into(),
            model: Some("Skylake-Client-IBRS".into()),
            vendor: Some("Intel".into()),
            features: vec!["avx2".into(), "vmx".into()],
            ..CpuInfo::default()
        };
        assert!(within(&own, &own));
        let fewer = CpuInfo {
            features: vec!["vmx".into()],
            ..own.clone()
        };
        assert!(within(&fewer, &own));
        let more = CpuInfo {
            features: vec!["avx512f".into(), "vmx".into()],
            ..own.clone()
        };
        assert!(!within(&more, &own));
        let other_model = CpuInfo {
            model: Some("Haswell".into()),
            ..own.clone()
        };
        assert!(!within(&other_model, &own));
        let model_less = CpuInfo {
            model: None,
            ..own.clone()
        };
        assert!(!within(&model_less, &CpuInfo { model: None, ..own }));
    }

    #[test]
    fn destination_uris_follow_nova() {
        assert_eq!(
            destination_uri("qemu:///system", "10.251.0.3"),
            "qemu+tcp://10.251.0.3/system"
        );
        assert_eq!(
            destination_uri("qemu:///session", "fd00::3"),
            "qemu+tcp://[fd00::3]/session"
        );
        assert_eq!(migration_uri("10.251.0.3"), "tcp://10.251.0.3");
    }
}
