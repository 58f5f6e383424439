//! Images: the Glance v2 subset clients need, under `/image`.
//!
//! An image is a row in `images` (core fields, tags, and additional
//! properties as a JSON object of strings) plus, once uploaded, a file in
//! `<data_dir>/images/<id>`. Visibility follows Glance: `public` images are
//! seen by everyone, `community` images by everyone who asks for them,
//! `shared` images by their owner and the projects they were shared with
//! (`image_members`), `private` images by their owner only; admins see all.
//! An image the caller may not see does not exist for it (404).
//!
//! The compute side calls [`get_for_project`] to look an image up for a boot.
//! The HTTP handlers are in the novum crate's `api::images`; who asks is a
//! [`Viewer`]. The `[images]` configuration section is [`ImagesConfig`].

#![deny(missing_docs)]

pub mod data;
pub mod listing;

use std::collections::BTreeMap;

use serde::Deserialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use novum_db::{Db, DbError};

pub use listing::{
    FilterColumn, ImageListing, ImagePage, SortKey, ValueMatch, VisibilityFilter, list,
};

/// Status of an image without data.
pub const STATUS_QUEUED: &str = "queued";
/// Status while data is being uploaded.
pub const STATUS_SAVING: &str = "saving";
/// Status of an image with data, ready to boot.
pub const STATUS_ACTIVE: &str = "active";

/// Bytes in a MiB (the unit of the `[images]` sizes).
pub const BYTES_PER_MB: u64 = 1024 * 1024;
/// The largest image accepted by default, in MiB: Glance's `image_size_cap`
/// default, 1 TiB.
pub const DEFAULT_MAX_IMAGE_SIZE_MB: u64 = 1024 * 1024;

/// `[images]`: limits on image data, as Glance's `image_size_cap` and
/// per-project storage quota (`user_storage_quota`, or unified limits'
/// `image_size_total`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    /// The largest image data one upload may store, in MiB; an upload
    /// beyond it is refused with 413 and nothing is kept.
    pub max_image_size_mb: u64,
    /// The image data one project may store in all, in MiB (the sizes of
    /// its images that have data); `None`: unlimited. An upload that would
    /// pass it is refused with 413 and nothing is kept.
    pub project_storage_quota_mb: Option<u64>,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            max_image_size_mb: DEFAULT_MAX_IMAGE_SIZE_MB,
            project_storage_quota_mb: None,
        }
    }
}

/// The disk formats Glance accepts.
pub const DISK_FORMATS: [&str; 11] = [
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
/// The container formats Glance accepts.
pub const CONTAINER_FORMATS: [&str; 8] = [
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];

/// Who looks at images: the caller's project, and whether it is an admin
/// (who sees every image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewer<'a> {
    /// The caller's project.
    pub project_id: &'a str,
    /// The caller holds the admin role.
    pub is_admin: bool,
}

/// Who may see an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Everyone.
    Public,
    /// Everyone who asks for community images; listed to its owner.
    Community,
    /// The owner and the member projects.
    Shared,
    /// The owner only.
    Private,
}

impl Visibility {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Community => "community",
            Self::Shared => "shared",
            Self::Private => "private",
        }
    }

    /// Parses the API spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "public" => Some(Self::Public),
            "community" => Some(Self::Community),
            "shared" => Some(Self::Shared),
            "private" => Some(Self::Private),
            _ => None,
        }
    }
}

/// An image's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Id (uuid).
    pub id: String,
    /// Name (not unique).
    pub name: Option<String>,
    /// The owning project.
    pub owner: String,
    /// `queued`, `saving` or `active`.
    pub status: String,
    /// Who may see it.
    pub visibility: Visibility,
    /// Protected images cannot be deleted.
    pub protected: bool,
    /// Hidden images are left out of lists unless asked for.
    pub os_hidden: bool,
    /// `raw`, `qcow2`, ...
    pub disk_format: Option<String>,
    /// `bare`, `ovf`, ...
    pub container_format: Option<String>,
    /// Smallest root disk to boot it, GiB.
    pub min_disk: i64,
    /// Smallest RAM to boot it, MiB.
    pub min_ram: i64,
    /// Bytes of data (once uploaded).
    pub size: Option<i64>,
    /// Size of the disk the data unpacks to, if known.
    pub virtual_size: Option<i64>,
    /// MD5 of the data, hex.
    pub checksum: Option<String>,
    /// `sha256`.
    pub os_hash_algo: Option<String>,
    /// The data's hash with `os_hash_algo`, hex.
    pub os_hash_value: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Additional properties (`hw_architecture`, `img_hv_type`, `hw_vm_mode`, ...).
    pub properties: BTreeMap<String, String>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last changed, RFC 3339.
    pub updated_at: String,
}

