//! MySQL/MariaDB bulk helpers over mysql_async's `Conn` (feature `mysql`).
//!
//! MySQL has no array parameter, so lookups use `IN (?, ?, …)` lists and inserts multi-row `VALUES` lists,
//! both as prepared statements chunked under two limits at once: 65,535 placeholders per statement (the
//! prepared-statement protocol counts them in 2 bytes) and the server's `max_allowed_packet` (MariaDB's
//! default is 16 MiB; a larger packet makes the server close the connection). The packet size of each chunk
//! is computed from the values' binary encoding before anything is sent, and chunks also stay under the
//! protocol's 16 MiB packet size so mysql_async never switches to streaming values as long data.
//!
//! Two ways in: the functions of this module take `&mut Conn`, so they work on a connection checked out of any
//! pool and on a bare connection; read the server's limit once per pool with [`MySqlLimits::read`] and pass it
//! to every call (reading it per call would cost a round trip each time). [`MySqlBulk`] has the same helpers
//! on aquifer-mysql's [`MySqlPool`] (checkout, retries, timing and the N+1 detector of the pool's operation
//! runner; the limit is the one the pool read when it connected). [`MySqlRows`] is a
//! [`FetchRows`](crate::FetchRows) source: a loader or a preload without a hand-written
//! [`Loader`](crate::Loader). Chunks of one call run in one transaction (a consistent read-only snapshot for
//! lookups).
//!
//! Results are typed: rows convert with mysql_async's [`FromRow`] (a tuple, a single value, your own `FromRow`
//! type, or [`Row`] itself for raw rows); a row that does not convert is an error
//! (`DriverError::FromRow`), never a panic.
//!
//! Cancellation: mysql_async's `Conn` is not cancel-safe. Dropping one of these futures mid-statement can
//! leave the connection out of step with the server; a pool that resets or discards such connections
//! (aquifer-mysql does) keeps that safe, a bare `Conn` should then be dropped.
//!
//! [`MySqlPool`]: aquifer_mysql::MySqlPool

mod pool;
mod rows;

use std::ops::Range;

use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, DriverError, Params, Row, TxOpts, Value};

use crate::bulk_error::BulkError;
use crate::ident::{self, IdentError};

pub use pool::{MySqlBulk, MySqlBulkError};
pub use rows::MySqlRows;

/// The most placeholders one prepared statement can have (a 2-byte count in the protocol).
pub const MAX_PLACEHOLDERS: usize = 65_535;

/// The largest packet payload the protocol sends in one piece (16 MiB - 1); above it mysql_async splits the
/// packet or streams values as long data.
const MAX_PAYLOAD: usize = 16 * 1024 * 1024 - 1;

/// Bytes kept free under the packet limit for what the estimate leaves out (packet headers).
const PACKET_MARGIN: usize = 1024;

/// MySQL's and MariaDB's identifier length limit, in characters.
const MAX_IDENT_CHARS: usize = 64;

/// The server limits a statement must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MySqlLimits {
    /// The server's `max_allowed_packet`, in bytes.
    pub max_allowed_packet: usize,
    /// Placeholders per statement ([`MAX_PLACEHOLDERS`]).
    pub max_placeholders: usize,
}

impl MySqlLimits {
    /// Reads `@@max_allowed_packet` from the server (one round trip; do it once per pool).
    ///
    /// Cancellation: see the module documentation.
    pub async fn read(conn: &mut Conn) -> Result<Self, mysql_async::Error> {
        let packet: Option<u64> = conn.query_first("SELECT @@max_allowed_packet").await?;
        Ok(Self::from_server(packet))
    }

    /// Limits for the `@@max_allowed_packet` a server reported (none: the protocol's packet size).
    pub(crate) fn from_server(max_allowed_packet: Option<u64>) -> Self {
        let packet = max_allowed_packet.unwrap_or(MAX_PAYLOAD as u64);
        Self::new(usize::try_from(packet).unwrap_or(usize::MAX))
    }

    /// Limits for a server whose `max_allowed_packet` is known.
    pub fn new(max_allowed_packet: usize) -> Self {
        MySqlLimits { max_allowed_packet, max_placeholders: MAX_PLACEHOLDERS }
    }

    /// The largest packet payload a chunk may produce.
    fn packet_budget(&self) -> usize {
        self.max_allowed_packet.min(MAX_PAYLOAD).saturating_sub(PACKET_MARGIN)
    }
}

