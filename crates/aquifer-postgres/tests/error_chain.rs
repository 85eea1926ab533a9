//! Errors follow the convention of docs/architecture.md ("Errors"): the message tells the whole story, and
//! `source()` never returns a cause the message already printed, so a report that walks the chain (anyhow's
//! `{:#}`) prints each cause once. Checked on real errors of a real server, sqlx's own included: its database
//! errors print their cause and also return it from `source()`.

mod common;

use aquifer_postgres::{PgConfig, PgOperationError, PgPoolError, sqlstate};
use aquifer_testing::{assert_each_cause_once, error_chain};
use common::*;

/// A URL of the test server naming a database that does not exist.
fn unknown_database_url() -> String {
    let url = url();
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/aquifer_no_such_database?{query}")
}

#[tokio::test]
async fn a_start_up_error_prints_each_cause_once_and_says_it_is_permanent() {
    require_pg().await;
    let mut config = PgConfig::from_url(unknown_database_url());
    config.pool.name = Some(unique("unknown_db"));
    let err = config.connect().await.expect_err("the database does not exist");
    assert_eq!(err.backend_error().and_then(sqlstate).as_deref(), Some("3D000"), "{err}");
    assert!(err.is_permanent(), "{err:?}");

    let rendered = assert_each_cause_once(&err);
    let expected = format!(
        "pool {} could not open its first connection: database refused the connection (permanent error): error \
         returned from database: database \"aquifer_no_such_database\" does not exist",
        unique("unknown_db")
    );
    // sqlx adds the server's source line (" at line 948") to a server error's message.
    assert!(rendered.starts_with(&expected), "{rendered}");
    assert_eq!(err.to_string(), rendered, "plain `{{}}` shows the whole chain");
    // sqlx's own error repeats its cause (`Database(#[source] e)` printed as "...: {e}"); walking past it is
    // what keeps the rendering above to one mention.
    let sqlx_chain = error_chain(err.backend_error().unwrap());
    assert_eq!(sqlx_chain.len(), 2, "{sqlx_chain:?}");
    assert!(sqlx_chain[0].contains(&sqlx_chain[1]), "{sqlx_chain:?}");
}

#[tokio::test]
async fn a_failing_fast_get_and_a_failed_statement_print_each_cause_once() {
    require_pg().await;
    let mut unknown = PgConfig::from_url(unknown_database_url());
    unknown.pool.name = Some(unique("unknown_db_get"));
    let pool = unknown.connect_lazy().unwrap();
    let err = pool.get().await.expect_err("the database does not exist");
    assert!(matches!(err, PgPoolError::Unavailable { permanent: true, .. }), "{err:?}");
    let rendered = assert_each_cause_once(&err);
    assert!(rendered.starts_with("database refused the connection (permanent error): "), "{rendered}");
    assert!(!rendered.contains("unavailable for"), "a permanent error does not read as an outage: {rendered}");
    pool.close().await;

    let pool = config("bad_statement").connect().await.expect("the test database");
    let err = pool
        .fetch_one::<(i32,), _>(|| aquifer_postgres::sqlx::query("SELECT * FROM aquifer_no_such_table"))
        .await
        .expect_err("no such table");
    assert!(matches!(err, PgOperationError::Backend(_)), "{err:?}");
    let rendered = assert_each_cause_once(&err);
    assert!(
        rendered.starts_with("error returned from database: relation \"aquifer_no_such_table\" does not exist"),
        "{rendered}"
    );
    pool.close().await;
}
