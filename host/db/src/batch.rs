//! Writes sent to the database together: [`Batch`].
//!
//! Each statement of a SQLite transaction is a round trip to the
//! connection's worker thread (sqlx runs every SQLite connection on a
//! thread of its own): the statement is handed over, the worker wakes,
//! runs it, hands the answer back, and the waiting task wakes. A simple
//! write runs in ~25 µs; under load the wake-ups around it take longer
//! than that, and a transaction holds the database's one writer for all
//! of it (measured by `bench cloud` at 5,000 hosts: a claim's 14
//! statements held the writer ~2 ms, of which their own execution was
//! ~0.4 ms). A batch hands its writes over together: on SQLite as
//! multi-statement queries of up to [`STATEMENTS_PER_QUERY`] statements
//! and [`VALUES_PER_QUERY`] values (each statement's `$N` placeholders
//! renumbered past the values before it, the values concatenated), on
//! PostgreSQL one statement after the other, as before.
//!
//! [`Batch::fetch_each`] (and [`Tx::commit_with`]) answer the rows each
//! statement returned, so an `INSERT … RETURNING` or `UPDATE … RETURNING`
//! reads back what it wrote in the same hand-off.

use futures_util::TryStreamExt;
use sqlx::any::{Any, AnyArguments};
use sqlx::query::Query;
use sqlx::{Execute, Executor};

use crate::{Backend, DbError, Tx};

/// Writes run in one hand-off to the database (see the module's docs).
#[derive(Default)]
#[must_use = "a batch writes nothing until it is run"]
pub struct Batch {
    statements: Vec<(String, AnyArguments)>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Batch")
            .field("statements", &self.statements.len())
            .finish()
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `query` (one statement, `$N` placeholders, its values bound).
    /// A value that could not be encoded fails here.
    pub fn push(&mut self, mut query: Query<'_, Any, AnyArguments>) -> Result<(), DbError> {
        let arguments = query
            .take_arguments()
            .map_err(|error| DbError::Query(sqlx::Error::Encode(error)))?
            .unwrap_or_default();
        let sql = query
            .sql()
            .as_str()
            .trim()
            .trim_end_matches(';')
            .to_string();
        self.statements.push((sql, arguments));
        Ok(())
    }

    /// Adds a statement that binds nothing.
    pub(crate) fn push_statement(&mut self, sql: &str) {
        self.statements
            .push((sql.to_string(), AnyArguments::default()));
    }

    /// Adds the statements of `other` after these.
    pub fn extend(&mut self, other: Batch) {
        self.statements.extend(other.statements);
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// How many statements were added.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Runs the statements in `tx`, in the order they were added; the first
    /// that fails stops the rest (and its error is the answer: the caller
    /// rolls back, as after any failed statement).
    pub async fn run(self, tx: &mut Tx) -> Result<(), DbError> {
        self.fetch_each(tx).await.map(drop)
    }

    /// Runs the statements in `tx` in the order they were added, and
    /// answers the rows each returned, in that order (an
    /// `UPDATE … RETURNING` reads with the others).
    /// The first statement that fails stops the rest.
    pub async fn fetch_each(self, tx: &mut Tx) -> Result<Vec<StatementRows>, DbError> {
        let queries = if tx.backend == Backend::Sqlite {
            joined(self.statements)
        } else {
            self.statements
        };
        let mut answers = Vec::new();
        let mut current = StatementRows::default();
        for (sql, arguments) in queries {
            let query = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments);
            let mut results = (&mut **tx).fetch_many(query);
            while let Some(result) = results.try_next().await? {
                match result {
                    sqlx::Either::Right(row) => current.rows.push(row),
                    sqlx::Either::Left(_done) => answers.push(std::mem::take(&mut current)),
                }
            }
        }
        Ok(answers)
    }
}

/// The rows one statement of a [`Batch::fetch_each`] returned.
#[derive(Default)]
pub struct StatementRows {
    /// The rows it returned.
    pub rows: Vec<sqlx::any::AnyRow>,
}

impl std::fmt::Debug for StatementRows {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StatementRows")
            .field("rows", &self.rows.len())
            .finish()
    }
}

/// Statements in one SQLite query at most (a multi-create's writes are
/// sent in several).
pub const STATEMENTS_PER_QUERY: usize = 32;
/// Values one SQLite query binds at most (well under SQLite's limit of
/// 32,766 host parameters).
pub const VALUES_PER_QUERY: usize = 4096;

/// `statements` as SQLite queries of several statements each: each
/// statement's placeholders moved past the values of those before it in
/// its query.
fn joined(statements: Vec<(String, AnyArguments)>) -> Vec<(String, AnyArguments)> {
    let mut queries: Vec<(String, AnyArguments, usize)> = Vec::new();
    for (statement, values) in statements {
        let fits = queries.last().is_some_and(|(_, arguments, count)| {
            *count < STATEMENTS_PER_QUERY
                && arguments.values.0.len() + values.values.0.len() <= VALUES_PER_QUERY
        });
        if !fits {
            queries.push((String::new(), AnyArguments::default(), 0));
        }
        if let Some((sql, arguments, count)) = queries.last_mut() {
            if !sql.is_empty() {
                sql.push_str(";\n");
            }
            sql.push_str(&renumbered(&statement, arguments.values.0.len()));
            arguments.values.0.extend(values.values.0);
            *count += 1;
        }
    }
    queries
        .into_iter()
        .map(|(sql, arguments, _)| (sql, arguments))
        .collect()
}

/// `sql` with each `$N` placeholder outside quotes made `$(N + offset)`.
fn renumbered(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quote: Option<char> = None;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, character)) = chars.next() {
        match quote {
            Some(open) => {
                out.push(character);
                if character == open {
                    quote = None;
                }
            }
            None if character == '\'' || character == '"' => {
                quote = Some(character);
                out.push(character);
            }
            None if character == '$' => {
                let mut digits = String::new();
                while let Some((_, digit)) =
                    chars.peek().copied().filter(|(_, c)| c.is_ascii_digit())
                {
                    digits.push(digit);
                    chars.next();
                }
                match digits.parse::<usize>() {
                    Ok(number) => {
                        out.push('$');
                        out.push_str(&(number + offset).to_string());
                    }
                    Err(_) => {
                        out.push('$');
                        out.push_str(&digits);
                    }
                }
            }
            None => out.push(character),
        }
    }
    out
}
