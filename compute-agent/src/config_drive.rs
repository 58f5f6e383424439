//! The config drive: the files the controller renders
//! ([`novum_wire::SpawnSpec::config_drive`]) written into an ISO 9660 volume
//! labelled `config-2`, the way Nova's libvirt driver makes it
//! (`genisoimage` with Rock Ridge and Joliet names), as
//! `<instance dir>/disk.config`, which the domain gets as a read-only IDE
//! CD-ROM (see [`crate::driver::config_drive_xml`]).

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use novum_wire::{CONFIG_DRIVE_LABEL, ConfigDriveFile};
use uuid::Uuid;

use crate::driver::DriverError;

/// The config drive's file name in the instance's directory (Nova's).
pub const DISK_CONFIG: &str = "disk.config";

/// The program that makes the volume.
pub const GENISOIMAGE: &str = "genisoimage";

/// The config drive image of `instance` under `instances_path`.
pub fn image_path(instances_path: &str, instance: Uuid) -> PathBuf {
    Path::new(instances_path)
        .join(instance.to_string())
        .join(DISK_CONFIG)
}

fn failure(message: impl Into<String>) -> DriverError {
    DriverError::ConfigDrive(message.into())
}

/// `path` when it is a relative path of plain names (no `..`, no root).
fn relative(path: &str) -> Result<&Path, DriverError> {
    let candidate = Path::new(path);
    let plain = !path.is_empty()
        && candidate
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if plain {
        Ok(candidate)
    } else {
        Err(DriverError::InvalidInput(format!(
            "the config drive file path {path:?} is not a relative path of plain names"
        )))
    }
}

/// A directory removed (with what it holds) when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `files` into a scratch directory and makes the ISO 9660 volume
/// `output` of it (replacing one that exists), with `genisoimage -o
/// <output> -ldots -allow-lowercase -allow-multidot -l -publisher novum
/// -quiet -J -r -V config-2 <dir>`. The parent directory of `output` is
/// made when missing.
pub fn build(files: &[ConfigDriveFile], output: &Path) -> Result<(), DriverError> {
    let scratch =
        ScratchDir(std::env::temp_dir().join(format!("novum-configdrive-{}", Uuid::new_v4())));
    for file in files {
        let target = scratch.0.join(relative(&file.path)?);
        let content = BASE64.decode(file.content_base64.trim()).map_err(|e| {
            DriverError::InvalidInput(format!("config drive file {}: not base64: {e}", file.path))
        })?;
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| failure(format!("cannot make {}: {e}", dir.display())))?;
        }
        std::fs::write(&target, content)
            .map_err(|e| failure(format!("cannot write {}: {e}", target.display())))?;
    }
    std::fs::create_dir_all(&scratch.0)
        .map_err(|e| failure(format!("cannot make {}: {e}", scratch.0.display())))?;
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failure(format!("cannot make {}: {e}", dir.display())))?;
    }
    let result = Command::new(GENISOIMAGE)
        .arg("-o")
        .arg(output)
        .args(["-ldots", "-allow-lowercase", "-allow-multidot", "-l"])
        .args(["-publisher", "novum", "-quiet", "-J", "-r"])
        .args(["-V", CONFIG_DRIVE_LABEL])
        .arg(&scratch.0)
        .output()
        .map_err(|e| failure(format!("cannot run {GENISOIMAGE}: {e}")))?;
    if !result.status.success() {
        return Err(failure(format!(
            "{GENISOIMAGE} failed ({}): {}",
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        )));
    }
    Ok(())
}

/// Removes the config drive image `path` (nothing to do when missing).
pub fn remove(path: &Path) -> Result<(), DriverError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(failure(format!("cannot remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}
