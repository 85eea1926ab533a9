//! Keepalive pings (`PoolConfig::keepalive_interval`, HikariCP's `keepaliveTime`): housekeeping takes the idle
//! connections not known alive for the interval out of the idle queue ([`Internals::take_for_keepalive`]; they
//! still count as idle), and each is validated by a task of its own. An answer puts it back where its
//! `last_used` belongs (a ping is not a use, so `idle_timeout` still applies); no answer within
//! `validation_timeout`, a failure or a panic closes it (`reason="keepalive_failed"`) and frees its slot, and
//! the other idle connections lose their validation bypass, as when a connection is found broken.
//!
//! [`Internals::take_for_keepalive`]: crate::internals::Internals::take_for_keepalive

use std::sync::Arc;

use crate::hooks::{HookError, Hooks};
use crate::internals::{CloseReason, Conn};
use crate::manager::Manager;
use crate::shared::Shared;

/// An idle connection out for a keepalive ping. Dropped without [`alive`](Ping::alive) (the ping failed,
/// timed out or panicked, or its task was dropped at runtime shutdown), it closes the connection and frees its
/// slot.
struct Ping<M: Manager> {
    shared: Arc<Shared<M>>,
    conn: Option<Box<Conn<M::Connection>>>,
}

impl<M: Manager> Ping<M> {
    fn raw(&mut self) -> &mut M::Connection {
        &mut self.conn.as_mut().expect("a Ping owns its connection until it ends").raw
    }

    /// The connection answered: back to a waiter or the idle queue (or closed, if the pool closed, shrank or
    /// retired it meanwhile).
    fn alive(mut self) {
        let mut conn = self.conn.take().expect("a Ping owns its connection until it ends");
        conn.alive(self.shared.clock.now(), self.shared.config.validation_bypass);
        let mut g = self.shared.lock();
        g.end_keepalive();
        self.shared.deliver(g, conn, false);
    }
}

impl<M: Manager> Drop for Ping<M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let connects = {
                let mut g = self.shared.lock();
                g.end_keepalive();
                g.release(Some(CloseReason::KeepaliveFailed))
            };
            self.shared.after_close(conn, CloseReason::KeepaliveFailed, connects);
        }
    }
}

impl<M: Manager> Shared<M> {
    /// Pings each of `conns` (taken by `take_for_keepalive`) in a task of its own.
    pub(crate) fn keepalive(self: &Arc<Self>, conns: Vec<Box<Conn<M::Connection>>>) {
        for conn in conns {
            let mut ping = Ping { shared: Arc::clone(self), conn: Some(conn) };
            let timeout = self.config.validation_timeout;
            self.runtime.spawn(async move {
                let shared = Arc::clone(&ping.shared);
                let answered = tokio::time::timeout(timeout, Hooks::validate(&shared.manager, ping.raw())).await;
                match answered {
                    Ok(Ok(())) => ping.alive(),
                    Ok(Err(HookError::Failed(e))) => {
                        tracing::debug!(pool = %shared.name, error = %e, "idle connection failed its keepalive ping; closing it");
                    }
                    Ok(Err(HookError::Panicked(message))) => shared.hook_panicked("validate", &message),
                    Err(_) => {
                        tracing::debug!(pool = %shared.name, ?timeout, "idle connection did not answer its keepalive ping; closing it");
                    }
                }
            });
        }
    }
}
