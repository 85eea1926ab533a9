//! Credentials that rotate while the pool serves: a role with a password (a private PostgreSQL with
//! `scram-sha-256` over TCP, so a wrong password is really refused), a password file, 32 tasks of load, and
//! the password changed every 2 s for 30 s on the server and in the file, in both orders. No request may
//! fail; new connections use the new password; the old one is refused at the end.

use std::time::Duration;

use aquifer_postgres::sqlx::{self, Connection, PgConnection};
use aquifer_postgres::{PgConfig, PgPool};
use aquifer_testing::{Order, PasswordFile, PrivatePostgres, RotationReport, rotate_under_load};

const ROLE: &str = "aq_rotating";

async fn drill(order: Order) {
    let server = PrivatePostgres::start_with_password_auth().unwrap_or_else(|e| panic!("{e}"));
    let port = server.port();
    let admin_url = format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=disable");
    let mut admin = PgConnection::connect(&admin_url).await.expect("the private server's admin connection");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE {ROLE} LOGIN PASSWORD 'pw-0'")))
        .execute(&mut admin)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = PasswordFile::create(dir.path().join("password"), "pw-0").unwrap();
    // The URL's own password is wrong on purpose: the file's must win.
    let mut config =
        PgConfig::from_url(format!("postgres://{ROLE}:not-the-password@127.0.0.1:{port}/test?sslmode=disable"));
    config.password_file = Some(file.path().to_owned());
    config.pool.max_size = 8;
    config.pool.acquire_timeout = Duration::from_secs(10);
    let pool: PgPool = config.connect().await.expect("the pool starts with the file's password");

    let (load, churn) = (pool.clone(), pool.clone());
    let admin = std::sync::Arc::new(tokio::sync::Mutex::new(admin));
    let report: RotationReport = rotate_under_load(
        order,
        "pw",
        &file,
        move || {
            let pool = load.clone();
            async move {
                let one: (i32,) = pool.fetch_one(|| sqlx::query("SELECT 1")).await.map_err(|e| e.to_string())?;
                (one.0 == 1).then_some(()).ok_or_else(|| "wrong answer".to_owned())
            }
        },
        move || {
            churn.retain(|_, _| false);
        },
        |password| {
            let admin = std::sync::Arc::clone(&admin);
            async move {
                let sql = format!("ALTER ROLE {ROLE} PASSWORD '{password}'");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *admin.lock().await).await.unwrap();
            }
        },
    )
    .await;

    eprintln!("{order:?}: {report:?}; pool {:?}", pool.stats());
    assert_eq!(report.failed, 0, "{order:?}: {report:?}");
    assert!(report.rotations >= 14 && report.ok > 1000, "{order:?}: {report:?}");
    let created = pool.stats().created;
    assert!(created > u64::from(report.rotations), "new connections were opened throughout: {created} ({report:?})");

    // A fresh connection uses the password in force; the old one is refused by the server.
    let closed = pool.retain(|_, _| false);
    eprintln!("closed {closed}; {}", pool.state());
    let (user,): (String,) = pool.fetch_one(|| sqlx::query("SELECT current_user::text")).await.unwrap();
    assert_eq!(user, ROLE);
    let old = format!("postgres://{ROLE}:pw-0@127.0.0.1:{port}/test?sslmode=disable");
    let refused = PgConnection::connect(&old).await.expect_err("the first password no longer works");
    assert!(refused.to_string().contains("password authentication failed"), "{refused}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_server_first_fails_no_request() {
    drill(Order::ServerFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_file_first_fails_no_request() {
    drill(Order::FileFirst).await;
}
