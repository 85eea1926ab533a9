//! `aquifer check`: one health report per target, as a table or JSON, and the worst status as exit code.

use std::time::Duration;

use aquifer_core::{HealthStatus, State};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::target::Target;

/// One line of the check: the target (redacted) and its pool's health report.
#[derive(Debug, Serialize)]
pub struct CheckRow {
    /// The URL with its password replaced by `***`, or `$PREFIX_*`.
    pub target: String,
    /// healthy, degraded or unhealthy.
    pub status: HealthStatus,
    /// `db.system.name`, when a pool could be built.
    pub system: Option<String>,
    /// `host:port/database`.
    pub server: Option<String>,
    /// The server's version string.
    pub server_version: Option<String>,
    /// Round trip of the validation query, in milliseconds.
    pub latency_ms: Option<f64>,
    /// The pool's state when checked.
    pub state: Option<State>,
    /// Why the target is not healthy.
    pub last_error: Option<String>,
}

/// The JSON document of `check --json`.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// The worst status.
    pub status: HealthStatus,
    /// One row per target, in command-line order.
    pub targets: Vec<CheckRow>,
}

/// Checks every target concurrently.
pub async fn run(targets: Vec<Target>, timeout: Duration) -> CheckReport {
    let tasks: Vec<_> = targets.into_iter().map(|t| tokio::spawn(async move { check_one(t, timeout).await })).collect();
    let mut rows = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(row) => rows.push(row),
            Err(e) => rows.push(CheckRow {
                target: "?".into(),
                status: HealthStatus::Unhealthy,
                system: None,
                server: None,
                server_version: None,
                latency_ms: None,
                state: None,
                last_error: Some(format!("the check failed: {e}")),
            }),
        }
    }
    CheckReport { status: rows.iter().map(|r| r.status).max().unwrap_or(HealthStatus::Healthy), targets: rows }
}

async fn check_one(target: Target, timeout: Duration) -> CheckRow {
    let name = target.to_string();
    let pool = match target.open(1, timeout).await {
        Ok(pool) => pool,
        Err(e) => {
            return CheckRow {
                target: name,
                status: HealthStatus::Unhealthy,
                system: Some(target.system().to_owned()),
                server: None,
                server_version: None,
                latency_ms: None,
                state: None,
                last_error: Some(e),
            };
        }
    };
    let report = pool.health().await;
    pool.close().await;
    CheckRow {
        target: name,
        status: report.status,
        system: Some(report.system),
        server: Some(report.server),
        server_version: report.server_version,
        latency_ms: report.latency.map(|d| d.as_secs_f64() * 1000.0),
        state: Some(report.state),
        last_error: report.last_error,
    }
}

/// The report as a terminal table.
pub fn table(report: &CheckReport) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(["target", "status", "system", "version", "latency", "error"]);
    for row in &report.targets {
        table.add_row([
            row.target.clone(),
            row.status.to_string(),
            row.system.clone().unwrap_or_default(),
            row.server_version.clone().unwrap_or_default(),
            row.latency_ms.map(|ms| format!("{ms:.2} ms")).unwrap_or_default(),
            row.last_error.clone().unwrap_or_default(),
        ]);
    }
    table
}
