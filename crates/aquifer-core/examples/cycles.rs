//! N uncontended `get()` + drop cycles of a no-op manager, for counting the engine's instructions per cycle
//! with callgrind (deterministic, unlike timings on a shared machine):
//!
//!     cargo build --release -p aquifer-core --example cycles
//!     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg \
//!         --toggle-collect='*Acquire*as core::future::future::Future>::poll' \
//!         --toggle-collect='core::ptr::drop_in_place<aquifer_core::pooled::Pooled*' \
//!         target/release/examples/cycles 40000
//!
//! "Collected" divided by the cycles (plus one warm-up) is the cost of one checkout and return, the pool's
//! own code only: the collection is switched on inside `get()`'s future and the guard's drop.
//!
//! With `sdk` as second argument the pool records into a real OpenTelemetry SDK meter provider (add
//! `--features otel-bound-instruments` to the build for bound instruments, as aquifer-otel builds them): the
//! difference to the run without is what recording metrics costs per cycle. The run ends with a collection, so
//! that the process's CPU time (`/usr/bin/time`, unlike callgrind's count inside `get()` and the drop) includes
//! what is recorded at collection time. The loop's own on-CPU time per cycle is printed to stderr: timing
//! without what other processes on the machine take.
//!
//! With `ctx` as second argument each checkout is a `get_with` of a session context whose `apply` and
//! `clear` do nothing: the engine's own cost of a context (the boxed slow path, the apply, the return through
//! a background task that clears it), without a database's round trips. Compare its on-CPU time per cycle
//! with a run without arguments (callgrind cannot: the clear runs in a task outside the toggled functions).
//!
//! With `watch` as second argument each cycle is instead what a helper adds to a statement for the N+1 detector
//! inside an open scope (`aquifer_core::n_plus_one`): the watch of a primary-key lookup's text and its drop,
//! 4 per scope as a request of 4 queries. Count its instructions with
//!
//!     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg \
//!         --toggle-collect='aquifer_core::pool::Pool<M>::n_plus_one_watch' \
//!         --toggle-collect='core::ptr::drop_in_place<aquifer_core::n_plus_one::Watch>' \
//!         target/release/examples/cycles 40000 watch

use std::sync::Arc;

use aquifer_core::{BoxError, Pool, SessionContext};
use aquifer_testing::NoopManager;

/// A context that sets nothing: what remains is the engine's handling of a context.
struct Nothing;

#[aquifer_core::async_trait]
impl SessionContext<u64> for Nothing {
    async fn apply(&self, _: &mut u64) -> Result<(), BoxError> {
        Ok(())
    }

    async fn clear(&self, _: &mut u64) -> Result<(), BoxError> {
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(40_000);
    let capture = (std::env::args().nth(2).as_deref() == Some("sdk")).then(aquifer_testing::MetricsCapture::new);
    let ctx: Option<Arc<dyn SessionContext<_>>> =
        (std::env::args().nth(2).as_deref() == Some("ctx")).then(|| Arc::new(Nothing) as _);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut builder = Pool::builder(NoopManager::new("cycles"))
            .max_size(16)
            .validation_bypass(std::time::Duration::from_secs(3600));
        if let Some(c) = &capture {
            builder = builder.meter(c.meter());
        }
        let pool = builder.build()?;
        drop(pool.get().await?);
        let (cpu0, wall0) = (thread_cpu_ns(), std::time::Instant::now());
        if std::env::args().nth(2).as_deref() == Some("watch") {
            let caller = std::panic::Location::caller();
            for _ in 0..n / 4 {
                aquifer_core::n_plus_one::scope(async {
                    for _ in 0..4 {
                        let watch = pool.n_plus_one_watch("SELECT id, name, value FROM t WHERE id = $1", Some(caller));
                        drop(std::hint::black_box(watch));
                    }
                })
                .await;
            }
        }
        for _ in 0..n * u64::from(std::env::args().nth(2).as_deref() != Some("watch")) {
            let conn = match &ctx {
                Some(ctx) => pool.get_with(Arc::clone(ctx)).await?,
                None => pool.get().await?,
            };
            std::hint::black_box(&*conn);
        }
        let (cpu, wall) = (thread_cpu_ns().zip(cpu0).map(|(b, a)| b - a), wall0.elapsed());
        // On-CPU time of the loop's thread: unlike wall time, not inflated by other processes taking the core.
        match cpu {
            Some(cpu) => eprintln!(
                "loop: {:.1} ns on CPU per cycle ({:.1} ns wall)",
                cpu as f64 / n as f64,
                wall.as_nanos() as f64 / n as f64
            ),
            None => eprintln!("loop: {:.1} ns wall per cycle", wall.as_nanos() as f64 / n as f64),
        }
        if let Some(c) = &capture {
            // A collection, inside the measured process: waits the pool records at collection time are counted.
            let waits = c.collect().get("db.client.connection.wait_time").map_or(0, |m| m.count());
            eprintln!("the SDK aggregated {waits} waits");
        }
        Ok(())
    })
}

/// Nanoseconds this thread has run on a CPU (Linux's `/proc/thread-self/schedstat`), if readable.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}
