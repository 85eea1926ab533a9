//! The pool's background tasks: the deadline watcher (acquire timeouts of queued callers) and housekeeping
//! (idle reaping, leak reports, `min_idle` top-up, keepalive pings, health refresh).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Stamp;
use crate::leak::LeakReport;
use crate::manager::Manager;
use crate::shared::Shared;

impl<M: Manager> Shared<M> {
    /// Background task: fails waiters whose `acquire_timeout` passed. One timer serves the whole queue because
    /// first-time waiters with the default timeout join it in deadline order, so only the earliest matters;
    /// this spares every waiting `get()` a timer registration of its own.
    /// Holds the pool until it closes (closing does not wait for this task).
    pub(crate) async fn watch_deadlines(self: Arc<Self>, closing: CancellationToken) {
        let shared = self;
        loop {
            let (wakers, next) = shared.lock().expire_waiters(tokio::time::Instant::now());
            for w in wakers {
                w.wake();
            }
            let notified = shared.deadlines.notified();
            match next {
                Some(at) => tokio::select! {
                    biased;
                    _ = closing.cancelled() => return,
                    _ = tokio::time::sleep_until(at) => {}
                },
                None => tokio::select! {
                    biased;
                    _ = closing.cancelled() => return,
                    _ = notified => {}
                },
            }
        }
    }

    /// One round of housekeeping: reap idle connections, report leaks, top up `min_idle`, ping the idle
    /// connections due for a keepalive.
    pub(crate) fn housekeep(self: &Arc<Self>, now: Stamp) {
        let (reaped, leaks, connects, pings) = {
            let mut g = self.lock();
            if g.is_closed() {
                return;
            }
            let reaped = g.reap(now, self.config.idle_timeout);
            let leaks = match self.config.leak_detection_threshold {
                Some(t) => g.find_leaks(now, t),
                None => Vec::new(),
            };
            let pings = match self.config.keepalive_interval {
                Some(every) => g.take_for_keepalive(now, every),
                None => Vec::new(),
            };
            (reaped, leaks, g.reserve_connects(), pings)
        };
        self.keepalive(pings);
        for (conn, reason) in reaped {
            tracing::debug!(pool = %self.name, conn = conn.id, reason = reason.as_str(), "closing idle connection");
            drop(conn);
            self.metrics.closed(reason, 1);
        }
        for leak in leaks {
            let report = LeakReport {
                pool: self.name.to_string(),
                conn_id: leak.conn_id,
                caller: leak.caller,
                held_for: leak.held_for,
            };
            tracing::warn!(
                pool = %self.name, conn = leak.conn_id, caller = %leak.caller, held_for = ?leak.held_for,
                "connection held longer than leak_detection_threshold: possible leak (acquired at {})", leak.caller
            );
            self.metrics.leak();
            if let Some(hook) = &self.on_leak {
                hook(&report);
            }
        }
        self.spawn_connects(connects);
    }

    /// Background task: housekeeping every `tick`, health refresh every `health_interval`. Holds the pool
    /// weakly and stops when it closes.
    pub(crate) async fn maintain(weak: std::sync::Weak<Self>, tick: Duration, closing: CancellationToken) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        let mut last_health: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = closing.cancelled() => return,
                _ = interval.tick() => {}
            }
            let Some(shared) = weak.upgrade() else { return };
            let now = tokio::time::Instant::now();
            shared.housekeep(shared.clock.now());
            if let Some(every) = shared.config.health_interval
                && last_health.is_none_or(|t| now.duration_since(t) >= every)
            {
                last_health = Some(now);
                let report = crate::health_check::check(&shared).await;
                *shared.health.lock() = Some(report);
            }
        }
    }
}