impl Image {
    /// A property's value.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }
}

/// Errors of image lookups.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No such image, or the caller may not see it.
    #[error("Image {0} could not be found.")]
    NotFound(String),
    /// An image with this id exists already.
    #[error("An image with identifier {0} already exists")]
    AlreadyExists(String),
    /// A listing's marker is not an image the caller may see.
    #[error("Invalid marker. Image {0} could not be found.")]
    InvalidMarker(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ImageError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(DbError::Query(error))
    }
}

/// The columns every image query selects.
const IMAGE_COLUMNS: &str = "id, name, owner, status, visibility, protected, os_hidden, disk_format, container_format, min_disk, min_ram, size, virtual_size, checksum, os_hash_algo, os_hash_value, tags, properties, created_at, updated_at";

fn image_from(row: &AnyRow) -> Result<Image, sqlx::Error> {
    let decode = |column: &str, error: serde_json::Error| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(error),
    };
    let visibility: String = row.try_get("visibility")?;
    Ok(Image {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        status: row.try_get("status")?,
        visibility: Visibility::parse(&visibility).unwrap_or(Visibility::Private),
        protected: row.try_get::<i64, _>("protected")? != 0,
        os_hidden: row.try_get::<i64, _>("os_hidden")? != 0,
        disk_format: row.try_get("disk_format")?,
        container_format: row.try_get("container_format")?,
        min_disk: row.try_get("min_disk")?,
        min_ram: row.try_get("min_ram")?,
        size: row.try_get("size")?,
        virtual_size: row.try_get("virtual_size")?,
        checksum: row.try_get("checksum")?,
        os_hash_algo: row.try_get("os_hash_algo")?,
        os_hash_value: row.try_get("os_hash_value")?,
        tags: serde_json::from_str(&row.try_get::<String, _>("tags")?)
            .map_err(|error| decode("tags", error))?,
        properties: serde_json::from_str(&row.try_get::<String, _>("properties")?)
            .map_err(|error| decode("properties", error))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Vec<String> and BTreeMap<String, String> always serialize.
    serde_json::to_string(value).unwrap_or_default()
}

/// The image with `id`, whoever may see it.
pub async fn get(db: &Db, id: &str) -> Result<Option<Image>, ImageError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(image_from).transpose()?)
}

/// The membership status of `project_id` in `image_id`, if it is a member.
pub async fn member_status(
    db: &Db,
    image_id: &str,
    project_id: &str,
) -> Result<Option<String>, ImageError> {
    let row =
        sqlx::query("SELECT status FROM image_members WHERE image_id = $1 AND member_id = $2")
            .bind(image_id)
            .bind(project_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|row| row.try_get("status")).transpose()?)
}

/// Whether `viewer` may see `image` (Glance's rules; members of a shared
/// image see it whatever their membership status).
pub async fn may_see(db: &Db, image: &Image, viewer: &Viewer<'_>) -> Result<bool, ImageError> {
    if viewer.is_admin || image.owner == viewer.project_id {
        return Ok(true);
    }
    Ok(match image.visibility {
        Visibility::Public | Visibility::Community => true,
        Visibility::Private => false,
        Visibility::Shared => member_status(db, &image.id, viewer.project_id)
            .await?
            .is_some(),
    })
}

/// The image `id` as `viewer` sees it: [`ImageError::NotFound`] when it does
/// not exist or `viewer`'s project may not see it. This is what the compute
/// API calls to boot from an image; the properties the scheduler's filters
/// read (`hw_architecture`, `img_hv_type`, `hw_vm_mode`, ...) are in
/// [`Image::properties`].
pub async fn get_for_project(db: &Db, id: &str, viewer: &Viewer<'_>) -> Result<Image, ImageError> {
    let image = get(db, id)
        .await?
        .ok_or_else(|| ImageError::NotFound(id.to_string()))?;
    if may_see(db, &image, viewer).await? {
        Ok(image)
    } else {
        Err(ImageError::NotFound(id.to_string()))
    }
}

