//! Running short reads and writes inline, on the thread that awaits them, and the gate that keeps long calls
//! from occupying every runtime worker. (Names say "read": reads came first; writes go through the same gate
//! when `inline_writes` is on, see `SqlitePool::write` and docs/sqlite.md.)
//!
//! Why inline: a hop to another thread and back costs two thread wake-ups (tens to hundreds of µs on a busy
//! machine) while a point read on a WAL reader costs 2-4 µs, and a WAL reader never waits for the writer; an
//! inline write whose lock is free (the one writer connection is checked out) costs a commit.
//!
//! Why a gate: Tokio cannot preempt a closure, so a read that turns out long holds its worker for as long as it
//! runs. A read may start inline only while fewer than `workers - 1` of the reads already running inline have
//! been running longer than [`LONG_READ`]; otherwise it goes to the blocking pool. So at least one worker stays
//! free for the runtime's other tasks however many long reads arrive (the one exception: reads that all start
//! within the same [`LONG_READ`] window, before any of them is known to be long). A current-thread runtime, or a
//! multi-thread runtime with one worker, has no worker to spare: there every read goes to the blocking pool.
//!
//! An inline read never returns `Pending`, so it would not otherwise give Tokio a chance to run other tasks: it
//! charges its task's cooperative budget in proportion to its run time (long reads yield at once).
//!
//! Bookkeeping is one cache-line-padded slot per running inline read holding its start time; a read scans the
//! few slots before it starts (no lock, no allocation).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// An inline read running longer than this counts as long: Tokio's guidance for the time a task may run
/// between two `.await`s is 10-100 µs.
pub(crate) const LONG_READ: Duration = Duration::from_micros(100);

/// An inline read charges its task's Tokio coop budget (128 units per poll) one unit per this much of its
/// run time, at least one: a task that reads in a loop then yields after about 32 µs of SQLite work.
const BUDGET_UNIT: Duration = Duration::from_nanos(250);

/// How many units of coop budget an inline read that ran for `elapsed` costs its task.
pub(crate) fn budget_units(elapsed: Duration) -> u32 {
    (elapsed.as_nanos() / BUDGET_UNIT.as_nanos()).clamp(1, 128) as u32
}

/// One running inline read's start time, in ns since [`InlineGate::base`] plus one; 0 when the slot is free.
/// Padded so that workers writing their own slots do not invalidate each other's cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicU64);

/// Decides, per read, whether it runs inline or on the blocking pool.
pub(crate) struct InlineGate {
    /// How many inline reads may be long at once before new reads leave the runtime: `workers - 1`; 0 means
    /// never inline.
    allowed_long: usize,
    /// [`LONG_READ`] in ns (shorter or longer in unit tests, so they do not depend on the machine's speed).
    long_ns: u64,
    base: Instant,
    slots: Box<[Slot]>,
}

impl std::fmt::Debug for InlineGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineGate").field("allowed_long", &self.allowed_long).finish_non_exhaustive()
    }
}

impl InlineGate {
    /// A gate for the runtime `handle` belongs to; `enabled` is false when reads may wait for a lock (no WAL),
    /// which must not happen on a runtime worker.
    pub(crate) fn new(handle: &tokio::runtime::Handle, enabled: bool) -> InlineGate {
        let workers = match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => handle.metrics().num_workers(),
            _ => 1,
        };
        let allowed_long = if enabled { workers.saturating_sub(1) } else { 0 };
        // Each worker runs one inline read at a time; the spare slots are for threads outside the runtime that
        // drive a read with `block_on`. When all are taken the read simply goes to the blocking pool.
        let slots = if allowed_long == 0 { 0 } else { workers * 2 };
        InlineGate {
            allowed_long,
            long_ns: LONG_READ.as_nanos() as u64,
            base: Instant::now(),
            slots: (0..slots).map(|_| Slot::default()).collect(),
        }
    }

    /// Claims a slot for a read starting now, or `None` when it must go to the blocking pool.
    pub(crate) fn enter(&self) -> Option<InlineRead<'_>> {
        if self.allowed_long == 0 {
            return None;
        }
        let started = Instant::now();
        let now = self.stamp(started);
        let mut long = 0;
        let mut free = None;
        for (i, slot) in self.slots.iter().enumerate() {
            match slot.0.load(Ordering::Acquire) {
                0 if free.is_none() => free = Some(i),
                0 => {}
                since if now.saturating_sub(since) > self.long_ns => long += 1,
                _ => {}
            }
        }
        if long >= self.allowed_long {
            return None;
        }
        // Another thread may take the free slot first: then try the others once, in order.
        let start = free?;
        self.slots[start..]
            .iter()
            .find(|s| s.0.compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed).is_ok())
            .map(|slot| InlineRead { slot: &slot.0, started })
    }

    fn stamp(&self, at: Instant) -> u64 {
        // +1: 0 marks a free slot. u64 nanoseconds last 584 years.
        at.saturating_duration_since(self.base).as_nanos() as u64 + 1
    }
}

