//! Shared by the end-to-end tests: running the examples with OTLP pointed at the test VictoriaMetrics, and the
//! instrument table of docs/metrics.md.

#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::process::{Command, Output};

use aquifer_testing::servers;

/// Export interval of the examples under test: short enough that the pools' observable counts are exported
/// while the pools are alive (the sqlite example runs for ~0.3 s), not only by the final flush after close.
pub const EXPORT_INTERVAL_MS: &str = "100";

/// The path of example `name`'s binary, built by `cargo test`/`cargo nextest` next to the test binaries.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example binary {} is missing; `cargo test`/`cargo nextest run` build it (or `cargo build --examples`)",
        path.display()
    );
    path
}

/// The examples' variables for the project's servers (scripts/dev-services.sh, `aquifer_testing::servers`): the
/// examples' own defaults are the servers' standard ports.
pub fn server_env() -> [(&'static str, String); 3] {
    [
        ("POSTGRES_URL", servers::postgres_url()),
        ("MYSQL_URL", servers::mariadb_url()),
        ("NEO4J_URI", servers::bolt_uri()),
    ]
}

/// Runs example `name` against the project's servers, exporting to VictoriaMetrics under `service.name` = `service`, with `env` on top.
pub fn run_example(name: &str, service: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(example_path(name));
    for var in [
        "OTEL_METRICS_EXPORTER",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_SDK_DISABLED",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(server_env());
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", servers::victoria_otlp_endpoint())
        .env("OTEL_METRIC_EXPORT_INTERVAL", EXPORT_INTERVAL_MS)
        .env("OTEL_SERVICE_NAME", service)
        .env("RUST_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // The examples own fixed tables (the postgres one truncates and refills its table): runs of the same example,
    // from parallel tests or nextest's parallel processes, take turns through a lock file.
    let lock_path = std::env::temp_dir().join(format!("aquifer-example-{name}.lock"));
    let lock = std::fs::File::create(&lock_path).unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
    lock.lock().unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
    let out = cmd.output().unwrap_or_else(|e| panic!("running example {name}: {e}"));
    drop(lock);
    out
}

/// Stdout of a run that must have succeeded.
pub fn succeeded(name: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}); stdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One row of the instrument table in docs/metrics.md.
#[derive(Debug, Clone)]
pub struct Documented {
    /// OpenTelemetry name, e.g. `db.client.connection.wait_time`.
    pub otel: String,
    /// Instrument kind as written, e.g. `Histogram`.
    pub instrument: String,
    /// Unit, e.g. `s`.
    pub unit: String,
    /// Attributes beyond the pool name and system that every point carries, as OTel keys.
    pub attributes: Vec<String>,
    /// Attributes only some points carry (written "... only" in the table).
    pub conditional: Vec<String>,
    /// The Prometheus name (histograms: the base, without `_bucket`/`_sum`/`_count`).
    pub prometheus: String,
}

impl Documented {
    /// Whether the instrument is a histogram.
    pub fn is_histogram(&self) -> bool {
        self.instrument.contains("Histogram")
    }

    /// A series name to query for its presence: `_count` for histograms.
    pub fn presence_name(&self) -> String {
        if self.is_histogram() { format!("{}_count", self.prometheus) } else { self.prometheus.clone() }
    }
}

/// The pools' instrument table of docs/metrics.md: the rows between `<!-- instruments -->` and
/// `<!-- /instruments -->`, columns name | instrument | unit | attributes | Prometheus name | recorded.
pub fn documented_instruments() -> Vec<Documented> {
    instrument_table("instruments")
}

/// aquifer-batch's instrument table of docs/metrics.md (`<!-- batch-instruments -->`), the same columns.
pub fn documented_batch_instruments() -> Vec<Documented> {
    instrument_table("batch-instruments")
}

fn instrument_table(marker: &str) -> Vec<Documented> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).expect("docs/metrics.md");
    let start = doc.find(&format!("<!-- {marker} -->")).expect("instrument table start marker");
    let end = doc.find(&format!("<!-- /{marker} -->")).expect("instrument table end marker");
    let strip = |c: &str| c.trim().trim_matches('`').to_owned();
    doc[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').collect();
            assert!(cells.len() >= 6, "row of docs/metrics.md's instrument table with too few cells: {l}");
            let mut attributes = Vec::new();
            let mut conditional = Vec::new();
            for item in split_outside_parentheses(cells[3]) {
                let key = item.split(' ').next().unwrap_or("").trim_matches('`').to_owned();
                if key.is_empty() || key == "-" {
                    continue;
                }
                if item.contains(" only") { conditional.push(key) } else { attributes.push(key) }
            }
            Documented {
                otel: strip(cells[0]),
                instrument: cells[1].trim().to_owned(),
                unit: strip(cells[2]),
                attributes,
                conditional,
                prometheus: strip(cells[4]),
            }
        })
        .collect()
}

/// `a, b (x, y), c` -> `a`, `b (x, y)`, `c`.
fn split_outside_parentheses(cell: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in cell.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(cell[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(cell[start..].trim());
    items
}

/// OTel attribute key to Prometheus label name.
pub fn label(key: &str) -> String {
    key.replace('.', "_")
}

/// The `file:line` of the helper call the example marks as its N+1 loop: the first line calling `fetch_all(`
/// at or after the marker comment.
pub fn marked_call_site(example: &str) -> String {
    let path = format!("examples/{example}.rs");
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + &path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<&str> = source.lines().collect();
    let marker = lines
        .iter()
        .position(|l| l.contains("// The N+1 loop: aquifer::n_plus_one reports"))
        .unwrap_or_else(|| panic!("{path} has no N+1 marker comment"));
    let call = (marker..lines.len())
        .find(|&i| lines[i].contains("fetch_all("))
        .unwrap_or_else(|| panic!("{path}: no fetch_all( after the marker"));
    format!("{path}:{}", call + 1)
}