/// The image data `owner`'s images hold, in bytes, not counting image
/// `except` (the one being uploaded).
pub async fn stored_bytes(db: &Db, owner: &str, except: &str) -> Result<u64, ImageError> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS stored FROM images WHERE owner = $1 AND id <> $2 AND size IS NOT NULL",
    )
    .bind(owner)
    .bind(except)
    .fetch_one(db.pool())
    .await?;
    let stored: i64 = row.try_get("stored")?;
    Ok(u64::try_from(stored).unwrap_or(0))
}

/// The most one upload may store, and which limit sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadLimit {
    /// `[images] max_image_size_mb`, in bytes.
    SizeCap(u64),
    /// What is left of the owner's `[images] project_storage_quota_mb`, in
    /// bytes (less than the size cap).
    StorageQuota(u64),
}

impl UploadLimit {
    /// The limit for an upload into `image` under `config`: the size cap, or
    /// what the owner's storage quota leaves when that is less.
    pub async fn for_image(
        db: &Db,
        config: &ImagesConfig,
        image: &Image,
    ) -> Result<Self, ImageError> {
        let cap = config.max_image_size_mb.saturating_mul(BYTES_PER_MB);
        let Some(quota_mb) = config.project_storage_quota_mb else {
            return Ok(Self::SizeCap(cap));
        };
        let quota = quota_mb.saturating_mul(BYTES_PER_MB);
        let remaining = quota.saturating_sub(stored_bytes(db, &image.owner, &image.id).await?);
        Ok(if remaining < cap {
            Self::StorageQuota(remaining)
        } else {
            Self::SizeCap(cap)
        })
    }

    /// The most the upload may store, in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            Self::SizeCap(bytes) | Self::StorageQuota(bytes) => bytes,
        }
    }

    /// Why an upload of `size` bytes (when known) was refused, in Glance's words.
    pub fn refusal(self, size: Option<u64>) -> String {
        let size = size.map(|size| format!(" {size}")).unwrap_or_default();
        match self {
            Self::SizeCap(cap) => format!(
                "The incoming image is too large: the data{size} exceeds the image size limit of {cap} bytes."
            ),
            Self::StorageQuota(remaining) => format!(
                "Denying attempt to upload image because it exceeds the quota: The size of the data{size} will exceed the limit. {remaining} bytes remaining."
            ),
        }
    }
}

/// Inserts a new image ([`ImageError::AlreadyExists`] when its id is taken).
pub async fn insert(db: &Db, image: &Image) -> Result<(), ImageError> {
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO images ({IMAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    )))
    .bind(&image.id)
    .bind(&image.name)
    .bind(&image.owner)
    .bind(&image.status)
    .bind(image.visibility.as_str())
    .bind(i64::from(image.protected))
    .bind(i64::from(image.os_hidden))
    .bind(&image.disk_format)
    .bind(&image.container_format)
    .bind(image.min_disk)
    .bind(image.min_ram)
    .bind(image.size)
    .bind(image.virtual_size)
    .bind(&image.checksum)
    .bind(&image.os_hash_algo)
    .bind(&image.os_hash_value)
    .bind(to_json(&image.tags))
    .bind(to_json(&image.properties))
    .bind(&image.created_at)
    .bind(&image.updated_at)
    .execute(db.pool())
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(error) if novum_db::is_unique_violation(&error) => {
            Err(ImageError::AlreadyExists(image.id.clone()))
        }
        Err(error) => Err(error.into()),
    }
}

