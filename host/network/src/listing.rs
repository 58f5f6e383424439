//! Listing as Neutron does it, one generic [`Listing`] for every resource:
//! equality filters on attributes (several values of one attribute match
//! any of them; different attributes must all match), sorting by one or
//! more keys each with its direction (ties broken by id), and pages of
//! `limit` items after a `marker` (the id of the last item of the previous
//! page), backwards with `page_reverse`. `fields` is the handler's business.
//!
//! Which attributes a resource filters and sorts on is its table of
//! attributes (the API names, e.g. `router:external`, `tenant_id`);
//! an unknown filter or sort key is [`NetworkError::InvalidInput`] naming
//! it, a marker the caller cannot see is the resource's NotFound.

use sqlx::{AnyConnection, Row};

use crate::error::{NetworkError, invalid};

/// The direction of a sort key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortDirection {
    /// Ascending (`asc`, Neutron's default).
    #[default]
    Asc,
    /// Descending (`desc`).
    Desc,
}

impl SortDirection {
    /// Parses `asc` / `desc`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            _ => None,
        }
    }

    fn flipped(self) -> Self {
        match self {
            Self::Asc => Self::Desc,
            Self::Desc => Self::Asc,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }

    fn comparison(self) -> &'static str {
        match self {
            Self::Asc => ">",
            Self::Desc => "<",
        }
    }
}

/// A listing of one resource: filters, order, page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// `(attribute, values)`: the attribute equals one of the values
    /// (booleans as `true`/`false`, numbers in decimal). Ports also take
    /// `fixed_ips` with values `ip_address=<ip>` / `subnet_id=<id>`, and
    /// `security_groups` (group ids).
    pub filters: Vec<(String, Vec<String>)>,
    /// Sort keys with their directions; empty: by id. Ties are broken by id
    /// (ascending).
    pub sort: Vec<(String, SortDirection)>,
    /// The most items of the page; `None`: all.
    pub limit: Option<usize>,
    /// Start after the item with this id (in the order).
    pub marker: Option<String>,
    /// Page backwards: the items before the marker (the last `limit` of
    /// them), still in the requested order.
    pub page_reverse: bool,
}

impl Listing {
    /// A listing filtering `attribute` on `value` only.
    pub fn filtered(attribute: &str, value: &str) -> Self {
        Self {
            filters: vec![(attribute.to_string(), vec![value.to_string()])],
            ..Self::default()
        }
    }
}

/// A page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the requested order.
    pub items: Vec<T>,
    /// More items follow the page (before it, when paging backwards): the
    /// handler gives a `next` (`previous`) link.
    pub more: bool,
}

/// How an attribute's values are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text (NULL sorts as the empty string).
    Text,
    /// 0/1.
    Bool,
    /// A number (NULL sorts as −1).
    Int,
}

/// An attribute a resource filters and sorts on: its API name, its column.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attribute {
    pub name: &'static str,
    pub column: &'static str,
    pub kind: Kind,
}

pub(crate) const fn text(name: &'static str, column: &'static str) -> Attribute {
    Attribute {
        name,
        column,
        kind: Kind::Text,
    }
}

pub(crate) const fn boolean(name: &'static str, column: &'static str) -> Attribute {
    Attribute {
        name,
        column,
        kind: Kind::Bool,
    }
}

pub(crate) const fn int(name: &'static str, column: &'static str) -> Attribute {
    Attribute {
        name,
        column,
        kind: Kind::Int,
    }
}

impl Attribute {
    fn sort_expression(&self) -> String {
        match self.kind {
            Kind::Text => format!("COALESCE({}, '')", self.column),
            Kind::Bool => self.column.to_string(),
            Kind::Int => format!("COALESCE({}, -1)", self.column),
        }
    }
}

/// A value bound into a query.
#[derive(Clone, Debug)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// WHERE clauses and their numbered placeholders.
#[derive(Default, Debug)]
pub(crate) struct Clauses {
    pub clauses: Vec<String>,
    pub binds: Vec<Bind>,
}

impl Clauses {
    /// A placeholder for `value`.
    pub fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// A placeholder for text.
    pub fn text(&mut self, value: &str) -> String {
        self.bind(Bind::Text(value.to_string()))
    }

    /// `column IN (...)` of text values (none: nothing matches).
    pub fn any_of(&mut self, column: &str, values: &[String]) -> String {
        if values.is_empty() {
            return "1 = 0".to_string();
        }
        let list = novum_db::clauses::in_list(values, |value| self.text(&value));
        format!("{column} IN ({list})")
    }

    fn attribute(&mut self, attribute: &Attribute, values: &[String]) -> Result<(), NetworkError> {
        let mut placeholders = Vec::new();
        for value in values {
            let bind = match attribute.kind {
                Kind::Text => Bind::Text(value.clone()),
                Kind::Bool => Bind::Int(i64::from(parse_bool(attribute.name, value)?)),
                Kind::Int => Bind::Int(value.trim().parse().map_err(|_| {
                    invalid(format!(
                        "'{value}' is not an integer for filter {}",
                        attribute.name
                    ))
                })?),
            };
            placeholders.push(self.bind(bind));
        }
        self.clauses.push(if placeholders.is_empty() {
            "1 = 0".to_string()
        } else {
            format!("{} IN ({})", attribute.column, placeholders.join(", "))
        });
        Ok(())
    }
}

/// Parses a boolean as Neutron's `convert_to_boolean` does.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, NetworkError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(format!(
            "'{value}' cannot be converted to boolean for {name}"
        ))),
    }
}

