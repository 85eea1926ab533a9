//! [`Held`]: the engine's own guard over a live connection that is out of the idle queue but not lent to a
//! user: being validated on checkout, or reset after a return. Dropping it (the caller's future was cancelled,
//! the reset task was dropped at runtime shutdown, a hook panicked) closes the connection and frees its slot,
//! so no path can strand one.

use std::sync::Arc;

use crate::internals::{CloseReason, Conn};
use crate::manager::Manager;
use crate::shared::Shared;

pub(crate) struct Held<M: Manager> {
    shared: Arc<Shared<M>>,
    conn: Option<Box<Conn<M::Connection>>>,
    /// The leak-detection record of the checkout it came from (reset after a return).
    pub(crate) checkout: usize,
    /// Why it is closed if dropped.
    pub(crate) reason: CloseReason,
}

impl<M: Manager> Held<M> {
    pub(crate) fn new(
        shared: &Arc<Shared<M>>,
        conn: Box<Conn<M::Connection>>,
        checkout: usize,
        reason: CloseReason,
    ) -> Self {
        Held { shared: Arc::clone(shared), conn: Some(conn), checkout, reason }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<M>> {
        &self.shared
    }

    pub(crate) fn raw(&mut self) -> &mut M::Connection {
        &mut self.conn.as_mut().expect("a Held owns its connection until released").raw
    }

    /// Closes the connection now, counted under `reason`.
    pub(crate) fn close(mut self, reason: CloseReason) {
        self.reason = reason;
        drop(self);
    }

    /// Takes the connection back into the engine's hands.
    pub(crate) fn release(mut self) -> Box<Conn<M::Connection>> {
        self.conn.take().expect("a Held owns its connection until released")
    }
}

impl<M: Manager> Drop for Held<M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.discard(conn, self.checkout, self.reason);
        }
    }
}
