//! SQLite lookups without a hand-written loader (`SqliteRows` with `one_to_one`, `one_to_many`, `preload`) and
//! the typed helpers on the pool (`SqliteBulk`), on a real WAL database file. Statements are counted by
//! SQLite's own trace hook on every reader connection, never by the code under test.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use aquifer_batch::sqlite::{self, SqliteBulk, SqliteRows};
use aquifer_batch::{BatchError, BulkError, FetchRows, IdentError, PRELOAD_CHUNK};
use aquifer_core::n_plus_one::{self, NPlusOneMode};
use aquifer_core::{OperationError, PoolError};
use aquifer_sqlite::{SqliteOperationError, SqlitePool};
use futures_util::future::join_all;
use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::types::Value;

const READERS: usize = 4;
const ALBUMS: i64 = 1_200;

/// `rarray` statements SQLite ran on traced connections.
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);
/// Tests that count statements run one at a time: the trace hook and its counter are process-wide.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn count_lookup(event: TraceEvent<'_>) {
    if let TraceEvent::Stmt(_, sql) = event
        && sql.contains("rarray(")
    {
        LOOKUPS.fetch_add(1, Ordering::SeqCst);
    }
}

fn lookups() -> usize {
    LOOKUPS.load(Ordering::SeqCst)
}

#[derive(Debug, Clone, PartialEq)]
struct Track {
    album_id: i64,
    title: String,
}

impl TryFrom<&rusqlite::Row<'_>> for Track {
    type Error = rusqlite::Error;

    fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Track> {
        Ok(Track { album_id: row.get("album_id")?, title: row.get("title")? })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Album {
    id: i64,
    title: String,
}

impl TryFrom<&rusqlite::Row<'_>> for Album {
    type Error = rusqlite::Error;

    fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Album> {
        Ok(Album { id: row.get("id")?, title: row.get("title")? })
    }
}

/// A pool on a fresh database file: 1,200 albums, album `a` has `a % 4` tracks (`track 1`, …).
async fn music() -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::Builder::new().prefix("aq_batch_sqlite_").tempdir().unwrap();
    let pool = SqlitePool::builder(dir.path().join("music.db")).readers(READERS).connect().await.unwrap();
    pool.write(|tx| {
        tx.execute_batch(&format!(
            "CREATE TABLE albums (id INTEGER PRIMARY KEY, title TEXT NOT NULL, year INTEGER NOT NULL);
             CREATE TABLE tracks (id INTEGER PRIMARY KEY, album_id INTEGER NOT NULL, title TEXT NOT NULL);
             CREATE INDEX tracks_album ON tracks(album_id);
             WITH RECURSIVE a(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM a WHERE n < {ALBUMS})
               INSERT INTO albums SELECT n, 'album ' || n, 1990 + n % 30 FROM a;
             WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3)
               INSERT INTO tracks (album_id, title)
               SELECT albums.id, 'track ' || t.n FROM albums, t WHERE t.n <= albums.id % 4;"
        ))
    })
    .await
    .unwrap();
    (dir, pool)
}

/// Installs the counting trace hook on every reader: all of them are checked out at once, so each is opened.
async fn trace_readers(pool: &SqlitePool) {
    let readers = join_all((0..READERS).map(|_| pool.readers().get())).await;
    for reader in readers {
        reader.unwrap().trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(count_lookup));
    }
}

fn tracks(pool: &SqlitePool) -> SqliteRows<i64, Track> {
    SqliteRows::table(pool, "tracks", "album_id", &["album_id", "title"]).unwrap()
}

fn titles(tracks: &[Track]) -> Vec<&str> {
    tracks.iter().map(|t| t.title.as_str()).collect()
}

