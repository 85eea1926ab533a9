//! Connections coming back: a user's return (`Pooled::drop`), a discard, a detach, and the background reset
//! of a returned connection that needs one. Every path ends with the connection handed to a waiter, pushed on
//! the idle queue, or closed with its slot freed.

use std::sync::Arc;

use crate::clock::Stamp;
use crate::held::Held;
use crate::hooks::{HookError, Hooks};
use crate::internals::{CheckoutRecord, CloseReason, Conn, Internals};
use crate::manager::Manager;
use crate::shared::Shared;
use crate::sync::MutexGuard;

impl<M: Manager> Shared<M> {
    /// A connection comes back from its user.
    pub(crate) fn checkin(self: &Arc<Self>, mut conn: Box<Conn<M::Connection>>, checkout: usize, checked_out: Stamp) {
        let now = self.clock.now();
        self.metrics.use_time(now.duration_since(checked_out));
        match Hooks::is_broken(&self.manager, &mut conn.raw) {
            Ok(false) => {}
            Ok(true) => {
                tracing::debug!(pool = %self.name, conn = conn.id, "returned connection is broken; discarding it");
                return self.discard(conn, checkout, CloseReason::Broken);
            }
            Err(message) => {
                self.hook_panicked("is_broken", &message);
                return self.discard(conn, checkout, CloseReason::Broken);
            }
        }
        if conn.expired(now) {
            return self.discard(conn, checkout, CloseReason::MaxLifetime);
        }
        conn.touch(now, self.config.validation_bypass);
        match Hooks::needs_reset(&self.manager, &mut conn.raw) {
            Ok(false) => self.put_back(conn, checkout),
            Ok(true) => self.spawn_reset(conn, checkout),
            Err(message) => {
                // Whether it is clean is unknown: it must not be handed out again.
                self.hook_panicked("needs_reset", &message);
                self.discard(conn, checkout, CloseReason::Broken)
            }
        }
    }

    /// Hands a clean connection to the longest waiter, or to the idle queue.
    pub(crate) fn put_back(self: &Arc<Self>, conn: Box<Conn<M::Connection>>, checkout: usize) {
        let mut g = self.lock();
        let record = g.end_checkout(checkout);
        self.deliver(g, conn, false);
        if let Some(record) = record {
            self.returned_after_leak(&record);
        }
    }

    /// Under `g`: hands `conn` to the longest waiter or the idle queue, or closes it when the pool no longer
    /// wants it (closed, shrunk below its size, or retired). With `top_up`, also starts connects that `min_idle` or
    /// waiters still need (after a new connection; a plain return changes neither).
    pub(crate) fn deliver(
        self: &Arc<Self>,
        mut g: MutexGuard<'_, Internals<M::Connection, M::Error>>,
        conn: Box<Conn<M::Connection>>,
        top_up: bool,
    ) {
        match g.deliver(conn) {
            Ok(waker) => {
                let connects = if top_up { g.reserve_connects() } else { 0 };
                drop(g);
                if let Some(w) = waker {
                    w.wake();
                }
                self.spawn_connects(connects);
            }
            Err((conn, reason)) => {
                let connects = g.release(Some(reason));
                drop(g);
                self.after_close(conn, reason, connects);
            }
        }
    }

    /// Closes a connection and frees its slot.
    pub(crate) fn discard(self: &Arc<Self>, conn: Box<Conn<M::Connection>>, checkout: usize, reason: CloseReason) {
        let (record, connects) = {
            let mut g = self.lock();
            let record = g.end_checkout(checkout);
            (record, g.release(Some(reason)))
        };
        self.after_close(conn, reason, connects);
        if let Some(record) = record {
            self.returned_after_leak(&record);
        }
    }

    /// Takes a connection out of the pool for good (`Pooled::detach`).
    pub(crate) fn detach(self: &Arc<Self>, checkout: usize) {
        let connects = {
            let mut g = self.lock();
            g.end_checkout(checkout);
            g.release(None)
        };
        self.spawn_connects(connects);
        self.slot_freed();
    }

    /// After a connection left the pool's accounting: close it, count it, start the connects reserved in its
    /// place.
    pub(crate) fn after_close(self: &Arc<Self>, conn: Box<Conn<M::Connection>>, reason: CloseReason, connects: usize) {
        drop(conn);
        self.metrics.closed(reason, 1);
        self.spawn_connects(connects);
        self.slot_freed();
    }

    /// Tells a `close()` waiting for the pool to drain that a slot was freed.
    pub(crate) fn slot_freed(&self) {
        if self.closing.is_cancelled() {
            self.drained.notify_waiters();
        }
    }

    fn returned_after_leak(&self, record: &CheckoutRecord) {
        if record.reported {
            tracing::info!(
                pool = %self.name,
                conn = record.conn_id,
                caller = %record.caller,
                held_for = ?self.clock.now().duration_since(record.at),
                "connection reported as a possible leak was returned"
            );
        }
    }

    /// Resets a returned connection in the background, then puts it back; a failed, panicking or dropped
    /// reset discards it.
    fn spawn_reset(self: &Arc<Self>, conn: Box<Conn<M::Connection>>, checkout: usize) {
        self.lock().count_reset();
        let mut held = Held::new(self, conn, checkout, CloseReason::Broken);
        let timeout = self.config.validation_timeout;
        self.runtime.spawn(async move {
            let shared = Arc::clone(held.shared());
            let reset = tokio::time::timeout(timeout, Hooks::reset(&shared.manager, held.raw())).await;
            match reset {
                Ok(Ok(())) => {
                    let checkout = held.checkout;
                    let mut conn = held.release();
                    conn.touch(shared.clock.now(), shared.config.validation_bypass);
                    shared.put_back(conn, checkout);
                }
                Ok(Err(HookError::Failed(e))) => {
                    tracing::debug!(pool = %shared.name, error = %e, "reset of a returned connection failed; discarding it");
                }
                Ok(Err(HookError::Panicked(message))) => shared.hook_panicked("reset", &message),
                Err(_) => {
                    tracing::debug!(pool = %shared.name, "reset of a returned connection timed out; discarding it");
                }
            }
        });
    }
}
