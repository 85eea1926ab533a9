//! The one lock of a pool, behind a shim: `parking_lot`'s mutex normally, loom's under
//! `--cfg aquifer_loom`, so that the loom model checks run the engine's own state machine
//! (`internals.rs`) and hand-off code, not a copy of it. (Only the lib's own test build uses loom: the
//! crates that depend on this one under that cfg, such as aquifer-testing, get the normal mutex.)

#[cfg(not(all(test, aquifer_loom)))]
mod imp {
    /// A mutex without poisoning: the state it guards is only ever changed by the non-panicking methods of
    /// `Internals`, so a panic elsewhere cannot leave it half-updated.
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }
}

#[cfg(all(test, aquifer_loom))]
mod imp {
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            // Poisoning cannot happen in the models: nothing panics while holding the lock.
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

pub(crate) use imp::{Mutex, MutexGuard};
