//! The scan behind the adapters' "no password in any output" tests: collect every output a test can make a
//! crate produce (errors, `Debug`, `Display`, serialised configs, health reports) and the crate's own log
//! lines, then check that none holds the password.

use std::fmt::{Debug, Display};

use tracing::subscriber::DefaultGuard;

use crate::LogBuffer;

/// Outputs and log lines gathered for one password, checked by [`SecretScan::assert_clean`].
///
/// ```
/// let mut scan = aquifer_testing::SecretScan::start("hunter2");
/// let url = "postgres://app:***@db/test";
/// scan.seen(&url);
/// tracing::warn!(%url, "connect failed");
/// scan.assert_clean(); // the logs and both renderings of `url` are free of "hunter2" and show "***"
/// ```
pub struct SecretScan {
    secret: String,
    outputs: Vec<String>,
    logs: LogBuffer,
    guard: Option<DefaultGuard>,
}

impl SecretScan {
    /// Starts a scan for `secret`: from here until [`assert_clean`](Self::assert_clean), every event this
    /// thread's code logs through `tracing`, at any level down to TRACE, is kept for the check. (Tasks
    /// spawned onto other threads log to their own thread's subscriber; drive what you scan from the test's
    /// thread.)
    pub fn start(secret: &str) -> Self {
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .finish();
        let guard = Some(tracing::subscriber::set_default(subscriber));
        SecretScan { secret: secret.to_owned(), outputs: Vec::new(), logs, guard }
    }

    /// Adds one output (a serialised config, a JSON health report) to the scan.
    pub fn push(&mut self, output: impl Into<String>) {
        self.outputs.push(output.into());
    }

    /// Adds both renderings of `x`, `{x:?}` and `{x}`, to the scan.
    pub fn seen(&mut self, x: &(impl Debug + Display + ?Sized)) {
        self.outputs.push(format!("{x:?}"));
        self.outputs.push(format!("{x}"));
    }

    /// Stops collecting logs and checks the outputs and the logs. Panics, showing the output, when one holds
    /// the password, and when no output shows the `***` redaction marker (then the scanned paths never saw
    /// the password, and the scan proves nothing).
    pub fn assert_clean(mut self) {
        drop(self.guard.take());
        self.outputs.push(self.logs.text());
        assert!(
            self.outputs.iter().any(|o| o.contains("***")),
            "no output shows the redaction marker `***`: the scanned paths never saw the password"
        );
        for (i, output) in self.outputs.iter().enumerate() {
            assert!(!output.contains(&self.secret), "output #{i} holds the password:\n{output}");
        }
    }
}
