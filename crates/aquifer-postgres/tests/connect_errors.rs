//! Start-up failures are fast, typed and never show the password.

mod common;

use std::time::{Duration, Instant};

use aquifer_postgres::{ConfigError, PgConfig, PgPoolError, PgStartError, sqlstate};
use common::*;

const SECRET: &str = "not-the-password-x9";

fn wrong_password_config(test: &str) -> PgConfig {
    // Role aquifer_pw has password `aquifer-secret` and scram auth over 127.0.0.1 (scripts/services/10-postgres.sh).
    let mut c = PgConfig::from_url(aquifer_testing::servers::postgres_url_as(&format!("aquifer_pw:{SECRET}")));
    c.pool.name = Some(unique(test));
    c.pool.acquire_timeout = Duration::from_secs(30);
    c
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error_within_a_second() {
    require_pg().await;
    let started = Instant::now();
    let err = wrong_password_config("wrong_pw").connect().await.expect_err("a wrong password must fail");
    let took = started.elapsed();

    assert!(took < Duration::from_secs(1), "took {took:?}: the error must not wait for the 30 s acquire timeout");
    assert_eq!(err.backend_error().and_then(sqlstate).as_deref(), Some("28P01"), "{err}");
    assert!(err.is_permanent(), "28P01 is classified permanent: {err:?}");
    let PgStartError::Connect { source, .. } = &err else { panic!("expected a connect error, got {err:?}") };
    assert!(!source.is_timeout(), "an authentication failure is not a timeout: {source}");
    assert!(err.to_string().contains("password authentication failed"), "{err}");
}

#[tokio::test]
async fn a_refused_password_is_tried_once_then_the_pool_fails_fast() {
    require_pg().await;
    let pool = wrong_password_config("pw_once").connect_lazy().expect("a lazy pool builds");
    let err = pool.get().await.expect_err("a wrong password must fail");
    assert!(matches!(err, PgPoolError::Unavailable { .. }), "{err:?}");
    assert_eq!(pool.stats().connect_errors, 1, "28P01 is permanent: no retry before failing fast");
    let again = pool.get().await.expect_err("still failing fast");
    assert!(again.to_string().contains("password authentication failed"), "{again}");
    pool.close().await;
}

#[tokio::test]
async fn the_right_password_connects() {
    require_pg().await;
    let mut c = PgConfig::from_url(aquifer_testing::servers::postgres_url_as("aquifer_pw:aquifer-secret"));
    c.pool.name = Some(unique("right_pw"));
    let pool = c.connect().await.expect("aquifer_pw with its password");
    assert_eq!(scalar::<String>(&pool, "SELECT current_user").await, "aquifer_pw");
    pool.close().await;
}

#[tokio::test]
async fn the_password_never_appears_in_errors_debug_or_health() {
    require_pg().await;
    let config = wrong_password_config("pw_hidden");
    assert!(!format!("{config:?}").contains(SECRET));
    let err = config.connect().await.expect_err("wrong password");
    let texts = [err.to_string(), format!("{err:?}"), format!("{:?}", err.backend_error())];
    for t in texts {
        assert!(!t.contains(SECRET), "password leaked: {t}");
    }

    let pool = config.connect_lazy().expect("lazy pool");
    assert!(!format!("{pool:?}").contains(SECRET));
    assert!(!format!("{:?}", pool.manager()).contains(SECRET));
    let get_err = pool.get().await.expect_err("wrong password");
    assert!(!format!("{get_err} {get_err:?}").contains(SECRET));
    let health = serde_json::to_string(&pool.health().await).unwrap();
    assert!(!health.contains(SECRET), "{health}");
    pool.close().await;
}

#[tokio::test]
async fn an_invalid_url_is_a_typed_error_without_the_password() {
    let err = aquifer_postgres::connect_lazy(&format!("postgres://app:{SECRET}@db:notaport/x")).unwrap_err();
    assert!(matches!(err, PgStartError::Url { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(SECRET), "{err:?}");
}

/// An empty or malformed URL parameter is refused when the pool is built, naming the parameter.
#[test]
fn an_empty_or_malformed_url_parameter_is_refused_by_name() {
    for (url, param) in [
        ("postgres://app@db/x?sslmode=", "sslmode"),
        ("postgres://app@db/x?sslmode=sometimes", "sslmode"),
        ("postgres://app@db/x?statement-cache-capacity=lots", "statement-cache-capacity"),
        ("postgres://app@db/x?application_name=", "application_name"),
    ] {
        let e = PgConfig::from_url(url).manager().expect_err(url);
        assert!(e.to_string().contains(param), "{url}: {e}");
    }
}

#[tokio::test]
async fn nothing_listening_on_the_port_fails_fast() {
    // A port that was free a moment ago: bind, note it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = PgConfig::from_url(format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=disable"));
    c.pool.name = Some(unique("refused"));
    c.pool.acquire_timeout = Duration::from_secs(30);

    let started = Instant::now();
    let err = c.connect().await.expect_err("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?} with a 30 s timeout", started.elapsed());
    assert!(matches!(err.backend_error(), Some(aquifer_postgres::sqlx::Error::Io(_))), "{err:?}");

    // Later callers of a lazy pool fail fast too, with the connect error, while the circuit is open.
    let pool = c.connect_lazy().unwrap();
    let _ = pool.get().await;
    let started = Instant::now();
    let err = pool.get().await.expect_err("still nothing listening");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, PgPoolError::Unavailable { .. } | PgPoolError::Timeout { .. }), "{err:?}");
    assert!(err.backend_error().is_some(), "the error carries the connect failure: {err:?}");
    pool.close().await;
}

#[tokio::test]
async fn a_failing_init_statement_is_a_failed_connect() {
    require_pg().await;
    let mut c = config("bad_init");
    c.init_sql.push("SELECT no_such_function()".into());
    let err = c.connect().await.expect_err("init SQL fails");
    assert_eq!(err.backend_error().and_then(sqlstate).as_deref(), Some("42883"), "{err}");
}

#[tokio::test]
async fn a_missing_url_is_a_typed_error() {
    let err = PgConfig::default().connect_lazy().unwrap_err();
    assert!(matches!(&err, PgStartError::Config(ConfigError::Missing { field, .. }) if field == "url"), "{err:?}");
}
