//! A simulated hypervisor: guests are entries in memory, no libvirt
//! connection, no disk, no process per host.
//!
//! It exists so that one `novum-agent --simulate N` process can stand for a
//! fleet of N hosts in benchmarks and scale tests (10,000 hosts fit on one
//! machine), speaking the real agent protocol to the controller: every host
//! registers, heartbeats, long-polls and reports its own tasks. Operations
//! change the power state the way a hypervisor would, with the same
//! idempotence as the libvirt driver (spawning a running guest, destroying a
//! missing one, stopping a stopped one succeed without doing anything). What
//! needs a guest's disk or console (snapshots, console logs, passwords, crash
//! dumps) is refused as unsupported.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use novum_wire::{
    CpuInfo, CpuTopology, GuestDiagnostics, ImageSpec, InstancePower, InterfaceSpec, Inventory,
    PowerState, RebootType, Refusal, SpawnSpec, SupportedInstance, TaskAnswer, encode_version,
};
use uuid::Uuid;

use super::{DriverError, VirtDriver};

/// The size and behaviour of one simulated host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedHost {
    /// Hypervisor hostname (the agent's host name).
    pub hostname: String,
    /// Physical CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// Local disk in GiB.
    pub disk_gb: u64,
    /// How long a spawn takes (a real one boots a guest; zero for a
    /// control-plane benchmark).
    pub spawn_delay: Duration,
}

/// One simulated guest.
#[derive(Debug, Clone)]
struct Guest {
    power: PowerState,
    memory_mb: u64,
    /// MAC addresses of the plugged interfaces.
    interfaces: Vec<String>,
    /// Whether the guest boots from a rescue image.
    rescued: bool,
}

/// A hypervisor kept in memory (see the module documentation).
#[derive(Debug)]
pub struct SimulatedDriver {
    host: SimulatedHost,
    guests: Mutex<HashMap<Uuid, Guest>>,
}

