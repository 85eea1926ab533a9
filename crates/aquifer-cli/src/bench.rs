//! `aquifer bench`: N tasks run the backend's validation round trip through a pool of M for a duration; the latency histogram,
//! the time spent waiting for a connection, and a pool size for a given peak load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::target::{Opened, Target};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Concurrent tasks.
    pub concurrency: usize,
    /// The pool's max_size.
    pub pool: usize,
    /// How long to run.
    pub duration: Duration,
    /// Bound on each wait for a connection (the pool's acquire_timeout) and each connect.
    pub timeout: Duration,
    /// The operator's peak load for the sizing suggestion.
    pub peak_rps: Option<f64>,
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: f64| us / 1000.0;
        Percentiles {
            mean: ms(h.mean()),
            p50: ms(h.value_at_quantile(0.5) as f64),
            p99: ms(h.value_at_quantile(0.99) as f64),
            max: ms(h.max() as f64),
        }
    }
}

/// The sizing rule applied to the measurement.
#[derive(Debug, Serialize)]
pub struct Sizing {
    /// The peak load the suggestion is for: `--peak-rps`, or the measured throughput.
    pub peak_rps: f64,
    /// Mean time a connection is held per operation (the query, not the wait), in milliseconds.
    pub avg_query_ms: f64,
    /// `ceil(peak_rps x avg_query_time)`, at least 1.
    pub pool_size: u64,
}

/// The result of a run.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The target, password redacted.
    pub target: String,
    /// `db.system.name`.
    pub system: String,
    /// What each operation ran: `validation`, the backend's validation round trip (the driver's ping on
    /// PostgreSQL and MySQL, `RETURN 1` on Neo4j, `SELECT 1` on SQLite).
    pub query: &'static str,
    /// Concurrent tasks.
    pub concurrency: usize,
    /// The pool's max_size.
    pub pool_size: usize,
    /// Measured wall time, in seconds.
    pub elapsed_s: f64,
    /// Successful operations (checkout + query + return).
    pub operations: u64,
    /// Operations per second.
    pub throughput_rps: f64,
    /// Checkout + query, per successful operation.
    pub latency_ms: Percentiles,
    /// Waiting for a connection (the checkout alone).
    pub wait_ms: Percentiles,
    /// The query alone, on a checked-out connection.
    pub query_ms: Percentiles,
    /// Checkouts that had to wait for a connection (the pool's `waited` counter).
    pub waits: u64,
    /// Checkouts that gave up after the timeout.
    pub timeouts: u64,
    /// Other failed operations.
    pub errors: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The pool size the measurement suggests.
    pub sizing: Sizing,
}

struct Recorder {
    latency: Histogram<u64>,
    wait: Histogram<u64>,
    query: Histogram<u64>,
    timeouts: u64,
    errors: u64,
    last_error: Option<String>,
}

impl Recorder {
    fn new() -> Recorder {
        // Microseconds, from 1 µs to 10 minutes, 3 significant digits.
        let h = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid");
        Recorder { latency: h(), wait: h(), query: h(), timeouts: 0, errors: 0, last_error: None }
    }

    fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.wait.add(&other.wait);
        let _ = self.query.add(&other.query);
        self.timeouts += other.timeouts;
        self.errors += other.errors;
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX).max(1)
}

/// One operation: check out, run the backend's validation round trip, return. `Ok((wait, query))`, or
/// `Err((timed_out, message))`.
async fn operation(pool: &Opened) -> Result<(Duration, Duration), (bool, String)> {
    let ping = pool.ping().await.map_err(|e| (e.timed_out, e.message))?;
    Ok((ping.wait, ping.round_trip))
}

