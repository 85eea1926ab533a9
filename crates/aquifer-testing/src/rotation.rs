//! The rotation drill the server adapters' credential tests share: [`ROTATION_TASKS`] tasks run requests
//! through the pool under test while the password changes every [`ROTATION_EVERY`] for [`ROTATION_FOR`], the
//! server and the password file changed in the order the test asks ([`Order`]), and the pool's idle
//! connections are dropped between requests so that new connections keep being opened (with whatever
//! password is current). The drill counts failed requests and rotations; the test checks what its backend can
//! see (the old password refused, a fresh connection accepted).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How many tasks run the load.
pub const ROTATION_TASKS: usize = 32;
/// How often the password changes.
pub const ROTATION_EVERY: Duration = Duration::from_secs(2);
/// How long the drill rotates.
pub const ROTATION_FOR: Duration = Duration::from_secs(30);
/// How long the shorter drill of `retire_on_rotation` rotates.
pub const RETIRE_DRILL_FOR: Duration = Duration::from_secs(12);

/// Which side learns the new password first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `ALTER ROLE`/`ALTER USER` first, then the file: new connections briefly offer the old password.
    ServerFirst,
    /// The file first, then the server: new connections briefly offer a password the server does not know
    /// yet.
    FileFirst,
}

/// What the drill saw.
#[derive(Debug, Default, Clone)]
pub struct RotationReport {
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed, with the first few errors.
    pub failed: u64,
    /// The first errors (at most ten), as displayed.
    pub errors: Vec<String>,
    /// Rotations done (the password changed on both sides).
    pub rotations: u32,
    /// The password in force at the end.
    pub last_password: String,
}

impl RotationReport {
    /// Checks the outcome of a full drill ([`rotate_under_load`]) in `order` against a pool whose counters are
    /// `stats`: no request failed, every rotation was done under load, and the pool opened new connections
    /// throughout (more than one a rotation).
    pub fn assert_full_drill_passed(&self, order: Order, stats: &aquifer_core::Stats) {
        eprintln!("{order:?}: {self:?}; pool {stats:?}");
        assert_eq!(self.failed, 0, "{order:?}: {self:?}");
        assert!(self.rotations >= 14 && self.ok > 1000, "{order:?}: {self:?}");
        let created = stats.created;
        assert!(created > u64::from(self.rotations), "new connections were opened throughout: {created} ({self:?})");
    }

    /// Checks the outcome of the shorter drill of `retire_on_rotation` ([`rotate_under_load`] for
    /// [`RETIRE_DRILL_FOR`]) in `order`, its retirements sampled as `spread`: no request failed, connections were
    /// retired at each rotation, and never half the pool (of 8) within one sample.
    pub fn assert_retire_drill_passed(&self, order: Order, spread: &Spread) {
        assert_eq!(self.failed, 0, "{order:?}: {self:?}");
        assert!(self.rotations >= 5 && self.ok > 300, "{order:?}: {self:?}");
        assert!(spread.total >= u64::from(self.rotations), "connections were retired at each rotation: {spread:?}");
        assert!(spread.busiest <= 4, "never half the pool at once: {spread:?}");
    }
}

/// A password file rewritten the way Kubernetes and Vault agent do it: the new content is written beside the
/// file and renamed over it, so a reader sees the old content or the new, never half of one.
#[derive(Debug)]
pub struct PasswordFile {
    path: PathBuf,
}

impl PasswordFile {
    /// A file at `path` holding `password` (with a trailing newline, as `echo` writes it).
    pub fn create(path: impl Into<PathBuf>, password: &str) -> std::io::Result<Self> {
        let file = PasswordFile { path: path.into() };
        file.write(password)?;
        Ok(file)
    }

    /// The file's path, for `password_file` / `{PREFIX}_PASSWORD_FILE`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the content atomically.
    pub fn write(&self, password: &str) -> std::io::Result<()> {
        let next = self.path.with_extension("next");
        std::fs::write(&next, format!("{password}\n"))?;
        std::fs::rename(&next, &self.path)
    }
}

