//! Exit statuses of command-line parsing: a usage error exits 64 (never 2, which `check` and `top` use for
//! "unhealthy" and "critical"); `--help` and `--version` exit 0. No server is needed.

use assert_cmd::Command;

/// Runs `aquifer ARGS`: exit status, stdout, stderr.
fn aquifer(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::cargo_bin("aquifer").expect("the aquifer binary is built").args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn parse_errors_exit_64_with_clap_s_message_on_stderr() {
    for (args, says) in [
        (&["check", "--no-such-flag", "x.db"][..], "unexpected argument '--no-such-flag'"),
        (&["frobnicate"][..], "unrecognized subcommand 'frobnicate'"),
        (&[][..], "Usage:"),
        (&["check", "--timeout", "soon", "x.db"][..], "invalid value 'soon' for '--timeout"),
        (&["bench", "--concurrency", "many", "x.db"][..], "invalid value 'many' for '--concurrency"),
    ] {
        let (code, stdout, stderr) = aquifer(args);
        assert_eq!(code, Some(64), "aquifer {args:?}: {stderr}");
        assert!(stderr.contains(says), "aquifer {args:?}: {stderr}");
        assert!(stdout.is_empty(), "aquifer {args:?}: {stdout}");
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for (args, says) in [
        (&["--help"][..], "Usage: aquifer"),
        (&["-h"][..], "Usage: aquifer"),
        (&["check", "--help"][..], "Usage: aquifer check"),
        (&["help", "top"][..], "Usage: aquifer top"),
        (&["--version"][..], concat!("aquifer ", env!("CARGO_PKG_VERSION"))),
    ] {
        let (code, stdout, stderr) = aquifer(args);
        assert_eq!(code, Some(0), "aquifer {args:?}: {stderr}");
        assert!(stdout.contains(says), "aquifer {args:?}: {stdout}");
    }
}
