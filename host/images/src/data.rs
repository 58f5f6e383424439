//! Image data on disk: `<data_dir>/images/<id>`, written from a streamed
//! body (hashing as it goes) and opened to be streamed back out.

use std::path::{Path, PathBuf};
use std::pin::Pin;

use http_body::Body;
use md5::Digest as _;
use tokio::io::AsyncWriteExt;

/// The algorithm of `os_hash_value`.
pub const HASH_ALGO: &str = "sha256";

/// Errors of the data store.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading the body failed (the client went away).
    #[error("cannot read the image data from the request: {0}")]
    Body(String),
    /// The data passed the most the upload may store; nothing was kept.
    #[error("the image data is larger than the {limit} bytes this upload may store")]
    TooLarge {
        /// The most the upload may store, in bytes.
        limit: u64,
    },
    /// A file operation failed.
    #[error("image data {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What an upload stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredData {
    /// Bytes.
    pub size: i64,
    /// The unpacked disk size when the format tells it (raw: the size).
    pub virtual_size: Option<i64>,
    /// MD5, hex (Glance's `checksum`).
    pub md5: String,
    /// SHA-256, hex (`os_hash_value`).
    pub sha256: String,
}

/// The directory of image files.
pub fn images_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("images")
}

/// The file of image `id`.
pub fn image_path(data_dir: &Path, id: &str) -> PathBuf {
    images_dir(data_dir).join(id)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Streams `body` into image `id`'s file (through a temporary file renamed
/// at the end, so a failed upload leaves nothing), hashing as it goes. Data
/// beyond `limit` bytes stops the upload with [`DataError::TooLarge`] before
/// it is written.
pub async fn store<B>(
    data_dir: &Path,
    id: &str,
    disk_format: Option<&str>,
    limit: u64,
    mut body: B,
) -> Result<StoredData, DataError>
where
    B: Body + Unpin,
    B::Data: AsRef<[u8]>,
    B::Error: std::fmt::Display,
{
    let dir = images_dir(data_dir);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(io_error(&dir))?;
    let partial = dir.join(format!(".{id}.upload"));
    let result = async {
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(io_error(&partial))?;
        let mut md5 = md5::Md5::new();
        let mut sha256 = <sha2::Sha256 as sha2::Digest>::new();
        let mut size: i64 = 0;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame.map_err(|error| DataError::Body(error.to_string()))?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let chunk = chunk.as_ref();
            size = size.saturating_add(i64::try_from(chunk.len()).unwrap_or(i64::MAX));
            if u64::try_from(size).unwrap_or(u64::MAX) > limit {
                return Err(DataError::TooLarge { limit });
            }
            md5.update(chunk);
            sha2::Digest::update(&mut sha256, chunk);
            file.write_all(chunk).await.map_err(io_error(&partial))?;
        }
        file.sync_all().await.map_err(io_error(&partial))?;
        Ok(StoredData {
            size,
            virtual_size: (disk_format == Some("raw")).then_some(size),
            md5: hex::encode(md5.finalize()),
            sha256: hex::encode(sha2::Digest::finalize(sha256)),
        })
    }
    .await;
    match result {
        Ok(stored) => {
            let target = image_path(data_dir, id);
            tokio::fs::rename(&partial, &target)
                .await
                .map_err(io_error(&target))?;
            Ok(stored)
        }
        Err(error) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(error)
        }
    }
}

/// Removes image `id`'s file (no error when there is none).
pub async fn remove(data_dir: &Path, id: &str) -> Result<(), DataError> {
    let path = image_path(data_dir, id);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(DataError::Io {
            path,
            source: error,
        }),
    }
}

/// Image `id`'s file, opened for reading, with its length.
pub async fn open(data_dir: &Path, id: &str) -> Result<(tokio::fs::File, u64), DataError> {
    let path = image_path(data_dir, id);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(io_error(&path))?;
    let length = file.metadata().await.map_err(io_error(&path))?.len();
    Ok((file, length))
}
