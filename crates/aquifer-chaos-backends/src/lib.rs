#![doc = include_str!("../README.md")]

use aquifer_mysql::mysql_async::{self, prelude::Queryable};
use aquifer_mysql::{MySqlConfig, MySqlManager, MySqlPool, MySqlPooled};
use aquifer_neo4j::{Neo4jConfig, Neo4jError, Neo4jManager, Neo4jPool, Neo4jPooled, neo4rs, query};
use aquifer_postgres::{PgConfig, PgManager, PgPool, PgPooled, sqlx};
use aquifer_testing::ChaosProxy;
use aquifer_testing::chaos::{ChaosBackend, Fail, LONG_ROWS};
use aquifer_testing::servers::{self, Port};

// ---------------------------------------------------------------------------------------------------------
// PostgreSQL (sqlx): sessions are told apart by `application_name` in `pg_stat_activity`.

/// The project's PostgreSQL ([`servers::POSTGRES`]), database `test`, user `postgres`.
pub struct Postgres;

const PG_LONG_SQL: &str = "SELECT i, repeat('x', 40) FROM generate_series(1, $1::int8) AS i";

fn pg_lost(e: &sqlx::Error) -> bool {
    // The session is gone: a socket error, or the server ended it (class 08, 57P01-03, FATAL).
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

fn pg_fail(e: &sqlx::Error) -> Fail {
    if pg_lost(e) {
        Fail::Lost
    } else {
        Fail::Other(match e {
            sqlx::Error::Protocol(m) => format!("protocol: {m}"),
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
            other => other.to_string(),
        })
    }
}

impl ChaosBackend for Postgres {
    type Config = PgConfig;
    type M = PgManager;
    const NAME: &'static str = "PostgreSQL";
    const UPSTREAM: Port = servers::POSTGRES;

    fn vars(port: u16, marker: &str) -> Vec<(&'static str, String)> {
        vec![
            ("URL", format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=disable")),
            ("APPLICATION_NAME", marker.into()),
        ]
    }

    async fn short(conn: &mut PgPooled) -> Result<(), Fail> {
        let v: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut **conn).await.map_err(|e| pg_fail(&e))?;
        assert_eq!(v, 1);
        Ok(())
    }

    async fn long_result(conn: &mut PgPooled) -> Result<usize, Fail> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as(PG_LONG_SQL).bind(LONG_ROWS).fetch_all(&mut **conn).await.map_err(|e| pg_fail(&e))?;
        Ok(rows.len())
    }

    async fn helper_short(pool: &PgPool) -> Result<(), Fail> {
        let (v,): (i32,) = pool
            .fetch_one(|| sqlx::query_as::<_, (i32,)>("SELECT 1"))
            .await
            .map_err(|e| Fail::operation(&e, pg_fail))?;
        assert_eq!(v, 1);
        Ok(())
    }

    async fn helper_long(pool: &PgPool) -> Result<usize, Fail> {
        let rows: Vec<(i64, String)> = pool
            .fetch_all(|| sqlx::query_as::<_, (i64, String)>(PG_LONG_SQL).bind(LONG_ROWS))
            .await
            .map_err(|e| Fail::operation(&e, pg_fail))?;
        Ok(rows.len())
    }

    async fn server_connections(marker: &str, _proxy: &ChaosProxy) -> usize {
        use sqlx::Connection;
        let mut c =
            sqlx::PgConnection::connect(&servers::postgres_url()).await.expect("a direct connection to PostgreSQL");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
            .bind(marker)
            .fetch_one(&mut c)
            .await
            .unwrap();
        let _ = c.close().await;
        n as usize
    }
}

// ---------------------------------------------------------------------------------------------------------
// MariaDB (mysql_async): each pool connects as a user named after its marker, so
// `information_schema.processlist` tells its sessions apart.

/// The project's MariaDB ([`servers::MARIADB`]), database `test`, a user per pool.
pub struct MySql;

/// MariaDB's sequence engine makes the rows.
const MY_LONG_SQL: &str = "SELECT seq, REPEAT('x', 40) FROM seq_1_to_1000000 WHERE seq <= ?";

fn my_fail(e: &mysql_async::Error) -> Fail {
    match aquifer_mysql::error_type(e) {
        t if t == "connection_lost" => Fail::Lost,
        t => Fail::Other(format!("{t}: {e}")),
    }
}

async fn mysql_root() -> mysql_async::Conn {
    mysql_async::Conn::from_url(format!("{}?prefer_socket=false", servers::mariadb_url()))
        .await
        .expect("a direct connection to MariaDB")
}

impl ChaosBackend for MySql {
    type Config = MySqlConfig;
    type M = MySqlManager;
    const NAME: &'static str = "MariaDB";
    const UPSTREAM: Port = servers::MARIADB;

    fn vars(port: u16, marker: &str) -> Vec<(&'static str, String)> {
        vec![("URL", format!("mysql://{marker}@127.0.0.1:{port}/test")), ("TRANSPORT", "tcp".into())]
    }

