//! [`Pooled`]: a connection on loan from a pool.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Stamp;
use crate::internals::{CloseReason, Conn};
use crate::manager::Manager;
use crate::shared::Shared;

/// A connection checked out of a [`Pool`](crate::Pool). It dereferences to the driver's own connection type,
/// so the driver's API works as usual; dropping it returns the connection to the pool.
///
/// On return the pool asks the manager whether the connection is broken (then it is closed and its slot freed
/// for a new one) or needs a reset (an open transaction, an interrupted query: then it is reset in the
/// background before anyone else gets it). A connection past `max_lifetime` is closed.
///
/// Dropping a `Pooled` never blocks and never awaits.
pub struct Pooled<M: Manager> {
    conn: Option<Box<Conn<M::Connection>>>,
    shared: Arc<Shared<M>>,
    checked_out: Stamp,
    checkout: usize,
    // The checkout's context and the discard-on-drop flag live in `Conn` (`session`, `discard_on_drop`):
    // this guard is moved on every checkout and return, and four words move cheaper than seven.
}

impl<M: Manager> Pooled<M> {
    pub(crate) fn new(
        conn: Box<Conn<M::Connection>>,
        shared: Arc<Shared<M>>,
        checked_out: Stamp,
        checkout: usize,
    ) -> Self {
        Pooled { conn: Some(conn), shared, checked_out, checkout }
    }

    fn conn(&self) -> &Conn<M::Connection> {
        // Only `discard`/`detach`/`drop` take the connection, and they consume the guard.
        self.conn.as_ref().expect("a Pooled holds its connection until consumed")
    }

    /// The connection's bookkeeping, for `prepare` (its context and discard-on-drop flag).
    pub(crate) fn conn_mut(&mut self) -> &mut Conn<M::Connection> {
        self.conn.as_mut().expect("a Pooled holds its connection until consumed")
    }

    /// Closes this connection instead of returning it (it is in a state you do not trust). Its slot is freed
    /// and a waiter, if any, gets a new connection.
    pub fn discard(self) {
        self.close(CloseReason::Discarded);
    }

    pub(crate) fn close(mut self, reason: CloseReason) {
        if let Some(conn) = self.conn.take() {
            self.shared.metrics.use_time(self.shared.clock.now().duration_since(self.checked_out));
            self.shared.discard(conn, self.checkout, reason);
        }
    }

    /// Takes the connection out of the pool for good: the pool forgets it and frees its slot. A
    /// [`SessionContext`](crate::SessionContext) applied to this checkout is not cleared: the connection
    /// leaves with its settings.
    pub fn detach(mut self) -> M::Connection {
        let conn = self.conn.take().expect("a Pooled holds its connection until consumed");
        self.shared.metrics.use_time(self.shared.clock.now().duration_since(self.checked_out));
        self.shared.detach(self.checkout);
        conn.raw
    }

    /// Facts about this connection: its id, age and how long it has been checked out.
    pub fn info(&self) -> ConnectionInfo {
        let c = self.conn();
        let now = self.shared.clock.now();
        ConnectionInfo {
            id: c.id,
            age: now.duration_since(c.created),
            idle_for: Duration::ZERO,
            checked_out_for: now.duration_since(self.checked_out),
        }
    }

    /// The name of the pool this connection belongs to.
    pub fn pool_name(&self) -> &str {
        &self.shared.name
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        &self.conn().raw
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self.conn_mut().raw
    }
}

impl<M: Manager> AsRef<M::Connection> for Pooled<M> {
    fn as_ref(&self) -> &M::Connection {
        self
    }
}

impl<M: Manager> AsMut<M::Connection> for Pooled<M> {
    fn as_mut(&mut self) -> &mut M::Connection {
        self
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.discard_on_drop {
                self.shared.metrics.use_time(self.shared.clock.now().duration_since(self.checked_out));
                self.shared.discard(conn, self.checkout, CloseReason::Discarded);
            } else {
                self.shared.checkin(conn, self.checkout, self.checked_out);
            }
        }
    }
}

impl<M: Manager> fmt::Debug for Pooled<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = self.shared.clock.now();
        let mut d = f.debug_struct("Pooled");
        d.field("pool", &&*self.shared.name);
        if let Some(c) = &self.conn {
            d.field("id", &c.id).field("age", &now.duration_since(c.created));
        }
        d.field("checked_out_for", &now.duration_since(self.checked_out)).finish()
    }
}

/// Facts about one pooled connection, for [`Pooled::info`] and [`Pool::retain`](crate::Pool::retain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The pool-unique id of the connection (also used in logs).
    pub id: u64,
    /// Time since the connection was opened.
    pub age: Duration,
    /// Time since it was last returned (zero while checked out).
    pub idle_for: Duration,
    /// Time since it was checked out (zero while idle).
    pub checked_out_for: Duration,
}

impl ConnectionInfo {
    pub(crate) fn idle<C>(c: &Conn<C>, now: Stamp) -> Self {
        ConnectionInfo {
            id: c.id,
            age: now.duration_since(c.created),
            idle_for: now.duration_since(c.last_used),
            checked_out_for: Duration::ZERO,
        }
    }
}
