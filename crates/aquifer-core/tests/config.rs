//! Configuration: defaults, serde, environment variables, validation errors that name the culprit,
//! password redaction.

use std::collections::HashMap;
use std::time::Duration;

use aquifer_core::{ConfigError, DatabaseUrl, MAX_POOL_SIZE, PoolConfig, Reuse};

fn from_env(vars: &[(&str, &str)]) -> Result<PoolConfig, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    PoolConfig::from_lookup("APP", |k| map.get(k).cloned())
}

#[test]
fn defaults_follow_hikaricp() {
    let c = PoolConfig::default();
    assert_eq!(c.max_size, 10);
    assert_eq!(c.min_idle, 0);
    assert_eq!(c.acquire_timeout, Duration::from_secs(30));
    assert_eq!(c.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(c.max_lifetime, Some(Duration::from_secs(1800)));
    assert_eq!(c.validation_bypass, Duration::from_millis(500));
    assert_eq!(c.leak_detection_threshold, None);
    assert_eq!(c.max_lifetime_jitter, 0.025, "HikariCP's 2.5 % variance");
    assert_eq!(c.keepalive_interval, None, "keepalive is off by default");
    assert!(c.validate().is_ok());
}

#[test]
fn every_env_variable_is_read() {
    let c = from_env(&[
        ("APP_NAME", "orders"),
        ("APP_POOL_MAX_SIZE", "20"),
        ("APP_POOL_MIN_IDLE", "4"),
        ("APP_POOL_ACQUIRE_TIMEOUT", "5s"),
        ("APP_POOL_CONNECT_TIMEOUT", "2s"),
        ("APP_POOL_IDLE_TIMEOUT", "1m"),
        ("APP_POOL_MAX_LIFETIME", "15m"),
        ("APP_POOL_VALIDATION_BYPASS", "250ms"),
        ("APP_POOL_VALIDATION_TIMEOUT", "1s"),
        ("APP_POOL_LEAK_THRESHOLD", "10s"),
        ("APP_POOL_HEALTH_INTERVAL", "15s"),
        ("APP_POOL_CLOSE_TIMEOUT", "3s"),
        ("APP_POOL_FAIL_FAST_AFTER", "5s"),
        ("APP_POOL_CONNECT_BACKOFF_MIN", "20ms"),
        ("APP_POOL_CONNECT_BACKOFF_MAX", "2s"),
        ("APP_POOL_REUSE", "FIFO"),
        ("APP_POOL_MAX_LIFETIME_JITTER", "0.1"),
        ("APP_POOL_KEEPALIVE_INTERVAL", "2m"),
    ])
    .unwrap();
    assert_eq!(c.name.as_deref(), Some("orders"));
    assert_eq!((c.max_size, c.min_idle, c.fail_fast_after), (20, 4, Duration::from_secs(5)));
    assert_eq!(c.reuse, Reuse::Fifo);
    assert_eq!(c.acquire_timeout, Duration::from_secs(5));
    assert_eq!(c.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(c.max_lifetime, Some(Duration::from_secs(900)));
    assert_eq!(c.validation_bypass, Duration::from_millis(250));
    assert_eq!(c.validation_timeout, Duration::from_secs(1));
    assert_eq!(c.leak_detection_threshold, Some(Duration::from_secs(10)));
    assert_eq!(c.health_interval, Some(Duration::from_secs(15)));
    assert_eq!(c.close_timeout, Duration::from_secs(3));
    assert_eq!(c.connect_backoff_min, Duration::from_millis(20));
    assert_eq!(c.connect_backoff_max, Duration::from_secs(2));
    assert_eq!(c.max_lifetime_jitter, 0.1);
    assert_eq!(c.keepalive_interval, Some(Duration::from_secs(120)));
}

#[test]
fn max_lifetime_jitter_reads_as_a_fraction_or_a_percentage() {
    for (written, fraction) in [("0.025", 0.025), ("2.5%", 0.025), ("10 %", 0.1), ("0", 0.0), ("50%", 0.5)] {
        let c = from_env(&[("APP_POOL_MAX_LIFETIME_JITTER", written)]).unwrap();
        assert!((c.max_lifetime_jitter - fraction).abs() < 1e-12, "{written}: {}", c.max_lifetime_jitter);
    }
}

#[test]
fn a_max_lifetime_jitter_outside_zero_to_one_half_names_the_field() {
    for jitter in [-0.1, 0.51, 1.0, f64::NAN, f64::INFINITY] {
        let err = PoolConfig { max_lifetime_jitter: jitter, ..PoolConfig::default() }.validate().unwrap_err();
        assert!(err.to_string().starts_with("invalid configuration: max_lifetime_jitter = "), "{jitter}: {err}");
    }
}

#[test]
fn keepalive_interval_can_be_turned_off_and_not_set_to_zero() {
    let c = from_env(&[("APP_POOL_KEEPALIVE_INTERVAL", "off")]).unwrap();
    assert_eq!(c.keepalive_interval, None);
    let err = PoolConfig { keepalive_interval: Some(Duration::ZERO), ..PoolConfig::default() }.validate().unwrap_err();
    assert!(err.to_string().contains("keepalive_interval"), "{err}");
}

#[test]
fn controls_deserialize_from_serde() {
    let c: PoolConfig = serde_json::from_str(r#"{"keepalive_interval": "30s", "max_lifetime_jitter": 0.05}"#).unwrap();
    assert_eq!((c.keepalive_interval, c.max_lifetime_jitter), (Some(Duration::from_secs(30)), 0.05));
}

#[test]
fn unset_and_empty_variables_keep_the_defaults() {
    assert_eq!(from_env(&[]).unwrap(), PoolConfig::default());
    assert_eq!(from_env(&[("APP_POOL_MAX_SIZE", "")]).unwrap().max_size, 10);
}

#[test]
fn optional_durations_can_be_turned_off() {
    for off in ["off", "none", "0", "disabled", "OFF"] {
        let c = from_env(&[("APP_POOL_IDLE_TIMEOUT", off), ("APP_POOL_MAX_LIFETIME", off)]).unwrap();
        assert_eq!((c.idle_timeout, c.max_lifetime), (None, None), "{off}");
    }
}

#[test]
fn every_invalid_env_value_is_rejected_naming_the_variable_and_value() {
    let cases = [
        ("APP_POOL_MAX_SIZE", "ten"),
        ("APP_POOL_MAX_SIZE", "-1"),
        ("APP_POOL_MAX_SIZE", "0"),
        ("APP_POOL_MIN_IDLE", "many"),
        ("APP_POOL_MIN_IDLE", "11"),
        ("APP_POOL_ACQUIRE_TIMEOUT", "soon"),
        ("APP_POOL_ACQUIRE_TIMEOUT", "0s"),
        ("APP_POOL_CONNECT_TIMEOUT", "10"),
        ("APP_POOL_IDLE_TIMEOUT", "forever"),
        ("APP_POOL_MAX_LIFETIME", "1 fortnight"),
        ("APP_POOL_VALIDATION_BYPASS", "x"),
        ("APP_POOL_VALIDATION_TIMEOUT", "0ms"),
        ("APP_POOL_LEAK_THRESHOLD", "-5s"),
        ("APP_POOL_HEALTH_INTERVAL", "often"),
        ("APP_POOL_CLOSE_TIMEOUT", "later"),
        ("APP_POOL_FAIL_FAST_AFTER", "3"),
        ("APP_POOL_FAIL_FAST_AFTER", "3.5"),
        ("APP_POOL_MAX_SIZE", "10000000000"),
        ("APP_POOL_MAX_SIZE", "18446744073709551615"),
        ("APP_POOL_MAX_SIZE", "18446744073709551616"),
        ("APP_POOL_REUSE", "random"),
        // Parsed, then refused by validation: the error still names the variable and the text as written.
        ("APP_POOL_IDLE_TIMEOUT", "20years"),
        ("APP_POOL_MAX_LIFETIME", "20years"),
        ("APP_POOL_VALIDATION_BYPASS", "20years"),
        ("APP_POOL_CLOSE_TIMEOUT", "20years"),
        ("APP_POOL_LEAK_THRESHOLD", "20years"),
        ("APP_POOL_HEALTH_INTERVAL", "20years"),
        ("APP_POOL_FAIL_FAST_AFTER", "20years"),
        ("APP_POOL_CONNECT_BACKOFF_MIN", "10s"),
        ("APP_POOL_CONNECT_BACKOFF_MAX", "nope"),
        ("APP_POOL_KEEPALIVE_INTERVAL", "sometimes"),
        ("APP_POOL_KEEPALIVE_INTERVAL", "20years"),
        ("APP_POOL_MAX_LIFETIME_JITTER", "a bit"),
        ("APP_POOL_MAX_LIFETIME_JITTER", "60%"),
        ("APP_POOL_MAX_LIFETIME_JITTER", "-0.1"),
        ("APP_POOL_MAX_LIFETIME_JITTER", "NaN"),
    ];
    for (var, value) in cases {
        let err = from_env(&[(var, value)]).expect_err(&format!("{var}={value} accepted"));
        let msg = err.to_string();
        assert!(msg.contains(var), "error for {var}={value} does not name the variable: {msg}");
        assert!(msg.contains(value), "error for {var}={value} does not show the value: {msg}");
    }
}

#[test]
fn a_max_size_beyond_the_documented_bound_is_a_config_error() {
    for max_size in [MAX_POOL_SIZE + 1, 10_000_000_000, usize::MAX] {
        let err = PoolConfig { max_size, ..PoolConfig::default() }.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid configuration: max_size = {max_size}: must be at most {MAX_POOL_SIZE}")
        );
    }
    assert!(PoolConfig { max_size: MAX_POOL_SIZE, ..PoolConfig::default() }.validate().is_ok());
}

#[test]
fn building_a_pool_of_the_largest_size_allocates_nothing_up_front() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = aquifer_core::Pool::builder(aquifer_testing::FakeManager::new()).max_size(MAX_POOL_SIZE).build();
        assert_eq!(pool.unwrap().state().max_size, MAX_POOL_SIZE);
    });
}

