//! Snapshots of a pool: [`State`] (what it holds now) and [`Stats`] (what it has done since it was built).

use std::fmt;

use serde::Serialize;

/// What a pool holds at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct State {
    /// Open connections plus connects in flight; never above `max_size`.
    pub size: usize,
    /// Connections idle in the pool (those out for a keepalive ping included).
    pub idle: usize,
    /// Connections checked out by callers (or being validated or reset).
    pub in_use: usize,
    /// Connects in flight.
    pub connecting: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// The pool's current maximum size.
    pub max_size: usize,
    /// The pool's current minimum of idle connections.
    pub min_idle: usize,
    /// Whether the pool is paused ([`Pool::pause`](crate::Pool::pause)): it lends and opens nothing.
    pub paused: bool,
}

impl State {
    /// `in_use / max_size`, from 0.0 to 1.0.
    pub fn utilization(&self) -> f64 {
        if self.max_size == 0 { 0.0 } else { self.in_use as f64 / self.max_size as f64 }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "size {}/{}, {} idle, {} in use, {} connecting, {} waiting",
            self.size, self.max_size, self.idle, self.in_use, self.connecting, self.waiting
        )?;
        if self.paused {
            f.write_str(", paused")?;
        }
        Ok(())
    }
}

/// Counters of what a pool has done since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Successful `get()` calls.
    pub acquired: u64,
    /// `get()` calls that had to wait for a connection.
    pub waited: u64,
    /// `get()` calls that timed out.
    pub timeouts: u64,
    /// `get()` calls refused because the pool was failing fast.
    pub fail_fast: u64,
    /// Connections opened.
    pub created: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Connections closed by `idle_timeout`.
    pub closed_idle_timeout: u64,
    /// Connections closed by `max_lifetime`.
    pub closed_max_lifetime: u64,
    /// Connections closed because they were broken or their reset failed.
    pub closed_broken: u64,
    /// Connections closed because validation failed.
    pub closed_validation_failed: u64,
    /// Connections closed by `discard()`, `retain()` or a shrinking `resize()`.
    pub closed_discarded: u64,
    /// Connections closed because the pool closed.
    pub closed_pool_closed: u64,
    /// Connections closed because [`Pool::retire`](crate::Pool::retire) retired them (idle at the time, or
    /// lent then and returned since).
    pub closed_retired: u64,
    /// Connections closed because a keepalive ping (`keepalive_interval`) found them dead.
    pub closed_keepalive_failed: u64,
    /// Keepalive pings sent to idle connections (`keepalive_interval`).
    pub keepalives: u64,
    /// Connections taken out of the pool with `detach()`.
    pub detached: u64,
    /// Failed connect attempts.
    pub connect_errors: u64,
    /// Returned connections that needed a reset.
    pub resets: u64,
    /// Connections reported as possible leaks.
    pub leaks: u64,
    /// Panics caught in the manager's hooks (`connect`, `validate`, `reset`, `is_broken`, `needs_reset`,
    /// `server_version`); each is logged with the pool's name.
    pub panics: u64,
}