/// `name` quoted as a MySQL identifier (`` `na``me` ``): at most 64 characters, no NUL, no trailing space.
pub fn quote_ident(name: &str, what: &'static str) -> Result<String, IdentError> {
    if name.chars().count() > MAX_IDENT_CHARS {
        return Err(IdentError::TooLong {
            what,
            name: name.to_owned(),
            len: name.chars().count(),
            max: MAX_IDENT_CHARS,
            system: "MySQL",
        });
    }
    if name.ends_with(' ') {
        return Err(IdentError::Invalid { what, name: name.to_owned(), reason: "a trailing space" });
    }
    ident::quote(name, what, '`', usize::MAX, "MySQL")
}

/// `table` quoted as a possibly database-qualified table name: `music.tracks` becomes `` `music`.`tracks` ``.
/// Names that contain a dot themselves are not supported.
pub fn quote_table(table: &str) -> Result<String, IdentError> {
    ident::quote_dotted(table, |p| quote_ident(p, "table"))
}

/// The marker a [`MySqlRows::statement`] carries where the chunk's placeholders go: `WHERE id IN ({keys})`.
pub const KEYS_MARKER: &str = "{keys}";

/// A statement for [`MySqlRows::statement`] that does not contain [`KEYS_MARKER`] exactly once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statement must contain the keys marker {{keys}} exactly once, found it {found} times: {sql:?}")]
#[non_exhaustive]
pub struct KeysMarkerError {
    /// How many times the marker occurs.
    pub found: usize,
    /// The statement.
    pub sql: String,
}

/// One row (or key) that alone does not fit in a statement under the packet limit.
#[derive(Debug)]
pub(crate) struct TooLarge {
    row: usize,
    size: usize,
    limit: usize,
}

impl<E> From<TooLarge> for BulkError<E> {
    fn from(TooLarge { row, size, limit }: TooLarge) -> Self {
        BulkError::RowTooLarge { row, size, limit }
    }
}

/// Splits `rows` (each of `width` values) into consecutive ranges whose statements stay under `limits`.
/// `sql_len(n)` is the statement text's length for `n` rows.
fn chunks(
    rows: &[&[Value]],
    width: usize,
    limits: &MySqlLimits,
    sql_len: impl Fn(usize) -> usize,
) -> Result<Vec<Range<usize>>, TooLarge> {
    let budget = limits.packet_budget();
    let per_placeholders = (limits.max_placeholders / width).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    // COM_STMT_EXECUTE: command, statement id, flags, iteration count, "new params bound" flag.
    let fixed = 1 + 4 + 1 + 4 + 1;
    let mut data = 0usize;
    for (i, row) in rows.iter().enumerate() {
        // Per value: its binary length plus 2 type bytes; plus the NULL bitmap's share.
        let row_bytes: usize = row.iter().map(|v| v.bin_len() as usize + 2).sum::<usize>() + width.div_ceil(8);
        let alone = (fixed + row_bytes).max(1 + sql_len(1));
        if alone > budget {
            return Err(TooLarge { row: i, size: alone, limit: budget });
        }
        let n = i - start + 1;
        let execute = fixed + data + row_bytes;
        let prepare = 1 + sql_len(n);
        if n > 1 && (n > per_placeholders || execute > budget || prepare > budget) {
            out.push(start..i);
            start = i;
            data = 0;
        }
        data += row_bytes;
    }
    if start < rows.len() {
        out.push(start..rows.len());
    }
    Ok(out)
}

/// A lookup statement with a list of keys: the text before and after the `?, ?, …` list.
#[derive(Debug)]
pub(crate) struct KeyList {
    head: String,
    tail: String,
}

impl KeyList {
    /// `SELECT <columns> FROM <table> WHERE <key_column> IN (…)`, every name quoted; no columns selects `*`.
    pub(crate) fn table(table: &str, columns: &[&str], key_column: &str) -> Result<Self, IdentError> {
        let columns = match columns {
            [] => vec!["*".to_owned()],
            columns => ident::quote_list(columns, "column", |c| quote_ident(c, "column"))?,
        };
        let head = format!(
            "SELECT {} FROM {} WHERE {} IN (",
            columns.join(", "),
            quote_table(table)?,
            quote_ident(key_column, "column")?
        );
        Ok(KeyList { head, tail: ")".to_owned() })
    }

    /// A statement of the caller's with [`KEYS_MARKER`] exactly once.
    pub(crate) fn statement(sql: &str) -> Result<Self, KeysMarkerError> {
        match sql.split_once(KEYS_MARKER) {
            Some((head, tail)) if !tail.contains(KEYS_MARKER) => {
                Ok(KeyList { head: head.to_owned(), tail: tail.to_owned() })
            }
            _ => Err(KeysMarkerError { found: sql.matches(KEYS_MARKER).count(), sql: sql.to_owned() }),
        }
    }

