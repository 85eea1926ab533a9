//! Helpers shared by the integration tests: temp databases and pragma read-back.
#![allow(dead_code)]

use std::path::PathBuf;

use aquifer_sqlite::rusqlite::Connection;

/// A fresh directory (deleted on drop) and a database path inside it.
pub fn temp_db(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("aq_sqlite_").tempdir().expect("create a temp dir");
    let path = dir.path().join(format!("{name}.db"));
    (dir, path)
}

/// Every tuned pragma as the connection reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    pub journal_mode: String,
    pub synchronous: i64,
    pub busy_timeout: i64,
    pub foreign_keys: i64,
    pub temp_store: i64,
    pub cache_size: i64,
    pub mmap_size: i64,
    pub journal_size_limit: i64,
    pub wal_autocheckpoint: i64,
    pub query_only: i64,
}

pub fn read_pragmas(c: &Connection) -> Pragmas {
    let int = |name: &str| -> i64 {
        c.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).unwrap_or_else(|e| panic!("PRAGMA {name}: {e}"))
    };
    Pragmas {
        journal_mode: c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("PRAGMA journal_mode"),
        synchronous: int("synchronous"),
        busy_timeout: int("busy_timeout"),
        foreign_keys: int("foreign_keys"),
        temp_store: int("temp_store"),
        cache_size: int("cache_size"),
        mmap_size: int("mmap_size"),
        journal_size_limit: int("journal_size_limit"),
        wal_autocheckpoint: int("wal_autocheckpoint"),
        query_only: int("query_only"),
    }
}

/// What the default configuration must read back as.
pub fn default_pragmas(query_only: bool) -> Pragmas {
    Pragmas {
        journal_mode: "wal".into(),
        synchronous: 1,
        busy_timeout: 5000,
        foreign_keys: 1,
        temp_store: 2,
        cache_size: -16384,
        mmap_size: 256 * 1024 * 1024,
        journal_size_limit: 64 * 1024 * 1024,
        wal_autocheckpoint: 1000,
        query_only: i64::from(query_only),
    }
}
