//! SQLite: BatchLoader over `IN rarray(?1)`, inserts chunked under the connection's variable limit.
//! Statements are counted by SQLite's own trace hook (every statement SQLite runs), never by the code under
//! test.

mod common;

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use aquifer_batch::sqlite;
use aquifer_batch::{BatchLoader, BulkError, IdentError, Loader};
use common::ChildrenOf;
use futures_util::future::join_all;
use rusqlite::Connection;
use rusqlite::limits::Limit;
use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::types::Value;

thread_local! {
    static STATEMENTS: Cell<usize> = const { Cell::new(0) };
}

fn count_statement(_event: TraceEvent<'_>) {
    STATEMENTS.with(|c| c.set(c.get() + 1));
}

fn statements() -> usize {
    STATEMENTS.with(Cell::get)
}

/// An in-memory database whose statements are counted on this thread.
fn open() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(count_statement));
    conn
}

/// 1,000 albums; album `a` has `a % 4` tracks.
fn music(conn: &Connection) {
    conn.execute_batch(
        "CREATE TABLE albums (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
         CREATE TABLE tracks (id INTEGER PRIMARY KEY, album_id INTEGER NOT NULL, title TEXT NOT NULL);
         WITH RECURSIVE a(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM a WHERE n < 1000)
           INSERT INTO albums SELECT n, 'album ' || n FROM a;
         WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3)
           INSERT INTO tracks (album_id, title)
           SELECT albums.id, 'track ' || t.n FROM albums, t WHERE t.n <= albums.id % 4;",
    )
    .unwrap();
}

/// Tracks by album, one `IN rarray(?1)` statement per batch.
fn tracks_by_album(conn: &Arc<Mutex<Connection>>) -> BatchLoader<impl Loader<Key = i64, Value = Vec<String>>> {
    BatchLoader::new(ChildrenOf::new(conn, |conn, albums: Vec<i64>| {
        let conn = conn.lock().unwrap();
        std::future::ready(sqlite::fetch_by_keys(&conn, "tracks", &["album_id", "title"], "album_id", &albums, |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        }))
    }))
}

// A current-thread runtime keeps every statement, and so the trace count, on this thread.
#[tokio::test(flavor = "current_thread")]
async fn thousand_parents_children_load_in_two_statements() {
    let conn = open();
    music(&conn);
    let conn = Arc::new(Mutex::new(conn));
    let loader = tracks_by_album(&conn);
    let before = statements();
    let albums: Vec<i64> = {
        let c = conn.lock().unwrap();
        let mut stmt = c.prepare("SELECT id FROM albums ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    let resolved = join_all(albums.iter().map(|&a| {
        let loader = &loader;
        async move { (a, loader.load(a).await.unwrap()) }
    }))
    .await;
    assert_eq!(resolved.len(), 1000);
    for (album, tracks) in resolved {
        assert_eq!(tracks.map_or(0, |t| t.len()), (album % 4) as usize, "album {album}");
    }
    assert_eq!(statements() - before, 2, "one statement for the parents, one for all their children");
}

#[test]
fn fetch_by_keys_sends_a_hundred_thousand_keys_as_one_parameter() {
    let conn = open();
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, doubled INTEGER);
         WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 50000)
           INSERT INTO items SELECT n, 2 * n FROM s;",
    )
    .unwrap();
    let keys: Vec<i64> = (1..=100_000).collect();
    assert!(keys.len() > sqlite::variable_limit(&conn).unwrap());
    let before = statements();
    let rows = sqlite::fetch_by_keys(&conn, "items", &["id", "doubled"], "id", &keys, |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })
    .unwrap();
    assert_eq!(statements() - before, 1);
    assert_eq!(rows.len(), 50_000);
    assert!(rows.iter().all(|(id, d)| *d == 2 * id));
}

fn numbered_rows(n: usize, columns: usize) -> Vec<Vec<Value>> {
    (0..n).map(|i| (0..columns).map(|c| Value::Integer((i * columns + c) as i64)).collect()).collect()
}

fn count(conn: &Connection, table: &str) -> usize {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
    n as usize
}

#[test]
fn insert_fills_one_statement_up_to_the_variable_limit() {
    let mut conn = open();
    conn.execute_batch("CREATE TABLE pairs (a INTEGER PRIMARY KEY, b INTEGER)").unwrap();
    let limit = sqlite::variable_limit(&conn).unwrap();
    assert_eq!(limit, 32_766, "the bundled SQLite's default");
    let rows = numbered_rows(limit / 2, 2);
    let before = statements();
    assert_eq!(sqlite::insert(&mut conn, "pairs", &["a", "b"], &rows).unwrap(), limit / 2);
    assert_eq!(statements() - before, 3, "BEGIN IMMEDIATE, one INSERT, COMMIT");
}

