//! An instance's files on a real hypervisor, all under
//! `<instances_path>/<uuid>/`: the root disk `disk` (a qcow2 overlay on the
//! cached image), `disk.eph0` and `disk.swap` as the flavor says, the
//! `kernel` and `ramdisk` of a direct kernel boot and the serial console's
//! `console.log`. Made with `qemu-img`; removed as a whole.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use novum_wire::FlavorSpec;
use serde::Deserialize;
use tracing::{debug, info};

use super::DriverError;
use super::images::{CachedImage, set_mode};

/// File name of the root disk.
pub const ROOT_DISK: &str = "disk";
/// File name of the ephemeral disk.
pub const EPHEMERAL_DISK: &str = "disk.eph0";
/// File name of the swap disk.
pub const SWAP_DISK: &str = "disk.swap";
/// File name of the kernel of a direct kernel boot.
pub const KERNEL_FILE: &str = "kernel";
/// File name of the ramdisk of a direct kernel boot.
pub const RAMDISK_FILE: &str = "ramdisk";
/// File name of the serial console's log.
pub const CONSOLE_LOG: &str = "console.log";
/// File name of the disk a rescued instance boots from (made from the
/// rescue image; the root disk is attached after it).
pub const RESCUE_DISK: &str = "disk.rescue";
/// File name of the kernel of a rescue image's direct kernel boot.
pub const RESCUE_KERNEL_FILE: &str = "kernel.rescue";
/// File name of the ramdisk of a rescue image's direct kernel boot.
pub const RESCUE_RAMDISK_FILE: &str = "ramdisk.rescue";

const BYTES_PER_GIB: u64 = 1024 * 1024 * 1024;

