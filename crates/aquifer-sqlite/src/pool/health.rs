//! Health as every backend reports it: one [`HealthReport`] per pool, through [`HealthCheck`], so that a
//! [`HealthRegistry`](aquifer_core::HealthRegistry) or a `/health` endpoint treats SQLite's pool like the
//! others'. One report for two engine pools, because the question is whether the database can serve, and it
//! cannot when either pool cannot; [`SqliteHealth`] keeps both pools' own reports, since the combined one names
//! the pool at fault only in its `last_error`.

use aquifer_core::{HealthCheck, HealthReport, HealthStatus};
use serde::Serialize;

use super::SqlitePool;

/// The health of both pools; `status` is the worse of the two.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SqliteHealth {
    /// The worse of the two pools' statuses.
    pub status: HealthStatus,
    /// The writer pool's report.
    pub writer: HealthReport,
    /// The reader pool's report.
    pub readers: HealthReport,
}

impl SqlitePool {
    /// Checks both pools (a validation query on each) and combines their reports into one, the report
    /// [`HealthCheck`] gives a [`HealthRegistry`](aquifer_core::HealthRegistry): the readers' report (their
    /// latency, state and utilization) under the pool's [`name`](SqlitePool::name), with the worse of the two
    /// statuses, and with the writer's `last_error`, prefixed `writer: `, when the writer's status is the worse.
    /// [`health_detail`](SqlitePool::health_detail) returns both pools' reports.
    ///
    /// Cancel safety: dropping the future returns the connections it used, like any dropped `get()`.
    pub async fn health(&self) -> HealthReport {
        let both = self.health_detail().await;
        let mut report = both.readers;
        report.pool = self.name().to_owned();
        if both.writer.status > report.status {
            report.status = both.writer.status;
            report.last_error = both.writer.last_error.map(|e| format!("writer: {e}"));
        }
        report
    }

    /// Checks both pools (a validation query on each) and returns both reports.
    ///
    /// Cancel safety: dropping the future returns the connections it used, like any dropped `get()`.
    pub async fn health_detail(&self) -> SqliteHealth {
        let (writer, readers) = tokio::join!(self.inner.writer.health(), self.inner.readers.health());
        SqliteHealth { status: writer.status.max(readers.status), writer, readers }
    }
}

/// Listed under the pool's [`name`](SqlitePool::name), with [`SqlitePool::health`]'s combined report.
#[aquifer_core::async_trait]
impl HealthCheck for SqlitePool {
    fn name(&self) -> &str {
        SqlitePool::name(self)
    }

    async fn health(&self) -> HealthReport {
        SqlitePool::health(self).await
    }
}
