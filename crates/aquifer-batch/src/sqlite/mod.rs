//! SQLite bulk helpers over rusqlite's `Connection` (feature `sqlite`).
//!
//! Lookups pass all keys as ONE parameter through SQLite's `carray`-style `rarray()` table-valued function
//! (rusqlite's `array` module, registered on a connection by the helpers the first time it needs it), so a key list never meets the
//! variable limit. Inserts use multi-row `VALUES` lists chunked under the connection's own
//! `SQLITE_LIMIT_VARIABLE_NUMBER` (32,766 by default since SQLite 3.32; read from the connection on every
//! call, so a lowered limit is honoured), all chunks in one `BEGIN IMMEDIATE` transaction, or in a savepoint
//! when the connection is already inside a transaction.
//!
//! Two ways in: the functions of this module take a rusqlite `Connection` and are synchronous, as rusqlite is
//! (from async code run them where the connection lives: an `interact` closure of aquifer-sqlite, or
//! `spawn_blocking`); [`SqliteBulk`] has the same helpers on aquifer-sqlite's [`SqlitePool`] (a reader for
//! lookups, the writer for inserts, through the pool's operation runner: `SQLITE_BUSY` retried, timed, and
//! lookups watched by the N+1 detector). [`SqliteRows`] is a [`FetchRows`](crate::FetchRows) source: a loader or a preload
//! without a hand-written [`Loader`](crate::Loader).
//!
//! Results on the pool and of [`insert_returning`] are typed with aquifer-sqlite's [`FromRow`] (rusqlite's
//! `TryFrom<&Row>`: a tuple, or your type implementing it).
//!
//! [`SqlitePool`]: aquifer_sqlite::SqlitePool

mod pool;
mod rows;

use std::rc::Rc;

use aquifer_sqlite::FromRow;
use rusqlite::limits::Limit;
use rusqlite::types::Value;
use rusqlite::{CachedStatement, Connection, Row, TransactionBehavior};

use crate::bulk_error::BulkError;
use crate::ident::{self, IdentError};

pub use pool::{SqliteBulk, SqliteBulkError};
pub use rows::SqliteRows;

/// `name` quoted as an SQLite identifier (`"na""me"`): any character but NUL.
pub fn quote_ident(name: &str, what: &'static str) -> Result<String, IdentError> {
    ident::quote(name, what, '"', usize::MAX, "SQLite")
}

/// `table` quoted as a possibly schema-qualified table name: `main.tracks` becomes `"main"."tracks"`. Names
/// that contain a dot themselves are not supported.
pub fn quote_table(table: &str) -> Result<String, IdentError> {
    ident::quote_dotted(table, |p| quote_ident(p, "table"))
}

/// The connection's limit on bound parameters per statement (`SQLITE_LIMIT_VARIABLE_NUMBER`).
pub fn variable_limit(conn: &Connection) -> Result<usize, rusqlite::Error> {
    Ok(usize::try_from(conn.limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER)?).unwrap_or(0).max(1))
}

/// `SELECT <columns> FROM <table> WHERE <key_column> IN rarray(?1)`, every name quoted; no columns selects `*`.
pub fn select_by_keys_sql(table: &str, columns: &[&str], key_column: &str) -> Result<String, IdentError> {
    let columns = match columns {
        [] => vec!["*".to_owned()],
        columns => ident::quote_list(columns, "column", |c| quote_ident(c, "column"))?,
    };
    Ok(format!(
        "SELECT {} FROM {} WHERE {} IN rarray(?1)",
        columns.join(", "),
        quote_table(table)?,
        quote_ident(key_column, "column")?
    ))
}