#[test]
fn insert_one_row_past_the_variable_limit_takes_a_second_statement() {
    let mut conn = open();
    conn.execute_batch("CREATE TABLE pairs (a INTEGER PRIMARY KEY, b INTEGER)").unwrap();
    let limit = sqlite::variable_limit(&conn).unwrap();
    let rows = numbered_rows(limit / 2 + 1, 2);
    let before = statements();
    assert_eq!(sqlite::insert(&mut conn, "pairs", &["a", "b"], &rows).unwrap(), limit / 2 + 1);
    assert_eq!(statements() - before, 4, "BEGIN IMMEDIATE, two INSERTs, COMMIT");
    assert_eq!(count(&conn, "pairs"), limit / 2 + 1);
}

#[test]
fn insert_honours_a_lowered_variable_limit() {
    let mut conn = open();
    conn.execute_batch("CREATE TABLE triples (a INTEGER, b INTEGER, c INTEGER)").unwrap();
    conn.set_limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 10).unwrap();
    let before = statements();
    sqlite::insert(&mut conn, "triples", &["a", "b", "c"], &numbered_rows(10, 3)).unwrap();
    assert_eq!(statements() - before, 2 + 4, "3 rows (9 variables) per INSERT");
    assert_eq!(count(&conn, "triples"), 10);
}

#[test]
fn failing_chunk_leaves_nothing_inserted() {
    let mut conn = open();
    conn.execute_batch("CREATE TABLE ticks (id INTEGER PRIMARY KEY CHECK (id <> 40000))").unwrap();
    let rows = numbered_rows(50_000, 1);
    assert!(matches!(sqlite::insert(&mut conn, "ticks", &["id"], &rows), Err(BulkError::Database(_))));
    assert_eq!(count(&conn, "ticks"), 0);
}

#[test]
fn insert_inside_an_open_transaction_joins_it() {
    let mut conn = open();
    conn.execute_batch("CREATE TABLE ticks (id INTEGER PRIMARY KEY)").unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    sqlite::insert(&mut conn, "ticks", &["id"], &numbered_rows(5, 1)).unwrap();
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(count(&conn, "ticks"), 0, "the caller's rollback undoes the insert");
}

#[test]
fn upsert_updates_existing_rows_and_inserts_new_ones() {
    let mut conn = open();
    conn.execute_batch(
        "CREATE TABLE saved (user_id INTEGER, word TEXT, score INTEGER, PRIMARY KEY (user_id, word));
         INSERT INTO saved VALUES (1, 'a', 1), (1, 'b', 1);",
    )
    .unwrap();
    let rows: Vec<Vec<Value>> = [(1, "b", 5), (1, "c", 6), (2, "a", 7)]
        .into_iter()
        .map(|(u, w, s)| vec![Value::Integer(u), Value::Text(w.into()), Value::Integer(s)])
        .collect();
    assert_eq!(
        sqlite::upsert(&mut conn, "saved", &["user_id", "word", "score"], &rows, &["user_id", "word"]).unwrap(),
        3
    );
    let mut stmt = conn.prepare("SELECT user_id, word, score FROM saved ORDER BY 1, 2").unwrap();
    let got: Vec<(i64, String, i64)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap();
    let expected = [(1, "a", 1), (1, "b", 5), (1, "c", 6), (2, "a", 7)].map(|(u, w, s)| (u, w.to_string(), s));
    assert_eq!(got, expected);
}

#[test]
fn names_are_quoted_never_spliced() {
    let mut conn = open();
    let table = r#"odd"; DROP TABLE x; --"#;
    conn.execute_batch(&format!("CREATE TABLE {} (\"key col\" INTEGER, v TEXT)", sqlite::quote_table(table).unwrap()))
        .unwrap();
    let rows = vec![vec![Value::Integer(1), Value::Text("x".into())], vec![Value::Integer(2), Value::Text("y".into())]];
    sqlite::insert(&mut conn, table, &["key col", "v"], &rows).unwrap();
    let got = sqlite::fetch_by_keys(&conn, table, &["v"], "key col", &[2_i64], |r| r.get::<_, String>(0)).unwrap();
    assert_eq!(got, ["y"]);
}

#[test]
fn row_of_the_wrong_width_is_rejected_before_anything_runs() {
    let mut conn = open();
    let before = statements();
    let rows = vec![vec![Value::Integer(1), Value::Integer(2)], vec![Value::Integer(3)]];
    let err = sqlite::insert(&mut conn, "t", &["a", "b"], &rows).unwrap_err();
    assert!(matches!(err, BulkError::RowShape { row: 1, found: 1, expected: 2 }), "{err}");
    assert_eq!(statements(), before);
}

#[test]
fn empty_and_nul_names_are_rejected() {
    assert_eq!(sqlite::quote_table(""), Err(IdentError::Empty { what: "table" }));
    assert!(matches!(sqlite::quote_ident("a\0", "column"), Err(IdentError::Invalid { what: "column", .. })));
    let mut conn = open();
    let err = sqlite::insert(&mut conn, "t", &[], &[]).unwrap_err();
    assert!(matches!(err, BulkError::Ident(IdentError::NoneGiven { what: "column" })), "{err}");
}
