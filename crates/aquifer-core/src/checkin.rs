//! Connections coming back: a user's return (`Pooled::drop`), a discard, a detach, and the background reset
//! of a returned connection that needs one. Every path ends with the connection handed to a waiter, pushed on
//! the idle queue, or closed with its slot freed.

use std::sync::Arc;

use crate::clock::Stamp;
use crate::held::Held;
use crate::hooks::{HookError, Hooks};
use crate::internals::{CheckoutRecord, CloseReason, Conn, Internals};
use crate::manager::Manager;
use crate::session::{HookFailure, SessionRef, run_step};
use crate::shared::Shared;
use crate::sync::MutexGuard;

impl<M: Manager> Shared<M> {
    /// A connection comes back from its user.
    pub(crate) fn checkin(self: &Arc<Self>, mut conn: Box<Conn<M::Connection>>, checkout: usize, checked_out: Stamp) {
        let session = conn.session.take();
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
        let needs_reset = match Hooks::needs_reset(&self.manager, &mut conn.raw) {
            Ok(needs) => needs,
            Err(message) => {
                // Whether it is clean is unknown: it must not be handed out again.
                self.hook_panicked("needs_reset", &message);
                return self.discard(conn, checkout, CloseReason::Broken);
            }
        };
        if needs_reset || session.is_some() || self.has_return_hooks {
            self.spawn_return(conn, checkout, needs_reset, session);
        } else {
            self.put_back(conn, checkout);
        }
    }

    /// Hands a clean connection to the longest waiter, or to the idle queue; closes it instead when it was
    /// opened with a credential rotated out since and its turn has come (`retire_on_rotation`).
    ///
    /// Inlined, as is `deliver`: every return goes `checkin` → `put_back` → `deliver`, and each call frame
    /// costs the return path more instructions (register saves and restores) than the checks it makes.
    #[inline]
    pub(crate) fn put_back(self: &Arc<Self>, conn: Box<Conn<M::Connection>>, checkout: usize) {
        let mut g = self.lock();
        let record = g.end_checkout(checkout);
        // `last_used` is the instant it came back (set by `checkin` or after its reset).
        if g.rotated_out(&conn, conn.last_used) {
            let connects = g.release(Some(CloseReason::CredentialRotation));
            drop(g);
            tracing::debug!(pool = %self.name, conn = conn.id, "closing a returned connection opened with a rotated-out credential");
            self.after_close(conn, CloseReason::CredentialRotation, connects);
        } else {
            self.deliver(g, conn, false);
        }
        if let Some(record) = record {
            self.returned_after_leak(&record);
        }
    }

    /// Under `g`: hands `conn` to the longest waiter or the idle queue, or closes it when the pool no longer
    /// wants it (closed, shrunk below its size, or retired). With `top_up`, also starts connects that `min_idle` or
    /// waiters still need (after a new connection; a plain return changes neither).
    #[inline(always)]
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

    /// Makes a returned connection ready in the background: the manager's reset (when `needs_reset`), then
    /// the checkout's session context cleared, then the return hooks; then puts it back. A failed, panicking,
    /// timed-out or dropped step discards it, so nobody gets a connection whose cleanup did not complete.
    fn spawn_return(
        self: &Arc<Self>,
        conn: Box<Conn<M::Connection>>,
        checkout: usize,
        needs_reset: bool,
        session: Option<SessionRef<M::Connection>>,
    ) {
        if needs_reset {
            self.lock().count_reset();
        }
        let mut held = Held::new(self, conn, checkout, CloseReason::Broken);
        let timeout = self.config.validation_timeout;
        self.runtime.spawn(async move {
            let shared = Arc::clone(held.shared());
            if needs_reset {
                let reset = tokio::time::timeout(timeout, Hooks::reset(&shared.manager, held.raw())).await;
                match reset {
                    Ok(Ok(())) => {}
                    Ok(Err(HookError::Failed(e))) => {
                        tracing::debug!(pool = %shared.name, error = %e, "reset of a returned connection failed; discarding it");
                        return;
                    }
                    Ok(Err(HookError::Panicked(message))) => return shared.hook_panicked("reset", &message),
                    Err(_) => {
                        tracing::debug!(pool = %shared.name, "reset of a returned connection timed out; discarding it");
                        return;
                    }
                }
            }
            let hook_timeout = shared.config.hook_timeout;
            if let Some(ctx) = session
                && let Err(cause) = run_step(hook_timeout, ctx.clear(held.raw())).await
            {
                shared.return_hook_failed(ctx.name(), &cause);
                return held.close(CloseReason::HookFailed);
            }
            if let Some(hooks) = &shared.conn_hooks {
                for hook in &hooks.on_return {
                    if let Err(cause) = run_step(hook_timeout, (hook.f)(held.raw())).await {
                        shared.return_hook_failed(&hook.name, &cause);
                        return held.close(CloseReason::HookFailed);
                    }
                }
            }
            let checkout = held.checkout;
            let mut conn = held.release();
            conn.touch(shared.clock.now(), shared.config.validation_bypass);
            shared.put_back(conn, checkout);
        });
    }

    /// Logs (and counts, for a panic) a return hook or a context's clear that failed; the caller's `Held`
    /// then discards the connection.
    fn return_hook_failed(&self, hook: &str, cause: &HookFailure) {
        if let HookFailure::Panicked(message) = cause {
            self.lock().count_panic();
            tracing::error!(pool = %self.name, hook, panic = %message, "a return hook panicked; the connection was discarded");
        } else {
            tracing::warn!(pool = %self.name, hook, error = %cause, "a return hook failed; the connection was discarded");
        }
    }
}
