//! The scan fails on a password in an output or a log line, and on a scan that never saw a redacted value.

use aquifer_testing::SecretScan;

/// A scan for the password `hunter2` that has seen it redacted in a URL.
fn scan_of_a_redacted_url() -> SecretScan {
    let mut scan = SecretScan::start("hunter2");
    scan.seen("postgres://app:***@db/test");
    scan
}

#[test]
fn redacted_outputs_and_logs_pass() {
    let scan = scan_of_a_redacted_url();
    tracing::trace!(url = "postgres://app:***@db/test", "connecting");
    scan.assert_clean();
}

#[test]
#[should_panic(expected = "output #2 holds the password")]
fn a_password_in_an_output_fails() {
    let mut scan = scan_of_a_redacted_url();
    scan.push("password=hunter2");
    scan.assert_clean();
}

#[test]
#[should_panic(expected = "holds the password")]
fn a_password_in_a_trace_line_fails() {
    let scan = scan_of_a_redacted_url();
    tracing::trace!(password = "hunter2", "connecting");
    scan.assert_clean();
}

#[test]
#[should_panic(expected = "never saw the password")]
fn a_scan_without_a_redaction_marker_fails() {
    let mut scan = SecretScan::start("hunter2");
    scan.seen("nothing here");
    scan.assert_clean();
}