/// A read running inline; dropping it frees its slot (also when the read panics).
pub(crate) struct InlineRead<'a> {
    slot: &'a AtomicU64,
    started: Instant,
}

impl InlineRead<'_> {
    /// Ends the call: frees its slot and returns how long it ran.
    pub(crate) fn finish(self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for InlineRead<'_> {
    fn drop(&mut self) {
        self.slot.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate for `workers` workers where a read counts as long after `long`.
    fn gate(workers: usize, long: Duration) -> InlineGate {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).build().unwrap();
        InlineGate { long_ns: long.as_nanos() as u64, ..InlineGate::new(rt.handle(), true) }
    }

    const NEVER: Duration = Duration::from_secs(3600);
    const SOON: Duration = Duration::from_micros(1);

    #[test]
    fn a_read_costs_its_task_budget_in_proportion_to_its_time() {
        assert_eq!(budget_units(Duration::ZERO), 1);
        assert_eq!(budget_units(Duration::from_micros(3)), 12);
        assert_eq!(budget_units(Duration::from_micros(32)), 128);
        assert_eq!(budget_units(Duration::from_secs(1)), 128);
    }

    #[test]
    fn a_current_thread_runtime_never_runs_reads_inline() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(InlineGate::new(rt.handle(), true).enter().is_none());
    }

    #[test]
    fn a_single_worker_runtime_never_runs_reads_inline() {
        assert!(gate(1, NEVER).enter().is_none());
    }

    #[test]
    fn a_disabled_gate_never_runs_reads_inline() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
        assert!(InlineGate::new(rt.handle(), false).enter().is_none());
    }

    #[test]
    fn short_reads_run_inline_side_by_side() {
        let gate = gate(2, NEVER);
        let a = gate.enter().expect("first read inline");
        let b = gate.enter().expect("a second short read inline too");
        drop((a, b));
        assert!(gate.enter().is_some(), "slots are freed on drop");
    }

    #[test]
    fn a_long_read_on_one_of_two_workers_sends_new_reads_to_the_blocking_pool() {
        let gate = gate(2, SOON);
        let long = gate.enter().unwrap();
        std::thread::sleep(Duration::from_millis(1));
        assert!(gate.enter().is_none(), "the last free worker must stay free");
        drop(long);
        assert!(gate.enter().is_some(), "once the long read ends, reads run inline again");
    }

    #[test]
    fn with_four_workers_three_may_be_inside_long_reads() {
        let gate = gate(4, SOON);
        // Each of the three finds fewer than three long reads running, so each may start.
        let long: Vec<_> = (0..3).map(|_| gate.enter().unwrap()).collect();
        std::thread::sleep(Duration::from_millis(1));
        assert!(gate.enter().is_none());
        drop(long);
    }

    #[test]
    fn when_every_slot_is_taken_reads_go_to_the_blocking_pool() {
        let gate = gate(2, NEVER);
        let held: Vec<_> = (0..4).map(|_| gate.enter().unwrap()).collect();
        assert!(gate.enter().is_none());
        drop(held);
    }
}
