//! PostgreSQL bulk helpers over sqlx's `PgConnection` (feature `postgres`).
//!
//! Lookups bind all keys as ONE array parameter (`= ANY($1)`), and inserts bind one array per column
//! (`SELECT * FROM UNNEST($1, $2, …)`), so a statement never comes near the protocol's limit of 65,535 bind
//! parameters (the Bind message counts them in an `Int16`) whatever the row count. Inserts of more than
//! [`ROWS_PER_STATEMENT`] rows are split into several statements inside one transaction, which keeps each
//! array parameter far below PostgreSQL's 1 GB field limit.
//!
//! Two ways in: the functions of this module take `&mut PgConnection`, so they work on a connection checked out
//! of any pool and on a bare connection; [`PgBulk`] has the same helpers on aquifer-postgres's [`PgPool`]
//! (checkout, retries, timing and the N+1 detector of the pool's operation runner). [`PgRows`] is a
//! [`FetchRows`](crate::FetchRows) source: a loader or a preload without a hand-written
//! [`Loader`](crate::Loader).
//!
//! Results are typed: rows convert with sqlx's [`FromRow`] (a tuple, or your `#[derive(sqlx::FromRow)]`
//! struct).
//!
//! [`PgPool`]: aquifer_postgres::PgPool

mod pool;
mod rows;

use std::ops::Range;

use sqlx::postgres::{PgArguments, PgConnection, PgHasArrayType, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Connection, Encode, FromRow, Postgres, Type};

use crate::bulk_error::BulkError;
use crate::ident::{self, IdentError};

pub use pool::{PgBulk, PgBulkError};
pub use rows::PgRows;

/// The most bind parameters one PostgreSQL statement can carry (the Bind message counts them in an Int16).
pub const MAX_BINDS: usize = 65_535;

/// Rows per `INSERT … UNNEST` statement; more rows are split over statements in one transaction.
pub const ROWS_PER_STATEMENT: usize = 100_000;

/// PostgreSQL's identifier length limit (NAMEDATALEN - 1): longer names would be silently truncated.
const MAX_IDENT_BYTES: usize = 63;

/// `name` quoted as a PostgreSQL identifier (`"na""me"`): any character but NUL, at most 63 bytes.
pub fn quote_ident(name: &str, what: &'static str) -> Result<String, IdentError> {
    ident::quote(name, what, '"', MAX_IDENT_BYTES, "PostgreSQL")
}

/// `table` quoted as a possibly schema-qualified table name: `music.tracks` becomes `"music"."tracks"`.
/// Names that contain a dot themselves are not supported.
pub fn quote_table(table: &str) -> Result<String, IdentError> {
    ident::quote_dotted(table, |p| quote_ident(p, "table"))
}

/// `SELECT <columns> FROM <table> WHERE <key_column> = ANY($1)`, every name quoted; no columns selects `*`.
pub fn select_by_keys_sql(table: &str, columns: &[&str], key_column: &str) -> Result<String, IdentError> {
    let columns = match columns {
        [] => vec!["*".to_owned()],
        columns => ident::quote_list(columns, "column", |c| quote_ident(c, "column"))?,
    };
    Ok(format!(
        "SELECT {} FROM {} WHERE {} = ANY($1)",
        columns.join(", "),
        quote_table(table)?,
        quote_ident(key_column, "column")?
    ))
}