#[test]
fn fail_fast_after_zero_disables_the_circuit() {
    let c = from_env(&[("APP_POOL_FAIL_FAST_AFTER", "0s")]).unwrap();
    assert_eq!(c.fail_fast_after, Duration::ZERO);
    assert_eq!(PoolConfig::default().fail_fast_after, Duration::from_secs(2));
}

#[test]
fn reuse_is_lifo_by_default_and_reads_from_serde() {
    assert_eq!(PoolConfig::default().reuse, Reuse::Lifo);
    let c: PoolConfig = serde_json::from_str(r#"{"reuse": "fifo"}"#).unwrap();
    assert_eq!(c.reuse, Reuse::Fifo);
    let err = serde_json::from_str::<PoolConfig>(r#"{"reuse": "random"}"#).unwrap_err();
    assert!(err.to_string().contains("random"), "{err}");
}

#[test]
fn validation_names_the_field_and_value() {
    let err = PoolConfig { max_size: 0, ..PoolConfig::default() }.validate().unwrap_err();
    assert_eq!(err.to_string(), "invalid configuration: max_size = 0: must be at least 1");
    let err = PoolConfig { min_idle: 11, ..PoolConfig::default() }.validate().unwrap_err();
    assert_eq!(err.to_string(), "invalid configuration: min_idle = 11: must not exceed max_size (10)");
    let err = PoolConfig { idle_timeout: Some(Duration::ZERO), ..PoolConfig::default() }.validate().unwrap_err();
    assert!(err.to_string().contains("idle_timeout"), "{err}");
}

#[test]
fn invalid_config_is_a_build_error() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let fake = aquifer_testing::FakeManager::new();
        let err = aquifer_core::Pool::builder(fake).max_size(2).min_idle(3).build().unwrap_err();
        assert!(err.to_string().contains("min_idle = 3"), "{err}");
    });
}