    /// The statement for `n` keys (`n` ≥ 1).
    pub(crate) fn sql(&self, n: usize) -> String {
        format!("{}{}{}", self.head, vec!["?"; n].join(", "), self.tail)
    }

    /// The statement's length for `n` keys, without building it.
    fn len(&self, n: usize) -> usize {
        self.head.len() + 3 * n - 2 + self.tail.len()
    }

    /// The ranges of `keys` each statement takes under `limits`.
    pub(crate) fn ranges(&self, keys: &[Value], limits: &MySqlLimits) -> Result<Vec<Range<usize>>, TooLarge> {
        let refs: Vec<&[Value]> = keys.iter().map(std::slice::from_ref).collect();
        chunks(&refs, 1, limits, |n| self.len(n))
    }
}

/// How [`insert`] would split `rows` of `columns` into statements under `limits`: the number of rows in each
/// statement. Sends nothing.
pub fn plan_chunks(
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    limits: &MySqlLimits,
) -> Result<Vec<usize>, BulkError<mysql_async::Error>> {
    let insert = InsertSql::new(table, columns, Suffix::None)?;
    insert.check(rows)?;
    Ok(insert.ranges(rows, limits)?.into_iter().map(|r| r.len()).collect())
}

/// `rows` converted to `V`; a row that does not convert is mysql_async's `DriverError::FromRow` (the driver's
/// own conversion would panic).
pub(crate) fn convert<V: FromRow>(rows: Vec<Row>) -> Result<Vec<V>, mysql_async::Error> {
    rows.into_iter()
        .map(|row| V::from_row_opt(row).map_err(|e| mysql_async::Error::Driver(DriverError::FromRow { row: e.0 })))
        .collect()
}

/// The rows of `table` whose `key_column` is one of `keys`, converted to `V` (a tuple of the `columns`, a
/// single value, a `FromRow` type, or [`Row`]), with `IN (…)` lists chunked under `limits`; no columns
/// selects `*`. More than one chunk runs in one read-only transaction with a consistent snapshot. Rows come back
/// in the server's order; match them to keys by their key column.
///
/// ```no_run
/// # async fn f(conn: &mut mysql_async::Conn) -> Result<(), aquifer_batch::BulkError<mysql_async::Error>> {
/// use aquifer_batch::mysql::{self, MySqlLimits};
/// let limits = MySqlLimits::read(conn).await.map_err(aquifer_batch::BulkError::Database)?;
/// let tracks: Vec<(i32, String)> =
///     mysql::fetch_by_keys(conn, &limits, "tracks", &["album_id", "title"], "album_id", &[1, 2]).await?;
/// # Ok(()) }
/// ```
///
/// Cancellation: see the module documentation.
pub async fn fetch_by_keys<K, V>(
    conn: &mut Conn,
    limits: &MySqlLimits,
    table: &str,
    columns: &[&str],
    key_column: &str,
    keys: &[K],
) -> Result<Vec<V>, BulkError<mysql_async::Error>>
where
    K: Clone + Into<Value>,
    V: FromRow,
{
    let list = KeyList::table(table, columns, key_column)?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Value> = keys.iter().cloned().map(Into::into).collect();
    let ranges = list.ranges(&values, limits)?;
    let params = |r: &Range<usize>| Params::Positional(values[r.clone()].to_vec());
    let rows: Vec<Row> = if let [range] = ranges.as_slice() {
        conn.exec(list.sql(range.len()), params(range)).await.map_err(BulkError::Database)?
    } else {
        let mut opts = TxOpts::default();
        opts.with_consistent_snapshot(true).with_readonly(true);
        let mut tx = conn.start_transaction(opts).await.map_err(BulkError::Database)?;
        let mut rows = Vec::new();
        for r in &ranges {
            let chunk: Vec<Row> = tx.exec(list.sql(r.len()), params(r)).await.map_err(BulkError::Database)?;
            rows.extend(chunk);
        }
        tx.commit().await.map_err(BulkError::Database)?;
        rows
    };
    convert(rows).map_err(BulkError::Database)
}

/// Inserts `rows` (one `Vec` of values per row, in `columns` order) with multi-row `VALUES` lists chunked
/// under `limits`, all chunks in one transaction. Returns the number of rows inserted; on error nothing is.
///
/// Cancellation: see the module documentation; an unfinished transaction is rolled back by mysql_async
/// before the connection's next statement.
pub async fn insert(
    conn: &mut Conn,
    limits: &MySqlLimits,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
) -> Result<u64, BulkError<mysql_async::Error>> {
    write(conn, limits, &InsertSql::new(table, columns, Suffix::None)?, rows).await
}

