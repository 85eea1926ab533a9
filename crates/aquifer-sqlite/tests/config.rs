//! Configuration from serde and from `SQLITE_*` variables; bad values are errors naming the field or the
//! variable and the value.

use std::collections::HashMap;
use std::time::Duration;

use aquifer_sqlite::{ConfigError, JournalMode, SqliteConfig, SqlitePool, Synchronous, TempStore};

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

fn env_error(vars: &[(&str, &str)]) -> (String, String) {
    match SqliteConfig::from_lookup("SQLITE", env(vars)).unwrap_err() {
        ConfigError::Env { var, value, .. } => (var, value),
        other => panic!("expected an Env error, got {other:?}"),
    }
}

#[test]
fn every_setting_is_read_from_sqlite_variables() {
    let c = SqliteConfig::from_lookup(
        "SQLITE",
        env(&[
            ("SQLITE_PATH", "/var/lib/app/books.db"),
            ("SQLITE_CREATE_IF_MISSING", "false"),
            ("SQLITE_JOURNAL_MODE", "DELETE"),
            ("SQLITE_SYNCHRONOUS", "full"),
            ("SQLITE_BUSY_TIMEOUT", "250ms"),
            ("SQLITE_FOREIGN_KEYS", "off"),
            ("SQLITE_TEMP_STORE", "file"),
            ("SQLITE_CACHE_SIZE", "-2000"),
            ("SQLITE_MMAP_SIZE", "1GiB"),
            ("SQLITE_JOURNAL_SIZE_LIMIT", "-1"),
            ("SQLITE_WAL_AUTOCHECKPOINT", "500"),
            ("SQLITE_CHECKPOINT_INTERVAL", "off"),
            ("SQLITE_WAL_SIZE_LIMIT", "16MiB"),
            ("SQLITE_OPTIMIZE_ON_CLOSE", "0"),
            ("SQLITE_POOL_MAX_SIZE", "4"),
            ("SQLITE_POOL_ACQUIRE_TIMEOUT", "2s"),
            ("SQLITE_NAME", "books"),
        ]),
    )
    .unwrap();
    assert_eq!(c.path, "/var/lib/app/books.db");
    assert!(!c.create_if_missing);
    assert_eq!(c.journal_mode, JournalMode::Delete);
    assert_eq!(c.synchronous, Synchronous::Full);
    assert_eq!(c.busy_timeout, Duration::from_millis(250));
    assert!(!c.foreign_keys);
    assert_eq!(c.temp_store, TempStore::File);
    assert_eq!(c.cache_size, -2000);
    assert_eq!(c.mmap_size, 1 << 30);
    assert_eq!(c.journal_size_limit, -1);
    assert_eq!(c.wal_autocheckpoint, 500);
    assert_eq!(c.checkpoint_interval, None);
    assert_eq!(c.wal_size_limit, 16 << 20);
    assert!(!c.optimize_on_close);
    assert_eq!(c.pool.max_size, 4);
    assert_eq!(c.pool.acquire_timeout, Duration::from_secs(2));
    assert_eq!(c.pool.name.as_deref(), Some("books"));
}

#[test]
fn no_variables_give_the_defaults() {
    assert_eq!(SqliteConfig::from_lookup("SQLITE", env(&[])).unwrap(), SqliteConfig::default());
}

#[test]
fn the_path_can_come_from_sqlite_url() {
    let c = SqliteConfig::from_lookup("SQLITE", env(&[("SQLITE_URL", "sqlite://data/books.db")])).unwrap();
    assert_eq!(c.path, "data/books.db");
    let c = SqliteConfig::from_lookup("SQLITE", env(&[("SQLITE_URL", "sqlite::memory:")])).unwrap();
    assert!(c.is_memory());
}

#[test]
fn a_bad_enum_value_names_the_variable_and_the_value() {
    assert_eq!(env_error(&[("SQLITE_SYNCHRONOUS", "sometimes")]), ("SQLITE_SYNCHRONOUS".into(), "sometimes".into()));
    assert_eq!(env_error(&[("SQLITE_JOURNAL_MODE", "wall")]), ("SQLITE_JOURNAL_MODE".into(), "wall".into()));
    assert_eq!(env_error(&[("SQLITE_TEMP_STORE", "ram")]), ("SQLITE_TEMP_STORE".into(), "ram".into()));
}

#[test]
fn bad_numbers_sizes_durations_and_booleans_name_the_variable() {
    assert_eq!(env_error(&[("SQLITE_CACHE_SIZE", "big")]).0, "SQLITE_CACHE_SIZE");
    assert_eq!(env_error(&[("SQLITE_MMAP_SIZE", "256 parsecs")]).0, "SQLITE_MMAP_SIZE");
    assert_eq!(env_error(&[("SQLITE_BUSY_TIMEOUT", "soon")]).0, "SQLITE_BUSY_TIMEOUT");
    assert_eq!(env_error(&[("SQLITE_FOREIGN_KEYS", "maybe")]).0, "SQLITE_FOREIGN_KEYS");
    assert_eq!(env_error(&[("SQLITE_WAL_AUTOCHECKPOINT", "-5")]).0, "SQLITE_WAL_AUTOCHECKPOINT");
    assert_eq!(env_error(&[("SQLITE_POOL_MAX_SIZE", "ten")]).0, "SQLITE_POOL_MAX_SIZE");
}

