//! Images on a compute host: downloaded from the controller's image service,
//! verified against its checksum and cached once per host under
//! `<instances_path>/_base/<image id>` (Nova's image cache).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use novum_wire::ImageFileInfo;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::DriverError;

/// Name of the image cache's directory inside the instances path.
pub const BASE_DIR: &str = "_base";

/// The bytes of one image, as a source hands them out.
pub struct ImageData {
    /// What the image service says about the data (format, size, hashes).
    pub info: ImageFileInfo,
    /// The data.
    pub reader: Box<dyn Read + Send>,
}

/// The controller's image service as a host uses it: where it gets image
/// data from, and where a snapshot's data goes. Blocking.
pub trait ImageSource: Send + Sync {
    /// Opens the data of image `image_id`.
    fn open(&self, image_id: &str) -> Result<ImageData, DriverError>;

    /// Uploads the file at `path` (in `disk_format`) as the data of the
    /// snapshot image `image_id`, with its size and SHA-256 for the image
    /// service to check. A source that takes no uploads refuses.
    fn upload(&self, image_id: &str, disk_format: &str, path: &Path) -> Result<(), DriverError> {
        let _ = (disk_format, path);
        Err(DriverError::Unsupported(format!(
            "this image source takes no upload (image {image_id})"
        )))
    }
}

/// What an upload tells the image service about the file at `path`: its
/// format, size and SHA-256 (read once, in pieces).
pub fn upload_info(path: &Path, disk_format: &str) -> Result<ImageFileInfo, DriverError> {
    let mut file = fs::File::open(path).map_err(io_error("opening", path))?;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut size: u64 = 0;
    let mut buffer = vec![0_u8; 1 << 20];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("reading", path)(e)),
        };
        sha2::Digest::update(&mut hasher, &buffer[..read]);
        size += read as u64;
    }
    Ok(ImageFileInfo {
        disk_format: Some(disk_format.to_string()),
        size: Some(size),
        os_hash_algo: Some("sha256".to_string()),
        os_hash_value: Some(hex::encode(sha2::Digest::finalize(hasher))),
        ..ImageFileInfo::default()
    })
}

/// An image in the host's cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedImage {
    /// The image.
    pub id: String,
    /// The data's file.
    #[serde(skip)]
    pub path: PathBuf,
    /// Glance's `disk_format` of the data (`raw`, `qcow2`, `aki`, ...).
    pub disk_format: Option<String>,
    /// Bytes.
    pub size: u64,
}

impl CachedImage {
    /// The format qemu reads the data as: `qcow2` for qcow2 images, `raw`
    /// for everything else (raw, and the kernels and ramdisks of AKI/ARI).
    pub fn qemu_format(&self) -> &'static str {
        match self.disk_format.as_deref() {
            Some("qcow2") => "qcow2",
            _ => "raw",
        }
    }
}

/// The per-host image cache. Concurrent fetches of one image download it
/// once; the others wait and find it cached.
#[derive(Default)]
pub struct ImageCache {
    dir: PathBuf,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// `id` when it can name a file (an image id is a uuid in practice):
/// letters, digits, `-`, `_` and `.`, not starting with a dot, at most 255.
pub fn check_image_id(id: &str) -> Result<&str, DriverError> {
    let valid = !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(id)
    } else {
        Err(DriverError::InvalidInput(format!(
            "the image id {:?} is not a valid image id (letters, digits, '-', '_', '.')",
            crate::execute::printable(id)
        )))
    }
}

fn io_error(what: &str, path: &Path) -> impl FnOnce(io::Error) -> DriverError {
    let context = format!("{what} {}", path.display());
    move |e| DriverError::Image(format!("{context}: {e}"))
}