/// [`insert`] with `ON DUPLICATE KEY UPDATE` of `update_columns` to the new row's values (MariaDB and MySQL
/// both accept `VALUES(col)` there). Returns the server's affected-row count (2 per updated row, 1 per
/// inserted row, as MySQL counts them).
///
/// Cancellation: as [`insert`].
pub async fn upsert(
    conn: &mut Conn,
    limits: &MySqlLimits,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    update_columns: &[&str],
) -> Result<u64, BulkError<mysql_async::Error>> {
    write(conn, limits, &InsertSql::new(table, columns, Suffix::Update(update_columns))?, rows).await
}

/// What [`insert_returning`] asks of the server, for [`BulkError::Unsupported`].
pub const INSERT_RETURNING: &str = "INSERT … RETURNING";

/// [`insert`] with `RETURNING <returning>`: the columns the server filled in (the `AUTO_INCREMENT` id,
/// defaults) of every row inserted, converted to `V`. MariaDB 10.5 and later only: on MySQL (which has no
/// `INSERT … RETURNING`) or an older MariaDB it fails with [`BulkError::Unsupported`] before inserting
/// anything. The server is recognised by `SELECT VERSION()` (one round trip per call, see
/// [`supports_insert_returning`]).
///
/// MariaDB returns the rows of a multi-row `VALUES` list in the list's order, so the result is in the order of
/// `rows`; to match a returned row to its input beyond doubt, return a column you inserted too.
///
/// ```no_run
/// # async fn f(conn: &mut mysql_async::Conn, limits: &aquifer_batch::mysql::MySqlLimits)
/// # -> Result<(), aquifer_batch::BulkError<mysql_async::Error>> {
/// use mysql_async::Value;
/// let rows = vec![vec![Value::from("Intro")], vec![Value::from("Solo")]];
/// let ids: Vec<u64> = aquifer_batch::mysql::insert_returning(conn, limits, "tracks", &["title"], &rows, &["id"]).await?;
/// # Ok(()) }
/// ```
///
/// Cancellation: as [`insert`].
pub async fn insert_returning<V: FromRow>(
    conn: &mut Conn,
    limits: &MySqlLimits,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    returning: &[&str],
) -> Result<Vec<V>, BulkError<mysql_async::Error>> {
    let insert = InsertSql::new(table, columns, Suffix::Returning(returning))?;
    insert.check(rows)?;
    let ranges = insert.ranges(rows, limits)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(BulkError::Database)?;
    let version = version.unwrap_or_default();
    if !supports_insert_returning(&version) {
        return Err(BulkError::Unsupported { what: INSERT_RETURNING, server: version });
    }
    let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(BulkError::Database)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in ranges {
        let returned: Vec<Row> =
            tx.exec(insert.sql(r.len()), insert.params(rows, r)).await.map_err(BulkError::Database)?;
        out.extend(convert::<V>(returned).map_err(BulkError::Database)?);
    }
    tx.commit().await.map_err(BulkError::Database)?;
    Ok(out)
}

/// Whether the server whose `VERSION()` is `version` has `INSERT … RETURNING`: MariaDB 10.5 or later
/// (`10.11.6-MariaDB-0+deb12u1`; older servers' handshake prefix `5.5.5-` is skipped). MySQL (`8.0.36`) has
/// none.
pub fn supports_insert_returning(version: &str) -> bool {
    let version = version.trim();
    if !version.to_ascii_lowercase().contains("mariadb") {
        return false;
    }
    let version = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let mut number = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (number(), number()) {
        (Some(major), Some(minor)) => (major, minor) >= (10, 5),
        _ => false,
    }
}

/// What follows the `VALUES` list of an insert.
#[derive(Clone, Copy)]
pub(crate) enum Suffix<'a> {
    None,
    /// `ON DUPLICATE KEY UPDATE` of these columns.
    Update(&'a [&'a str]),
    /// `RETURNING` these columns.
    Returning(&'a [&'a str]),
}

/// A multi-row insert statement: the text before and after its `VALUES` list, and its row width.
#[derive(Debug)]
pub(crate) struct InsertSql {
    prefix: String,
    suffix: String,
    width: usize,
}

