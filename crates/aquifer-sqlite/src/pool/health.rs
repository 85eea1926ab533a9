//! [`SqliteHealth`]: both pools' health, since a database whose readers answer while its writer cannot is
//! not healthy.

use aquifer_core::{HealthReport, HealthStatus};
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
    /// Checks both pools (a validation query on each).
    ///
    /// Cancel safety: dropping the future returns the connections it used, like any dropped `get()`.
    pub async fn health(&self) -> SqliteHealth {
        let (writer, readers) = tokio::join!(self.inner.writer.health(), self.inner.readers.health());
        SqliteHealth { status: writer.status.max(readers.status), writer, readers }
    }
}