#[test]
fn deserializes_with_human_durations() {
    let c: PoolConfig = serde_json::from_str(
        r#"{"max_size": 32, "acquire_timeout": "2s", "idle_timeout": null,
            "max_lifetime": "1h", "leak_detection_threshold": "30s"}"#,
    )
    .unwrap();
    assert_eq!(c.max_size, 32);
    assert_eq!(c.acquire_timeout, Duration::from_secs(2));
    assert_eq!(c.idle_timeout, None);
    assert_eq!(c.max_lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(c.leak_detection_threshold, Some(Duration::from_secs(30)));
    assert_eq!(c.min_idle, 0, "unset fields keep their defaults");
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    let err = serde_json::from_str::<PoolConfig>(r#"{"max_connections": 5}"#).unwrap_err();
    assert!(err.to_string().contains("max_connections"), "{err}");
}

#[test]
fn bad_duration_in_serde_is_rejected() {
    let err = serde_json::from_str::<PoolConfig>(r#"{"acquire_timeout": "quick"}"#).unwrap_err();
    assert!(err.to_string().contains("quick") || err.to_string().contains("duration"), "{err}");
}

#[test]
fn the_engine_config_holds_no_url() {
    // URLs belong to the adapters' configs; the engine never reads one.
    let err = serde_json::from_str::<PoolConfig>(r#"{"url": "postgres://app:s3cr3t-pw@db/x"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `url`"), "{err}");
    let c = from_env(&[("APP_URL", "postgres://app:s3cr3t-pw@db/x")]).unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t-pw"));
}

#[test]
fn urls_are_redacted_in_every_form() {
    let cases = [
        ("postgres://app:pw@db:5432/x", "postgres://app:***@db:5432/x"),
        ("mysql://root:pw@127.0.0.1/test?ssl-mode=REQUIRED", "mysql://root:***@127.0.0.1/test?ssl-mode=REQUIRED"),
        ("postgres://db/x?user=app&password=pw", "postgres://db/x?user=app&password=***"),
        ("neo4j://neo4j@db:7687", "neo4j://neo4j@db:7687"),
        ("sqlite://./data.db", "sqlite://./data.db"),
        ("./data.db", "./data.db"),
        ("weird app:pw@db", "weird ***@db"),
        // The parser refuses these; the password must go all the same.
        ("postgres://127.0.0.1:notaport/test?password=pw", "postgres://127.0.0.1:notaport/test?password=***"),
        ("postgres://app:pw@127.0.0.1:notaport/test", "postgres://***@127.0.0.1:notaport/test"),
        ("mysql://app:p@w@db:99999/x", "mysql://***@db:99999/x"),
        ("host=db port=5432 password=pw user=app", "host=db port=5432 password=*** user=app"),
        ("host=db PASSWORD='p w' user=app", "host=db PASSWORD=*** user=app"),
        ("Server=db;Uid=app;Pwd=pw;", "Server=db;Uid=app;Pwd=***;"),
        ("app:pw@tcp(db:3306)/x", "***@tcp(db:3306)/x"),
    ];
    for (url, want) in cases {
        assert_eq!(DatabaseUrl::new(url).to_string(), want, "{url}");
        let shown = format!("{} {:?}", DatabaseUrl::new(url), DatabaseUrl::new(url));
        assert!(!shown.contains(":pw") && !shown.contains("=pw") && !shown.contains("p w"), "{url}: {shown}");
    }
}

#[test]
fn serializing_a_config_round_trips() {
    let c = PoolConfig { max_size: 7, idle_timeout: None, ..PoolConfig::default() };
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<PoolConfig>(&json).unwrap(), c);
}

#[test]
fn absurdly_long_durations_are_rejected_instead_of_overflowing() {
    let err = from_env(&[("APP_POOL_ACQUIRE_TIMEOUT", "500years")]).unwrap_err();
    assert!(err.to_string().contains("APP_POOL_ACQUIRE_TIMEOUT") && err.to_string().contains("10 years"), "{err}");
    let c = PoolConfig { max_lifetime: Some(Duration::MAX), ..PoolConfig::default() };
    assert!(c.validate().unwrap_err().to_string().contains("max_lifetime"));
}