impl SimulatedDriver {
    /// An empty host of the given size.
    pub fn new(host: SimulatedHost) -> Self {
        SimulatedDriver {
            host,
            guests: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `change` on `instance`'s guest; [`DriverError::NotFound`] when it
    /// has none.
    fn with_guest<T>(
        &self,
        instance: Uuid,
        change: impl FnOnce(&mut Guest) -> Result<T, DriverError>,
    ) -> Result<T, DriverError> {
        let mut guests = self.lock();
        let guest = guests
            .get_mut(&instance)
            .ok_or(DriverError::NotFound(instance))?;
        change(guest)
    }

    /// The guests, even after a panic elsewhere poisoned the lock (every
    /// change is one assignment: the map is never half-changed).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Guest>> {
        self.guests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Defines (or replaces) `instance`'s guest from `spec`, powered as asked.
    fn define(&self, instance: Uuid, spec: &SpawnSpec, power_on: bool) {
        let interfaces = spec
            .interfaces
            .iter()
            .map(|interface| interface.mac_address.clone())
            .collect();
        let guest = Guest {
            power: if power_on {
                PowerState::Running
            } else {
                PowerState::Shutdown
            },
            memory_mb: spec.flavor.memory_mb,
            interfaces,
            rescued: false,
        };
        self.lock().insert(instance, guest);
    }

    /// Moves a guest from one of `from` to `to`; a guest already in `to`
    /// stays (idempotent), any other state is refused.
    fn transition(
        &self,
        op: &'static str,
        instance: Uuid,
        from: &[PowerState],
        to: PowerState,
    ) -> Result<(), DriverError> {
        self.with_guest(instance, |guest| {
            if guest.power == to {
                Ok(())
            } else if from.contains(&guest.power) {
                guest.power = to;
                Ok(())
            } else {
                Err(DriverError::InvalidState {
                    op,
                    instance,
                    state: guest.power,
                })
            }
        })
    }

    fn unsupported(what: &str) -> DriverError {
        DriverError::Unsupported(format!("a simulated host has no guest to {what}"))
    }
}

impl VirtDriver for SimulatedDriver {
    fn inventory(&self) -> Result<Inventory, DriverError> {
        Ok(Inventory {
            vcpus: self.host.vcpus,
            memory_mb: self.host.memory_mb,
            disk_gb: self.host.disk_gb,
            cpu_info: CpuInfo {
                arch: "x86_64".to_string(),
                model: Some("qemu64".to_string()),
                vendor: Some("Simulated".to_string()),
                features: Vec::new(),
                topology: CpuTopology {
                    sockets: 1,
                    cores: self.host.vcpus,
                    threads: 1,
                },
            },
            hypervisor_type: "QEMU".to_string(),
            hypervisor_version: encode_version(8, 0, 0),
            hypervisor_hostname: self.host.hostname.clone(),
            host_ip: None,
            supported_instances: ["qemu", "kvm"]
                .into_iter()
                .map(|hv_type| SupportedInstance {
                    arch: "x86_64".to_string(),
                    hv_type: hv_type.to_string(),
                    vm_mode: "hvm".to_string(),
                })
                .collect(),
            uptime: None,
        })
    }

    /// A simulated host has no `uptime` to run (and one process per
    /// heartbeat of 10,000 hosts would be the benchmark's largest cost).
    fn uptime(&self) -> Option<String> {
        None
    }

    fn list_instances(&self) -> Result<Vec<InstancePower>, DriverError> {
        Ok(self
            .lock()
            .iter()
            .map(|(uuid, guest)| InstancePower {
                uuid: *uuid,
                power_state: guest.power,
            })
            .collect())
    }

    fn power_state(&self, instance: Uuid) -> Result<Option<PowerState>, DriverError> {
        Ok(self.lock().get(&instance).map(|guest| guest.power))
    }

    fn spawn(&self, instance: Uuid, spec: &SpawnSpec) -> Result<(), DriverError> {
        if let Some(guest) = self.lock().get_mut(&instance) {
            guest.power = PowerState::Running;
            return Ok(());
        }
        if !self.host.spawn_delay.is_zero() {
            std::thread::sleep(self.host.spawn_delay);
        }
        self.define(instance, spec, true);
        Ok(())
    }

    fn redefine(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        power_on: bool,
    ) -> Result<(), DriverError> {
        self.define(instance, spec, power_on);
        Ok(())
    }

    fn destroy(&self, instance: Uuid) -> Result<(), DriverError> {
        self.lock().remove(&instance);
        Ok(())
    }

    fn power_on(&self, instance: Uuid) -> Result<(), DriverError> {
        self.transition(
            "power on",
            instance,
            &[
                PowerState::Shutdown,
                PowerState::Paused,
                PowerState::Crashed,
                PowerState::Suspended,
            ],
            PowerState::Running,
        )
    }

    fn power_off(&self, instance: Uuid) -> Result<(), DriverError> {
        self.transition(
            "power off",
            instance,
            &[
                PowerState::Running,
                PowerState::Paused,
                PowerState::Crashed,
                PowerState::Suspended,
            ],
            PowerState::Shutdown,
        )
    }

    fn reboot(&self, instance: Uuid, _reboot_type: RebootType) -> Result<(), DriverError> {
        self.with_guest(instance, |guest| {
            guest.power = PowerState::Running;
            Ok(())
        })
    }

    fn pause(&self, instance: Uuid) -> Result<(), DriverError> {
        self.transition(
            "pause",
            instance,
            &[PowerState::Running],
            PowerState::Paused,
        )
    }

    fn unpause(&self, instance: Uuid) -> Result<(), DriverError> {
        self.transition(
            "unpause",
            instance,
            &[PowerState::Paused],
            PowerState::Running,
        )
    }

    fn suspend(&self, instance: Uuid) -> Result<(), DriverError> {
        self.transition(
            "suspend",
            instance,
            &[PowerState::Running, PowerState::Paused],
            PowerState::Suspended,
        )
    }

    fn resume(&self, instance: Uuid) -> Result<(), DriverError> {
        self.transition(
            "resume",
            instance,
            &[PowerState::Suspended],
            PowerState::Running,
        )
    }

    fn attach_interface(
        &self,
        instance: Uuid,
        interface: &InterfaceSpec,
    ) -> Result<(), DriverError> {
        self.with_guest(instance, |guest| {
            if !guest.interfaces.contains(&interface.mac_address) {
                guest.interfaces.push(interface.mac_address.clone());
            }
            Ok(())
        })
    }

    fn detach_interface(
        &self,
        instance: Uuid,
        _port_id: Uuid,
        mac_address: &str,
    ) -> Result<(), DriverError> {
        if let Some(guest) = self.lock().get_mut(&instance) {
            guest.interfaces.retain(|mac| mac != mac_address);
        }
        Ok(())
    }

    fn console_output(
        &self,
        instance: Uuid,
        _lines: Option<u32>,
    ) -> Result<TaskAnswer, DriverError> {
        self.with_guest(instance, |_| Ok(()))?;
        Err(Self::unsupported("write a console log"))
    }

    fn serial_console(&self, instance: Uuid) -> Result<TaskAnswer, DriverError> {
        self.with_guest(instance, |_| Ok(()))?;
        Ok(TaskAnswer::ConsoleUnavailable {
            console_type: "serial".to_string(),
        })
    }

    fn set_password(
        &self,
        instance: Uuid,
        _user: &str,
        _password: &str,
        _qemu_guest_agent: bool,
    ) -> Result<TaskAnswer, DriverError> {
        self.with_guest(instance, |_| Ok(()))?;
        Ok(TaskAnswer::Refused {
            refusal: Refusal::NotSupported,
        })
    }

    fn trigger_crash_dump(&self, instance: Uuid) -> Result<(), DriverError> {
        self.with_guest(instance, |_| Ok(()))?;
        Err(Self::unsupported("crash"))
    }

    fn diagnostics(&self, instance: Uuid) -> Result<TaskAnswer, DriverError> {
        self.with_guest(instance, |guest| {
            if guest.power != PowerState::Running {
                return Ok(TaskAnswer::Refused {
                    refusal: Refusal::NotRunning {
                        power_state: guest.power,
                    },
                });
            }
            Ok(TaskAnswer::Diagnostics(GuestDiagnostics {
                power_state: guest.power,
                hypervisor: "qemu".to_string(),
                max_memory_kib: guest.memory_mb * 1024,
                memory_kib: guest.memory_mb * 1024,
                cpus: Vec::new(),
                disks: Vec::new(),
                nics: Vec::new(),
                memory_stats: Default::default(),
            }))
        })
    }

    fn rebuild(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        power_on: bool,
        _preserve_ephemeral: bool,
    ) -> Result<(), DriverError> {
        self.define(instance, spec, power_on);
        Ok(())
    }

    fn rescue(
        &self,
        instance: Uuid,
        _spec: &SpawnSpec,
        _rescue_image: &ImageSpec,
    ) -> Result<(), DriverError> {
        self.with_guest(instance, |guest| {
            guest.rescued = true;
            guest.power = PowerState::Running;
            Ok(())
        })
    }

    fn unrescue(&self, instance: Uuid) -> Result<(), DriverError> {
        self.with_guest(instance, |guest| {
            if guest.rescued {
                guest.rescued = false;
                guest.power = PowerState::Running;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> SimulatedDriver {
        SimulatedDriver::new(SimulatedHost {
            hostname: "sim-1".to_string(),
            vcpus: 16,
            memory_mb: 65_536,
            disk_gb: 1_000,
            spawn_delay: Duration::ZERO,
        })
    }

    fn spec() -> SpawnSpec {
        serde_json::from_value(serde_json::json!({
            "name": "vm",
            "flavor": {"vcpus": 2, "memory_mb": 2048, "root_gb": 1},
            "image": {"id": "img"}
        }))
        .expect("a minimal spawn spec")
    }

    #[test]
    fn inventory_reports_the_configured_size() {
        let inventory = host().inventory().expect("inventory");
        assert_eq!(
            (inventory.vcpus, inventory.memory_mb, inventory.disk_gb),
            (16, 65_536, 1_000)
        );
        assert_eq!(inventory.hypervisor_hostname, "sim-1");
    }

    #[test]
    fn guests_follow_their_power_operations_idempotently() {
        let driver = host();
        let uuid = Uuid::new_v4();
        assert_eq!(driver.power_state(uuid).expect("state"), None);
        driver.spawn(uuid, &spec()).expect("spawn");
        driver
            .spawn(uuid, &spec())
            .expect("a second spawn does nothing");
        assert_eq!(
            driver.power_state(uuid).expect("state"),
            Some(PowerState::Running)
        );
        driver.power_off(uuid).expect("stop");
        driver.power_off(uuid).expect("stop again");
        assert!(matches!(
            driver.pause(uuid),
            Err(DriverError::InvalidState { .. })
        ));
        driver.power_on(uuid).expect("start");
        assert_eq!(driver.list_instances().expect("list").len(), 1);
        driver.destroy(uuid).expect("destroy");
        driver.destroy(uuid).expect("destroy again");
        assert!(driver.list_instances().expect("list").is_empty());
        assert!(matches!(
            driver.power_on(uuid),
            Err(DriverError::NotFound(_))
        ));
    }
}
