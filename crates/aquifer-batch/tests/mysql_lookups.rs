//! MySQL/MariaDB without a hand-written loader: [`MySqlRows`] loaders and preloads, and the [`MySqlBulk`] helpers
//! on aquifer-mysql's pool. The pool has one connection, so the statements it ran are counted by the server
//! itself (that session's `Com_stmt_execute`: the lookups and inserts are prepared statements, the status
//! readings are not), never by the code under test. Tables are real ones named per test (the pool's connection
//! is not the session that creates them) and dropped at the end.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use aquifer_batch::mysql::{MySqlBulk, MySqlLimits, MySqlRows};
use aquifer_batch::{BatchError, BulkError, FetchRows, IdentError, PRELOAD_CHUNK};
use aquifer_core::OperationError;
use aquifer_core::n_plus_one::{self, NPlusOneMode};
use aquifer_mysql::{DbSystem, MySqlConfig, MySqlOperationError, MySqlPool, PoolConfig};
use common::resolve_in_one_request;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

/// `(album_id, title)` of a track.
type Track = (i32, String);

/// A table name unique to this process and call.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A pool of one connection to the project's MariaDB, its `db.system.name` set to `system` when given.
async fn pool_of(system: Option<DbSystem>) -> MySqlPool {
    let config = MySqlConfig {
        pool: PoolConfig { max_size: 1, ..PoolConfig::default() },
        system,
        ..MySqlConfig::from_url(aquifer_testing::servers::mariadb_url())
    };
    config.connect().await.expect("pool on MariaDB")
}

/// `n` albums and their tracks (album `a` has `a % 4`), in tables of this test, and a pool to read them.
struct Music {
    admin: Conn,
    pool: MySqlPool,
    albums: String,
    tracks: String,
}

impl Music {
    async fn new(n: u32) -> Music {
        let mut admin = common::mariadb().await;
        let (albums, tracks) = (unique("aq_lookup_albums"), unique("aq_lookup_tracks"));
        admin
            .query_drop(format!(
                "CREATE TABLE {albums} (id INT PRIMARY KEY, title VARCHAR(64) NOT NULL);
                 CREATE TABLE {tracks} (id INT AUTO_INCREMENT PRIMARY KEY, album_id INT NOT NULL,
                                        title VARCHAR(64) NOT NULL, KEY (album_id));
                 INSERT INTO {albums} SELECT seq, CONCAT('album ', seq) FROM seq_1_to_{n};
                 INSERT INTO {tracks} (album_id, title)
                   SELECT a.seq, CONCAT('track ', a.seq, '.', t.seq) FROM seq_1_to_{n} a, seq_1_to_3 t
                   WHERE t.seq <= a.seq % 4 ORDER BY a.seq, t.seq;"
            ))
            .await
            .expect("music tables");
        Music { admin, pool: pool_of(None).await, albums, tracks }
    }

    /// The tracks by album.
    fn tracks(&self) -> MySqlRows<i32, Track> {
        MySqlRows::table(&self.pool, &self.tracks, "album_id", &["album_id", "title"]).unwrap()
    }

    /// Prepared statements the pool's connection has executed so far.
    async fn executed(&self) -> u64 {
        executed(&self.pool).await
    }

    async fn drop_tables(mut self) {
        self.admin.query_drop(format!("DROP TABLE {}, {}", self.tracks, self.albums)).await.unwrap();
    }
}

/// The `Com_stmt_execute` status of the pool's (one) connection.
async fn executed(pool: &MySqlPool) -> u64 {
    let (_, value): (String, String) =
        pool.fetch_one("SHOW SESSION STATUS LIKE 'Com_stmt_execute'", ()).await.expect("session status");
    value.parse().expect("numeric status")
}

