//! The benchmarks' client-cost measure: this process's CPU time, which other processes on the machine disturb
//! far less than throughput.

use std::time::Duration;

/// User + system CPU time of this process so far (Linux: `/proc/self/stat`, in clock ticks of 10 ms; zero
/// where the file cannot be read).
pub fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