/// A filter a resource handles itself: adds its clause and returns true,
/// or false when the name is unknown.
pub(crate) type SpecialFilter =
    dyn Fn(&str, &[String], &mut Clauses) -> Result<bool, NetworkError> + Sync;

/// What a resource's listing needs: its table, attributes, the filters it
/// handles itself, and who may see what.
pub(crate) struct Spec<'a> {
    pub table: &'static str,
    pub attributes: &'a [Attribute],
    /// A filter that is not a plain attribute: adds its clause and returns
    /// true, or false when the name is unknown.
    pub special: &'a SpecialFilter,
    /// The visibility clause for a non-admin (None for an admin).
    pub visible: Option<&'a (dyn Fn(&mut Clauses) -> String + Sync)>,
    /// The NotFound of the resource (for a marker).
    pub not_found: fn(String) -> NetworkError,
}

/// The ids of the page of `listing` over `spec`, in order, and whether more
/// follow.
pub(crate) async fn page_ids(
    conn: &mut AnyConnection,
    spec: &Spec<'_>,
    listing: &Listing,
) -> Result<(Vec<String>, bool), NetworkError> {
    let table = spec.table;
    let mut clauses = Clauses::default();
    if let Some(visible) = spec.visible {
        let clause = visible(&mut clauses);
        clauses.clauses.push(clause);
    }
    for (name, values) in &listing.filters {
        let name = name.as_str();
        if let Some(attribute) = spec.attributes.iter().find(|a| a.name == name) {
            clauses.attribute(attribute, values)?;
        } else if !(spec.special)(name, values, &mut clauses)? {
            return Err(invalid(format!(
                "{name} is invalid attribute for filtering"
            )));
        }
    }
    let mut keys: Vec<(String, SortDirection)> = Vec::new();
    for (name, direction) in &listing.sort {
        let attribute = spec
            .attributes
            .iter()
            .find(|a| a.name == name.as_str())
            .ok_or_else(|| invalid(format!("{name} is invalid attribute for sort_keys")))?;
        let direction = if listing.page_reverse {
            direction.flipped()
        } else {
            *direction
        };
        keys.push((attribute.sort_expression(), direction));
    }
    if !keys
        .iter()
        .any(|(expression, _)| expression == "COALESCE(id, '')")
    {
        let direction = if listing.page_reverse {
            SortDirection::Desc
        } else {
            SortDirection::Asc
        };
        keys.push(("id".to_string(), direction));
    }
    if let Some(marker) = &listing.marker {
        let mut visible_marker = Clauses::default();
        let placeholder = visible_marker.text(marker);
        let mut check = format!("SELECT id FROM {table} WHERE id = {placeholder}");
        if let Some(visible) = spec.visible {
            check.push_str(&format!(" AND {}", visible(&mut visible_marker)));
        }
        let found = bind_all(
            sqlx::query(sqlx::AssertSqlSafe(check)),
            &visible_marker.binds,
        )
        .fetch_optional(&mut *conn)
        .await?;
        if found.is_none() {
            return Err((spec.not_found)(marker.clone()));
        }
        let placeholder = clauses.text(marker);
        let mut alternatives = Vec::new();
        for (index, (expression, direction)) in keys.iter().enumerate() {
            let of_marker = |expression: &str| {
                format!("(SELECT {expression} FROM {table} WHERE id = {placeholder})")
            };
            let mut parts: Vec<String> = keys[..index]
                .iter()
                .map(|(earlier, _)| format!("{earlier} = {}", of_marker(earlier)))
                .collect();
            parts.push(format!(
                "{expression} {} {}",
                direction.comparison(),
                of_marker(expression)
            ));
            alternatives.push(format!("({})", parts.join(" AND ")));
        }
        clauses
            .clauses
            .push(format!("({})", alternatives.join(" OR ")));
    }
    let order: Vec<String> = keys
        .iter()
        .map(|(expression, direction)| format!("{expression} {}", direction.sql()))
        .collect();
    let mut sql = format!("SELECT id FROM {table}");
    if !clauses.clauses.is_empty() {
        sql.push_str(&format!(" WHERE {}", clauses.clauses.join(" AND ")));
    }
    sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    if let Some(limit) = listing.limit {
        sql.push_str(&format!(" LIMIT {}", limit.saturating_add(1)));
    }
    let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &clauses.binds)
        .fetch_all(&mut *conn)
        .await?;
    let mut ids = rows
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    let more = listing.limit.is_some_and(|limit| ids.len() > limit);
    if let Some(limit) = listing.limit {
        ids.truncate(limit);
    }
    if listing.page_reverse {
        ids.reverse();
    }
    Ok((ids, more))
}

/// Binds `binds` to `query` in order.
pub(crate) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text.as_str()),
            Bind::Int(number) => query.bind(*number),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_and_value_lists() {
        assert_eq!(parse_bool("shared", "True").ok(), Some(true));
        assert_eq!(parse_bool("shared", "0").ok(), Some(false));
        assert!(parse_bool("shared", "maybe").is_err());
        let mut clauses = Clauses::default();
        let shared = boolean("shared", "shared");
        clauses
            .attribute(&shared, &["true".into(), "false".into()])
            .expect("valid");
        assert_eq!(clauses.clauses, ["shared IN ($1, $2)"]);
        assert_eq!(clauses.any_of("id", &[]), "1 = 0");
        assert_eq!(
            clauses.any_of("id", &["a".into(), "b".into()]),
            "id IN ($3, $4)"
        );
        let long: Vec<String> = (0..=novum_db::clauses::INLINE_LIST_MAX)
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            clauses.any_of("id", &long),
            "id IN (SELECT value FROM json_each($5))"
        );
    }
}
