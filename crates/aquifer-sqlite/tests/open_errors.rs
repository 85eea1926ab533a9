//! Databases that cannot be opened fail at once with a typed error naming the path; nothing panics.

mod common;

use std::time::{Duration, Instant};

use aquifer_sqlite::rusqlite::Connection;
use aquifer_sqlite::{ErrorKind, SqlitePool, SqliteStartError, SqliteSyncError, SqliteSyncPool};
use common::temp_db;

/// The kind of the connection error behind a failed start, which must be `StartError::Connect`.
fn kind(e: &SqliteStartError) -> ErrorKind {
    assert!(matches!(e, SqliteStartError::Connect { .. }), "expected a failed first connection, got {e:?}");
    e.backend_error().unwrap_or_else(|| panic!("expected a connection error, got {e:?}")).kind
}

fn sync_kind(e: &SqliteSyncError) -> ErrorKind {
    e.connection_error().unwrap_or_else(|| panic!("expected a connection error, got {e:?}")).kind
}

fn assert_names_path(e: &impl std::fmt::Display, path: &std::path::Path) {
    let shown = e.to_string();
    assert!(shown.contains(&*path.to_string_lossy()), "error should name {}: {shown}", path.display());
}

/// A failed start of `kind` that retrying cannot fix, naming `path` and saying `says`.
fn assert_permanent(err: &SqliteStartError, kind_: ErrorKind, path: &std::path::Path, says: &str) {
    assert_eq!(kind(err), kind_, "{err}");
    assert!(err.is_permanent(), "{err:?}");
    assert_names_path(err, path);
    assert!(err.to_string().contains(says), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_is_not_a_database_is_a_typed_error_naming_the_path() {
    let (_dir, path) = temp_db("not_a_db");
    std::fs::write(&path, b"this is a text file, not an SQLite database, and it is long enough to have a header.")
        .unwrap();
    let err = SqlitePool::builder(&path).connect().await.unwrap_err();
    assert_permanent(&err, ErrorKind::NotADatabase, &path, "not an SQLite database");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_directory_is_a_typed_error_naming_the_path() {
    let (dir, _) = temp_db("unused");
    let path = dir.path().join("no/such/dir/books.db");
    let err = SqlitePool::builder(&path).connect().await.unwrap_err();
    assert_permanent(&err, ErrorKind::CannotOpen, &path, "directory exists");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_file_without_create_if_missing_is_a_typed_error() {
    let (_dir, path) = temp_db("absent");
    let err = SqlitePool::builder(&path).create_if_missing(false).connect().await.unwrap_err();
    let off = "the file does not exist and is not created: create_if_missing is off";
    assert_permanent(&err, ErrorKind::Missing, &path, off);
    // Each cause once in a chain walk (docs/architecture.md, "Errors"), and worded as permanent.
    let rendered = aquifer_testing::assert_each_cause_once(&err);
    assert!(rendered.contains("database refused the connection (permanent error): cannot open SQLite"), "{rendered}");
    let shown = err.to_string();
    assert!(!shown.contains("directory exists"), "the directory exists: {shown}");
    assert!(!path.exists(), "nothing may be created");
    // The same file named by a `file:` URI.
    let uri = format!("file:{}?cache=private", path.display());
    let err = SqlitePool::builder(&uri).create_if_missing(false).connect().await.unwrap_err();
    assert_eq!(kind(&err), ErrorKind::Missing, "{err}");
    // A missing directory stays CannotOpen, with its own hint.
    let deeper = path.with_file_name("no-such-dir").join("absent.db");
    let err = SqlitePool::builder(&deeper).create_if_missing(false).connect().await.unwrap_err();
    assert_eq!(kind(&err), ErrorKind::CannotOpen, "{err}");
    assert!(err.to_string().contains("directory exists"), "{err}");
}

/// A directory nobody may create files in. Root ignores permission bits, so as root the directory is made
/// immutable (chattr +i) instead; dropping the guard undoes either.
struct ReadOnlyDir(std::path::PathBuf, bool);

impl ReadOnlyDir {
    fn new(dir: &std::path::Path) -> ReadOnlyDir {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let probe = dir.join("probe");
        if std::fs::write(&probe, b"x").is_err() {
            return ReadOnlyDir(dir.to_owned(), false);
        }
        std::fs::remove_file(&probe).unwrap();
        let status = std::process::Command::new("chattr").arg("+i").arg(dir).status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "running as root: need `chattr +i` (e2fsprogs) on an ext4-like file system to make {} read-only",
            dir.display()
        );
        assert!(std::fs::write(&probe, b"x").is_err(), "the directory is still writable");
        ReadOnlyDir(dir.to_owned(), true)
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.1 {
            let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
        }
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

/// Opening `path` once `dir` is read-only fails as CannotOpen or ReadOnly, naming the path.
async fn assert_refused_in_read_only(dir: &std::path::Path, path: &std::path::Path) {
    let _ro = ReadOnlyDir::new(dir);
    let err = SqlitePool::builder(path).connect().await.unwrap_err();
    assert!(matches!(kind(&err), ErrorKind::CannotOpen | ErrorKind::ReadOnly), "{err}");
    assert_names_path(&err, path);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_database_in_a_read_only_directory_is_a_typed_error_naming_the_path() {
    let (dir, path) = temp_db("ro_new");
    assert_refused_in_read_only(dir.path(), &path).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_database_in_a_read_only_directory_is_a_typed_error_naming_the_path() {
    let (dir, path) = temp_db("ro_existing");
    // A rollback-journal database: switching it to WAL needs the -wal and -shm files beside it.
    Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
    assert_refused_in_read_only(dir.path(), &path).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_database_is_a_typed_error_naming_the_path_after_busy_timeout() {
    let (_dir, path) = temp_db("locked");
    // Another "process" holds an exclusive lock on a rollback-journal database.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("CREATE TABLE t (x INTEGER); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);").unwrap();
    let started = Instant::now();
    let err = SqlitePool::builder(&path).busy_timeout(Duration::from_millis(200)).connect().await.unwrap_err();
    assert_eq!(kind(&err), ErrorKind::Locked, "{err}");
    assert!(!err.is_permanent(), "another process's lock is not permanent: {err:?}");
    assert!(
        err.backend_error()
            .and_then(|e| e.code())
            .is_some_and(|c| c == aquifer_sqlite::rusqlite::ErrorCode::DatabaseBusy),
        "{err:?}"
    );
    assert_names_path(&err, &path);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    other.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn the_sync_pool_reports_the_same_typed_errors() {
    let (_dir, path) = temp_db("not_a_db_sync");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteSyncPool::builder(&path).open_sync().unwrap_err();
    assert_eq!(sync_kind(&err), ErrorKind::NotADatabase, "{err}");
    assert_names_path(&err, &path);
    aquifer_testing::assert_each_cause_once(&err);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_connect_failing_later_names_the_path_in_the_pool_error() {
    let (_dir, path) = temp_db("replaced");
    let pool = SqlitePool::builder(&path).readers(1).connect().await.unwrap();
    // Close the idle reader so the next read must open a new connection, against a file that is now garbage.
    assert_eq!(pool.readers().retain(|_, _| false), 1);
    std::fs::remove_file(&path).unwrap();
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let _ = std::fs::remove_file(path.with_extension("db-shm"));
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = pool.readers().get_timeout(Duration::from_secs(5)).await.unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains(&*path.to_string_lossy()), "{shown}");
}
