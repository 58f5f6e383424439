//! The Fernet key repository, laid out as Keystone lays it out: one key per
//! file named by an integer; `0` is the staged key (the next primary), the
//! highest number is the primary key (signs new tokens), the others are
//! secondary keys (still validate tokens they signed).
//!
//! Rotation promotes the staged key to primary, stages a new key, and drops
//! the oldest secondaries beyond `max_active_keys` (staged key included), so a
//! token signed by a dropped key no longer validates.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use fernet::{Fernet, MultiFernet};

/// The index of the staged key.
pub const STAGED_KEY: u64 = 0;
/// The fewest keys a repository may keep: a staged, a primary and one secondary.
pub const MIN_ACTIVE_KEYS: usize = 3;

/// Errors of the key repository.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file or directory operation failed.
    #[error("Fernet key repository {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file does not hold a valid Fernet key.
    #[error("Fernet key file {0} does not hold a valid key")]
    InvalidKey(PathBuf),
    /// The repository holds no key.
    #[error("Fernet key repository {0} holds no keys; it is created at first start")]
    Empty(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The key indices present in `dir`, ascending.
pub fn key_indices(dir: &Path) -> Result<Vec<u64>, KeyError> {
    let mut indices = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if let Some(index) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u64>().ok())
        {
            indices.push(index);
        }
    }
    indices.sort_unstable();
    Ok(indices)
}

/// Writes a fresh key to `dir/<index>` atomically, readable by the owner only.
fn write_new_key(dir: &Path, index: u64) -> Result<(), KeyError> {
    let temporary = dir.join(format!(".{index}.tmp"));
    std::fs::write(&temporary, Fernet::generate_key()).map_err(io_error(&temporary))?;
    restrict(&temporary)?;
    let target = dir.join(index.to_string());
    std::fs::rename(&temporary, &target).map_err(io_error(&target))
}

#[cfg(unix)]
fn restrict(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error(path))
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// Creates the repository with a staged key and a primary key unless it
/// already holds keys (Keystone's `fernet_setup`). Returns whether it created.
pub fn setup(dir: &Path) -> Result<bool, KeyError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    restrict(dir)?;
    if !key_indices(dir)?.is_empty() {
        return Ok(false);
    }
    write_new_key(dir, STAGED_KEY)?;
    rotate(dir, MIN_ACTIVE_KEYS)?;
    Ok(true)
}

/// Rotates the keys (Keystone's `fernet_rotate`): the staged key becomes the
/// primary, a new staged key is written, and the oldest secondaries are
/// removed so that at most `max_active_keys` (at least [`MIN_ACTIVE_KEYS`])
/// remain. Returns the new primary's index.
pub fn rotate(dir: &Path, max_active_keys: usize) -> Result<u64, KeyError> {
    let indices = key_indices(dir)?;
    if !indices.contains(&STAGED_KEY) {
        write_new_key(dir, STAGED_KEY)?;
    }
    let primary = indices.last().copied().unwrap_or(STAGED_KEY) + 1;
    let staged_path = dir.join(STAGED_KEY.to_string());
    let primary_path = dir.join(primary.to_string());
    std::fs::rename(&staged_path, &primary_path).map_err(io_error(&primary_path))?;
    write_new_key(dir, STAGED_KEY)?;
    let keep = max_active_keys.max(MIN_ACTIVE_KEYS);
    let mut remaining = key_indices(dir)?;
    while remaining.len() > keep {
        // remaining[0] is the staged key; remaining[1] the oldest secondary.
        let oldest = remaining.remove(1);
        let path = dir.join(oldest.to_string());
        std::fs::remove_file(&path).map_err(io_error(&path))?;
    }
    Ok(primary)
}

/// The keys of a repository, loaded: the primary first (it encrypts), then the
/// secondaries and the staged key (they only decrypt).
pub struct KeyRing {
    ring: MultiFernet,
    /// The indices loaded, primary first.
    pub indices: Vec<u64>,
}

impl KeyRing {
    /// Loads every key in `dir`.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let mut indices = key_indices(dir)?;
        if indices.is_empty() {
            return Err(KeyError::Empty(dir.to_path_buf()));
        }
        // Highest (primary) first, staged key 0 last.
        indices.reverse();
        let mut keys = Vec::with_capacity(indices.len());
        for index in &indices {
            let path = dir.join(index.to_string());
            let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
            keys.push(Fernet::new(text.trim()).ok_or(KeyError::InvalidKey(path))?);
        }
        Ok(Self {
            ring: MultiFernet::new(keys),
            indices,
        })
    }

    /// Encrypts `payload` with the primary key.
    pub fn encrypt(&self, payload: &[u8]) -> String {
        self.ring.encrypt(payload)
    }

    /// Decrypts a token signed by any key in the ring.
    pub fn decrypt(&self, token: &str) -> Option<Vec<u8>> {
        self.ring.decrypt(token).ok()
    }
}