/// Runs the load test. Exit status: 0 when every operation succeeded, 1 when some failed or timed out, 2
/// when none succeeded.
pub async fn run(target: &Target, plan: Plan, json: bool) -> Result<u8, String> {
    if plan.concurrency == 0 || plan.pool == 0 {
        return Err("--concurrency and --pool must be at least 1".into());
    }
    let pool = Arc::new(target.open(plan.pool, plan.timeout).await?);
    // One operation first: a wrong URL or password fails here with its cause, not as a run of errors.
    if let Err((_, e)) = operation(&pool).await {
        pool.close().await;
        return Err(format!("{target}: {e}"));
    }
    let system = pool.health().await.system;
    let before = pool.stats();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let tasks: Vec<_> = (0..plan.concurrency)
        .map(|_| {
            let pool = Arc::clone(&pool);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut rec = Recorder::new();
                while Instant::now() < deadline {
                    match operation(&pool).await {
                        Ok((wait, query)) => {
                            rec.wait.saturating_record(micros(wait));
                            rec.query.saturating_record(micros(query));
                            rec.latency.saturating_record(micros(wait + query));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err((timed_out, e)) => {
                            if timed_out {
                                rec.timeouts += 1;
                            } else {
                                rec.errors += 1;
                            }
                            rec.last_error = Some(e);
                        }
                    }
                }
                rec
            })
        })
        .collect();
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(plan.duration.as_millis() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now()))).await;
        let elapsed = started.elapsed();
        bar.set_position(elapsed.as_millis().min(plan.duration.as_millis()) as u64);
        let ops = done.load(Ordering::Relaxed);
        bar.set_message(format!("{ops} ops, {:.0}/s", ops as f64 / elapsed.as_secs_f64().max(1e-3)));
    }
    let mut total = Recorder::new();
    for task in tasks {
        let rec = task.await.map_err(|e| format!("a load task failed: {e}"))?;
        total.merge(&rec);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let after = pool.stats();
    pool.close().await;

    let operations = total.latency.len();
    let throughput = operations as f64 / elapsed.as_secs_f64();
    let avg_query_s = total.query.mean() / 1e6;
    let peak = plan.peak_rps.unwrap_or(throughput);
    let report = BenchReport {
        target: target.to_string(),
        system,
        query: "validation",
        concurrency: plan.concurrency,
        pool_size: plan.pool,
        elapsed_s: elapsed.as_secs_f64(),
        operations,
        throughput_rps: throughput,
        latency_ms: Percentiles::of(&total.latency),
        wait_ms: Percentiles::of(&total.wait),
        query_ms: Percentiles::of(&total.query),
        waits: after.waited - before.waited,
        timeouts: total.timeouts,
        errors: total.errors,
        last_error: total.last_error,
        sizing: Sizing { peak_rps: peak, avg_query_ms: avg_query_s * 1000.0, pool_size: pool_size(peak, avg_query_s) },
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", render(&report, &total.latency));
    }
    Ok(if operations == 0 {
        2
    } else if report.timeouts + report.errors > 0 {
        1
    } else {
        0
    })
}

/// Little's law as a sizing rule (docs/operations.md, "Sizing a pool"): `ceil(peak requests per second x
/// average query time)`, at least one connection.
pub fn pool_size(peak_rps: f64, avg_query_s: f64) -> u64 {
    ((peak_rps * avg_query_s).ceil() as u64).max(1)
}

fn render(r: &BenchReport, latency: &Histogram<u64>) -> String {
    let mut out = format!(
        "{} ({}): {} tasks, pool {}, {:.1} s, `{}`\n",
        r.target, r.system, r.concurrency, r.pool_size, r.elapsed_s, r.query
    );
    out.push_str(&format!(
        "throughput   {:.0} ops/s ({} ops, {} waited for a connection, {} timeouts, {} errors)\n",
        r.throughput_rps, r.operations, r.waits, r.timeouts, r.errors
    ));
    let line = |name: &str, p: &Percentiles| {
        format!("{name:<12} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  mean {:.3} ms\n", p.p50, p.p99, p.max, p.mean)
    };
    out.push_str(&line("latency", &r.latency_ms));
    out.push_str(&line("wait", &r.wait_ms));
    out.push_str(&line("query", &r.query_ms));
    out.push_str("latency histogram:\n");
    out.push_str(&histogram(latency));
    if let Some(e) = &r.last_error {
        out.push_str(&format!("last error: {e}\n"));
    }
    out.push_str(&format!(
        "sizing: pool_size = ceil({:.0} rps x {:.3} ms) = {}{}\n",
        r.sizing.peak_rps,
        r.sizing.avg_query_ms,
        r.sizing.pool_size,
        if r.timeouts > 0 || r.wait_ms.p99 > r.query_ms.p99 {
            " (callers waited: the pool, not the server, bounded this run)"
        } else {
            ""
        }
    ));
    out
}

/// Microseconds as `512 µs` or `4.1 ms`.
fn short(us: u64) -> String {
    if us < 1000 { format!("{us} µs") } else { format!("{:.1} ms", us as f64 / 1000.0) }
}

/// A text histogram of latencies in power-of-two microsecond buckets.
fn histogram(h: &Histogram<u64>) -> String {
    let total = h.len().max(1);
    let mut out = String::new();
    let mut low = 0u64;
    let mut high = 16u64;
    while low <= h.max() {
        let count = h.count_between(low, high.saturating_sub(1));
        if count > 0 {
            let bar = "#".repeat(((count * 50).div_ceil(total)) as usize);
            out.push_str(&format!("  {:>10} - {:>10} {count:>9} {bar}\n", short(low), short(high)));
        }
        low = high;
        high = high.saturating_mul(2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pool_size;

    #[test]
    fn pool_size_is_peak_rps_times_query_time_rounded_up() {
        assert_eq!(pool_size(1000.0, 0.005), 5);
        assert_eq!(pool_size(1000.0, 0.0051), 6);
        assert_eq!(pool_size(200.0, 0.050), 10);
    }

    #[test]
    fn pool_size_is_at_least_one() {
        assert_eq!(pool_size(0.0, 0.010), 1);
        assert_eq!(pool_size(10.0, 0.000_01), 1);
    }
}