impl ImageCache {
    /// The cache of the host whose instances live in `instances_path`.
    pub fn new(instances_path: &Path) -> Self {
        ImageCache {
            dir: instances_path.join(BASE_DIR),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn info_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.info"))
    }

    /// The cached image `id`, if it is in the cache.
    pub fn cached(&self, id: &str) -> Option<CachedImage> {
        let path = self.dir.join(id);
        let info = fs::read(self.info_path(id)).ok()?;
        let mut image: CachedImage = serde_json::from_slice(&info).ok()?;
        path.is_file().then(|| {
            image.path = path;
            image
        })
    }

    /// Image `id` from the cache, downloaded from `source` first when it is
    /// not there. The download goes to a temporary file that is verified
    /// (size, then `os_hash_value` when its algorithm is known, else the MD5
    /// `checksum`) before it is renamed into place: a bad download leaves
    /// nothing behind.
    pub fn fetch(&self, source: &dyn ImageSource, id: &str) -> Result<CachedImage, DriverError> {
        check_image_id(id)?;
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .map_err(|_| DriverError::Image("the image cache lock is poisoned".into()))?;
            Arc::clone(locks.entry(id.to_string()).or_default())
        };
        let _guard = lock
            .lock()
            .map_err(|_| DriverError::Image("the image lock is poisoned".into()))?;
        if let Some(image) = self.cached(id) {
            return Ok(image);
        }
        fs::create_dir_all(&self.dir).map_err(io_error("creating", &self.dir))?;
        // qemu (as libvirt-qemu) reads the backing files through this directory.
        set_mode(&self.dir, 0o755)?;
        let partial = self.dir.join(format!(".{id}.part"));
        let result = self.download(source, id, &partial);
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        result
    }

    fn download(
        &self,
        source: &dyn ImageSource,
        id: &str,
        partial: &Path,
    ) -> Result<CachedImage, DriverError> {
        let started = std::time::Instant::now();
        let ImageData { info, mut reader } = source.open(id)?;
        let mut file = fs::File::create(partial).map_err(io_error("creating", partial))?;
        let mut hasher = Hasher::for_info(&info);
        let mut size: u64 = 0;
        let mut buffer = vec![0_u8; 1 << 20];
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DriverError::Image(format!("downloading image {id}: {e}")));
                }
            };
            let chunk = &buffer[..read];
            hasher.update(chunk);
            size += read as u64;
            file.write_all(chunk)
                .map_err(io_error("writing", partial))?;
        }
        file.sync_all().map_err(io_error("syncing", partial))?;
        drop(file);
        if let Some(expected) = info.size
            && expected != size
        {
            return Err(DriverError::Image(format!(
                "image {id}: received {size} bytes, the image service says {expected}"
            )));
        }
        hasher.verify(id)?;
        set_mode(partial, 0o644)?;
        let target = self.dir.join(id);
        let image = CachedImage {
            id: id.to_string(),
            path: target.clone(),
            disk_format: info.disk_format.clone(),
            size,
        };
        let info_path = self.info_path(id);
        fs::write(
            &info_path,
            serde_json::to_vec(&image).map_err(|e| DriverError::Image(e.to_string()))?,
        )
        .map_err(io_error("writing", &info_path))?;
        fs::rename(partial, &target).map_err(io_error("renaming to", &target))?;
        info!(
            image = id,
            size,
            seconds = started.elapsed().as_secs_f64(),
            "image downloaded and verified"
        );
        Ok(image)
    }
}

/// Sets the permission bits of `path`.
pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), DriverError> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_error("setting the permissions of", path))
}

/// The hash an image's data is checked against: Glance's `os_hash_value`
/// when its algorithm is one the agent knows, else the MD5 `checksum`.
enum Hasher {
    Sha256(sha2::Sha256, String),
    Sha512(sha2::Sha512, String),
    Md5(md5::Md5, String),
    None,
}