/// The rows of `table` whose `key_column` is one of `keys`, mapped by `map`, in one statement with one
/// parameter whatever the number of keys. Registers rusqlite's `rarray` module on the connection when it is
/// not registered yet. No columns selects `*`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = rusqlite::Connection::open_in_memory()?;
/// conn.execute_batch("CREATE TABLE tracks (album_id INTEGER, title TEXT); INSERT INTO tracks VALUES (1, 'Intro'), (2, 'Solo');")?;
/// let titles = aquifer_batch::sqlite::fetch_by_keys(&conn, "tracks", &["title"], "album_id", &[2_i64], |r| r.get::<_, String>(0))?;
/// assert_eq!(titles, ["Solo"]);
/// # Ok(()) }
/// ```
pub fn fetch_by_keys<K, T>(
    conn: &Connection,
    table: &str,
    columns: &[&str],
    key_column: &str,
    keys: &[K],
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, BulkError<rusqlite::Error>>
where
    K: Clone + Into<Value>,
{
    let sql = select_by_keys_sql(table, columns, key_column)?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Rc<Vec<Value>> = Rc::new(keys.iter().cloned().map(Into::into).collect());
    let mut stmt = prepare_with_rarray(conn, &sql).map_err(BulkError::Database)?;
    let rows = stmt.query_map([keys], |row| map(row)).map_err(BulkError::Database)?;
    rows.collect::<Result<Vec<T>, _>>().map_err(BulkError::Database)
}

/// `sql` prepared (and cached) on `conn`, with rusqlite's `rarray` module registered first when `sql` fails to
/// prepare for want of it (`no such table: rarray`). Registering only then, rather than on every call, never
/// replaces the module under the cached statements that use it.
pub(crate) fn prepare_with_rarray<'c>(conn: &'c Connection, sql: &str) -> rusqlite::Result<CachedStatement<'c>> {
    match conn.prepare_cached(sql) {
        Err(missing) if missing.to_string().contains("rarray") => {
            rusqlite::vtab::array::load_module(conn).map_err(|_| missing)?;
            conn.prepare_cached(sql)
        }
        prepared => prepared,
    }
}

/// Every row of `sql` with `keys` bound as `?1` (an `rarray`), converted to `V`.
pub(crate) fn query_keys<V: FromRow>(conn: &Connection, sql: &str, keys: Rc<Vec<Value>>) -> rusqlite::Result<Vec<V>> {
    let mut stmt = prepare_with_rarray(conn, sql)?;
    let mut rows = stmt.query([keys])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(V::try_from(row)?);
    }
    Ok(out)
}

/// Inserts `rows` (one `Vec` of values per row, in `columns` order) with multi-row `VALUES` lists, each under
/// the connection's variable limit, all in one `BEGIN IMMEDIATE` transaction (a savepoint inside an open
/// transaction). Returns the number of rows inserted; on error nothing is inserted.
pub fn insert(
    conn: &mut Connection,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
) -> Result<usize, BulkError<rusqlite::Error>> {
    let plan = InsertPlan::new(table, columns, rows, None, None)?;
    in_transaction(conn, &plan, rows, |c, per| plan.execute(c, rows, per))
}

/// [`insert`] with `ON CONFLICT (<conflict_columns>) DO UPDATE SET` every other column to the new row's value
/// (`DO NOTHING` when every column is a conflict column). Returns the number of rows inserted or updated.
pub fn upsert(
    conn: &mut Connection,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    conflict_columns: &[&str],
) -> Result<usize, BulkError<rusqlite::Error>> {
    let plan = InsertPlan::new(table, columns, rows, Some(conflict_columns), None)?;
    in_transaction(conn, &plan, rows, |c, per| plan.execute(c, rows, per))
}

/// [`insert`] with `RETURNING <returning>` (SQLite 3.35 or later; the bundled SQLite is): the columns SQLite
/// filled in (generated keys, defaults) of every row inserted, converted to `V` with [`FromRow`], all
/// statements in one transaction.
///
/// SQLite documents the order of the rows `RETURNING` yields as arbitrary, not necessarily that of the rows
/// inserted, so this helper promises none: to match a returned row to its input, return a column you
/// inserted too (a natural key), as below.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rusqlite::types::Value;
///
/// let mut conn = rusqlite::Connection::open_in_memory()?;
/// conn.execute_batch("CREATE TABLE tracks (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE)")?;
/// let rows = vec![vec![Value::Text("Intro".into())], vec![Value::Text("Solo".into())]];
/// let ids: Vec<(i64, String)> =
///     aquifer_batch::sqlite::insert_returning(&mut conn, "tracks", &["title"], &rows, &["id", "title"])?;
/// assert_eq!(ids.len(), 2);
/// # Ok(()) }
/// ```
pub fn insert_returning<V: FromRow>(
    conn: &mut Connection,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    returning: &[&str],
) -> Result<Vec<V>, BulkError<rusqlite::Error>> {
    let plan = InsertPlan::new(table, columns, rows, None, Some(returning))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    in_transaction(conn, &plan, rows, |c, per| plan.returning(c, rows, per))
}

