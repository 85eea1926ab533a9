//! `SqliteConfig::single_process`: the database opened with SQLite's `unix-excl` VFS (one lock for the process,
//! the WAL index in heap memory): it works from many tasks, keeps no `-shm` file, and locks other processes out
//! until the pool is closed.

mod common;

use std::path::Path;
use std::process::Command;

use aquifer_sqlite::{SqliteConfig, SqlitePool, SqliteSyncPool};
use common::temp_db;

async fn single_process_pool(path: &Path) -> SqlitePool {
    let pool = SqlitePool::builder(path).readers(4).single_process(true).connect().await.unwrap();
    pool.execute("CREATE TABLE aq_sp (id INTEGER PRIMARY KEY, v TEXT NOT NULL)", ()).await.unwrap();
    pool
}

/// What another process sees when it reads the database: `Ok(rows)` or the error SQLite gave it.
fn read_from_another_process(path: &Path) -> Result<i64, String> {
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1], timeout=0.2)\n\
                  try:\n    print(c.execute('SELECT COUNT(*) FROM aq_sp').fetchone()[0])\n\
                  except sqlite3.Error as e:\n    print('error:', e); sys.exit(3)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs the other process of this test (Debian: apt-get install python3)");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match out.status.code() {
        Some(0) => Ok(stdout.parse().unwrap_or_else(|e| panic!("{stdout:?}: {e}"))),
        Some(3) => Err(stdout),
        _ => panic!("python3 failed: {stdout} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_process_pool_serves_concurrent_reads_and_writes_without_a_shm_file() {
    let (_dir, path) = temp_db("single_process_rw");
    let pool = single_process_pool(&path).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                pool.execute("INSERT INTO aq_sp (v) VALUES (?1)", (format!("{t}-{i}"),)).await.unwrap();
                let n: i64 = pool.read(|c| c.query_row("SELECT COUNT(*) FROM aq_sp", [], |r| r.get(0))).await.unwrap();
                assert!(n > i, "a read sees at least this task's own writes");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n: (i64,) = pool.fetch_one("SELECT COUNT(*) FROM aq_sp", ()).await.unwrap();
    assert_eq!(n.0, 400);
    let mut shm = path.clone().into_os_string();
    shm.push("-shm");
    assert!(!Path::new(&shm).exists(), "the WAL index lives in heap memory, not in {shm:?}");
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    assert!(Path::new(&wal).exists(), "still in WAL mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_is_locked_out_until_the_single_process_pool_closes() {
    let (_dir, path) = temp_db("single_process_lock");
    let pool = single_process_pool(&path).await;
    pool.execute("INSERT INTO aq_sp (v) VALUES ('a')", ()).await.unwrap();
    let err = read_from_another_process(&path).expect_err("the pool holds the process-wide lock");
    assert!(err.contains("locked"), "{err}");
    pool.close().await;
    drop(pool);
    assert_eq!(read_from_another_process(&path), Ok(1), "closing the pool releases the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_single_process_another_process_reads_while_the_pool_is_open() {
    let (_dir, path) = temp_db("shared_lock");
    let pool = SqlitePool::builder(&path).readers(2).connect().await.unwrap();
    pool.execute("CREATE TABLE aq_sp (id INTEGER PRIMARY KEY, v TEXT NOT NULL)", ()).await.unwrap();
    pool.execute("INSERT INTO aq_sp (v) VALUES ('a')", ()).await.unwrap();
    assert_eq!(read_from_another_process(&path), Ok(1));
}

#[test]
fn the_sync_pool_refuses_single_process_naming_the_field() {
    let (_dir, path) = temp_db("single_process_sync");
    let config = SqliteConfig { single_process: true, ..SqliteConfig::new(path.to_string_lossy()) };
    let err = SqliteSyncPool::open(config).expect_err("r2d2_sqlite cannot choose a VFS");
    assert!(err.to_string().contains("single_process"), "{err}");
}

#[test]
fn single_process_and_inline_writes_are_read_from_the_environment() {
    let vars = [("APP_SINGLE_PROCESS", "on"), ("APP_INLINE_WRITES", "true")];
    let config =
        SqliteConfig::from_lookup("APP", |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
            .unwrap();
    assert!(config.single_process && config.inline_writes);
    let defaults = SqliteConfig::default();
    assert!(!defaults.single_process && !defaults.inline_writes);
    let bad = SqliteConfig::from_lookup("APP", |name| (name == "APP_SINGLE_PROCESS").then(|| "maybe".to_owned()))
        .unwrap_err();
    assert!(bad.to_string().contains("APP_SINGLE_PROCESS"), "{bad}");
}
