//! SQLite bulk helpers over rusqlite's `Connection` (feature `sqlite`).
//!
//! Lookups pass all keys as ONE parameter through SQLite's `carray`-style `rarray()` table-valued function
//! (rusqlite's `array` module, registered on the connection by the helper), so a key list never meets the
//! variable limit. Inserts use multi-row `VALUES` lists chunked under the connection's own
//! `SQLITE_LIMIT_VARIABLE_NUMBER` (32,766 by default since SQLite 3.32; read from the connection on every
//! call, so a lowered limit is honoured), all chunks in one `BEGIN IMMEDIATE` transaction, or in a savepoint
//! when the connection is already inside a transaction.
//!
//! The helpers are synchronous, as rusqlite is: from async code run them where the connection lives (an
//! `interact` closure of aquifer-sqlite, or `spawn_blocking`).

use std::rc::Rc;

use rusqlite::limits::Limit;
use rusqlite::types::Value;
use rusqlite::{Connection, Row, TransactionBehavior};

use crate::bulk_error::BulkError;
use crate::ident::{self, IdentError};

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

/// `SELECT <columns> FROM <table> WHERE <key_column> IN rarray(?1)`, every name quoted.
pub fn select_by_keys_sql(table: &str, columns: &[&str], key_column: &str) -> Result<String, IdentError> {
    let columns = ident::quote_list(columns, "column", |c| quote_ident(c, "column"))?;
    Ok(format!(
        "SELECT {} FROM {} WHERE {} IN rarray(?1)",
        columns.join(", "),
        quote_table(table)?,
        quote_ident(key_column, "column")?
    ))
}

/// The rows of `table` whose `key_column` is one of `keys`, mapped by `map`, in one statement with one
/// parameter whatever the number of keys. Registers rusqlite's `rarray` module on the connection.
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
    rusqlite::vtab::array::load_module(conn).map_err(BulkError::Database)?;
    let keys: Rc<Vec<Value>> = Rc::new(keys.iter().cloned().map(Into::into).collect());
    let mut stmt = conn.prepare_cached(&sql).map_err(BulkError::Database)?;
    let rows = stmt.query_map([keys], |row| map(row)).map_err(BulkError::Database)?;
    rows.collect::<Result<Vec<T>, _>>().map_err(BulkError::Database)
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
    write(conn, table, columns, rows, None)
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
    write(conn, table, columns, rows, Some(conflict_columns))
}

fn write(
    conn: &mut Connection,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    conflict: Option<&[&str]>,
) -> Result<usize, BulkError<rusqlite::Error>> {
    let table = quote_table(table)?;
    let quoted = ident::quote_list(columns, "column", |c| quote_ident(c, "column"))?;
    let tail = match conflict {
        None => String::new(),
        Some(conflict) => {
            let keys = ident::quote_list(conflict, "conflict column", |c| quote_ident(c, "conflict column"))?;
            let updates: Vec<String> =
                quoted.iter().filter(|c| !keys.contains(c)).map(|c| format!("{c} = excluded.{c}")).collect();
            let action = if updates.is_empty() {
                "DO NOTHING".to_owned()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            format!(" ON CONFLICT ({}) {action}", keys.join(", "))
        }
    };
    if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != quoted.len()) {
        return Err(BulkError::RowShape { row, found: r.len(), expected: quoted.len() });
    }
    if rows.is_empty() {
        return Ok(0);
    }
    let limit = variable_limit(conn).map_err(BulkError::Database)?;
    if quoted.len() > limit {
        return Err(BulkError::RowShape { row: 0, found: quoted.len(), expected: limit });
    }
    let per_statement = limit / quoted.len();
    let one_row = format!("({})", vec!["?"; quoted.len()].join(", "));
    let sql_for = |n: usize| {
        format!("INSERT INTO {table} ({}) VALUES {}{tail}", quoted.join(", "), vec![one_row.as_str(); n].join(", "))
    };

    let run = |conn: &Connection| -> rusqlite::Result<usize> {
        let mut done = 0;
        for chunk in rows.chunks(per_statement) {
            // Full chunks share one cached statement; only the last one is prepared on its own.
            let mut stmt = conn.prepare_cached(&sql_for(chunk.len()))?;
            done += stmt.execute(rusqlite::params_from_iter(chunk.iter().flatten()))?;
        }
        Ok(done)
    };
    let done = if conn.is_autocommit() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(BulkError::Database)?;
        let done = run(&tx).map_err(BulkError::Database)?;
        tx.commit().map_err(BulkError::Database)?;
        done
    } else {
        let sp = conn.savepoint().map_err(BulkError::Database)?;
        let done = run(&sp).map_err(BulkError::Database)?;
        sp.commit().map_err(BulkError::Database)?;
        done
    };
    Ok(done)
}