/// Runs `run` (given `plan`'s rows per statement under the connection's limit) in a `BEGIN IMMEDIATE` transaction, or in a savepoint when `conn`
/// is already in one.
fn in_transaction<T: Default>(
    conn: &mut Connection,
    plan: &InsertPlan,
    rows: &[Vec<Value>],
    run: impl FnOnce(&Connection, usize) -> rusqlite::Result<T>,
) -> Result<T, BulkError<rusqlite::Error>> {
    if rows.is_empty() {
        return Ok(T::default());
    }
    let per = plan.per_statement(variable_limit(conn).map_err(BulkError::Database)?)?;
    let done = if conn.is_autocommit() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(BulkError::Database)?;
        let done = run(&tx, per).map_err(BulkError::Database)?;
        tx.commit().map_err(BulkError::Database)?;
        done
    } else {
        let sp = conn.savepoint().map_err(BulkError::Database)?;
        let done = run(&sp, per).map_err(BulkError::Database)?;
        sp.commit().map_err(BulkError::Database)?;
        done
    };
    Ok(done)
}

/// The statements of an insert, checked before anything is sent: quoted names, the `ON CONFLICT` and
/// `RETURNING` clauses, and rows of the right width.
#[derive(Debug, Clone)]
pub(crate) struct InsertPlan {
    /// `INSERT INTO "t" ("a", "b") VALUES `.
    head: String,
    /// `(?, ?)`: one row's placeholders.
    one_row: String,
    /// The `ON CONFLICT` and `RETURNING` clauses, each with a leading space.
    tail: String,
    /// Values per row.
    width: usize,
}

impl InsertPlan {
    pub(crate) fn new(
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        conflict: Option<&[&str]>,
        returning: Option<&[&str]>,
    ) -> Result<Self, BulkError<rusqlite::Error>> {
        let table = quote_table(table)?;
        let quoted = ident::quote_list(columns, "column", |c| quote_ident(c, "column"))?;
        let mut tail = String::new();
        if let Some(conflict) = conflict {
            let keys = ident::quote_list(conflict, "conflict column", |c| quote_ident(c, "conflict column"))?;
            let updates: Vec<String> =
                quoted.iter().filter(|c| !keys.contains(c)).map(|c| format!("{c} = excluded.{c}")).collect();
            let action = if updates.is_empty() {
                "DO NOTHING".to_owned()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            tail.push_str(&format!(" ON CONFLICT ({}) {action}", keys.join(", ")));
        }
        if let Some(returning) = returning {
            let columns = ident::quote_list(returning, "returning column", |c| quote_ident(c, "returning column"))?;
            tail.push_str(&format!(" RETURNING {}", columns.join(", ")));
        }
        if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != quoted.len()) {
            return Err(BulkError::RowShape { row, found: r.len(), expected: quoted.len() });
        }
        Ok(InsertPlan {
            head: format!("INSERT INTO {table} ({}) VALUES ", quoted.join(", ")),
            one_row: format!("({})", vec!["?"; quoted.len()].join(", ")),
            tail,
            width: quoted.len(),
        })
    }

    /// Rows per statement under a variable limit of `limit`; an error when one row alone exceeds it.
    pub(crate) fn per_statement(&self, limit: usize) -> Result<usize, BulkError<rusqlite::Error>> {
        if self.width > limit {
            return Err(BulkError::RowShape { row: 0, found: self.width, expected: limit });
        }
        Ok(limit / self.width)
    }

    fn sql(&self, rows: usize) -> String {
        format!("{}{}{}", self.head, vec![self.one_row.as_str(); rows].join(", "), self.tail)
    }

    /// Runs the statements, `per` rows each; the rows inserted or updated.
    pub(crate) fn execute(&self, conn: &Connection, rows: &[Vec<Value>], per: usize) -> rusqlite::Result<usize> {
        let mut done = 0;
        for chunk in rows.chunks(per) {
            // Full chunks share one cached statement; only the last one is prepared on its own.
            let mut stmt = conn.prepare_cached(&self.sql(chunk.len()))?;
            done += stmt.execute(rusqlite::params_from_iter(chunk.iter().flatten()))?;
        }
        Ok(done)
    }

    /// Runs the statements, `per` rows each, and collects what their `RETURNING` clause yields.
    pub(crate) fn returning<V: FromRow>(
        &self,
        conn: &Connection,
        rows: &[Vec<Value>],
        per: usize,
    ) -> rusqlite::Result<Vec<V>> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(per) {
            let mut stmt = conn.prepare_cached(&self.sql(chunk.len()))?;
            let mut returned = stmt.query(rusqlite::params_from_iter(chunk.iter().flatten()))?;
            while let Some(row) = returned.next()? {
                out.push(V::try_from(row)?);
            }
        }
        Ok(out)
    }
}
