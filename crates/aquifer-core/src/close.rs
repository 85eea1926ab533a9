//! Closing a pool: new and waiting gets fail with `Closed`, idle connections close at once, connects in
//! flight are cancelled, and connections in use close as they come back.

use crate::internals::{CloseReason, Closing};
use crate::manager::Manager;
use crate::shared::Shared;

impl<M: Manager> Shared<M> {
    /// Marks the pool closed, fails every waiter with `Closed` and closes idle connections. Connections in use
    /// are closed as they come back.
    pub(crate) fn begin_close(&self) {
        let Some(Closing { idle, wakers }) = self.lock().close() else { return };
        self.closing.cancel();
        for w in wakers {
            w.wake();
        }
        self.metrics.closed(CloseReason::PoolClosed, idle.len() as u64);
        drop(idle);
        self.drained.notify_waiters();
        tracing::debug!(pool = %self.name, "pool closed");
    }

    /// Waits until every connection is closed, up to `deadline`; returns how many were still open.
    pub(crate) async fn wait_drained(&self, deadline: tokio::time::Instant) -> usize {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let size = self.lock().size();
            if size == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.lock().size();
            }
        }
    }
}
