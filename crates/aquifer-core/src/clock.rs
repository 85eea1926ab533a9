//! [`Clock`]: where a pool reads the time for everything it measures (connection ages, idle times, the
//! validation bypass window, leak thresholds, wait and use times).

use std::fmt;
use std::time::Duration;

/// The time source of a pool's timestamps.
///
/// The default reads the CPU's time-stamp counter through `quanta` (a few nanoseconds a read, which matters on
/// the checkout path). [`Clock::tokio`] follows Tokio's clock instead, including a paused test clock
/// (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`): with it, `idle_timeout`, `max_lifetime`,
/// `validation_bypass` and leak detection can be tested without real sleeps, in the pool's own tests and in a
/// service's.
///
/// Timers (acquire timeouts, backoff, housekeeping) always run on Tokio's clock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use aquifer_core::Clock;
///
/// tokio::time::pause();
/// let clock = Clock::tokio();
/// let before = clock.elapsed();
/// tokio::time::advance(std::time::Duration::from_secs(60)).await;
/// assert_eq!(clock.elapsed() - before, std::time::Duration::from_secs(60));
/// # }
/// ```
#[derive(Clone)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Tsc(quanta::Instant),
    Tokio(tokio::time::Instant),
}

impl Default for Clock {
    fn default() -> Self {
        Clock::tsc()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Tsc(_) => "Clock::tsc",
            Kind::Tokio(_) => "Clock::tokio",
        })
    }
}

impl Clock {
    /// The CPU's time-stamp counter (the default). It calibrates itself once per process, on first use, and
    /// falls back to the OS clock where the counter is unreliable.
    pub fn tsc() -> Self {
        Clock { kind: Kind::Tsc(quanta::Instant::now()) }
    }

    /// Tokio's clock, which a test can pause and advance. Must be created inside a Tokio runtime when the
    /// test clock is paused, like any `tokio::time::Instant`.
    pub fn tokio() -> Self {
        Clock { kind: Kind::Tokio(tokio::time::Instant::now()) }
    }

    /// Time since this clock was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now().0)
    }

    #[inline]
    pub(crate) fn now(&self) -> Stamp {
        let d = match self.kind {
            Kind::Tsc(origin) => quanta::Instant::now().saturating_duration_since(origin),
            Kind::Tokio(origin) => tokio::time::Instant::now().saturating_duration_since(origin),
        };
        Stamp(d.as_nanos() as u64)
    }
}

/// A reading of a pool's [`Clock`]: nanoseconds since the clock was created. Copy, 8 bytes, totally ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// The instant the clock was created.
    pub(crate) const ZERO: Stamp = Stamp(0);

    /// `self - earlier`, or zero when `earlier` is later.
    #[inline]
    pub(crate) fn duration_since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating: configuration bounds every duration far below the range of a u64 of
    /// nanoseconds (584 years).
    #[inline]
    pub(crate) fn saturating_add(self, d: Duration) -> Stamp {
        // u64 arithmetic: `Duration::as_nanos` goes through u128, which costs more on the return path.
        let nanos = d.as_secs().saturating_mul(1_000_000_000).saturating_add(u64::from(d.subsec_nanos()));
        Stamp(self.0.saturating_add(nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_ordered_and_subtract_without_underflow() {
        let a = Stamp(10);
        let b = a.saturating_add(Duration::from_nanos(5));
        assert!(b > a);
        assert_eq!(b.duration_since(a), Duration::from_nanos(5));
        assert_eq!(a.duration_since(b), Duration::ZERO);
        assert_eq!(a.saturating_add(Duration::MAX), Stamp(u64::MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_the_paused_test_clock() {
        let clock = Clock::tokio();
        let t0 = clock.now();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.now().duration_since(t0), Duration::from_secs(3));
    }
}