/// The rows of `table` whose `key_column` is one of `keys`, converted to `V` (a tuple of the `columns`, or a
/// `FromRow` struct), in one statement with one bind parameter whatever the number of keys. Rows come back in
/// the server's order; match them to keys by their key column.
///
/// ```no_run
/// # async fn f(conn: &mut sqlx::PgConnection) -> Result<(), aquifer_batch::BulkError<sqlx::Error>> {
/// let tracks: Vec<(i32, String)> =
///     aquifer_batch::postgres::fetch_by_keys(conn, "tracks", &["album_id", "title"], "album_id", &[1, 2]).await?;
/// # Ok(()) }
/// ```
///
/// Cancellation: dropping the future mid-query leaves the connection with a half-read response; sqlx
/// drains it before the connection's next use.
pub async fn fetch_by_keys<K, V>(
    conn: &mut PgConnection,
    table: &str,
    columns: &[&str],
    key_column: &str,
    keys: &[K],
) -> Result<Vec<V>, BulkError<sqlx::Error>>
where
    K: for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType + Sync,
    V: for<'r> FromRow<'r, PgRow>,
{
    let sql = select_by_keys_sql(table, columns, key_column)?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(AssertSqlSafe(sql)).bind(keys).fetch_all(conn).await.map_err(BulkError::Database)?;
    rows.iter().map(|row| V::from_row(row)).collect::<Result<_, _>>().map_err(BulkError::Database)
}

/// Column-wise rows for [`insert`] and [`upsert`]: one `Vec` per column, all of the same length, filled
/// column by column or from a slice of your rows ([`Columns::from_rows`]).
///
/// ```
/// use aquifer_batch::postgres::Columns;
/// let rows = Columns::new().column("album_id", vec![1_i64, 1, 2]).column("title", vec!["Intro", "Outro", "Solo"]);
/// assert_eq!(rows.len(), 3);
/// ```
#[derive(Default)]
pub struct Columns {
    names: Vec<String>,
    values: Vec<Box<dyn ArrayColumn>>,
}

impl std::fmt::Debug for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Columns").field("names", &self.names).field("rows", &self.len()).finish()
    }
}

impl Columns {
    /// No columns yet.
    pub fn new() -> Self {
        Columns::default()
    }

    /// Adds column `name` with one value per row. The values travel as one array parameter, so `T` needs an
    /// array type (every built-in type has one).
    #[must_use]
    pub fn column<T>(mut self, name: impl Into<String>, values: Vec<T>) -> Self
    where
        T: for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType + Send + Sync + 'static,
    {
        self.names.push(name.into());
        self.values.push(Box::new(values));
        self
    }

    /// The columns of `rows`, one [`column`](FromRows::column) at a time, each read from every row by a
    /// function:
    ///
    /// ```
    /// use aquifer_batch::postgres::Columns;
    ///
    /// struct NewTrack { album_id: i64, title: String }
    /// let tracks = vec![NewTrack { album_id: 1, title: "Intro".into() }, NewTrack { album_id: 2, title: "Solo".into() }];
    ///
    /// let rows: Columns = Columns::from_rows(&tracks)
    ///     .column("album_id", |t| t.album_id)
    ///     .column("title", |t| t.title.clone())
    ///     .into();
    /// assert_eq!(rows.len(), 2);
    /// ```
    pub fn from_rows<R>(rows: &[R]) -> FromRows<'_, R> {
        FromRows { rows, columns: Columns::new() }
    }

    /// Rows: the length of the first column (0 without columns).
    pub fn len(&self) -> usize {
        self.values.first().map_or(0, |c| c.rows())
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<(), BulkError<sqlx::Error>> {
        if self.values.is_empty() {
            return Err(IdentError::NoneGiven { what: "column" }.into());
        }
        if self.values.len() > MAX_BINDS {
            return Err(BulkError::RowShape { row: 0, found: self.values.len(), expected: MAX_BINDS });
        }
        let rows = self.len();
        match self.values.iter().position(|c| c.rows() != rows) {
            // Column-wise input: `row` names the column whose length differs, `expected` the first column's.
            Some(i) => Err(BulkError::RowShape { row: i, found: self.values[i].rows(), expected: rows }),
            None => Ok(()),
        }
    }
}

/// [`Columns`] being read from a slice of rows; from [`Columns::from_rows`]. Dereferences to the
/// [`Columns`] so far, so `&Columns::from_rows(..).column(..)` can be passed to [`insert`] as it is.
#[must_use]
pub struct FromRows<'a, R> {
    rows: &'a [R],
    columns: Columns,
}

