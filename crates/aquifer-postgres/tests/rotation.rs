//! Credentials that rotate while the pool serves: a role with a password (a private PostgreSQL with
//! `scram-sha-256` over TCP, so a wrong password is really refused), a password file, 32 tasks of load, and
//! the password changed every 2 s for 30 s on the server and in the file, in both orders. No request may
//! fail; new connections use the new password; the old one is refused at the end. With `retire_on_rotation`
//! (a shorter drill, without the idle churn: the retirements are what opens new connections), the sessions
//! of the old passwords are closed over the window, a few at a time, and none is left at the end.

use std::time::Duration;

use aquifer_postgres::sqlx::{self, Connection, PgConnection};
use aquifer_postgres::{PgConfig, PgPool};
use aquifer_testing::{
    Order, PasswordFile, PrivatePostgres, RETIRE_DRILL_FOR, ROTATION_EVERY, ROTATION_FOR, RetirementWatch,
    RotationReport, rotate_under_load,
};

const ROLE: &str = "aq_rotating";

/// What a drill runs against: a private server with password auth and its admin connection, the role with
/// password `pw-0`, a password file holding it, and a pool of 8 connecting as the role with the file's
/// password.
struct Setup {
    server: PrivatePostgres,
    admin: PgConnection,
    _dir: tempfile::TempDir,
    file: PasswordFile,
    pool: PgPool,
}

async fn setup(retire_on_rotation: bool) -> Setup {
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
    if retire_on_rotation {
        config.pool.retire_on_rotation = true;
        config.pool.retire_on_rotation_window = ROTATION_EVERY;
    }
    let pool: PgPool = config.connect().await.expect("the pool starts with the file's password");
    Setup { server, admin, _dir: dir, file, pool }
}

/// One request of the load.
async fn select_one(pool: PgPool) -> Result<(), String> {
    let one: (i32,) = pool.fetch_one(|| sqlx::query("SELECT 1")).await.map_err(|e| e.to_string())?;
    (one.0 == 1).then_some(()).ok_or_else(|| "wrong answer".to_owned())
}

/// Checks that a fresh connection is the role's (with the password in force).
async fn assert_connects_as_the_role(pool: &PgPool) {
    let (user,): (String,) = pool.fetch_one(|| sqlx::query("SELECT current_user::text")).await.unwrap();
    assert_eq!(user, ROLE);
}

async fn drill(order: Order) {
    let Setup { server, admin, _dir, file, pool } = setup(false).await;
    let (load, churn) = (pool.clone(), pool.clone());
    let admin = std::sync::Arc::new(tokio::sync::Mutex::new(admin));
    let report: RotationReport = rotate_under_load(
        order,
        ROTATION_FOR,
        &file,
        move || select_one(load.clone()),
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
    report.assert_full_drill_passed(order, &pool.stats());

    // A fresh connection uses the password in force; the old one is refused by the server.
    let closed = pool.retain(|_, _| false);
    eprintln!("closed {closed}; {}", pool.state());
    assert_connects_as_the_role(&pool).await;
    let old = format!("postgres://{ROLE}:pw-0@127.0.0.1:{}/test?sslmode=disable", server.port());
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

/// The drill with `retire_on_rotation` (window: one rotation period) and no idle churn: no request fails,
/// the retirements are spread (never half the pool within 100 ms), and once the window after the last
/// rotation has passed the server holds no session of the role that started before the last `ALTER ROLE`
/// (every such session was opened with an old password).
async fn retire_drill(order: Order) {
    let Setup { server: _server, admin, _dir, file, pool } = setup(true).await;
    let load = pool.clone();
    let watched = pool.clone();
    let watch = RetirementWatch::start(move || watched.stats().closed_rotated);
    let admin = std::sync::Arc::new(tokio::sync::Mutex::new(admin));
    let last_alter = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
    let (alter_admin, alter_at) = (std::sync::Arc::clone(&admin), std::sync::Arc::clone(&last_alter));
    let report: RotationReport = rotate_under_load(
        order,
        RETIRE_DRILL_FOR,
        &file,
        move || select_one(load.clone()),
        || {},
        |password| {
            let (admin, at) = (std::sync::Arc::clone(&alter_admin), std::sync::Arc::clone(&alter_at));
            async move {
                let mut admin = admin.lock().await;
                let sql = format!("ALTER ROLE {ROLE} PASSWORD '{password}'");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *admin).await.unwrap();
                let (now,): (String,) =
                    sqlx::query_as("SELECT clock_timestamp()::text").fetch_one(&mut *admin).await.unwrap();
                *at.lock() = now;
            }
        },
    )
    .await;

    // Sessions of the role that began before the last ALTER ROLE: opened with an old password.
    let last_alter = last_alter.lock().clone();
    let old_sessions = || {
        let (admin, last_alter) = (std::sync::Arc::clone(&admin), last_alter.clone());
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND backend_start < $2::timestamptz",
            )
            .bind(ROLE)
            .bind(last_alter)
            .fetch_one(&mut *admin.lock().await)
            .await
            .unwrap();
            n
        }
    };
    let deadline = tokio::time::Instant::now() + ROTATION_EVERY * 3;
    let mut left = old_sessions().await;
    while left > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = old_sessions().await;
    }
    let spread = watch.finish().await;
    eprintln!("{order:?} with retire_on_rotation: {report:?}; {spread:?}; pool {:?}; {}", pool.stats(), pool.state());
    report.assert_retire_drill_passed(order, &spread);
    assert_eq!(left, 0, "sessions opened with an old password are left on the server");
    assert_connects_as_the_role(&pool).await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_with_retire_on_rotation_leaves_no_session_of_an_old_password() {
    retire_drill(Order::ServerFirst).await;
}
