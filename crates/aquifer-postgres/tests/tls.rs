//! TLS through rustls, honouring sslmode. The project's server (scripts/services/10-postgres.sh) has TLS on with a self-signed
//! certificate: `require` encrypts without verifying, `verify-full` must refuse that certificate.

mod common;

use aquifer_postgres::{PgConfig, sqlx};
use common::*;

fn config_with(test: &str, sslmode: &str) -> PgConfig {
    let mut c = PgConfig::from_url(format!(
        "postgres://postgres@{}/test?sslmode={sslmode}",
        aquifer_testing::servers::postgres_addr()
    ));
    c.pool.name = Some(unique(test));
    c
}

async fn uses_tls(pool: &aquifer_postgres::PgPool) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut *pool.get().await.unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn sslmode_require_encrypts_the_connection() {
    require_pg().await;
    let pool = config_with("tls_require", "require").connect().await.expect("TLS connect");
    assert!(uses_tls(&pool).await);
    pool.close().await;
}

#[tokio::test]
async fn sslmode_disable_uses_plain_tcp() {
    require_pg().await;
    let pool = config_with("tls_disable", "disable").connect().await.unwrap();
    assert!(!uses_tls(&pool).await);
    pool.close().await;
}

#[tokio::test]
async fn sslmode_verify_full_refuses_an_untrusted_certificate() {
    require_pg().await;
    let err = config_with("tls_verify", "verify-full").connect().await.expect_err("snakeoil is not trusted");
    // sqlx reports rustls' verdict as an I/O error carrying it.
    let cause = format!("{:?}", err.backend_error());
    assert!(cause.contains("InvalidCertificate") || cause.contains("Tls"), "{err:?}");
}
