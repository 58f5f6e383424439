//! A WHERE clause built at run time with numbered placeholders, for the
//! listings whose filters a request chooses (the values are always bound,
//! never spliced into the SQL).

/// A value bound into a built query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
}

/// Conditions joined with AND, and the values their `$N` placeholders name.
#[derive(Clone, Debug, Default)]
pub struct Clauses {
    conditions: Vec<String>,
    binds: Vec<Bind>,
}

impl Clauses {
    /// Binds `value`; returns its placeholder (`$N`).
    pub fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Binds text; returns its placeholder.
    pub fn text(&mut self, value: &str) -> String {
        self.bind(Bind::Text(value.to_string()))
    }

    /// Binds an integer; returns its placeholder.
    pub fn int(&mut self, value: i64) -> String {
        self.bind(Bind::Int(value))
    }

    /// `values` bound for `IN (…)` ([`in_list`]).
    pub fn text_list(&mut self, values: &[String]) -> String {
        in_list(values, |value| self.bind(Bind::Text(value)))
    }

    /// Adds a condition (written with placeholders from this builder).
    pub fn push(&mut self, condition: impl Into<String>) {
        self.conditions.push(condition.into());
    }

    /// The conditions joined with AND (`1 = 1` when there is none).
    pub fn sql(&self) -> String {
        if self.conditions.is_empty() {
            "1 = 1".to_string()
        } else {
            self.conditions.join(" AND ")
        }
    }

    /// `query` (built from [`Clauses::sql`]) with every value bound in order.
    pub fn bind_all<'q, O>(
        &'q self,
        mut query: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
        for bind in &self.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.as_str()),
                Bind::Int(number) => query.bind(*number),
            };
        }
        query
    }

    /// Like [`Clauses::bind_all`], for a query read row by row.
    pub fn bind_all_rows<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for bind in &self.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.as_str()),
                Bind::Int(number) => query.bind(*number),
            };
        }
        query
    }
}

/// Lists of at most this many values are bound one placeholder a value
/// ([`in_list`]).
pub const INLINE_LIST_MAX: usize = 16;

/// What goes inside `IN (…)` for `values`, each bound with `bind` (which
/// answers its placeholder): a short list (up to [`INLINE_LIST_MAX`]) as a
/// placeholder per value, which the planner weighs by its length (a status
/// filter of one value picks the status index); a longer one as one JSON
/// array read by [`list_subquery`], which costs SQLite n² to bind no more.
pub fn in_list(values: &[String], mut bind: impl FnMut(String) -> String) -> String {
    if values.len() <= INLINE_LIST_MAX {
        return values
            .iter()
            .map(|value| bind(value.clone()))
            .collect::<Vec<_>>()
            .join(", ");
    }
    list_subquery(&bind(json_list(values)))
}

/// `SELECT value FROM json_each(<placeholder>)`: the values of a list bound
/// as one JSON array of text ([`json_list`]), for `x IN (…)`. SQLite's
/// `json_each` reads the array; on PostgreSQL, migration 0116 gives
/// `json_each` a `text` form that does. One placeholder, however long the
/// list: SQLite finds a statement's placeholders by name in a list, so a
/// placeholder per value costs n² to bind, and a list's length changes no
/// statement's text.
pub fn list_subquery(placeholder: &str) -> String {
    format!("SELECT value FROM json_each({placeholder})")
}

/// `values` as the JSON array [`list_subquery`] reads.
pub fn json_list(values: &[String]) -> String {
    serde_json::Value::from(values).to_string()
}

/// `($1, …, $k), ($k+1, …)`: the placeholders of `rows` rows of
/// `per_row` values each, for a multi-row `INSERT … VALUES`.
pub fn row_placeholders(rows: usize, per_row: usize) -> String {
    (0..rows)
        .map(|row| {
            let first = row * per_row + 1;
            let values: Vec<String> = (first..first + per_row).map(|n| format!("${n}")).collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_placeholders_number_the_rows_values_in_order() {
        assert_eq!(row_placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(row_placeholders(0, 3), "");
    }

    #[test]
    fn placeholders_number_the_binds_in_order() {
        let mut clauses = Clauses::default();
        assert_eq!(clauses.sql(), "1 = 1");
        let first = clauses.text("a");
        clauses.push(format!("x = {first}"));
        let list = clauses.text_list(&["b".to_string(), "c".to_string()]);
        clauses.push(format!("y IN ({list})"));
        let long: Vec<String> = (0..=INLINE_LIST_MAX).map(|n| format!("v{n}\"")).collect();
        let list = clauses.text_list(&long);
        clauses.push(format!("w IN ({list})"));
        let number = clauses.int(7);
        clauses.push(format!("z < {number}"));
        assert_eq!(
            clauses.sql(),
            "x = $1 AND y IN ($2, $3) AND w IN (SELECT value FROM json_each($4)) AND z < $5"
        );
        assert_eq!(
            clauses.binds[3],
            Bind::Text(serde_json::Value::from(long).to_string())
        );
    }
}
