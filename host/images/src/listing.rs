//! Listing images: what a caller may see, narrowed by a typed filter
//! ([`ImageListing`]), ordered and paged with a marker ([`list`]).

use super::{IMAGE_COLUMNS, Image, ImageError, Viewer, Visibility, get_for_project, image_from};
use novum_db::{Backend, Db};

/// Which visibilities a listing shows (Glance's `visibility` filter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VisibilityFilter {
    /// No filter: the caller's own images, public ones and the shared ones
    /// it is a member of (community images only when asked for).
    #[default]
    Default,
    /// `all`: the default set and the community images.
    All,
    /// Images of one visibility.
    Only(Visibility),
}

/// A value a column must have: one value, or any of a list (`in:a,b`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueMatch {
    /// Equal to this.
    Equals(String),
    /// Equal to one of these (none: nothing matches).
    AnyOf(Vec<String>),
}

/// A column a listing filters on by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterColumn {
    /// `name`.
    Name,
    /// `id`.
    Id,
    /// `status`.
    Status,
    /// `owner`.
    Owner,
    /// `disk_format`.
    DiskFormat,
    /// `container_format`.
    ContainerFormat,
    /// `checksum`.
    Checksum,
    /// `os_hash_value`.
    OsHashValue,
}

impl FilterColumn {
    /// Every column, in the order the API names them.
    pub const ALL: [FilterColumn; 8] = [
        Self::Name,
        Self::Id,
        Self::Status,
        Self::Owner,
        Self::DiskFormat,
        Self::ContainerFormat,
        Self::Checksum,
        Self::OsHashValue,
    ];

    /// The API (and column) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Id => "id",
            Self::Status => "status",
            Self::Owner => "owner",
            Self::DiskFormat => "disk_format",
            Self::ContainerFormat => "container_format",
            Self::Checksum => "checksum",
            Self::OsHashValue => "os_hash_value",
        }
    }

    /// The column named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|column| column.name() == name)
    }
}

/// What a listing is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    /// `created_at` (the default).
    #[default]
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `name` (no name sorts as the empty one).
    Name,
    /// `id`.
    Id,
    /// `status`.
    Status,
    /// `size` (no data sorts below any size).
    Size,
}

impl SortKey {
    /// The key with API name `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            "name" => Self::Name,
            "id" => Self::Id,
            "status" => Self::Status,
            "size" => Self::Size,
            _ => return None,
        })
    }

    /// The SQL expression sorted by.
    fn expression(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::Name => "COALESCE(name, '')",
            Self::Id => "id",
            Self::Status => "status",
            Self::Size => "COALESCE(size, -1)",
        }
    }
}

/// A listing: filters (all must hold), order and page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageListing {
    /// Which visibilities (an admin sees every image of them).
    pub visibility: VisibilityFilter,
    /// Which memberships make a shared image visible to a non-admin:
    /// `pending`, `accepted` or `rejected`; `None`: any.
    pub member_status: Option<String>,
    /// Hidden images instead of the others.
    pub os_hidden: bool,
    /// Column values.
    pub columns: Vec<(FilterColumn, ValueMatch)>,
    /// Protected images, or unprotected ones.
    pub protected: Option<bool>,
    /// At least this many bytes of data.
    pub size_min: Option<i64>,
    /// At most this many bytes of data.
    pub size_max: Option<i64>,
    /// Tags the image has (each).
    pub tags: Vec<String>,
    /// Additional properties and their values (each).
    pub properties: Vec<(String, String)>,
    /// The order.
    pub sort_key: SortKey,
    /// Descending order (else ascending); ties are broken by id the same way.
    pub descending: bool,
    /// Start after this image (in the order).
    pub marker: Option<String>,
    /// The most images of the page.
    pub limit: usize,
}

/// A page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct ImagePage {
    /// The images, at most the listing's limit.
    pub images: Vec<Image>,
    /// More images follow the last.
    pub more: bool,
}

/// A value bound into a listing query.
enum Bind {
    Text(String),
    Int(i64),
}

/// The WHERE clause of a listing, numbering placeholders.
#[derive(Default)]
struct Clauses {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Clauses {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.bind(Bind::Text(value.to_string()))
    }

    /// `column = value`, or `column IN (...)`.
    fn matching(&mut self, column: &str, value: &ValueMatch) {
        let clause = match value {
            ValueMatch::AnyOf(list) if list.is_empty() => "1 = 0".to_string(),
            ValueMatch::AnyOf(list) => {
                let placeholders: Vec<String> = list.iter().map(|item| self.text(item)).collect();
                format!("{column} IN ({})", placeholders.join(", "))
            }
            ValueMatch::Equals(value) => format!("{column} = {}", self.text(value)),
        };
        self.clauses.push(clause);
    }

