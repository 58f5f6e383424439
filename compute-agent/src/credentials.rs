//! The agent's own credential, kept in the state directory so that a restarted
//! agent re-uses it instead of registering again.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the stored credential inside the state directory.
pub const CREDENTIAL_FILE: &str = "agent-credential.json";

/// What is stored: the credential and whom it was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    /// Base URL of the controller that issued it.
    pub controller: String,
    /// The agent's host name.
    pub host: String,
    /// The per-agent token.
    pub token: String,
}

/// Where the credential lives; `None` keeps it in memory only.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: Option<PathBuf>,
}

impl CredentialStore {
    /// A store in `state_dir` (or none).
    pub fn new(state_dir: Option<&Path>) -> Self {
        CredentialStore {
            path: state_dir.map(|dir| dir.join(CREDENTIAL_FILE)),
        }
    }

    /// The stored token for this controller and host, if any. A file for another
    /// controller or host, or an unreadable one, counts as none.
    pub fn load(&self, controller: &str, host: &str) -> io::Result<Option<String>> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stored: StoredCredential = match serde_json::from_str(&text) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable credential file");
                return Ok(None);
            }
        };
        Ok((stored.controller == controller && stored.host == host).then_some(stored.token))
    }

    /// Store the token (owner-only permissions, replaced atomically).
    pub fn save(&self, credential: &StoredCredential) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        write_private(
            path,
            &serde_json::to_vec_pretty(credential).map_err(io::Error::other)?,
        )
    }
}

/// Writes `bytes` to `path` readable by the owner only, replacing the file
/// atomically (through `<path>.tmp`); makes the parent directory.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_mismatch() {
        let dir = std::env::temp_dir().join(format!("novum-cred-{}", uuid::Uuid::new_v4()));
        let store = CredentialStore::new(Some(&dir));
        assert_eq!(store.load("http://c", "h1").unwrap(), None);
        let cred = StoredCredential {
            controller: "http://c".into(),
            host: "h1".into(),
            token: "secret".into(),
        };
        store.save(&cred).unwrap();
        assert_eq!(
            store.load("http://c", "h1").unwrap().as_deref(),
            Some("secret")
        );
        assert_eq!(store.load("http://c", "h2").unwrap(), None);
        assert_eq!(store.load("http://other", "h1").unwrap(), None);
        let mode = fs::metadata(dir.join(CREDENTIAL_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        fs::remove_dir_all(&dir).unwrap();

        assert_eq!(CredentialStore::new(None).load("x", "y").unwrap(), None);
    }
}