    /// A user named after the marker, so `information_schema.processlist` tells this pool's connections apart.
    async fn prepare(marker: &str) {
        let mut c = mysql_root().await;
        c.query_drop(format!("CREATE USER IF NOT EXISTS '{marker}'@'%'")).await.unwrap();
        c.query_drop(format!("GRANT ALL ON test.* TO '{marker}'@'%'")).await.unwrap();
        let _ = c.disconnect().await;
    }

    async fn short(conn: &mut MySqlPooled) -> Result<(), Fail> {
        let v: Option<i32> = conn.query_first("SELECT 1").await.map_err(|e| my_fail(&e))?;
        assert_eq!(v, Some(1));
        Ok(())
    }

    async fn long_result(conn: &mut MySqlPooled) -> Result<usize, Fail> {
        let rows: Vec<(i64, String)> = conn.exec(MY_LONG_SQL, (LONG_ROWS,)).await.map_err(|e| my_fail(&e))?;
        Ok(rows.len())
    }

    async fn helper_short(pool: &MySqlPool) -> Result<(), Fail> {
        let v: i32 = pool.fetch_one("SELECT 1", ()).await.map_err(|e| Fail::operation(&e, my_fail))?;
        assert_eq!(v, 1);
        Ok(())
    }

    async fn helper_long(pool: &MySqlPool) -> Result<usize, Fail> {
        let rows: Vec<(i64, String)> =
            pool.fetch_all(MY_LONG_SQL, (LONG_ROWS,)).await.map_err(|e| Fail::operation(&e, my_fail))?;
        Ok(rows.len())
    }

    async fn server_connections(marker: &str, _proxy: &ChaosProxy) -> usize {
        let mut c = mysql_root().await;
        let n: Option<i64> = c
            .exec_first("SELECT count(*) FROM information_schema.processlist WHERE user = ?", (marker,))
            .await
            .unwrap();
        let _ = c.disconnect().await;
        n.unwrap_or(0) as usize
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bolt against ArcadeDB (neo4rs). ArcadeDB lists no sessions, so the proxy's open upstream connections stand in
// for the server's count.

/// ArcadeDB's Bolt server ([`servers::BOLT`]), database `testdb`.
pub struct Neo4j;

const LONG_CYPHER: &str = "UNWIND range(1, $n) AS i RETURN i, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' AS s";

fn neo_fail(e: &Neo4jError) -> Fail {
    if matches!(e, Neo4jError::ConnectionLost { .. }) { Fail::Lost } else { Fail::Other(e.error_type().into_owned()) }
}

/// A raw checkout's error: neo4rs's own, not yet classified by the adapter.
fn neo_raw_fail(e: &neo4rs::Error) -> Fail {
    match e {
        neo4rs::Error::IOError { .. } | neo4rs::Error::ConnectionError => Fail::Lost,
        other => Fail::Other(format!("{other}")),
    }
}

impl ChaosBackend for Neo4j {
    type Config = Neo4jConfig;
    type M = Neo4jManager;
    const NAME: &'static str = "Bolt (ArcadeDB)";
    const UPSTREAM: Port = servers::BOLT;

    fn vars(port: u16, _marker: &str) -> Vec<(&'static str, String)> {
        vec![
            ("URI", format!("bolt://127.0.0.1:{port}")),
            ("USER", "root".into()),
            ("PASSWORD", "aquifer-secret".into()),
            ("DATABASE", "testdb".into()),
        ]
    }

    async fn short(conn: &mut Neo4jPooled) -> Result<(), Fail> {
        let mut rows = conn.execute(query("RETURN 1 AS a")).await.map_err(|e| neo_raw_fail(&e))?;
        let row = rows.next().await.map_err(|e| neo_raw_fail(&e))?.ok_or(Fail::Other("no row".into()))?;
        assert_eq!(row.get::<i64>("a").unwrap(), 1);
        Ok(())
    }

    async fn long_result(conn: &mut Neo4jPooled) -> Result<usize, Fail> {
        let mut rows = conn.execute(query(LONG_CYPHER).param("n", LONG_ROWS)).await.map_err(|e| neo_raw_fail(&e))?;
        let mut n = 0;
        while rows.next().await.map_err(|e| neo_raw_fail(&e))?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    async fn helper_short(pool: &Neo4jPool) -> Result<(), Fail> {
        let row = pool.fetch_one(query("RETURN 1 AS a")).await.map_err(|e| Fail::operation(&e, neo_fail))?;
        assert_eq!(row.get::<i64>("a").unwrap(), 1);
        Ok(())
    }

    async fn helper_long(pool: &Neo4jPool) -> Result<usize, Fail> {
        Ok(pool
            .fetch_all(query(LONG_CYPHER).param("n", LONG_ROWS))
            .await
            .map_err(|e| Fail::operation(&e, neo_fail))?
            .len())
    }

    async fn server_connections(_marker: &str, proxy: &ChaosProxy) -> usize {
        proxy.live()
    }
}
