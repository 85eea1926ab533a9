//! Leak reports: a connection held longer than `leak_detection_threshold`.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

/// A connection held longer than `leak_detection_threshold`, reported once, with the location of the `get()`
/// call that took it. Logged through `tracing` at WARN, counted in `aquifer.pool.leaks`, and passed to the
/// hook set with [`PoolBuilder::on_leak`](crate::PoolBuilder::on_leak).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeakReport {
    /// The pool's name.
    pub pool: String,
    /// The connection's id.
    pub conn_id: u64,
    /// Where the connection was acquired (`file:line:column` of the `get()` call).
    pub caller: &'static Location<'static>,
    /// How long it had been held when reported.
    pub held_for: Duration,
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool {}: connection {} acquired at {} held for {:?}: possible leak",
            self.pool, self.conn_id, self.caller, self.held_for
        )
    }
}
