//! TLS through rustls, against the TLS MariaDB of scripts/services/25-mariadb-tls.sh (`aquifer_testing::servers::MARIADB_TLS`, a CA of
//! its own, user `aquifer_tls` that the server only admits over TLS).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlPool, MySqlStartError, PoolConfig, SslMode};

fn tls_url() -> String {
    format!("mysql://aquifer_tls:aquifer-tls@{}/test", aquifer_testing::servers::mariadb_tls_addr())
}

fn certs() -> PathBuf {
    aquifer_testing::servers::services_dir().join("mariadb-tls/certs")
}

/// A config that verifies the server's certificate (`mode`) against the CA in `ca_file` of [`certs`].
fn verifying(mode: SslMode, ca_file: &str) -> MySqlConfig {
    MySqlConfig { ssl_mode: Some(mode), ssl_ca: Some(certs().join(ca_file)), ..MySqlConfig::default() }
}

async fn tls_server() {
    aquifer_testing::require_server("the TLS MariaDB", &aquifer_testing::servers::mariadb_tls_addr(), common::SCRIPT)
        .await;
    assert!(certs().join("ca.pem").exists(), "no CA at {}; run `{}`", certs().display(), common::SCRIPT);
}

async fn connect(url: &str, config: MySqlConfig) -> Result<MySqlPool, MySqlStartError> {
    MySqlConfig {
        pool: PoolConfig { max_size: 1, ..PoolConfig::default() },
        url: MySqlConfig::from_url(url).url,
        ..config
    }
    .connect()
    .await
}

async fn cipher(pool: &MySqlPool) -> String {
    let mut conn = pool.get().await.unwrap();
    let row: Option<(String, String)> = conn.query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'").await.unwrap();
    row.unwrap().1
}

#[tokio::test]
async fn verify_identity_with_the_servers_ca_encrypts_the_connection() {
    tls_server().await;
    let config = verifying(SslMode::VerifyIdentity, "ca.pem");
    let pool = connect(&tls_url(), config).await.unwrap();
    assert!(!cipher(&pool).await.is_empty(), "the session is encrypted");
}

#[tokio::test]
async fn required_mode_encrypts_without_checking_the_certificate() {
    tls_server().await;
    let pool =
        connect(&tls_url(), MySqlConfig { ssl_mode: Some(SslMode::Required), ..MySqlConfig::default() }).await.unwrap();
    assert!(!cipher(&pool).await.is_empty());
}

#[tokio::test]
async fn tls_can_be_asked_for_in_the_url() {
    tls_server().await;
    let url = format!("{}?require_ssl=true&verify_ca=false", tls_url());
    let pool = connect(&url, MySqlConfig::default()).await.unwrap();
    assert!(!cipher(&pool).await.is_empty());
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused_with_a_tls_error() {
    tls_server().await;
    let config = verifying(SslMode::VerifyCa, "other-ca.pem");
    let started = Instant::now();
    let err = connect(&tls_url(), config).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let driver = err.backend_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(aquifer_mysql::error_type(driver), "tls", "{driver:?}");
}

#[tokio::test]
async fn a_user_that_requires_tls_is_refused_without_it() {
    tls_server().await;
    let config = MySqlConfig { ssl_mode: Some(SslMode::Disabled), ..MySqlConfig::default() };
    let err = connect(&tls_url(), config).await.unwrap_err();
    let Some(aquifer_mysql::mysql_async::Error::Server(e)) = err.backend_error() else { panic!("{err:?}") };
    assert_eq!(e.code, 1045, "{e}");
}

#[tokio::test]
async fn requiring_tls_from_a_server_without_it_fails_clearly() {
    common::server().await;
    let config = MySqlConfig { ssl_mode: Some(SslMode::Required), ..MySqlConfig::default() };
    let err = connect(&common::url(), config).await.unwrap_err();
    assert!(err.to_string().contains("server does not have this capability"), "{err}");
    assert_eq!(aquifer_mysql::error_type(err.backend_error().unwrap()), "tls");
}
