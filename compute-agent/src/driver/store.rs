//! Domain definitions kept on disk for hypervisors that forget them.
//!
//! A real libvirtd keeps its domains (and their power states) when the agent
//! restarts. libvirt's test driver lives inside the agent process, so an agent
//! restart is, for it, a hypervisor that lost every domain. With a
//! [`DomainStore`] the driver writes each domain it defines (and whether it
//! should be running) to a directory, and restores the missing ones when it
//! opens the hypervisor again, as a host that boots with
//! `resume_guests_state_on_host_boot` would.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Name of the domain store's directory inside an agent's state directory.
pub const DOMAIN_STORE_DIR: &str = "domains";

/// Where an agent with state directory `state_dir` on `libvirt_uri` keeps
/// its domains: `<state_dir>/domains` for libvirt's test driver (whose
/// hypervisor dies with the agent process), `None` for a real hypervisor
/// (libvirtd keeps its domains) or without a state directory.
pub fn domain_store_dir(state_dir: Option<&Path>, libvirt_uri: &str) -> Option<PathBuf> {
    state_dir
        .filter(|_| libvirt_uri.starts_with("test:"))
        .map(|dir| dir.join(DOMAIN_STORE_DIR))
}

/// How a running guest was left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestState {
    /// Running.
    #[default]
    Running,
    /// Its vCPUs paused.
    Paused,
    /// Suspended to disk (a managed save).
    Suspended,
}

/// One remembered domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDomain {
    /// The instance.
    pub instance: Uuid,
    /// The libvirt domain XML it was defined with.
    pub xml: String,
    /// Whether it was last left running (paused or suspended counts: the
    /// guest has a state to come back to).
    pub running: bool,
    /// How a running guest was left (files written before this field: running).
    #[serde(default)]
    pub guest: GuestState,
}

/// A directory of [`StoredDomain`]s, one `<uuid>.json` file each.
#[derive(Debug, Clone)]
pub struct DomainStore {
    dir: PathBuf,
}

impl DomainStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, instance: Uuid) -> PathBuf {
        self.dir.join(format!("{instance}.json"))
    }

    /// Remembers `domain` (replacing what was stored for its instance).
    pub fn save(&self, domain: &StoredDomain) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.path(domain.instance);
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec(domain).map_err(io::Error::other)?)?;
        fs::rename(&tmp, path)
    }

    /// Records whether the domain of `instance` is running (nothing when it is
    /// not remembered); a guest started or stopped is no longer paused or
    /// suspended.
    pub fn set_running(&self, instance: Uuid, running: bool) -> io::Result<()> {
        self.update(instance, running, GuestState::Running)
    }

    /// Records that the running guest of `instance` is now `guest` (nothing
    /// when it is not remembered).
    pub fn set_guest(&self, instance: Uuid, guest: GuestState) -> io::Result<()> {
        self.update(instance, true, guest)
    }

    fn update(&self, instance: Uuid, running: bool, guest: GuestState) -> io::Result<()> {
        match self.load(&self.path(instance))? {
            Some(domain) if (domain.running, domain.guest) != (running, guest) => {
                self.save(&StoredDomain {
                    running,
                    guest,
                    ..domain
                })
            }
            _ => Ok(()),
        }
    }

    /// Records that the domain of `instance` is now defined by `xml` (an
    /// interface plugged or unplugged), keeping how it was left (nothing
    /// when it is not remembered).
    pub fn set_xml(&self, instance: Uuid, xml: &str) -> io::Result<()> {
        match self.load(&self.path(instance))? {
            Some(domain) if domain.xml != xml => self.save(&StoredDomain {
                xml: xml.to_string(),
                ..domain
            }),
            _ => Ok(()),
        }
    }

    /// Forgets the domain of `instance`.
    pub fn forget(&self, instance: Uuid) -> io::Result<()> {
        match fs::remove_file(self.path(instance)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn load(&self, path: &Path) -> io::Result<Option<StoredDomain>> {
        match fs::read(path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every remembered domain (unreadable files are skipped).
    pub fn all(&self) -> io::Result<Vec<StoredDomain>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut domains = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "json")
                && let Some(domain) = self.load(&path)?
            {
                domains.push(domain);
            }
        }
        domains.sort_by_key(|domain| domain.instance);
        Ok(domains)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_from_before_the_guest_state_read_as_running() {
        let instance = Uuid::new_v4();
        let old = format!(r#"{{"instance":"{instance}","xml":"<domain/>","running":true}}"#);
        let domain: StoredDomain = serde_json::from_str(&old).unwrap();
        assert_eq!(domain.guest, GuestState::Running);
    }

    #[test]
    fn only_the_test_driver_keeps_a_store() {
        let state = Path::new("/var/lib/agent");
        assert_eq!(
            domain_store_dir(Some(state), "test:///default"),
            Some(state.join(DOMAIN_STORE_DIR))
        );
        assert_eq!(domain_store_dir(Some(state), "qemu:///system"), None);
        assert_eq!(domain_store_dir(None, "test:///default"), None);
    }

    #[test]
    fn remembers_running_state_and_forgets() {
        let dir = std::env::temp_dir().join(format!("novum-domains-{}", Uuid::new_v4()));
        let store = DomainStore::new(&dir);
        assert!(store.all().unwrap().is_empty());
        let instance = Uuid::new_v4();
        let domain = StoredDomain {
            instance,
            xml: "<domain/>".into(),
            running: true,
            guest: GuestState::Running,
        };
        store.save(&domain).unwrap();
        store.set_guest(instance, GuestState::Paused).unwrap();
        assert_eq!(store.all().unwrap()[0].guest, GuestState::Paused);
        store.set_running(instance, false).unwrap();
        assert_eq!(
            store.all().unwrap(),
            vec![StoredDomain {
                running: false,
                ..domain.clone()
            }]
        );
        store
            .set_xml(instance, "<domain><devices/></domain>")
            .unwrap();
        let kept = &store.all().unwrap()[0];
        assert_eq!(kept.xml, "<domain><devices/></domain>");
        assert!(!kept.running, "the new definition keeps the state");
        store.set_xml(Uuid::new_v4(), "<domain/>").unwrap();
        store.set_running(Uuid::new_v4(), true).unwrap();
        assert_eq!(store.all().unwrap().len(), 1);
        store.forget(instance).unwrap();
        store.forget(instance).unwrap();
        assert!(store.all().unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