/// A [`KeyRing`] that reloads itself when the repository directory changes
/// (a rotation by `novum identity rotate-keys` in another process).
pub struct KeyRepository {
    dir: PathBuf,
    max_active_keys: usize,
    loaded: RwLock<(Option<SystemTime>, std::sync::Arc<KeyRing>)>,
}

impl KeyRepository {
    /// Opens (creating at first start) the repository in `dir`.
    pub fn open(dir: &Path, max_active_keys: usize) -> Result<Self, KeyError> {
        if setup(dir)? {
            tracing::info!(dir = %dir.display(), "created the Fernet key repository");
        }
        let stamp = modified(dir);
        let ring = KeyRing::load(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_active_keys,
            loaded: RwLock::new((stamp, std::sync::Arc::new(ring))),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current keys, reloaded first if the directory changed.
    pub fn ring(&self) -> Result<std::sync::Arc<KeyRing>, KeyError> {
        let stamp = modified(&self.dir);
        {
            let loaded = self
                .loaded
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if loaded.0 == stamp && stamp.is_some() {
                return Ok(loaded.1.clone());
            }
        }
        self.reload()
    }

    /// Reads the keys again.
    pub fn reload(&self) -> Result<std::sync::Arc<KeyRing>, KeyError> {
        let stamp = modified(&self.dir);
        let ring = std::sync::Arc::new(KeyRing::load(&self.dir)?);
        let mut loaded = self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *loaded = (stamp, ring.clone());
        Ok(ring)
    }

    /// Rotates the keys and reloads them; returns the new primary's index.
    pub fn rotate(&self) -> Result<u64, KeyError> {
        let primary = rotate(&self.dir, self.max_active_keys)?;
        self.reload()?;
        Ok(primary)
    }
}

fn modified(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir).and_then(|meta| meta.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("novum-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn setup_creates_staged_and_primary_like_keystone() {
        let dir = temp_dir().join("keys");
        assert!(setup(&dir).expect("setup"));
        assert_eq!(key_indices(&dir).expect("list"), vec![0, 1]);
        assert!(!setup(&dir).expect("second setup"), "setup is idempotent");
        assert_eq!(key_indices(&dir).expect("list"), vec![0, 1]);
    }

    #[test]
    fn rotation_promotes_staged_and_prunes_oldest() {
        let dir = temp_dir();
        setup(&dir).expect("setup");
        let staged = std::fs::read_to_string(dir.join("0")).expect("staged key");
        assert_eq!(rotate(&dir, 3).expect("rotate"), 2);
        assert_eq!(
            std::fs::read_to_string(dir.join("2")).expect("primary"),
            staged,
            "the staged key becomes the primary"
        );
        assert_eq!(key_indices(&dir).expect("list"), vec![0, 1, 2]);
        assert_eq!(rotate(&dir, 3).expect("rotate"), 3);
        assert_eq!(key_indices(&dir).expect("list"), vec![0, 2, 3]);
        assert_eq!(rotate(&dir, 5).expect("rotate"), 4);
        assert_eq!(key_indices(&dir).expect("list"), vec![0, 2, 3, 4]);
        // max_active_keys below the minimum is raised to it.
        rotate(&dir, 1).expect("rotate");
        assert_eq!(key_indices(&dir).expect("list"), vec![0, 4, 5]);
    }

    #[test]
    fn ring_encrypts_with_primary_and_decrypts_with_any() {
        let dir = temp_dir();
        setup(&dir).expect("setup");
        let old = KeyRing::load(&dir).expect("load");
        let token = old.encrypt(b"payload");
        rotate(&dir, 3).expect("rotate");
        let new = KeyRing::load(&dir).expect("load");
        assert_eq!(new.indices, vec![2, 1, 0]);
        assert_eq!(new.decrypt(&token).as_deref(), Some(&b"payload"[..]));
        rotate(&dir, 3).expect("rotate");
        let newest = KeyRing::load(&dir).expect("load");
        assert_eq!(newest.decrypt(&token), None, "key 1 was rotated out");
        // A token signed by the staged key (as a peer that already rotated
        // would sign) validates too.
        let staged = Fernet::new(
            std::fs::read_to_string(dir.join("0"))
                .expect("staged")
                .trim(),
        )
        .expect("key");
        assert!(newest.decrypt(&staged.encrypt(b"x")).is_some());
    }
}
