//! The axum routes over a [`Pools`] set.

use aquifer_core::HealthStatus;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Pools;

/// A router serving, for the pools in `pools`:
///
/// - `GET /health`: every pool's health report and the worst status; `200` when healthy or degraded (a
///   degraded pool still serves, and a load balancer should keep sending traffic), `503` when any pool is
///   unhealthy;
/// - `GET /health/{pool}`: one pool's report, with the same status codes; `404` for an unknown name (names
///   may contain `/`, as the default `host:port/database` does);
/// - `GET /stats`: state, counters and configuration of every pool, without touching a connection;
/// - `GET /livez`: `200` while the process serves HTTP at all; it never touches a pool, so a database that is
///   down never gets the service restarted (a restart would not bring the database back);
/// - `GET /readyz`: `200`, or `503` once the service [drains](Pools::start_draining) (shutdown has begun).
///   It does not follow the databases' health either: when a database is down every replica of the service
///   would turn unready together and the load balancer would answer its own 502/503 instead of the service's
///   fast, typed error (the pools fail fast). `GET /health` is the probe for the databases.
///
/// Every body is JSON and holds no credentials. Merge it into the service's router, or nest it under a prefix
/// (`Router::new().nest("/ops", aquifer_http::router(pools))`).
pub fn router(pools: Pools) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/{*pool}", get(health_of))
        .route("/stats", get(stats))
        .route("/livez", get(live))
        .route("/readyz", get(ready))
        .with_state(pools)
}

fn status_code(status: HealthStatus) -> StatusCode {
    match status {
        HealthStatus::Healthy | HealthStatus::Degraded => StatusCode::OK,
        HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn health(State(pools): State<Pools>) -> Response {
    let report = pools.health().await;
    (status_code(report.status), Json(report)).into_response()
}

async fn health_of(State(pools): State<Pools>, Path(name): Path<String>) -> Response {
    match pools.health_of(&name).await {
        Some(report) => (status_code(report.status), Json(report)).into_response(),
        None => {
            let body = serde_json::json!({ "error": format!("no pool named {name:?}"), "pools": pools.names() });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}

async fn stats(State(pools): State<Pools>) -> Json<crate::StatsReport> {
    Json(pools.stats())
}

async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

async fn ready(State(pools): State<Pools>) -> Response {
    if pools.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "draining" }))).into_response()
    } else {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    }
}
