//! MySQL/MariaDB: BatchLoader over chunked `IN` lists, inserts chunked under 65,535 placeholders and the
//! server's max_allowed_packet. Statements are counted by the server itself (the session's `Questions` and
//! `Com_stmt_execute` status counters), never by the code under test.

mod common;

use std::sync::Arc;

use aquifer_batch::mysql::{self, MySqlLimits};
use aquifer_batch::{BatchLoader, BulkError, IdentError, Loader};
use common::{ChildrenOf, resolve_in_one_request};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use tokio::sync::Mutex;

async fn connect() -> Conn {
    common::mariadb().await
}

/// A session status counter, read from the server.
async fn status(conn: &mut Conn, name: &str) -> u64 {
    let row: Option<(String, String)> =
        conn.query_first(format!("SHOW SESSION STATUS LIKE '{name}'")).await.expect("SHOW SESSION STATUS");
    row.expect("status variable").1.parse().expect("numeric status")
}

/// Statements the client sent since `before` (a `Questions` reading), not counting the reading itself.
async fn statements_since(conn: &mut Conn, before: u64) -> u64 {
    status(conn, "Questions").await - before - 1
}

/// 1,000 albums; album `a` has `a % 4` tracks.
async fn music(conn: &mut Conn) {
    conn.query_drop(
        "CREATE TEMPORARY TABLE albums (id INT PRIMARY KEY, title VARCHAR(64) NOT NULL);
         CREATE TEMPORARY TABLE tracks (id INT AUTO_INCREMENT PRIMARY KEY, album_id INT NOT NULL,
                                        title VARCHAR(64) NOT NULL, KEY (album_id));
         INSERT INTO albums SELECT seq, CONCAT('album ', seq) FROM seq_1_to_1000;
         INSERT INTO tracks (album_id, title)
           SELECT a.seq, CONCAT('track ', t.seq) FROM seq_1_to_1000 a, seq_1_to_3 t WHERE t.seq <= a.seq % 4;",
    )
    .await
    .expect("music tables");
}