impl<R> FromRows<'_, R> {
    /// Adds column `name`, read from every row by `value`.
    pub fn column<T>(mut self, name: impl Into<String>, value: impl Fn(&R) -> T) -> Self
    where
        T: for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType + Send + Sync + 'static,
    {
        self.columns = self.columns.column(name, self.rows.iter().map(value).collect());
        self
    }
}

impl<R> std::ops::Deref for FromRows<'_, R> {
    type Target = Columns;

    fn deref(&self) -> &Columns {
        &self.columns
    }
}

impl<R> From<FromRows<'_, R>> for Columns {
    fn from(rows: FromRows<'_, R>) -> Columns {
        rows.columns
    }
}

impl<R> std::fmt::Debug for FromRows<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.columns, f)
    }
}

trait ArrayColumn: Send + Sync {
    fn rows(&self) -> usize;
    fn bind<'q>(
        &'q self,
        query: Query<'q, Postgres, PgArguments>,
        range: Range<usize>,
    ) -> Query<'q, Postgres, PgArguments>;
}

impl<T> ArrayColumn for Vec<T>
where
    T: for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType + Send + Sync,
{
    fn rows(&self) -> usize {
        self.len()
    }

    fn bind<'q>(
        &'q self,
        query: Query<'q, Postgres, PgArguments>,
        range: Range<usize>,
    ) -> Query<'q, Postgres, PgArguments> {
        query.bind(&self[range])
    }
}

/// Inserts `rows` into `table` with `INSERT … SELECT * FROM UNNEST($1, …)`: one bind per column whatever
/// the row count, [`ROWS_PER_STATEMENT`] rows per statement, all statements in one transaction. Returns the
/// number of rows inserted.
///
/// Cancellation: dropping the future rolls the transaction back (sqlx rolls back a dropped `Transaction`
/// before the connection's next use); with a single statement, the statement either ran or did not.
pub async fn insert(conn: &mut PgConnection, table: &str, rows: &Columns) -> Result<u64, BulkError<sqlx::Error>> {
    let sql = insert_sql(table, rows, None, None)?;
    run_chunks(conn, sql, rows).await
}

/// [`insert`] with `RETURNING <returning>`: the columns the server filled in (generated keys, defaults) of every
/// row inserted, converted to `V`. PostgreSQL returns them in the order it inserted the rows, which for
/// `INSERT … SELECT … FROM UNNEST` is the order of `rows`; SQL does not promise it, so to match a returned row
/// to its input for certain, return a column you inserted too (a natural key).
///
/// ```no_run
/// # async fn f(conn: &mut sqlx::PgConnection) -> Result<(), aquifer_batch::BulkError<sqlx::Error>> {
/// use aquifer_batch::postgres::{Columns, insert_returning};
/// let rows = Columns::new().column("title", vec!["Intro", "Solo"]);
/// let ids: Vec<(i64, String)> = insert_returning(conn, "tracks", &rows, &["id", "title"]).await?;
/// # Ok(()) }
/// ```
///
/// Cancellation: as [`insert`].
pub async fn insert_returning<V>(
    conn: &mut PgConnection,
    table: &str,
    rows: &Columns,
    returning: &[&str],
) -> Result<Vec<V>, BulkError<sqlx::Error>>
where
    V: for<'r> FromRow<'r, PgRow>,
{
    let sql = insert_sql(table, rows, None, Some(returning))?;
    let total = rows.len();
    if total == 0 {
        return Ok(Vec::new());
    }
    let mut tx = conn.begin().await.map_err(BulkError::Database)?;
    let mut out = Vec::with_capacity(total);
    for range in chunk_ranges(total) {
        let returned = statement(&sql, rows, range).fetch_all(&mut *tx).await.map_err(BulkError::Database)?;
        for row in &returned {
            out.push(V::from_row(row).map_err(BulkError::Database)?);
        }
    }
    tx.commit().await.map_err(BulkError::Database)?;
    Ok(out)
}

