//! An order service on a replicated PostgreSQL cluster with one Aquifer pool: orders are placed on the
//! primary, the catalogue of recent orders is read from the replicas, and a customer who just placed an order
//! reads it back through a write scope, which sends the read to a replica only once it has replayed the
//! order (else to the primary). Prints each host's role and lag, and the per-host pools' statistics.
//!
//!     bash scripts/pg-replicas.sh start && eval "$(bash scripts/pg-replicas.sh env)"
//!     cargo run --example replicas
//!
//! Connects to `POSTGRES_CLUSTER_URL`, default the cluster scripts/pg-replicas.sh starts:
//! `postgres://postgres@127.0.0.1:15442,127.0.0.1:15443,127.0.0.1:15444/test?sslmode=disable`. The hosts may be
//! listed in any order: roles come from the servers. The example owns the table `replicas_example_orders`.
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set it exports the host pools' metrics and each host's role and lag over
//! OTLP (aquifer-otel), which the Pools dashboard's per-host panels show.

use std::time::{Duration, Instant};

use aquifer_core::Target;
use aquifer_postgres::sqlx;
use aquifer_postgres::{PgConfig, PgWriteScope};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:15442,127.0.0.1:15443,127.0.0.1:15444/test?sslmode=disable&load_balance_hosts=random";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Exports over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (see aquifer-otel); kept until main returns, when
    // it flushes the last points.
    let _otel = aquifer_otel::init()?;
    let url = std::env::var("POSTGRES_CLUSTER_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let mut config = PgConfig::from_url(url);
    config.pool.max_size = 8;
    // Idle connections on every host: a read right after a write asks an idle replica connection whether the
    // write has been replayed there, and goes to the primary when none is idle.
    config.pool.min_idle = 2;
    // Replicas more than two seconds behind get no reads until they catch up.
    config.cluster.max_replica_lag = Some(Duration::from_secs(2));
    let pool = config.connect_cluster().await?;
    for h in pool.hosts() {
        println!("{:<18} {:<8} lag {:?}", h.server, h.role.map_or("down", |r| r.as_str()), h.lag);
    }

    let mut w = pool.get().await?; // get() is the primary
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS replicas_example_orders (
             id bigserial PRIMARY KEY, customer text NOT NULL, total_cents bigint NOT NULL,
             placed_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut *w)
    .await?;
    drop(w);

    // A customer places orders and reads each back at once: the scope carries the commit's WAL position.
    let scope = PgWriteScope::new();
    let started = Instant::now();
    let (mut on_replica, mut on_primary) = (0, 0);
    for i in 1..=200i64 {
        let mut w = pool.get().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO replicas_example_orders (customer, total_cents) VALUES ('ada', $1) RETURNING id",
        )
        .bind(i * 100)
        .fetch_one(&mut *w)
        .await?;
        w.record_write(&scope).await?;
        drop(w);

        let mut r = pool.get_in(Target::PreferReplica, &scope).await?;
        let total: i64 = sqlx::query_scalar("SELECT total_cents FROM replicas_example_orders WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *r)
            .await?;
        assert_eq!(total, i * 100, "read-your-writes");
        if r.role() == aquifer_core::Role::Replica { on_replica += 1 } else { on_primary += 1 }
    }
    println!(
        "200 orders placed and read back in {:?}: {on_replica} reads served by a replica, {on_primary} by the primary",
        started.elapsed()
    );

    // The catalogue of recent orders tolerates a little lag: any replica will do.
    let mut r = pool.get_for(Target::PreferReplica).await?;
    let recent: i64 =
        sqlx::query_scalar("SELECT count(*) FROM replicas_example_orders WHERE placed_at > now() - interval '1 hour'")
            .fetch_one(&mut *r)
            .await?;
    println!("orders in the last hour, read on {} ({}): {recent}", r.server(), r.role());
    drop(r);

    for p in pool.pools() {
        let s = p.stats();
        println!("{:<18} acquired {:>4}, created {:>2}", p.descriptor().default_pool_name(), s.acquired, s.created);
    }
    pool.close().await;
    Ok(())
}