/// Tracks by album, one chunked `IN` list per batch.
fn tracks_by_album(
    conn: &Arc<Mutex<Conn>>,
    limits: MySqlLimits,
) -> BatchLoader<impl Loader<Key = i32, Value = Vec<String>>> {
    BatchLoader::new(ChildrenOf::new(conn, move |conn, albums: Vec<i32>| async move {
        let mut conn = conn.lock().await;
        let columns = ["album_id", "title"];
        let rows: Vec<(i32, String)> =
            mysql::fetch_by_keys(&mut conn, &limits, "tracks", &columns, "album_id", &albums).await?;
        Ok::<_, BulkError<mysql_async::Error>>(rows)
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_parents_children_load_in_two_statements() {
    let mut conn = connect().await;
    music(&mut conn).await;
    let limits = MySqlLimits::read(&mut conn).await.unwrap();
    let before = status(&mut conn, "Questions").await;
    let albums: Vec<i32> = conn.query("SELECT id FROM albums ORDER BY id").await.unwrap();
    let conn = Arc::new(Mutex::new(conn));
    let loader = tracks_by_album(&conn, limits);
    let resolved = resolve_in_one_request(&loader, &albums).await;
    assert_eq!(resolved.len(), 1000);
    for (album, tracks) in resolved {
        assert_eq!(tracks.unwrap().map_or(0, |t| t.len()), (album % 4) as usize, "album {album}");
    }
    let mut conn = conn.lock().await;
    assert_eq!(statements_since(&mut conn, before).await, 2, "one statement for the parents, one for the children");
}

/// Fetches keys `1..=keys` from a table holding `rows` (a MariaDB `seq_*` table name): the statements executed and
/// the rows found.
async fn fetch_from_seq(rows: &str, keys: i32) -> (u64, usize) {
    let mut conn = connect().await;
    let limits = MySqlLimits::read(&mut conn).await.unwrap();
    conn.query_drop(format!(
        "CREATE TEMPORARY TABLE items (id INT PRIMARY KEY); INSERT INTO items SELECT seq FROM {rows}"
    ))
    .await
    .unwrap();
    let keys: Vec<i32> = (1..=keys).collect();
    let before = status(&mut conn, "Com_stmt_execute").await;
    let found: Vec<i32> = mysql::fetch_by_keys(&mut conn, &limits, "items", &["id"], "id", &keys).await.unwrap();
    (status(&mut conn, "Com_stmt_execute").await - before, found.len())
}

#[tokio::test]
async fn in_list_of_65535_keys_is_one_statement() {
    assert_eq!(fetch_from_seq("seq_1_to_1000", 65_535).await, (1, 1000));
}

#[tokio::test]
async fn in_list_of_65536_keys_takes_two_statements() {
    let (statements, found) = fetch_from_seq("seq_65000_to_66000", 65_536).await;
    assert_eq!(statements, 2);
    assert_eq!(found, 537, "65,000..=65,536 found, across the chunk boundary");
}

#[tokio::test]
async fn insert_just_over_max_allowed_packet_is_split_and_the_connection_survives() {
    let mut conn = connect().await;
    let limits = MySqlLimits::read(&mut conn).await.unwrap();
    conn.query_drop("CREATE TEMPORARY TABLE blobs (id INT PRIMARY KEY, body LONGBLOB NOT NULL)").await.unwrap();
    // Rows of 1 MiB: together one MiB over the server's limit.
    let row_size = 1024 * 1024;
    let n = limits.max_allowed_packet / row_size + 1;
    let rows: Vec<Vec<Value>> =
        (0..n).map(|i| vec![Value::from(i as i32), Value::Bytes(vec![b'a' + (i % 26) as u8; row_size])]).collect();
    let plan = mysql::plan_chunks("blobs", &["id", "body"], &rows, &limits).unwrap();
    assert_eq!(plan.len(), 2, "{plan:?}");
    let before = status(&mut conn, "Com_stmt_execute").await;
    assert_eq!(mysql::insert(&mut conn, &limits, "blobs", &["id", "body"], &rows).await.unwrap(), n as u64);
    assert_eq!(status(&mut conn, "Com_stmt_execute").await - before, 2);
    let (count, bytes): (u64, u64) =
        conn.query_first("SELECT COUNT(*), SUM(LENGTH(body)) FROM blobs").await.unwrap().unwrap();
    assert_eq!((count, bytes), (n as u64, (n * row_size) as u64));
}

#[tokio::test]
async fn insert_of_65536_placeholders_takes_two_statements_in_one_transaction() {
    let mut conn = connect().await;
    let limits = MySqlLimits::read(&mut conn).await.unwrap();
    conn.query_drop("CREATE TEMPORARY TABLE pairs (a INT PRIMARY KEY, b INT)").await.unwrap();
    let rows: Vec<Vec<Value>> = (0..32_768).map(|i| vec![Value::from(i), Value::from(i * 2)]).collect();
    assert_eq!(mysql::plan_chunks("pairs", &["a", "b"], &rows, &limits).unwrap(), vec![32_767, 1]);
    let before = status(&mut conn, "Com_stmt_execute").await;
    mysql::insert(&mut conn, &limits, "pairs", &["a", "b"], &rows).await.unwrap();
    assert_eq!(status(&mut conn, "Com_stmt_execute").await - before, 2);
    let count: u64 = conn.query_first("SELECT COUNT(*) FROM pairs").await.unwrap().unwrap();
    assert_eq!(count, 32_768);
}

#[tokio::test]
async fn failing_chunk_rolls_back_the_earlier_ones() {
    let mut conn = connect().await;
    let limits = MySqlLimits::read(&mut conn).await.unwrap();
    conn.query_drop("CREATE TABLE IF NOT EXISTS aq_batch_rollback (a INT PRIMARY KEY) ENGINE=InnoDB").await.unwrap();
    conn.query_drop("DELETE FROM aq_batch_rollback WHERE a >= 0").await.ok();
    // 70,000 rows: the duplicate key sits in the second statement.
    let mut rows: Vec<Vec<Value>> = (0..70_000).map(|i| vec![Value::from(i)]).collect();
    rows.push(vec![Value::from(0)]);
    let err = mysql::insert(&mut conn, &limits, "aq_batch_rollback", &["a"], &rows).await.unwrap_err();
    assert!(matches!(err, BulkError::Database(_)), "{err}");
    let count: u64 = conn.query_first("SELECT COUNT(*) FROM aq_batch_rollback").await.unwrap().unwrap();
    conn.query_drop("DROP TABLE aq_batch_rollback").await.unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn row_larger_than_the_packet_limit_is_refused_before_sending() {
    let mut conn = connect().await;
    let limits = MySqlLimits::new(4096);
    let before = status(&mut conn, "Questions").await;
    let rows = vec![vec![Value::from(1), Value::Bytes(vec![0; 8192])]];
    let err = mysql::insert(&mut conn, &limits, "t", &["id", "body"], &rows).await.unwrap_err();
    assert!(matches!(err, BulkError::RowTooLarge { row: 0, .. }), "{err}");
    assert!(err.to_string().contains("max_allowed_packet"), "{err}");
    assert_eq!(statements_since(&mut conn, before).await, 0);
}

#[tokio::test]
async fn upsert_updates_existing_rows_and_inserts_new_ones() {
    let mut conn = connect().await;
    let limits = MySqlLimits::read(&mut conn).await.unwrap();
    conn.query_drop(
        "CREATE TEMPORARY TABLE saved (user_id INT, word VARCHAR(32), score INT, PRIMARY KEY (user_id, word));
         INSERT INTO saved VALUES (1, 'a', 1), (1, 'b', 1);",
    )
    .await
    .unwrap();
    let rows: Vec<Vec<Value>> = [(1, "b", 5), (1, "c", 6), (2, "a", 7)]
        .into_iter()
        .map(|(u, w, s)| vec![Value::from(u), Value::from(w), Value::from(s)])
        .collect();
    mysql::upsert(&mut conn, &limits, "saved", &["user_id", "word", "score"], &rows, &["score"]).await.unwrap();
    let got: Vec<(i32, String, i32)> =
        conn.query("SELECT user_id, word, score FROM saved ORDER BY 1, 2").await.unwrap();
    let expected = [(1, "a", 1), (1, "b", 5), (1, "c", 6), (2, "a", 7)].map(|(u, w, s)| (u, w.to_string(), s));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn names_are_quoted_never_spliced() {
    let mut conn = connect().await;
    let limits = MySqlLimits::read(&mut conn).await.unwrap();
    let table = "odd`; DROP TABLE x; --";
    conn.query_drop(format!("CREATE TEMPORARY TABLE {} (`key col` INT, v TEXT)", mysql::quote_table(table).unwrap()))
        .await
        .unwrap();
    let rows = vec![vec![Value::from(1), Value::from("x")], vec![Value::from(2), Value::from("y")]];
    mysql::insert(&mut conn, &limits, table, &["key col", "v"], &rows).await.unwrap();
    let got: Vec<String> = mysql::fetch_by_keys(&mut conn, &limits, table, &["v"], "key col", &[2]).await.unwrap();
    assert_eq!(got, ["y"]);
}

#[test]
fn identifier_rules_are_mysqls() {
    assert_eq!(mysql::quote_ident("a`b", "column").unwrap(), "`a``b`");
    assert!(matches!(
        mysql::quote_ident(&"x".repeat(65), "column"),
        Err(IdentError::TooLong { what: "column", len: 65, max: 64, .. })
    ));
    assert!(matches!(
        mysql::quote_ident("name ", "table"),
        Err(IdentError::Invalid { reason: "a trailing space", .. })
    ));
    assert_eq!(mysql::quote_table("test."), Err(IdentError::Empty { what: "table" }));
}

#[test]
fn row_of_the_wrong_width_is_rejected() {
    let rows = vec![vec![Value::from(1), Value::from(2)], vec![Value::from(3)]];
    let err = mysql::plan_chunks("t", &["a", "b"], &rows, &MySqlLimits::new(1 << 24)).unwrap_err();
    assert!(matches!(err, BulkError::RowShape { row: 1, found: 1, expected: 2 }), "{err}");
}