/// [`insert`] with `ON CONFLICT (<conflict_columns>) DO UPDATE SET` every other column to the new row's value
/// (`DO NOTHING` when every column is a conflict column). Returns the number of rows inserted or updated.
/// The same key twice in one statement is an error of the server ("cannot affect row a second time").
///
/// Cancellation: as [`insert`].
pub async fn upsert(
    conn: &mut PgConnection,
    table: &str,
    rows: &Columns,
    conflict_columns: &[&str],
) -> Result<u64, BulkError<sqlx::Error>> {
    let sql = insert_sql(table, rows, Some(conflict_columns), None)?;
    run_chunks(conn, sql, rows).await
}

/// The text of an `INSERT … SELECT * FROM UNNEST(…)` of `rows`, with `ON CONFLICT` and `RETURNING` clauses.
pub(crate) fn insert_sql(
    table: &str,
    rows: &Columns,
    conflict: Option<&[&str]>,
    returning: Option<&[&str]>,
) -> Result<String, BulkError<sqlx::Error>> {
    rows.check()?;
    let names: Vec<&str> = rows.names.iter().map(String::as_str).collect();
    let quoted = ident::quote_list(&names, "column", |c| quote_ident(c, "column"))?;
    let params: Vec<String> = (1..=quoted.len()).map(|i| format!("${i}")).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
        quote_table(table)?,
        quoted.join(", "),
        params.join(", ")
    );
    if let Some(conflict) = conflict {
        let keys = ident::quote_list(conflict, "conflict column", |c| quote_ident(c, "conflict column"))?;
        let updates: Vec<String> =
            quoted.iter().filter(|c| !keys.contains(c)).map(|c| format!("{c} = EXCLUDED.{c}")).collect();
        sql.push_str(&format!(" ON CONFLICT ({})", keys.join(", ")));
        if updates.is_empty() {
            sql.push_str(" DO NOTHING");
        } else {
            sql.push_str(&format!(" DO UPDATE SET {}", updates.join(", ")));
        }
    }
    if let Some(returning) = returning {
        let columns = ident::quote_list(returning, "returning column", |c| quote_ident(c, "returning column"))?;
        sql.push_str(&format!(" RETURNING {}", columns.join(", ")));
    }
    Ok(sql)
}

/// One statement of an insert: `sql` with each column's values of `range` bound as an array.
pub(crate) fn statement<'q>(sql: &str, rows: &'q Columns, range: Range<usize>) -> Query<'q, Postgres, PgArguments> {
    rows.values.iter().fold(sqlx::query(AssertSqlSafe(sql.to_owned())), |q, c| c.bind(q, range.clone()))
}

/// The rows of each statement of an insert of `total` rows: [`ROWS_PER_STATEMENT`] at most.
pub(crate) fn chunk_ranges(total: usize) -> impl Iterator<Item = Range<usize>> {
    (0..total).step_by(ROWS_PER_STATEMENT).map(move |start| start..(start + ROWS_PER_STATEMENT).min(total))
}

async fn run_chunks(conn: &mut PgConnection, sql: String, rows: &Columns) -> Result<u64, BulkError<sqlx::Error>> {
    let total = rows.len();
    if total == 0 {
        return Ok(0);
    }
    if total <= ROWS_PER_STATEMENT {
        let done = statement(&sql, rows, 0..total).execute(&mut *conn).await.map_err(BulkError::Database)?;
        return Ok(done.rows_affected());
    }
    let mut tx = conn.begin().await.map_err(BulkError::Database)?;
    let mut affected = 0;
    for range in chunk_ranges(total) {
        affected += statement(&sql, rows, range).execute(&mut *tx).await.map_err(BulkError::Database)?.rows_affected();
    }
    tx.commit().await.map_err(BulkError::Database)?;
    Ok(affected)
}