/// Runs the drill for `rotate_for` ([`ROTATION_FOR`] for the full drill, [`RETIRE_DRILL_FOR`] for the shorter
/// one of `retire_on_rotation`): `request` is one request through the pool (its error displayed), `drop_idle`
/// closes the pool's idle connections (so the next requests open new ones), `alter` changes the server's
/// password. Passwords are `pw-1`, `pw-2`, ...; the file and the server start at `pw-0`.
pub async fn rotate_under_load<Req, ReqFut, Alt, AltFut>(
    order: Order,
    rotate_for: Duration,
    file: &PasswordFile,
    request: Req,
    drop_idle: impl Fn() + Send + Sync + 'static,
    alter: Alt,
) -> RotationReport
where
    Req: Fn() -> ReqFut + Send + Sync + 'static,
    ReqFut: Future<Output = Result<(), String>> + Send + 'static,
    Alt: Fn(String) -> AltFut,
    AltFut: Future<Output = ()>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let request = Arc::new(request);
    let drop_idle = Arc::new(drop_idle);
    let mut tasks = Vec::new();
    for task in 0..ROTATION_TASKS {
        let (stop, ok, failed, errors, request) =
            (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed), Arc::clone(&errors), Arc::clone(&request));
        let drop_idle = Arc::clone(&drop_idle);
        tasks.push(tokio::spawn(async move {
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                match request().await {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        let mut errors = errors.lock();
                        if errors.len() < 10 {
                            errors.push(e);
                        }
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                n += 1;
                // One task churns the pool: every few requests its idle connections go, new ones open.
                if task == 0 && n.is_multiple_of(8) {
                    drop_idle();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let started = Instant::now();
    let mut rotations = 0;
    let mut password = String::from("pw-0");
    while started.elapsed() < rotate_for {
        tokio::time::sleep(ROTATION_EVERY).await;
        rotations += 1;
        password = format!("pw-{rotations}");
        match order {
            Order::ServerFirst => {
                alter(password.clone()).await;
                file.write(&password).expect("rewrite the password file");
            }
            Order::FileFirst => {
                file.write(&password).expect("rewrite the password file");
                alter(password.clone()).await;
            }
        }
    }
    // A last stretch of load after the last rotation, then stop.
    tokio::time::sleep(ROTATION_EVERY).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a load task panicked");
    }
    RotationReport {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        errors: errors.lock().clone(),
        rotations,
        last_password: password,
    }
}

/// Samples a count of retirements (a pool's `Stats::closed_rotated`) every [`SAMPLE_EVERY`] in the background,
/// to show how they spread: how many happened in the busiest sample, and over how many samples.
#[derive(Debug)]
pub struct RetirementWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<u64>>,
}

/// How often a [`RetirementWatch`] samples.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// What a [`RetirementWatch`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// Retirements in all.
    pub total: u64,
    /// The most within one sample ([`SAMPLE_EVERY`]).
    pub busiest: u64,
    /// Samples in which at least one happened.
    pub samples_with_retirements: usize,
}

impl RetirementWatch {
    /// Starts sampling `count`.
    pub fn start(count: impl Fn() -> u64 + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut increments = Vec::new();
            let mut last = count();
            while !stopped.load(Ordering::Relaxed) {
                tokio::time::sleep(SAMPLE_EVERY).await;
                let now = count();
                increments.push(now - last);
                last = now;
            }
            increments
        });
        RetirementWatch { stop, task }
    }

    /// Stops sampling and summarises.
    pub async fn finish(self) -> Spread {
        self.stop.store(true, Ordering::Relaxed);
        let increments = self.task.await.expect("the sampler panicked");
        Spread {
            total: increments.iter().sum(),
            busiest: increments.iter().copied().max().unwrap_or(0),
            samples_with_retirements: increments.iter().filter(|&&n| n > 0).count(),
        }
    }
}
