//! A recording loader for the BatchLoader tests: values are `key * 10`, keys divisible by 7 are missing; it
//! records every batch it is called with, can be held in flight by a gate, and can fail or panic.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use aquifer_batch::Loader;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
#[error("database unreachable (batch of {0} keys)")]
pub struct Unreachable(pub usize);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Ok,
    Fail,
    Panic,
}

#[derive(Clone)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<Vec<u64>>>>,
    /// When set, each call waits for one permit before answering.
    pub gate: Option<Arc<Semaphore>>,
    pub mode: Arc<Mutex<Mode>>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder { calls: Arc::default(), gate: None, mode: Arc::new(Mutex::new(Mode::Ok)) }
    }

    /// A recorder whose calls wait on the returned semaphore.
    pub fn gated() -> (Self, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        (Recorder { gate: Some(Arc::clone(&gate)), ..Recorder::new() }, gate)
    }

    pub fn with_mode(mode: Mode) -> Self {
        let r = Recorder::new();
        *r.mode.lock() = mode;
        r
    }

    pub fn calls(&self) -> Vec<Vec<u64>> {
        self.calls.lock().clone()
    }

    /// Each call's keys, sorted, for comparisons that ignore arrival order.
    pub fn sorted_calls(&self) -> Vec<Vec<u64>> {
        self.calls()
            .into_iter()
            .map(|mut c| {
                c.sort_unstable();
                c
            })
            .collect()
    }
}

impl Loader for Recorder {
    type Key = u64;
    type Value = u64;
    type Error = Unreachable;

    async fn load(&self, keys: &[u64]) -> Result<HashMap<u64, u64>, Unreachable> {
        self.calls.lock().push(keys.to_vec());
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate closed").forget();
        }
        let mode = *self.mode.lock();
        match mode {
            Mode::Ok => Ok(keys.iter().filter(|&&k| k % 7 != 0).map(|&k| (k, k * 10)).collect()),
            Mode::Fail => Err(Unreachable(keys.len())),
            Mode::Panic => panic!("loader bug on {} keys", keys.len()),
        }
    }
}

/// Lets every ready task run until the runtime is idle (current-thread runtime).
pub async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}