#[test]
fn an_invalid_value_from_the_environment_names_the_variable() {
    let (var, value) = env_error(&[("SQLITE_WAL_SIZE_LIMIT", "0")]);
    assert_eq!((var.as_str(), value.as_str()), ("SQLITE_WAL_SIZE_LIMIT", "0"));
    let (var, _) = env_error(&[("SQLITE_POOL_MAX_SIZE", "0")]);
    assert_eq!(var, "SQLITE_POOL_MAX_SIZE");
}

#[test]
fn serde_reads_every_field_with_durations_as_text() {
    let c: SqliteConfig = serde_json::from_value(serde_json::json!({
        "path": "books.db",
        "journal_mode": "wal",
        "synchronous": "extra",
        "busy_timeout": "1s 500ms",
        "foreign_keys": true,
        "temp_store": "memory",
        "cache_size": -4096,
        "mmap_size": 0,
        "journal_size_limit": 1048576,
        "wal_autocheckpoint": 2000,
        "checkpoint_interval": null,
        "wal_size_limit": 8388608,
        "optimize_on_close": false,
        "create_if_missing": true,
        "pool": { "max_size": 6, "min_idle": 1, "acquire_timeout": "3s" }
    }))
    .unwrap();
    assert_eq!(c.synchronous, Synchronous::Extra);
    assert_eq!(c.busy_timeout, Duration::from_millis(1500));
    assert_eq!(c.checkpoint_interval, None);
    assert_eq!((c.pool.max_size, c.pool.min_idle), (6, 1));
    assert!(c.validate().is_ok());
}

#[test]
fn serde_rejects_unknown_fields_and_bad_values_by_name() {
    let err = serde_json::from_value::<SqliteConfig>(serde_json::json!({ "synchronus": "full" })).unwrap_err();
    assert!(err.to_string().contains("synchronus"), "{err}");
    let err = serde_json::from_value::<SqliteConfig>(serde_json::json!({ "synchronous": "fast" })).unwrap_err();
    assert!(err.to_string().contains("fast"), "{err}");
}

#[test]
fn validation_names_the_field_and_value() {
    let c = SqliteConfig { journal_size_limit: -7, ..SqliteConfig::default() };
    match c.validate().unwrap_err() {
        ConfigError::Invalid { field, value, .. } => assert_eq!((field, value.as_str()), ("journal_size_limit", "-7")),
        other => panic!("{other:?}"),
    }
    let c = SqliteConfig { checkpoint_interval: Some(Duration::ZERO), ..SqliteConfig::default() };
    assert!(c.validate().unwrap_err().to_string().contains("checkpoint_interval"));
}

#[tokio::test]
async fn opening_with_an_invalid_config_is_a_config_error_not_a_panic() {
    let err = SqlitePool::builder(":memory:").readers(0).connect().await.unwrap_err();
    assert!(matches!(err, aquifer_sqlite::SqliteStartError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("max_size"), "{err}");
}

#[test]
fn opening_the_async_pool_outside_a_runtime_is_an_error_not_a_panic() {
    // A plain thread: no Tokio runtime anywhere.
    let err = std::thread::spawn(|| block_on(SqlitePool::builder(":memory:").connect())).join().unwrap();
    assert!(matches!(err, Err(aquifer_sqlite::SqliteStartError::NoRuntime)), "{err:?}");
    let err = std::thread::spawn(|| aquifer_sqlite::connect_lazy(":memory:")).join().unwrap();
    assert!(matches!(err, Err(aquifer_sqlite::SqliteStartError::NoRuntime)), "{err:?}");
}

/// Polls a future to completion on the current (non-runtime) thread.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_in_a_uri_path_never_shows_in_debug_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("file:{}/missing/dir/x.db?password=hunter2&mode=rwc", dir.path().display());
    let config = SqliteConfig::new(uri);
    assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
    let err = config.connect().await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    assert!(err.to_string().contains("missing/dir/x.db"), "the error still names the path: {err}");
}

#[test]
fn the_retry_policy_is_part_of_the_config_in_serde_and_from_a_url() {
    let config: SqliteConfig = serde_json::from_value(
        serde_json::json!({ "path": "books.db", "retry": { "max_attempts": 5, "min_delay": "5ms" } }),
    )
    .unwrap();
    assert_eq!((config.retry.max_attempts, config.retry.min_delay), (5, Duration::from_millis(5)));
    let round_trip: SqliteConfig = serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
    assert_eq!(round_trip, config);
    assert_eq!(SqliteConfig::from_url("sqlite://books.db").retry, aquifer_sqlite::RetryPolicy::default());
}