/// The titles album `a`'s tracks have.
fn titles(album: i32) -> Vec<String> {
    (1..=album % 4).map(|t| format!("track {album}.{t}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_loads_200_concurrent_keys_in_one_statement_and_a_missing_key_is_none() {
    let music = Music::new(300).await;
    let albums: MySqlRows<i32, Track> = MySqlRows::table(&music.pool, &music.albums, "id", &[]).unwrap();
    let loader = albums.one_to_one(|a| a.0);
    let mut keys: Vec<i32> = (1..=199).collect();
    keys.push(1_000);
    let before = music.executed().await;
    let loaded = resolve_in_one_request(&loader, &keys).await;
    assert_eq!(music.executed().await - before, 1);
    for (key, album) in loaded {
        let expected = (key <= 300).then(|| (key, format!("album {key}")));
        assert_eq!(album.unwrap(), expected, "album {key}");
    }
    music.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_many_groups_each_albums_tracks_in_one_statement() {
    let music = Music::new(40).await;
    let loader = music.tracks().one_to_many(|t| t.0);
    let keys: Vec<i32> = (1..=40).collect();
    let before = music.executed().await;
    let loaded = resolve_in_one_request(&loader, &keys).await;
    assert_eq!(music.executed().await - before, 1);
    for (album, tracks) in loaded {
        let got: Option<Vec<String>> = tracks.unwrap().map(|t| t.into_iter().map(|(_, title)| title).collect());
        let expected = Some(titles(album)).filter(|t| !t.is_empty());
        assert_eq!(got, expected, "album {album}");
    }
    music.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preload_attaches_children_to_every_parent_in_one_statement_per_chunk() {
    let music = Music::new(2_000).await;
    // 2,500 parents over 2,000 albums: the first 500 albums twice.
    let mut parents: Vec<(i32, Option<Vec<Track>>)> = (1..=2_000).chain(1..=500).map(|a| (a, None)).collect();
    let before = music.executed().await;
    music.tracks().preload(&mut parents, |p| p.0, |t| t.0, |p, tracks| p.1 = Some(tracks)).await.unwrap();
    assert_eq!(music.executed().await - before, 2_000_u64.div_ceil(PRELOAD_CHUNK as u64));
    for (album, tracks) in parents {
        let got: Vec<String> = tracks.expect("attached").into_iter().map(|(_, title)| title).collect();
        assert_eq!(got, titles(album), "album {album}");
    }
    music.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_form_expands_the_keys_marker_in_a_join() {
    let music = Music::new(20).await;
    let sql = format!(
        "SELECT t.album_id, t.title FROM {} t JOIN {} a ON a.id = t.album_id
         WHERE t.album_id IN ({{keys}}) AND a.title <> 'album 3' ORDER BY t.id",
        music.tracks, music.albums
    );
    let tracks: MySqlRows<i32, Track> = MySqlRows::statement(&music.pool, &sql).unwrap();
    assert_eq!(tracks.source(), "statement");
    let mut albums: Vec<(i32, Vec<Track>)> = (1..=5).map(|a| (a, Vec::new())).collect();
    tracks.preload(&mut albums, |a| a.0, |t| t.0, |a, t| a.1 = t).await.unwrap();
    let got: Vec<(i32, usize)> = albums.iter().map(|(a, t)| (*a, t.len())).collect();
    assert_eq!(got, [(1, 1), (2, 2), (3, 0), (4, 0), (5, 1)], "album 3 is filtered out by the join");
    music.drop_tables().await;
}

#[tokio::test]
async fn statement_without_the_keys_marker_is_refused_naming_the_statement() {
    let pool = pool_of(None).await;
    let sql = "SELECT album_id, title FROM tracks WHERE album_id IN (?)";
    let err = MySqlRows::<i32, Track>::statement(&pool, sql).unwrap_err();
    assert_eq!((err.found, err.sql.as_str()), (0, sql));
    assert!(err.to_string().contains(sql), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_packet_limit_splits_a_fetch_into_several_statements_that_return_every_row() {
    let music = Music::new(2_000).await;
    // About 8 KiB of key list per statement: some 800 keys of 9 bytes, so 3 statements for 2,000 keys.
    let tracks = music.tracks().with_limits(MySqlLimits::new(9 * 1024));
    let keys: Vec<i32> = (1..=2_000).collect();
    let before = music.executed().await;
    let rows = tracks.fetch_rows(&keys).await.unwrap();
    assert_eq!(music.executed().await - before, 3);
    let expected: usize = keys.iter().map(|&a| titles(a).len()).sum();
    assert_eq!(rows.len(), expected);
    music.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_returning_gives_the_generated_ids_in_input_order() {
    let mut admin = common::mariadb().await;
    let table = unique("aq_lookup_words");
    admin
        .query_drop(format!(
            "CREATE TABLE {table} (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, word VARCHAR(32) NOT NULL)"
        ))
        .await
        .unwrap();
    let pool = pool_of(None).await;
    // Words in an order of their own (not sorted), in several statements: 64 KiB of packet each.
    let words: Vec<String> = (0..20_000).map(|i| format!("w{:05}", (i * 7_919) % 20_000)).collect();
    let rows: Vec<Vec<Value>> = words.iter().map(|w| vec![Value::from(w.as_str())]).collect();
    let limits = MySqlLimits::new(64 * 1024);
    let before = executed(&pool).await;
    let ids: Vec<(u64, String)> =
        pool.insert_returning(Some(&limits), &table, &["word"], &rows, &["id", "word"]).await.unwrap();
    assert!(executed(&pool).await - before > 1, "several statements");
    let stored: Vec<(u64, String)> = admin.query(format!("SELECT id, word FROM {table}")).await.unwrap();
    let stored: std::collections::HashMap<u64, String> = stored.into_iter().collect();
    assert_eq!(ids.len(), words.len());
    for (i, ((id, returned), word)) in ids.iter().zip(&words).enumerate() {
        assert_eq!((returned, stored.get(id)), (word, Some(word)), "row {i}, id {id}");
    }
    admin.query_drop(format!("DROP TABLE {table}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_helpers_insert_upsert_and_fetch_typed_rows() {
    let mut admin = common::mariadb().await;
    let table = unique("aq_lookup_saved");
    admin
        .query_drop(format!(
            "CREATE TABLE {table} (user_id INT, word VARCHAR(32), score INT, PRIMARY KEY (user_id, word))"
        ))
        .await
        .unwrap();
    let pool = pool_of(None).await;
    let row = |u: i32, w: &str, s: i32| vec![Value::from(u), Value::from(w), Value::from(s)];
    let columns = ["user_id", "word", "score"];
    let inserted = pool.insert(None, &table, &columns, &[row(1, "a", 1), row(1, "b", 1), row(2, "a", 1)]).await;
    assert_eq!(inserted.unwrap(), 3);
    let upserted = pool.upsert(None, &table, &columns, &[row(1, "b", 5), row(3, "c", 6)], &["score"]).await;
    assert_eq!(upserted.unwrap(), 3, "2 for the updated row, 1 for the new one");
    let mut got: Vec<(i32, String, i32)> =
        pool.fetch_by_keys(None, &table, &columns, "user_id", &[1, 3]).await.unwrap();
    got.sort();
    let expected = [(1, "a", 1), (1, "b", 5), (3, "c", 6)].map(|(u, w, s)| (u, w.to_owned(), s));
    assert_eq!(got, expected);
    let raw: Vec<Row> = pool.fetch_by_keys(None, &table, &[], "user_id", &[2]).await.unwrap();
    assert_eq!((raw.len(), raw[0].get::<String, _>("word")), (1, Some("a".to_owned())));
    admin.query_drop(format!("DROP TABLE {table}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_insert_of_several_statements_is_one_transaction() {
    let mut admin = common::mariadb().await;
    let table = unique("aq_lookup_pairs");
    admin.query_drop(format!("CREATE TABLE {table} (a INT PRIMARY KEY) ENGINE=InnoDB")).await.unwrap();
    let pool = pool_of(None).await;
    // 70,000 rows: two statements, the duplicate key in the second.
    let mut rows: Vec<Vec<Value>> = (0..70_000).map(|i| vec![Value::from(i)]).collect();
    rows.push(vec![Value::from(0)]);
    let err = pool.insert(None, &table, &["a"], &rows).await.unwrap_err();
    assert!(matches!(err, BulkError::Database(OperationError::Backend(mysql_async::Error::Server(_)))), "{err}");
    let count: u64 = admin.query_first(format!("SELECT COUNT(*) FROM {table}")).await.unwrap().unwrap();
    assert_eq!(count, 0, "the first statement's rows were rolled back");
    rows.pop();
    assert_eq!(pool.insert(None, &table, &["a"], &rows).await.unwrap(), 70_000);
    admin.query_drop(format!("DROP TABLE {table}")).await.unwrap();
}

#[tokio::test]
async fn row_that_does_not_convert_is_an_error_not_a_panic() {
    let music = Music::new(4).await;
    let got: Result<Vec<(i32, i32)>, _> =
        music.pool.fetch_by_keys(None, &music.tracks, &["album_id", "title"], "album_id", &[1]).await;
    let err = got.unwrap_err();
    assert!(
        matches!(
            err,
            BulkError::Database(OperationError::Backend(mysql_async::Error::Driver(
                mysql_async::DriverError::FromRow { .. }
            )))
        ),
        "{err}"
    );
    music.drop_tables().await;
}

#[tokio::test]
async fn bad_identifier_is_a_typed_error_naming_it_and_nothing_is_sent() {
    let pool = pool_of(None).await;
    let questions = || async {
        let (_, value): (String, String) = pool.fetch_one("SHOW SESSION STATUS LIKE 'Questions'", ()).await.unwrap();
        value.parse::<u64>().unwrap()
    };
    let bad = "name\0with a NUL";
    let before = questions().await;
    let err = MySqlRows::<i32, Track>::table(&pool, "tracks", bad, &["album_id"]).unwrap_err();
    assert!(matches!(&err, IdentError::Invalid { what: "column", name, .. } if name == bad), "{err}");
    let err = pool.fetch_by_keys::<i32, Track>(None, bad, &[], "id", &[1]).await.unwrap_err();
    assert!(matches!(&err, BulkError::Ident(IdentError::Invalid { what: "table", name, .. }) if name == bad), "{err}");
    let err = pool.insert(None, "t", &["a", &"x".repeat(65)], &[vec![Value::from(1), Value::from(2)]]).await;
    assert!(matches!(err, Err(BulkError::Ident(IdentError::TooLong { what: "column", len: 65, .. }))), "{err:?}");
    // The reading itself is the one statement between the two readings.
    assert_eq!(questions().await - before, 1);
}

#[tokio::test]
async fn key_too_large_for_the_packet_limit_fails_before_sending() {
    let pool = pool_of(None).await;
    let rows =
        MySqlRows::<String, Row>::table(&pool, "anything", "k", &[]).unwrap().with_limits(MySqlLimits::new(2048));
    let before = executed(&pool).await;
    let err = rows.fetch_rows(&["k".repeat(4096)]).await.unwrap_err();
    let OperationError::Backend(mysql_async::Error::Other(inner)) = &err else { panic!("{err}") };
    let inner = inner.downcast_ref::<BulkError<MySqlOperationError>>().expect("a bulk error");
    assert!(matches!(inner, BulkError::RowTooLarge { row: 0, .. }), "{inner}");
    assert_eq!(executed(&pool).await - before, 0);
}

#[tokio::test]
async fn closed_pool_fails_with_the_acquire_error() {
    let music = Music::new(4).await;
    let loader = music.tracks().one_to_many(|t| t.0);
    music.pool.close().await;
    let err = music.pool.fetch_by_keys::<i32, Track>(None, &music.tracks, &[], "album_id", &[1]).await.unwrap_err();
    assert!(matches!(err, BulkError::Database(OperationError::Acquire(_))), "{err}");
    let err = loader.load(1).await.unwrap_err();
    assert!(matches!(err.load_error(), Some(OperationError::Acquire(_))), "{err}");
    assert!(matches!(err, BatchError::Load(_)), "{err}");
    music.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_lists_of_preloads_and_loaders_are_never_n_plus_one_loops() {
    let music = Music::new(50).await;
    music.pool.set_n_plus_one(NPlusOneMode::Deny);
    let tracks = music.tracks();
    let keys: Vec<i32> = (1..=50).collect();
    let batched = n_plus_one::scope(async {
        // The same IN statement from the same call site, one run after another: six preloads, six loaders'
        // batches (concurrent loads in this task, which the scope watches).
        for _ in 0..6 {
            let mut albums: Vec<(i32, Vec<Track>)> = keys.iter().map(|&a| (a, Vec::new())).collect();
            tracks.preload(&mut albums, |a| a.0, |t| t.0, |a, t| a.1 = t).await.map_err(|e| e.to_string())?;
        }
        for _ in 0..6 {
            let loader = tracks.clone().one_to_many(|t| t.0);
            let loads = futures_util::future::join_all(keys.iter().map(|&a| loader.load(a))).await;
            for load in loads {
                load.map_err(|e| e.to_string())?;
            }
        }
        Ok::<_, String>(())
    })
    .await;
    batched.expect("batched statements are not N+1 loops");
    let sql = format!("SELECT album_id, title FROM {} WHERE album_id = ?", music.tracks);
    let per_key = n_plus_one::scope(async {
        for album in 1..=6 {
            let _: Vec<Track> = music.pool.fetch_all(&sql, (album,)).await?;
        }
        Ok::<_, MySqlOperationError>(())
    })
    .await;
    assert!(per_key.unwrap_err().n_plus_one_error().is_some(), "the scope does deny a per-key loop");
    music.drop_tables().await;
}

#[tokio::test]
async fn system_is_the_pools_db_system_name() {
    let mysql = pool_of(None).await;
    let mariadb = pool_of(Some(DbSystem::MariaDb)).await;
    let rows = |pool: &MySqlPool| MySqlRows::<i32, Track>::table(pool, "tracks", "album_id", &[]).unwrap();
    assert_eq!((rows(&mysql).system(), rows(&mariadb).system()), ("mysql", "mariadb"));
}