/// Writes the user-changeable fields of `image` (not status or data fields)
/// and stamps `updated_at`; false when the image is gone.
pub async fn update_metadata(db: &Db, image: &mut Image) -> Result<bool, ImageError> {
    image.updated_at = novum_db::now();
    let result = sqlx::query(
        "UPDATE images SET name = $1, owner = $2, visibility = $3, protected = $4, os_hidden = $5, disk_format = $6, container_format = $7, min_disk = $8, min_ram = $9, tags = $10, properties = $11, updated_at = $12 WHERE id = $13",
    )
    .bind(&image.name)
    .bind(&image.owner)
    .bind(image.visibility.as_str())
    .bind(i64::from(image.protected))
    .bind(i64::from(image.os_hidden))
    .bind(&image.disk_format)
    .bind(&image.container_format)
    .bind(image.min_disk)
    .bind(image.min_ram)
    .bind(to_json(&image.tags))
    .bind(to_json(&image.properties))
    .bind(&image.updated_at)
    .bind(&image.id)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Moves `id` from status `from` to `to`; false when it was not in `from`.
pub async fn transition(db: &Db, id: &str, from: &str, to: &str) -> Result<bool, ImageError> {
    let result =
        sqlx::query("UPDATE images SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
            .bind(to)
            .bind(novum_db::now())
            .bind(id)
            .bind(from)
            .execute(db.pool())
            .await?;
    Ok(result.rows_affected() > 0)
}

/// Marks `id` active with its data's size and hashes; false when it was no
/// longer saving (deleted meanwhile).
pub async fn activate(db: &Db, id: &str, stored: &data::StoredData) -> Result<bool, ImageError> {
    let result = sqlx::query(
        "UPDATE images SET status = $1, size = $2, virtual_size = $3, checksum = $4, os_hash_algo = $5, os_hash_value = $6, updated_at = $7 WHERE id = $8 AND status = $9",
    )
    .bind(STATUS_ACTIVE)
    .bind(stored.size)
    .bind(stored.virtual_size)
    .bind(&stored.md5)
    .bind(data::HASH_ALGO)
    .bind(&stored.sha256)
    .bind(novum_db::now())
    .bind(id)
    .bind(STATUS_SAVING)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Deletes the image row (members go with it); false when it was gone.
pub async fn delete(db: &Db, id: &str) -> Result<bool, ImageError> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM image_members WHERE image_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let result = sqlx::query("DELETE FROM images WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(result.rows_affected() > 0)
}

/// A member of a shared image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The image.
    pub image_id: String,
    /// The member project.
    pub member_id: String,
    /// `pending`, `accepted` or `rejected`.
    pub status: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last changed, RFC 3339.
    pub updated_at: String,
}

fn member_from(row: &AnyRow) -> Result<Member, sqlx::Error> {
    Ok(Member {
        image_id: row.try_get("image_id")?,
        member_id: row.try_get("member_id")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The members of `image_id`, optionally only `member_id`.
pub async fn members(
    db: &Db,
    image_id: &str,
    member_id: Option<&str>,
) -> Result<Vec<Member>, ImageError> {
    let rows = sqlx::query(
        "SELECT image_id, member_id, status, created_at, updated_at FROM image_members WHERE image_id = $1 AND ($2 = '' OR member_id = $2) ORDER BY member_id",
    )
    .bind(image_id)
    .bind(member_id.unwrap_or_default())
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(member_from).collect::<Result<_, _>>()?)
}

/// Adds `member_id` (pending); false when it already is a member.
pub async fn add_member(db: &Db, image_id: &str, member_id: &str) -> Result<bool, ImageError> {
    let now = novum_db::now();
    let inserted = sqlx::query(
        "INSERT INTO image_members (image_id, member_id, status, created_at, updated_at) VALUES ($1, $2, 'pending', $3, $3)",
    )
    .bind(image_id)
    .bind(member_id)
    .bind(&now)
    .execute(db.pool())
    .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(error) if novum_db::is_unique_violation(&error) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Sets a member's status; false when it is not a member.
pub async fn set_member_status(
    db: &Db,
    image_id: &str,
    member_id: &str,
    status: &str,
) -> Result<bool, ImageError> {
    let result = sqlx::query(
        "UPDATE image_members SET status = $1, updated_at = $2 WHERE image_id = $3 AND member_id = $4",
    )
    .bind(status)
    .bind(novum_db::now())
    .bind(image_id)
    .bind(member_id)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Removes a member; false when it was not one.
pub async fn remove_member(db: &Db, image_id: &str, member_id: &str) -> Result<bool, ImageError> {
    let result = sqlx::query("DELETE FROM image_members WHERE image_id = $1 AND member_id = $2")
        .bind(image_id)
        .bind(member_id)
        .execute(db.pool())
        .await?;
    Ok(result.rows_affected() > 0)
}