impl Hasher {
    fn for_info(info: &ImageFileInfo) -> Self {
        let expected = |value: &String| value.trim().to_ascii_lowercase();
        match (info.os_hash_algo.as_deref(), &info.os_hash_value) {
            (Some("sha512"), Some(value)) => Hasher::Sha512(sha2::Digest::new(), expected(value)),
            (Some("sha256"), Some(value)) => Hasher::Sha256(sha2::Digest::new(), expected(value)),
            _ => match &info.checksum {
                Some(value) => Hasher::Md5(md5::Digest::new(), expected(value)),
                None => Hasher::None,
            },
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        match self {
            Hasher::Sha256(hasher, _) => sha2::Digest::update(hasher, chunk),
            Hasher::Sha512(hasher, _) => sha2::Digest::update(hasher, chunk),
            Hasher::Md5(hasher, _) => md5::Digest::update(hasher, chunk),
            Hasher::None => {}
        }
    }

    fn verify(self, id: &str) -> Result<(), DriverError> {
        let (algo, actual, expected) = match self {
            Hasher::Sha256(hasher, expected) => (
                "sha256",
                hex::encode(sha2::Digest::finalize(hasher)),
                expected,
            ),
            Hasher::Sha512(hasher, expected) => (
                "sha512",
                hex::encode(sha2::Digest::finalize(hasher)),
                expected,
            ),
            Hasher::Md5(hasher, expected) => {
                ("md5", hex::encode(md5::Digest::finalize(hasher)), expected)
            }
            Hasher::None => {
                return Err(DriverError::Image(format!(
                    "image {id}: the image service gave no checksum to verify the data with"
                )));
            }
        };
        if actual == expected {
            Ok(())
        } else {
            Err(DriverError::Image(format!(
                "image {id}: {algo} of the data is {actual}, the image service says {expected}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Serves one image from memory, counting the downloads.
    struct Counting {
        data: Vec<u8>,
        info: ImageFileInfo,
        opened: AtomicUsize,
    }

    impl ImageSource for Counting {
        fn open(&self, _image_id: &str) -> Result<ImageData, DriverError> {
            self.opened.fetch_add(1, Ordering::SeqCst);
            // Slow enough that concurrent fetches overlap.
            std::thread::sleep(std::time::Duration::from_millis(100));
            Ok(ImageData {
                info: self.info.clone(),
                reader: Box::new(io::Cursor::new(self.data.clone())),
            })
        }
    }

    fn source(data: &[u8], info: ImageFileInfo) -> Counting {
        Counting {
            data: data.to_vec(),
            info,
            opened: AtomicUsize::new(0),
        }
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("novum-image-cache-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn concurrent_fetches_of_one_image_download_it_once() {
        let data = b"the image".repeat(1000);
        let source = source(
            &data,
            ImageFileInfo {
                disk_format: Some("raw".into()),
                size: Some(data.len() as u64),
                checksum: Some(hex::encode(md5::Digest::finalize(
                    <md5::Md5 as md5::Digest>::new_with_prefix(&data),
                ))),
                ..ImageFileInfo::default()
            },
        );
        let dir = temp_dir();
        let cache = ImageCache::new(&dir);
        let fetched: Vec<CachedImage> = std::thread::scope(|scope| {
            let fetches: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| cache.fetch(&source, "img-1")))
                .collect();
            fetches
                .into_iter()
                .map(|fetch| fetch.join().expect("thread").expect("fetch"))
                .collect()
        });
        assert_eq!(source.opened.load(Ordering::SeqCst), 1);
        assert!(fetched.iter().all(|image| image == &fetched[0]));
        assert_eq!(fs::read(&fetched[0].path).expect("cached"), data);
        assert_eq!(fetched[0].qemu_format(), "raw");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_wrong_hash_a_wrong_size_or_no_hash_keeps_nothing() {
        let data = b"the image".to_vec();
        let right = ImageFileInfo {
            size: Some(data.len() as u64),
            os_hash_algo: Some("sha512".into()),
            os_hash_value: Some(hex::encode(<sha2::Sha512 as sha2::Digest>::digest(&data))),
            ..ImageFileInfo::default()
        };
        let cases = [
            (
                ImageFileInfo {
                    os_hash_value: Some("00".repeat(64)),
                    ..right.clone()
                },
                "sha512",
            ),
            (
                ImageFileInfo {
                    size: Some(3),
                    ..right.clone()
                },
                "received 9 bytes",
            ),
            (
                ImageFileInfo {
                    checksum: Some("0".repeat(32)),
                    os_hash_algo: Some("whirlpool".into()),
                    ..right.clone()
                },
                "md5",
            ),
            (ImageFileInfo::default(), "no checksum"),
        ];
        let dir = temp_dir();
        let cache = ImageCache::new(&dir);
        for (info, why) in cases {
            let error = cache
                .fetch(&source(&data, info), "img-2")
                .expect_err("a bad download must fail");
            assert!(error.to_string().contains(why), "{error}");
            let left: Vec<_> = fs::read_dir(cache.dir()).expect("dir").collect();
            assert!(left.is_empty(), "{left:?}");
        }
        let image = cache.fetch(&source(&data, right), "img-2").expect("fetch");
        assert_eq!(image.size, 9);
        assert!(
            cache
                .fetch(&source(&data, ImageFileInfo::default()), "../x")
                .is_err()
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