#[tokio::test]
async fn one_to_one_loads_each_keys_row_and_none_for_a_missing_key() {
    let (_dir, pool) = music().await;
    let albums = SqliteRows::<i64, Album>::table(&pool, "albums", "id", &[]).unwrap().one_to_one(|a| a.id);
    let (found, missing) = tokio::join!(albums.load(7), albums.load(ALBUMS + 1));
    assert_eq!(found.unwrap(), Some(Album { id: 7, title: "album 7".into() }));
    assert_eq!(missing.unwrap(), None);
}

#[tokio::test]
async fn one_to_many_loads_every_row_of_a_key() {
    let (_dir, pool) = music().await;
    let by_album = tracks(&pool).one_to_many(|t| t.album_id);
    let (three, none) = tokio::join!(by_album.load(7), by_album.load(8));
    let mut three = three.unwrap().expect("album 7 has tracks");
    three.sort_by(|a, b| a.title.cmp(&b.title));
    assert_eq!(titles(&three), ["track 1", "track 2", "track 3"]);
    assert!(three.iter().all(|t| t.album_id == 7));
    assert_eq!(none.unwrap(), None, "album 8 has no tracks");
}

#[tokio::test]
async fn two_hundred_concurrent_loads_run_one_statement() {
    let _one_at_a_time = COUNTING.lock().await;
    let (_dir, pool) = music().await;
    trace_readers(&pool).await;
    let by_album = tracks(&pool).one_to_many(|t| t.album_id);
    let before = lookups();
    let loaded = join_all((1..=200).map(|a| {
        let by_album = &by_album;
        async move { (a, by_album.load(a).await.unwrap()) }
    }))
    .await;
    assert_eq!(lookups() - before, 1);
    for (album, tracks) in loaded {
        assert_eq!(tracks.map_or(0, |t| t.len()), (album % 4) as usize, "album {album}");
    }
}

#[tokio::test]
async fn preload_runs_one_statement_per_chunk_of_distinct_keys() {
    let _one_at_a_time = COUNTING.lock().await;
    let (_dir, pool) = music().await;
    trace_readers(&pool).await;
    let mut albums: Vec<(i64, Vec<Track>)> = (1..=ALBUMS).map(|a| (a, Vec::new())).collect();
    assert!(albums.len() > PRELOAD_CHUNK && albums.len() <= 2 * PRELOAD_CHUNK);
    let before = lookups();
    tracks(&pool).preload(&mut albums, |a| a.0, |t| t.album_id, |a, t| a.1 = t).await.unwrap();
    assert_eq!(lookups() - before, 2);
    for (album, tracks) in &albums {
        assert_eq!(tracks.len(), (album % 4) as usize, "album {album}");
        assert!(tracks.iter().all(|t| t.album_id == *album));
    }
}

#[tokio::test]
async fn preload_gives_parents_sharing_a_key_copies_of_its_children() {
    let (_dir, pool) = music().await;
    let mut albums: Vec<(i64, Vec<Track>)> = [3, 5, 3, 3].map(|a| (a, Vec::new())).into();
    tracks(&pool).preload(&mut albums, |a| a.0, |t| t.album_id, |a, t| a.1 = t).await.unwrap();
    assert_eq!(albums[0].1.len(), 3);
    assert_eq!(albums[0].1, albums[2].1);
    assert_eq!(albums[0].1, albums[3].1);
    assert_eq!(albums[1].1.len(), 1);
}

#[tokio::test]
async fn preload_gives_a_parent_without_children_an_empty_list() {
    let (_dir, pool) = music().await;
    // Filled beforehand, so the test sees that `attach` ran with an empty list.
    let stale = Track { album_id: 0, title: "stale".into() };
    let mut albums = vec![(4_i64, vec![stale.clone()]), (ALBUMS + 1, vec![stale])];
    tracks(&pool).preload(&mut albums, |a| a.0, |t| t.album_id, |a, t| a.1 = t).await.unwrap();
    assert!(albums.iter().all(|a| a.1.is_empty()), "{albums:?}");
}