    /// What `viewer` may see of `listing`'s visibility.
    fn visible(&mut self, viewer: &Viewer<'_>, listing: &ImageListing) {
        if viewer.is_admin {
            if let VisibilityFilter::Only(visibility) = listing.visibility {
                let placeholder = self.text(visibility.as_str());
                self.clauses.push(format!("visibility = {placeholder}"));
            }
            return;
        }
        let project = self.text(viewer.project_id);
        let member = match &listing.member_status {
            None => {
                format!("id IN (SELECT image_id FROM image_members WHERE member_id = {project})")
            }
            Some(status) => {
                let status = self.text(status);
                format!(
                    "id IN (SELECT image_id FROM image_members WHERE member_id = {project} AND status = {status})"
                )
            }
        };
        self.clauses.push(match listing.visibility {
            VisibilityFilter::Default => format!(
                "(owner = {project} OR visibility = 'public' OR (visibility = 'shared' AND {member}))"
            ),
            VisibilityFilter::All => format!(
                "(owner = {project} OR visibility IN ('public', 'community') OR (visibility = 'shared' AND {member}))"
            ),
            VisibilityFilter::Only(Visibility::Public) => "visibility = 'public'".to_string(),
            VisibilityFilter::Only(Visibility::Community) => {
                "visibility = 'community'".to_string()
            }
            VisibilityFilter::Only(Visibility::Private) => {
                format!("(visibility = 'private' AND owner = {project})")
            }
            VisibilityFilter::Only(Visibility::Shared) => {
                format!("(visibility = 'shared' AND (owner = {project} OR {member}))")
            }
        });
    }

    /// The image has `tag` (tags are a JSON array of strings: match the
    /// quoted tag).
    fn tag(&mut self, tag: &str) {
        let quoted = serde_json::to_string(tag).unwrap_or_default();
        let pattern = format!(
            "%{}%",
            quoted
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let placeholder = self.text(&pattern);
        self.clauses
            .push(format!("tags LIKE {placeholder} ESCAPE '\\'"));
    }

    /// Additional property `key` is `value`.
    fn property(&mut self, backend: Backend, key: &str, value: &str) {
        let value = self.text(value);
        let clause = match backend {
            Backend::Sqlite => {
                let path = self.text(&format!("$.\"{}\"", key.replace('"', "\\\"")));
                format!("json_extract(properties, {path}) = {value}")
            }
            Backend::Postgres => {
                let key = self.text(key);
                format!("(CAST(properties AS jsonb) ->> {key}) = {value}")
            }
        };
        self.clauses.push(clause);
    }
}

/// The page of `listing` that `viewer` sees: the images it may see (as
/// [`get_for_project`] decides), narrowed by the filters, in order, after
/// the marker. [`ImageError::InvalidMarker`] when the marker is not an
/// image `viewer` may see.
pub async fn list(
    db: &Db,
    viewer: &Viewer<'_>,
    listing: &ImageListing,
) -> Result<ImagePage, ImageError> {
    let mut where_ = Clauses::default();
    where_.visible(viewer, listing);
    where_
        .clauses
        .push(format!("os_hidden = {}", i64::from(listing.os_hidden)));
    for (column, value) in &listing.columns {
        where_.matching(column.name(), value);
    }
    if let Some(protected) = listing.protected {
        where_
            .clauses
            .push(format!("protected = {}", i64::from(protected)));
    }
    for (bound, operator) in [(listing.size_min, ">="), (listing.size_max, "<=")] {
        if let Some(size) = bound {
            let placeholder = where_.bind(Bind::Int(size));
            where_
                .clauses
                .push(format!("size {operator} {placeholder}"));
        }
    }
    for tag in &listing.tags {
        where_.tag(tag);
    }
    for (key, value) in &listing.properties {
        where_.property(db.backend(), key, value);
    }
    let expression = listing.sort_key.expression();
    let (direction, comparison) = if listing.descending {
        ("DESC", "<")
    } else {
        ("ASC", ">")
    };
    if let Some(marker) = &listing.marker {
        if get_for_project(db, marker, viewer).await.is_err() {
            return Err(ImageError::InvalidMarker(marker.clone()));
        }
        let placeholder = where_.text(marker);
        let of_marker = format!("(SELECT {expression} FROM images WHERE id = {placeholder})");
        where_.clauses.push(format!(
            "({expression} {comparison} {of_marker} OR ({expression} = {of_marker} AND id {comparison} {placeholder}))"
        ));
    }
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE {} ORDER BY {expression} {direction}, id {direction} LIMIT {}",
        where_.clauses.join(" AND "),
        listing.limit.saturating_add(1)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in &where_.binds {
        query = match bind {
            Bind::Text(text) => query.bind(text.as_str()),
            Bind::Int(number) => query.bind(*number),
        };
    }
    let rows = query.fetch_all(db.pool()).await?;
    let mut images = rows.iter().map(image_from).collect::<Result<Vec<_>, _>>()?;
    let more = images.len() > listing.limit;
    images.truncate(listing.limit);
    Ok(ImagePage { images, more })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for column in FilterColumn::ALL {
            assert_eq!(FilterColumn::from_name(column.name()), Some(column));
        }
        assert_eq!(SortKey::parse("size"), Some(SortKey::Size));
        assert_eq!(SortKey::parse("owner"), None);
    }

    #[test]
    fn an_empty_list_matches_nothing() {
        let mut clauses = Clauses::default();
        clauses.matching("id", &ValueMatch::AnyOf(Vec::new()));
        clauses.matching("name", &ValueMatch::AnyOf(vec!["a".into(), "b".into()]));
        assert_eq!(clauses.clauses, ["1 = 0", "name IN ($1, $2)"]);
    }
}
