#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod bench;
mod check;
mod target;
mod top;

use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

use crate::target::{Target, exit_code};

/// Check, watch and load-test database connection pools (PostgreSQL, MySQL/MariaDB, Neo4j, SQLite).
///
/// A target is a URL (postgres://, mysql://, mariadb://, neo4j://, bolt://, sqlite: or a file path) or, with
/// --env PREFIX, the PREFIX_URL / PREFIX_POOL_* variables the Aquifer adapters read. Passwords are never
/// printed.
#[derive(Debug, Parser)]
#[command(name = "aquifer", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to each target and print its health; exit 0 healthy, 1 degraded, 2 unhealthy.
    Check {
        /// Database URLs (or SQLite paths).
        urls: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// The server's view: sessions by application and state, utilization against max_connections, leak suspects.
    Top {
        /// The database URL (or SQLite path).
        url: Option<String>,
        #[command(flatten)]
        common: Common,
        /// Redraw every interval (e.g. 2s) until interrupted; with --json, print one JSON document per line.
        #[arg(long, value_parser = humantime::parse_duration)]
        watch: Option<Duration>,
        /// Sessions idle (outside a transaction) longer than this are flagged as leak suspects.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        idle_threshold: Duration,
    },
    /// Load-test a pool: N tasks running a trivial query through a pool of M for D.
    Bench {
        /// The database URL (or SQLite path).
        url: Option<String>,
        #[command(flatten)]
        common: Common,
        /// Concurrent tasks.
        #[arg(long, short = 'c', default_value_t = 16)]
        concurrency: usize,
        /// The pool's max_size.
        #[arg(long, short = 'p', default_value_t = 8)]
        pool: usize,
        /// How long to run (e.g. 10s).
        #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Your peak requests per second, for the sizing suggestion (default: the measured throughput).
        #[arg(long)]
        peak_rps: Option<f64>,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// Read the target(s) from PREFIX_* environment variables (repeatable for check).
    #[arg(long = "env", value_name = "PREFIX")]
    env: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Bound on each connect and wait (e.g. 5s).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

impl Common {
    fn targets(&self, urls: &[String]) -> Result<Vec<Target>, String> {
        let mut targets = Vec::new();
        for url in urls {
            targets.push(Target::from_url(url).map_err(|e| e.to_string())?);
        }
        for prefix in &self.env {
            targets.push(Target::from_env(prefix).map_err(|e| e.to_string())?);
        }
        if targets.is_empty() {
            return Err("no target: give a URL or --env PREFIX".into());
        }
        Ok(targets)
    }

    fn single(&self, url: &Option<String>) -> Result<Target, String> {
        let mut targets = self.targets(url.as_slice())?;
        if targets.len() > 1 {
            return Err("this command takes one target: a URL or one --env PREFIX".into());
        }
        Ok(targets.remove(0))
    }
}

/// Exit status for usage and setup errors, distinct from the health statuses 0-2.
const USAGE_ERROR: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failed(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aquifer: cannot start the Tokio runtime: {e}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("aquifer: {message}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

/// Prints clap's message (help and version on stdout, usage errors on stderr) and picks the exit status: 0 for
/// `--help` and `--version`, [`USAGE_ERROR`] for any other parse failure (clap's own status, 2, would read as
/// "unhealthy" to a script that runs `aquifer check`).
fn parse_failed(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
        _ => ExitCode::from(USAGE_ERROR),
    }
}

async fn run(cli: Cli) -> Result<u8, String> {
    match cli.command {
        Command::Check { urls, common } => {
            let report = check::run(common.targets(&urls)?, common.timeout).await;
            if common.json {
                println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            } else {
                println!("{}", check::table(&report));
            }
            Ok(exit_code(report.status))
        }
        Command::Top { url, common, watch, idle_threshold } => {
            let target = common.single(&url)?;
            top::run(&target, common.timeout, idle_threshold, watch, common.json).await
        }
        Command::Bench { url, common, concurrency, pool, duration, peak_rps } => {
            let target = common.single(&url)?;
            let plan = bench::Plan { concurrency, pool, duration, timeout: common.timeout, peak_rps };
            bench::run(&target, plan, common.json).await
        }
    }
}