#[tokio::test]
async fn statement_form_runs_the_callers_sql_with_the_keys_as_rarray() {
    let _one_at_a_time = COUNTING.lock().await;
    let (_dir, pool) = music().await;
    trace_readers(&pool).await;
    // Tracks of albums from 2000 on: a join and a filter a table and a key column cannot say.
    let recent = SqliteRows::<i64, Track>::statement(
        &pool,
        "SELECT t.album_id, t.title FROM tracks t JOIN albums a ON a.id = t.album_id \
         WHERE t.album_id IN rarray(?1) AND a.year >= 2000 ORDER BY t.title",
    );
    let before = lookups();
    // Album 11 is from 2001 and has 3 tracks; album 7 (1997) has 3 too, filtered out.
    let rows = recent.fetch_rows(&[7, 11]).await.unwrap();
    assert_eq!(lookups() - before, 1);
    assert_eq!(titles(&rows), ["track 1", "track 2", "track 3"]);
    assert!(rows.iter().all(|t| t.album_id == 11));
    assert_eq!(recent.source(), "statement");
    assert_eq!(recent.system(), "sqlite");
}

#[tokio::test]
async fn statement_form_with_an_sql_error_returns_the_drivers_error() {
    let (_dir, pool) = music().await;
    // Whether or not its reader has registered `rarray` already, the statement fails with its own error.
    tracks(&pool).fetch_rows(&[1]).await.unwrap();
    let bad = SqliteRows::<i64, Track>::statement(&pool, "SELECT nope FROM tracks WHERE album_id IN rarray(?1)");
    let err = bad.fetch_rows(&[1]).await.unwrap_err();
    assert!(matches!(err, OperationError::Backend(_)), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn pool_fetch_by_keys_returns_typed_rows_in_one_statement() {
    let _one_at_a_time = COUNTING.lock().await;
    let (_dir, pool) = music().await;
    trace_readers(&pool).await;
    let keys: Vec<i64> = (1..=100_000).collect();
    let before = lookups();
    let mut rows: Vec<(i64, String)> = pool.fetch_by_keys("albums", &["id", "title"], "id", &keys).await.unwrap();
    assert_eq!(lookups() - before, 1, "100,000 keys, more than the variable limit, in one parameter");
    rows.sort();
    assert_eq!(rows.len(), ALBUMS as usize);
    assert_eq!(rows[41], (42, "album 42".to_owned()));
}

#[tokio::test]
async fn pool_fetch_by_keys_of_no_keys_is_empty() {
    let (_dir, pool) = music().await;
    let rows: Vec<(i64,)> = pool.fetch_by_keys("albums", &["id"], "id", &[] as &[i64]).await.unwrap();
    assert!(rows.is_empty());
}

fn new_tracks(album: i64, titles: &[&str]) -> Vec<Vec<Value>> {
    titles.iter().map(|t| vec![Value::Integer(album), Value::Text((*t).into())]).collect()
}

#[tokio::test]
async fn pool_insert_writes_every_row() {
    let (_dir, pool) = music().await;
    let rows = new_tracks(2_000, &["a", "b", "c"]);
    assert_eq!(pool.insert("tracks", &["album_id", "title"], &rows).await.unwrap(), 3);
    let (n,): (i64,) = pool.fetch_one("SELECT count(*) FROM tracks WHERE album_id = 2000", ()).await.unwrap();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn pool_insert_past_the_variable_limit_writes_every_row_in_one_transaction() {
    let (_dir, pool) = music().await;
    // Two values a row: 20,000 rows need more than one statement under the default limit of 32,766.
    let titles: Vec<String> = (0..20_000).map(|i| format!("bulk {i}")).collect();
    let rows: Vec<Vec<Value>> = titles.iter().map(|t| vec![Value::Integer(3_000), Value::Text(t.clone())]).collect();
    assert_eq!(pool.insert("tracks", &["album_id", "title"], &rows).await.unwrap(), 20_000);
    let (n,): (i64,) = pool.fetch_one("SELECT count(*) FROM tracks WHERE album_id = 3000", ()).await.unwrap();
    assert_eq!(n, 20_000);
}

#[tokio::test]
async fn pool_insert_that_fails_leaves_nothing_inserted() {
    let (_dir, pool) = music().await;
    pool.execute("CREATE TABLE ticks (id INTEGER PRIMARY KEY CHECK (id <> 40000))", ()).await.unwrap();
    let rows: Vec<Vec<Value>> = (0..50_000).map(|i| vec![Value::Integer(i)]).collect();
    let err = pool.insert("ticks", &["id"], &rows).await.unwrap_err();
    assert!(matches!(err, BulkError::Database(OperationError::Backend(_))), "{err}");
    let (n,): (i64,) = pool.fetch_one("SELECT count(*) FROM ticks", ()).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn pool_upsert_updates_existing_rows_and_inserts_new_ones() {
    let (_dir, pool) = music().await;
    let rows: Vec<Vec<Value>> = [(5, "new 5"), (ALBUMS + 1, "new album")]
        .map(|(id, t)| vec![Value::Integer(id), Value::Text(t.into()), Value::Integer(2024)])
        .into();
    assert_eq!(pool.upsert("albums", &["id", "title", "year"], &rows, &["id"]).await.unwrap(), 2);
    let got: Vec<(i64, String)> =
        pool.fetch_all("SELECT id, title FROM albums WHERE id IN (4, 5, ?1) ORDER BY id", (ALBUMS + 1,)).await.unwrap();
    assert_eq!(got, [(4, "album 4".to_owned()), (5, "new 5".to_owned()), (ALBUMS + 1, "new album".to_owned())]);
}

#[tokio::test]
async fn pool_insert_returning_returns_the_generated_ids_of_every_row() {
    let (_dir, pool) = music().await;
    let titles: Vec<String> = (0..20_000).map(|i| format!("returned {i}")).collect();
    let rows: Vec<Vec<Value>> = titles.iter().map(|t| vec![Value::Integer(4_000), Value::Text(t.clone())]).collect();
    let returned: Vec<(i64, String)> =
        pool.insert_returning("tracks", &["album_id", "title"], &rows, &["id", "title"]).await.unwrap();
    // SQLite promises no order for RETURNING rows: compare as sets, matched by the title inserted.
    let returned: BTreeSet<(i64, String)> = returned.into_iter().collect();
    let stored: BTreeSet<(i64, String)> =
        pool.fetch_all("SELECT id, title FROM tracks WHERE album_id = 4000", ()).await.unwrap().into_iter().collect();
    assert_eq!(returned.len(), 20_000);
    assert_eq!(returned, stored);
}

#[tokio::test]
async fn pool_insert_returning_of_no_rows_sends_nothing() {
    let (_dir, pool) = music().await;
    let returned: Vec<(i64,)> = pool.insert_returning("tracks", &["album_id", "title"], &[], &["id"]).await.unwrap();
    assert!(returned.is_empty());
}

#[test]
fn connection_insert_returning_returns_the_generated_ids_of_every_row() {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE tracks (id INTEGER PRIMARY KEY, title TEXT NOT NULL)").unwrap();
    // Past the variable limit of one column: 40,000 rows take two statements.
    let rows: Vec<Vec<Value>> = (0..40_000).map(|i| vec![Value::Text(format!("t{i}"))]).collect();
    let returned: Vec<(i64, String)> =
        sqlite::insert_returning(&mut conn, "tracks", &["title"], &rows, &["id", "title"]).unwrap();
    let returned: BTreeSet<(i64, String)> = returned.into_iter().collect();
    let mut stmt = conn.prepare("SELECT id, title FROM tracks").unwrap();
    let stored: BTreeSet<(i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(returned.len(), 40_000);
    assert_eq!(returned, stored);
}

#[tokio::test]
async fn bad_identifiers_are_typed_errors_naming_them() {
    let (_dir, pool) = music().await;
    let err = SqliteRows::<i64, Track>::table(&pool, "tracks", "album\0id", &[]).unwrap_err();
    assert_eq!(err, IdentError::Invalid { what: "column", name: "album\0id".into(), reason: "a NUL character" });
    assert!(err.to_string().contains("album\\0id"), "{err}");

    let err = pool.insert("tracks", &["album_id", ""], &new_tracks(1, &["x"])).await.unwrap_err();
    assert!(matches!(err, BulkError::Ident(IdentError::Empty { what: "column" })), "{err}");

    let err = pool.insert_returning::<(i64,)>("tracks", &["title"], &[], &["i\0d"]).await.unwrap_err();
    assert!(
        matches!(&err, BulkError::Ident(IdentError::Invalid { what: "returning column", name, .. }) if name == "i\0d"),
        "{err}"
    );
}

#[tokio::test]
async fn row_of_the_wrong_width_is_rejected_before_anything_is_written() {
    let (_dir, pool) = music().await;
    let rows = vec![vec![Value::Integer(1), Value::Text("x".into())], vec![Value::Integer(2)]];
    let err = pool.insert("tracks", &["album_id", "title"], &rows).await.unwrap_err();
    assert!(matches!(err, BulkError::RowShape { row: 1, found: 1, expected: 2 }), "{err}");
}

#[tokio::test]
async fn a_closed_pools_error_is_a_database_acquire_error() {
    let (_dir, pool) = music().await;
    let rows = tracks(&pool);
    pool.close().await;

    let err = pool.fetch_by_keys::<i64, (i64,)>("albums", &["id"], "id", &[1]).await.unwrap_err();
    assert!(matches!(err, BulkError::Database(OperationError::Acquire(PoolError::Closed))), "{err}");
    let err = pool.insert("tracks", &["album_id", "title"], &new_tracks(1, &["x"])).await.unwrap_err();
    assert!(matches!(err, BulkError::Database(OperationError::Acquire(PoolError::Closed))), "{err}");

    // A source's error converts into the helpers' error with `?`.
    let fetched: Result<Vec<Track>, SqliteOperationError> = rows.fetch_rows(&[1]).await;
    let err: BulkError<SqliteOperationError> = fetched.unwrap_err().into();
    assert!(matches!(err, BulkError::Database(OperationError::Acquire(PoolError::Closed))), "{err}");
}

#[tokio::test]
async fn loader_and_preload_statements_are_never_n_plus_one_loops() {
    let (_dir, pool) = music().await;
    pool.set_n_plus_one(NPlusOneMode::Deny);
    let source = tracks(&pool);
    let by_album = source.clone().one_to_many(|t| t.album_id);
    n_plus_one::scope(async {
        // One load at a time: each is a batch, and so a statement, of its own, from the same call site.
        for album in 1..=20 {
            by_album.load(album).await.unwrap();
        }
        for _ in 0..20 {
            let mut albums: Vec<(i64, Vec<Track>)> = (1..=3).map(|a| (a, Vec::new())).collect();
            source.preload(&mut albums, |a| a.0, |t| t.album_id, |a, t| a.1 = t).await.unwrap();
        }
        // The scope does deny loops: the same lookup one key at a time fails at the threshold.
        let mut denied = None;
        for album in 1..=20 {
            let one: Result<Vec<(String,)>, _> =
                pool.fetch_all("SELECT title FROM tracks WHERE album_id = ?1", (album,)).await;
            if let Err(e) = one {
                denied = Some(e);
                break;
            }
        }
        assert!(denied.is_some_and(|e| e.n_plus_one_error().is_some()), "the scope is in deny mode");
    })
    .await;
}

#[tokio::test]
async fn loader_error_names_the_pool_failure() {
    let (_dir, pool) = music().await;
    let by_album = tracks(&pool).one_to_many(|t| t.album_id);
    pool.close().await;
    let err = by_album.load(1).await.unwrap_err();
    assert!(matches!(&err, BatchError::Load(e) if matches!(**e, OperationError::Acquire(PoolError::Closed))), "{err}");
}