/// Runs `qemu-img` with `args`; its stdout, or what it said on failure.
pub fn qemu_img(args: &[&str]) -> Result<String, DriverError> {
    debug!(?args, "qemu-img");
    let output = Command::new("qemu-img")
        .args(args)
        .output()
        .map_err(|e| DriverError::Disk(format!("running qemu-img: {e}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(DriverError::Disk(format!(
            "qemu-img {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// What `qemu-img info` says about a disk file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DiskInfo {
    /// The file's format (`qcow2`, `raw`).
    pub format: String,
    /// The disk's size as the guest sees it, in bytes.
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    /// The backing file, for an overlay.
    #[serde(rename = "backing-filename", default)]
    pub backing_filename: Option<String>,
}

/// `qemu-img info` of `path`, reading it as `format` (never probing a file
/// the guest could write).
pub fn disk_info(path: &Path, format: &str) -> Result<DiskInfo, DriverError> {
    let path = path_text(path)?;
    let json = qemu_img(&["info", "--output=json", "-U", "-f", format, path])?;
    serde_json::from_str(&json).map_err(|e| DriverError::Disk(format!("qemu-img info {path}: {e}")))
}

fn path_text(path: &Path) -> Result<&str, DriverError> {
    path.to_str()
        .ok_or_else(|| DriverError::Disk(format!("the path {} is not UTF-8", path.display())))
}

/// The files of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFiles {
    /// `<instances_path>/<uuid>`.
    pub dir: PathBuf,
}

impl InstanceFiles {
    /// The files of `instance` under `instances_path`.
    pub fn new(instances_path: &Path, instance: uuid::Uuid) -> Self {
        InstanceFiles {
            dir: instances_path.join(instance.to_string()),
        }
    }

    /// The path of `file` in the instance's directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Makes the directory (and its parents, searchable by qemu's user).
    pub fn create_dir(&self) -> Result<(), DriverError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| DriverError::Disk(format!("creating {}: {e}", self.dir.display())))?;
        set_mode(&self.dir, 0o755)?;
        if let Some(parent) = self.dir.parent() {
            set_mode(parent, 0o755)?;
        }
        Ok(())
    }

    /// Makes the disks `flavor` asks for that do not exist yet: the root
    /// overlay on `image` (`root_gb`, or the image's own size when 0; never
    /// smaller than the image), the ephemeral and the swap disk.
    pub fn create_disks(
        &self,
        image: &CachedImage,
        flavor: &FlavorSpec,
    ) -> Result<(), DriverError> {
        self.create_overlay(ROOT_DISK, image, flavor.root_gb)?;
        self.create_blank(EPHEMERAL_DISK, flavor.ephemeral_gb * BYTES_PER_GIB)?;
        self.create_blank(SWAP_DISK, flavor.swap_mb * 1024 * 1024)?;
        Ok(())
    }

    /// Makes `file`, a qcow2 overlay on `image` of `root_gb` (or the
    /// image's own size when 0; never smaller than the image), unless it
    /// exists: the root disk, or a rescued instance's [`RESCUE_DISK`].
    pub fn create_overlay(
        &self,
        file: &str,
        image: &CachedImage,
        root_gb: u64,
    ) -> Result<(), DriverError> {
        self.create_dir()?;
        let disk = self.path(file);
        if disk.exists() {
            return Ok(());
        }
        let base = path_text(&image.path)?;
        let image_size = disk_info(&image.path, image.qemu_format())?.virtual_size;
        let size = (root_gb * BYTES_PER_GIB).max(image_size).to_string();
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            image.qemu_format(),
            "-b",
            base,
            path_text(&disk)?,
            &size,
        ])?;
        info!(disk = %disk.display(), bytes = size, backing = base, "overlay disk made");
        Ok(())
    }

    /// Removes `files` of the instance's directory (those missing are no
    /// error): a rebuild's old root disk, a rescue's disk.
    pub fn remove_files(&self, files: &[&str]) -> Result<(), DriverError> {
        for file in files {
            let path = self.path(file);
            match fs::remove_file(&path) {
                Ok(()) => info!(file = %path.display(), "instance file removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DriverError::Disk(format!(
                        "removing {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    fn create_blank(&self, file: &str, bytes: u64) -> Result<(), DriverError> {
        let path = self.path(file);
        if bytes == 0 || path.exists() {
            return Ok(());
        }
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            path_text(&path)?,
            &bytes.to_string(),
        ])?;
        Ok(())
    }

    /// Grows the root disk to `root_gb` (a resize); a disk as big or bigger
    /// stays as it is (disks never shrink).
    pub fn grow_root(&self, root_gb: u64) -> Result<(), DriverError> {
        let root = self.path(ROOT_DISK);
        let current = disk_info(&root, "qcow2")?.virtual_size;
        let wanted = root_gb * BYTES_PER_GIB;
        if wanted > current {
            qemu_img(&[
                "resize",
                "-q",
                "-f",
                "qcow2",
                path_text(&root)?,
                &wanted.to_string(),
            ])?;
            info!(disk = %root.display(), from = current, to = wanted, "root disk grown");
        }
        Ok(())
    }

    /// Writes the root disk, its overlay flattened onto the backing image,
    /// to `target` as one standalone qcow2 file (a snapshot's data).
    /// `-U`: a guest that is paused still holds the disk's lock.
    pub fn flatten_root(&self, target: &Path) -> Result<(), DriverError> {
        let root = self.path(ROOT_DISK);
        qemu_img(&[
            "convert",
            "-q",
            "-U",
            "-f",
            "qcow2",
            "-O",
            "qcow2",
            path_text(&root)?,
            path_text(target)?,
        ])?;
        set_mode(target, 0o644)?;
        info!(disk = %root.display(), snapshot = %target.display(), "root disk flattened");
        Ok(())
    }

    /// Copies a cached kernel or ramdisk into the instance's directory as `file`.
    pub fn copy_boot_file(&self, image: &CachedImage, file: &str) -> Result<PathBuf, DriverError> {
        let path = self.path(file);
        if !path.exists() {
            let partial = self.path(&format!(".{file}.part"));
            fs::copy(&image.path, &partial)
                .and_then(|_| fs::rename(&partial, &path))
                .map_err(|e| DriverError::Disk(format!("copying {}: {e}", image.path.display())))?;
        }
        Ok(path)
    }

    /// Removes the directory and everything in it (nothing to do when it is gone).
    pub fn remove(&self) -> Result<(), DriverError> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => {
                info!(dir = %self.dir.display(), "instance files removed");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DriverError::Disk(format!(
                "removing {}: {e}",
                self.dir.display()
            ))),
        }
    }
}
