//! PostgreSQL: BatchLoader over `= ANY($1)`, UNNEST inserts, identifiers. Statements are counted by a proxy
//! reading the wire protocol (Execute and Query messages), never by the code under test.

mod common;

use std::sync::Arc;

use aquifer_batch::postgres::{self, Columns};
use aquifer_batch::{BatchLoader, BulkError, IdentError, Loader};
use aquifer_testing::CountingProxy;
use common::{ChildrenOf, resolve_in_one_request};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};
use tokio::sync::Mutex;

async fn connect() -> (PgConnection, CountingProxy) {
    let proxy = common::postgres_proxy().await;
    let url = format!("postgres://postgres@{}/test?sslmode=disable", proxy.addr());
    let conn = PgConnection::connect(&url).await.expect("connect through the counting proxy");
    (conn, proxy)
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// 1,000 albums; album `a` has `a % 4` tracks (so a quarter have none).
async fn music(conn: &mut PgConnection) {
    exec(
        conn,
        "CREATE TEMP TABLE albums (id int PRIMARY KEY, title text NOT NULL);
         CREATE TEMP TABLE tracks (id serial PRIMARY KEY, album_id int NOT NULL, title text NOT NULL);
         INSERT INTO albums SELECT a, 'album ' || a FROM generate_series(1, 1000) a;
         INSERT INTO tracks (album_id, title)
           SELECT a, 'track ' || t || ' of ' || a FROM generate_series(1, 1000) a, generate_series(1, 3) t
           WHERE t <= a % 4;",
    )
    .await;
}

/// Tracks by album, one `= ANY($1)` statement per batch.
fn tracks_by_album(conn: &Arc<Mutex<PgConnection>>) -> BatchLoader<impl Loader<Key = i32, Value = Vec<String>>> {
    BatchLoader::new(ChildrenOf::new(conn, |conn, albums: Vec<i32>| async move {
        let mut conn = conn.lock().await;
        let rows: Vec<(i32, String)> =
            postgres::fetch_by_keys(&mut conn, "tracks", &["album_id", "title"], "album_id", &albums).await?;
        Ok::<_, BulkError<sqlx::Error>>(rows)
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_parents_children_load_in_two_statements() {
    let (mut conn, proxy) = connect().await;
    music(&mut conn).await;
    let conn = Arc::new(Mutex::new(conn));
    let loader = tracks_by_album(&conn);

    let before = proxy.statements();
    let albums: Vec<i32> = {
        let mut c = conn.lock().await;
        sqlx::query_scalar("SELECT id FROM albums ORDER BY id").fetch_all(&mut *c).await.unwrap()
    };
    // The album list's resolvers run concurrently in a request's task, as a GraphQL server resolves a list.
    let resolved = resolve_in_one_request(&loader, &albums).await;
    let mut with_tracks = 0;
    for (album, tracks) in resolved {
        let tracks = tracks.unwrap();
        assert_eq!(tracks.as_ref().map_or(0, Vec::len), (album % 4) as usize, "album {album}");
        with_tracks += usize::from(tracks.is_some());
    }
    assert_eq!(albums.len(), 1000);
    assert_eq!(with_tracks, 750);
    assert_eq!(proxy.statements() - before, 2, "one statement for the parents, one for all their children");
}

#[tokio::test]
async fn fetch_by_keys_sends_seventy_thousand_keys_as_one_bind_in_one_statement() {
    let (mut conn, proxy) = connect().await;
    exec(&mut conn, "CREATE TEMP TABLE items AS SELECT i AS id, i * 2 AS doubled FROM generate_series(1, 50000) i")
        .await;
    let keys: Vec<i32> = (1..=70_000).collect();
    let before = proxy.statements();
    let rows: Vec<(i32, i32)> =
        postgres::fetch_by_keys(&mut conn, "items", &["id", "doubled"], "id", &keys).await.unwrap();
    assert_eq!(proxy.statements() - before, 1);
    assert_eq!(rows.len(), 50_000);
    assert!(rows.iter().all(|&(id, doubled)| doubled == 2 * id));
}

#[tokio::test]
async fn fetch_by_keys_with_no_keys_sends_nothing() {
    let (mut conn, proxy) = connect().await;
    let before = proxy.statements();
    let rows = postgres::fetch_by_keys::<i32, (i32,)>(&mut conn, "anything", &["id"], "id", &[]).await.unwrap();
    assert!(rows.is_empty());
    assert_eq!(proxy.statements(), before);
}

#[tokio::test]
async fn insert_puts_rows_beyond_the_bind_limit_in_one_statement() {
    let (mut conn, proxy) = connect().await;
    exec(&mut conn, "CREATE TEMP TABLE words (id bigint PRIMARY KEY, word text NOT NULL, level int NOT NULL)").await;
    // 30,000 rows x 3 columns = 90,000 values: a VALUES list would need more than 65,535 binds.
    let n = 30_000;
    let rows = Columns::new()
        .column("id", (0..n).collect::<Vec<i64>>())
        .column("word", (0..n).map(|i| format!("word{i}")).collect::<Vec<String>>())
        .column("level", (0..n).map(|i| (i % 5) as i32).collect::<Vec<i32>>());
    assert!(3 * n as usize > postgres::MAX_BINDS);
    let before = proxy.statements();
    assert_eq!(postgres::insert(&mut conn, "words", &rows).await.unwrap(), n as u64);
    assert_eq!(proxy.statements() - before, 1);
    let (count, sum): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(level)::bigint FROM words").fetch_one(&mut conn).await.unwrap();
    assert_eq!((count, sum), (n, (0..n).map(|i| i % 5).sum::<i64>()));
}

/// Ids `0..n`, `n` being one row more than one statement takes.
fn ids_beyond_one_statement() -> (i32, Columns) {
    let n = postgres::ROWS_PER_STATEMENT as i32 + 1;
    (n, Columns::new().column("id", (0..n).collect::<Vec<i32>>()))
}

async fn count_ticks(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ticks").fetch_one(conn).await.unwrap()
}

#[tokio::test]
async fn insert_above_rows_per_statement_splits_inside_one_transaction() {
    let (mut conn, proxy) = connect().await;
    exec(&mut conn, "CREATE TEMP TABLE ticks (id int PRIMARY KEY)").await;
    let (n, rows) = ids_beyond_one_statement();
    let before = proxy.statements();
    assert_eq!(postgres::insert(&mut conn, "ticks", &rows).await.unwrap(), n as u64);
    assert_eq!(proxy.statements() - before, 4, "BEGIN, two INSERTs, COMMIT");
    assert_eq!(count_ticks(&mut conn).await, i64::from(n));
}

#[tokio::test]
async fn failing_later_chunk_rolls_back_the_earlier_ones() {
    let (mut conn, _proxy) = connect().await;
    exec(&mut conn, "CREATE TEMP TABLE ticks (id int PRIMARY KEY CHECK (id <> 100000))").await;
    let (_, rows) = ids_beyond_one_statement();
    let err = postgres::insert(&mut conn, "ticks", &rows).await.unwrap_err();
    assert!(matches!(err, BulkError::Database(_)), "{err}");
    assert_eq!(count_ticks(&mut conn).await, 0);
}

#[tokio::test]
async fn upsert_updates_existing_rows_and_inserts_new_ones() {
    let (mut conn, _proxy) = connect().await;
    exec(
        &mut conn,
        "CREATE TEMP TABLE reviews (user_id int, word text, score int, PRIMARY KEY (user_id, word));
                     INSERT INTO reviews VALUES (1, 'a', 1), (1, 'b', 1)",
    )
    .await;
    let rows = Columns::new()
        .column("user_id", vec![1, 1, 2])
        .column("word", vec!["b", "c", "a"])
        .column("score", vec![5, 6, 7]);
    assert_eq!(postgres::upsert(&mut conn, "reviews", &rows, &["user_id", "word"]).await.unwrap(), 3);
    let got: Vec<(i32, String, i32)> =
        sqlx::query_as("SELECT user_id, word, score FROM reviews ORDER BY 1, 2").fetch_all(&mut conn).await.unwrap();
    let expected = [(1, "a", 1), (1, "b", 5), (1, "c", 6), (2, "a", 7)].map(|(u, w, s)| (u, w.to_string(), s));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn names_are_quoted_never_spliced() {
    let (mut conn, _proxy) = connect().await;
    let table = r#"odd"; DROP TABLE x; --"#;
    exec(
        &mut conn,
        &format!("CREATE TEMP TABLE {} (\"Key Col\" int, \"sel\"\"ect\" text)", postgres::quote_table(table).unwrap()),
    )
    .await;
    let rows = Columns::new().column("Key Col", vec![1, 2]).column("sel\"ect", vec!["x", "y"]);
    postgres::insert(&mut conn, table, &rows).await.unwrap();
    let got: Vec<(String,)> = postgres::fetch_by_keys(&mut conn, table, &["sel\"ect"], "Key Col", &[2]).await.unwrap();
    assert_eq!(got, [("y".to_owned(),)]);
}

#[test]
fn quote_ident_doubles_embedded_quotes() {
    assert_eq!(postgres::quote_ident(r#"a"b"#, "column").unwrap(), r#""a""b""#);
    assert_eq!(postgres::quote_table("music.tracks").unwrap(), r#""music"."tracks""#);
}

#[test]
fn identifier_longer_than_63_bytes_is_rejected_by_name() {
    let long = "x".repeat(64);
    let err = postgres::quote_ident(&long, "column").unwrap_err();
    assert!(matches!(err, IdentError::TooLong { what: "column", len: 64, max: 63, .. }));
    assert!(err.to_string().contains("column name \"xxxx"), "{err}");
}

#[test]
fn empty_and_nul_identifiers_are_rejected() {
    assert_eq!(postgres::quote_table("music."), Err(IdentError::Empty { what: "table" }));
    assert!(matches!(postgres::quote_ident("a\0b", "column"), Err(IdentError::Invalid { what: "column", .. })));
}

#[test]
fn a_lookup_without_columns_selects_every_column() {
    assert_eq!(postgres::select_by_keys_sql("t", &[], "id").unwrap(), r#"SELECT * FROM "t" WHERE "id" = ANY($1)"#);
}

#[tokio::test]
async fn columns_of_different_lengths_are_rejected_before_anything_is_sent() {
    let (mut conn, proxy) = connect().await;
    let before = proxy.statements();
    let rows = Columns::new().column("a", vec![1, 2, 3]).column("b", vec![1, 2]);
    let err = postgres::insert(&mut conn, "t", &rows).await.unwrap_err();
    assert!(matches!(err, BulkError::RowShape { row: 1, found: 2, expected: 3 }), "{err}");
    assert_eq!(proxy.statements(), before);
}
