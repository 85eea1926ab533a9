//! MySQL/MariaDB bulk helpers over mysql_async's `Conn` (feature `mysql`).
//!
//! MySQL has no array parameter, so lookups use `IN (?, ?, …)` lists and inserts multi-row `VALUES` lists,
//! both as prepared statements chunked under two limits at once: 65,535 placeholders per statement (the
//! prepared-statement protocol counts them in 2 bytes) and the server's `max_allowed_packet` (MariaDB's
//! default is 16 MiB; a larger packet makes the server close the connection). The packet size of each chunk
//! is computed from the values' binary encoding before anything is sent, and chunks also stay under the
//! protocol's 16 MiB packet size so mysql_async never switches to streaming values as long data.
//!
//! Read the server's limit once per pool with [`MySqlLimits::read`] and pass it to every call: reading it
//! per call would cost a round trip each time. Chunks of one call run in one transaction (a consistent
//! read-only snapshot for lookups).
//!
//! Cancellation: mysql_async's `Conn` is not cancel-safe. Dropping one of these futures mid-statement can
//! leave the connection out of step with the server; a pool that resets or discards such connections
//! (aquifer-mysql does) keeps that safe, a bare `Conn` should then be dropped.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, TxOpts, Value};

use crate::bulk_error::BulkError;
use crate::ident::{self, IdentError};

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
        let packet = packet.unwrap_or(MAX_PAYLOAD as u64);
        Ok(Self::new(usize::try_from(packet).unwrap_or(usize::MAX)))
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

/// Splits `rows` (each of `width` values) into consecutive ranges whose statements stay under `limits`.
/// `sql_len(n)` is the statement text's length for `n` rows.
fn chunks(
    rows: &[&[Value]],
    width: usize,
    limits: &MySqlLimits,
    sql_len: impl Fn(usize) -> usize,
) -> Result<Vec<std::ops::Range<usize>>, BulkError<mysql_async::Error>> {
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
            return Err(BulkError::RowTooLarge { row: i, size: alone, limit: budget });
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

/// How [`insert`] would split `rows` of `columns` into statements under `limits`: the number of rows in each
/// statement. Sends nothing.
pub fn plan_chunks(
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    limits: &MySqlLimits,
) -> Result<Vec<usize>, BulkError<mysql_async::Error>> {
    let (prefix, width) = insert_prefix(table, columns)?;
    check_width(rows, width)?;
    let refs: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
    let ranges = chunks(&refs, width, limits, |n| values_len(prefix.len(), width, n))?;
    Ok(ranges.into_iter().map(|r| r.len()).collect())
}

/// The rows of `table` whose `key_column` is one of `keys`, with `IN (…)` lists chunked under `limits`; more
/// than one chunk runs in one read-only transaction with a consistent snapshot.
///
/// Cancellation: see the module documentation.
pub async fn fetch_by_keys<K>(
    conn: &mut Conn,
    limits: &MySqlLimits,
    table: &str,
    columns: &[&str],
    key_column: &str,
    keys: &[K],
) -> Result<Vec<Row>, BulkError<mysql_async::Error>>
where
    K: Clone + Into<Value>,
{
    let columns = ident::quote_list(columns, "column", |c| quote_ident(c, "column"))?;
    let prefix = format!(
        "SELECT {} FROM {} WHERE {} IN (",
        columns.join(", "),
        quote_table(table)?,
        quote_ident(key_column, "column")?
    );
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<[Value; 1]> = keys.iter().map(|k| [k.clone().into()]).collect();
    let refs: Vec<&[Value]> = values.iter().map(|v| v.as_slice()).collect();
    // "?" plus ", " between them, and the closing parenthesis.
    let ranges = chunks(&refs, 1, limits, |n| prefix.len() + 3 * n - 2 + 1)?;
    let sql = |n: usize| format!("{prefix}{})", vec!["?"; n].join(", "));
    let params =
        |r: &std::ops::Range<usize>| Params::Positional(values[r.clone()].iter().map(|v| v[0].clone()).collect());
    if ranges.len() == 1 {
        return conn.exec(sql(keys.len()), params(&ranges[0])).await.map_err(BulkError::Database);
    }
    let mut opts = TxOpts::default();
    opts.with_consistent_snapshot(true).with_readonly(true);
    let mut tx = conn.start_transaction(opts).await.map_err(BulkError::Database)?;
    let mut rows = Vec::new();
    for r in &ranges {
        let chunk: Vec<Row> = tx.exec(sql(r.len()), params(r)).await.map_err(BulkError::Database)?;
        rows.extend(chunk);
    }
    tx.commit().await.map_err(BulkError::Database)?;
    Ok(rows)
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
    write(conn, limits, table, columns, rows, None).await
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
    write(conn, limits, table, columns, rows, Some(update_columns)).await
}

fn insert_prefix(table: &str, columns: &[&str]) -> Result<(String, usize), IdentError> {
    let quoted = ident::quote_list(columns, "column", |c| quote_ident(c, "column"))?;
    Ok((format!("INSERT INTO {} ({}) VALUES ", quote_table(table)?, quoted.join(", ")), quoted.len()))
}

/// Length of a `VALUES` list of `n` rows of `width` placeholders after a prefix of `prefix` bytes.
fn values_len(prefix: usize, width: usize, n: usize) -> usize {
    prefix + n * (3 * width) + (n - 1) * 2
}

fn check_width(rows: &[Vec<Value>], width: usize) -> Result<(), BulkError<mysql_async::Error>> {
    match rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        Some((row, r)) => Err(BulkError::RowShape { row, found: r.len(), expected: width }),
        None => Ok(()),
    }
}

async fn write(
    conn: &mut Conn,
    limits: &MySqlLimits,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    update: Option<&[&str]>,
) -> Result<u64, BulkError<mysql_async::Error>> {
    let (prefix, width) = insert_prefix(table, columns)?;
    let suffix = match update {
        None => String::new(),
        Some(update) => {
            let cols = ident::quote_list(update, "update column", |c| quote_ident(c, "update column"))?;
            let sets: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
            format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
        }
    };
    check_width(rows, width)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let refs: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
    let ranges = chunks(&refs, width, limits, |n| values_len(prefix.len(), width, n) + suffix.len())?;
    let one_row = format!("({})", vec!["?"; width].join(", "));
    let sql = |n: usize| format!("{prefix}{}{suffix}", vec![one_row.as_str(); n].join(", "));
    let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(BulkError::Database)?;
    let mut affected = 0;
    for r in ranges {
        let params = Params::Positional(rows[r.clone()].iter().flatten().cloned().collect());
        tx.exec_drop(sql(r.len()), params).await.map_err(BulkError::Database)?;
        affected += tx.affected_rows();
    }
    tx.commit().await.map_err(BulkError::Database)?;
    Ok(affected)
}