impl InsertSql {
    /// `INSERT INTO <table> (<columns>) VALUES … <suffix>`, every name quoted.
    pub(crate) fn new(table: &str, columns: &[&str], suffix: Suffix<'_>) -> Result<Self, IdentError> {
        let quoted = ident::quote_list(columns, "column", |c| quote_ident(c, "column"))?;
        let prefix = format!("INSERT INTO {} ({}) VALUES ", quote_table(table)?, quoted.join(", "));
        let suffix = match suffix {
            Suffix::None => String::new(),
            Suffix::Update(update) => {
                let cols = ident::quote_list(update, "update column", |c| quote_ident(c, "update column"))?;
                let sets: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
                format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
            Suffix::Returning(returning) => {
                let cols = ident::quote_list(returning, "returning column", |c| quote_ident(c, "returning column"))?;
                format!(" RETURNING {}", cols.join(", "))
            }
        };
        Ok(InsertSql { prefix, suffix, width: quoted.len() })
    }

    /// Every row has one value per column.
    pub(crate) fn check<E>(&self, rows: &[Vec<Value>]) -> Result<(), BulkError<E>> {
        match rows.iter().enumerate().find(|(_, r)| r.len() != self.width) {
            Some((row, r)) => Err(BulkError::RowShape { row, found: r.len(), expected: self.width }),
            None => Ok(()),
        }
    }

    /// The ranges of `rows` each statement takes under `limits`.
    pub(crate) fn ranges(&self, rows: &[Vec<Value>], limits: &MySqlLimits) -> Result<Vec<Range<usize>>, TooLarge> {
        let refs: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
        chunks(&refs, self.width, limits, |n| self.len(n))
    }

    /// The statement for `n` rows (`n` ≥ 1).
    pub(crate) fn sql(&self, n: usize) -> String {
        let one_row = format!("({})", vec!["?"; self.width].join(", "));
        format!("{}{}{}", self.prefix, vec![one_row.as_str(); n].join(", "), self.suffix)
    }

    /// The statement's length for `n` rows, without building it.
    fn len(&self, n: usize) -> usize {
        self.prefix.len() + n * (3 * self.width) + (n - 1) * 2 + self.suffix.len()
    }

    /// The values of `rows[range]`, in order, as the statement's parameters.
    pub(crate) fn params(&self, rows: &[Vec<Value>], range: Range<usize>) -> Params {
        Params::Positional(rows[range].iter().flatten().cloned().collect())
    }
}

async fn write(
    conn: &mut Conn,
    limits: &MySqlLimits,
    insert: &InsertSql,
    rows: &[Vec<Value>],
) -> Result<u64, BulkError<mysql_async::Error>> {
    insert.check(rows)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ranges = insert.ranges(rows, limits)?;
    let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(BulkError::Database)?;
    let mut affected = 0;
    for r in ranges {
        tx.exec_drop(insert.sql(r.len()), insert.params(rows, r)).await.map_err(BulkError::Database)?;
        affected += tx.affected_rows();
    }
    tx.commit().await.map_err(BulkError::Database)?;
    Ok(affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_returning_is_mariadb_10_5_and_later() {
        for version in ["10.5.0-MariaDB", "10.11.6-MariaDB-0+deb12u1", "11.4.2-MariaDB-log", "5.5.5-10.6.12-MariaDB"] {
            assert!(supports_insert_returning(version), "{version}");
        }
        for version in ["10.4.32-MariaDB", "5.5.5-10.3.39-MariaDB", "8.0.36", "8.4.0-0ubuntu1", "9.1.0", "", "MariaDB"]
        {
            assert!(!supports_insert_returning(version), "{version}");
        }
    }

    #[test]
    fn keys_marker_must_occur_exactly_once() {
        let list = KeyList::statement("SELECT a FROM t WHERE b IN ({keys}) AND c > 1").unwrap();
        assert_eq!(list.sql(3), "SELECT a FROM t WHERE b IN (?, ?, ?) AND c > 1");
        assert_eq!(list.len(3), list.sql(3).len());
        for (sql, found) in [("SELECT a FROM t WHERE b IN (?)", 0), ("SELECT {keys} FROM t WHERE b IN ({keys})", 2)] {
            assert_eq!(KeyList::statement(sql).unwrap_err(), KeysMarkerError { found, sql: sql.to_owned() });
        }
    }

    #[test]
    fn statement_lengths_match_the_statements() {
        let list = KeyList::table("t", &[], "id").unwrap();
        assert_eq!(list.sql(1), "SELECT * FROM `t` WHERE `id` IN (?)");
        assert_eq!(list.len(4), list.sql(4).len());
        let insert = InsertSql::new("t", &["a", "b"], Suffix::Returning(&["id"])).unwrap();
        assert_eq!(insert.sql(2), "INSERT INTO `t` (`a`, `b`) VALUES (?, ?), (?, ?) RETURNING `id`");
        assert_eq!(insert.len(5), insert.sql(5).len());
    }
}
