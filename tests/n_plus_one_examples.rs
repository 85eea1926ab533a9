//! Each example runs as one N+1 scope (its `main`): on every backend the detector reports the example's N+1
//! section, once, at the `fetch_all` call under the comment "The N+1 loop", with the number of calls the
//! section makes; and nothing else (not its BatchLoader section, not its one-query sections, not its bulk
//! helpers).
//!
//! Needs the project's servers (`bash scripts/dev-services.sh start`); the examples are built by
//! `cargo test`/`cargo nextest run`.

mod common;

use common::{marked_call_site, run_example, succeeded};

/// `text` without ANSI colour sequences (tracing-subscriber colours its fields).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The findings logged by a run: `(file:line, count)` of every `aquifer::n_plus_one` warning.
fn findings(output: &str) -> Vec<(String, u32)> {
    strip_ansi(output)
        .lines()
        .filter(|l| l.contains("aquifer::n_plus_one"))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|t| t.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in the warning: {l}"))
                    .to_owned()
            };
            (field("code.location="), field("count=").parse().expect("a count"))
        })
        .collect()
}

/// Runs `example` with the detector's warnings on and checks it reports exactly its N+1 section, `count` calls.
fn reports_only_the_n_plus_one_section(example: &str, count: u32) {
    let out = run_example(example, "aquifer-n-plus-one-test", &[("RUST_LOG", "error,aquifer::n_plus_one=warn")]);
    let stdout = succeeded(example, &out);
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        findings(&all),
        vec![(marked_call_site(example), count)],
        "example {example}: the N+1 section, once, and nothing else; output:\n{all}"
    );
}

#[test]
fn postgres_example_n_plus_one_section_is_the_only_finding() {
    // 5 runs of 100 albums, one query each.
    reports_only_the_n_plus_one_section("postgres", 500);
}

#[test]
fn mysql_example_n_plus_one_section_is_the_only_finding() {
    // 5 runs of 200 users, one query each.
    reports_only_the_n_plus_one_section("mysql", 1000);
}

#[test]
fn neo4j_example_n_plus_one_section_is_the_only_finding() {
    // 3 runs of 200 artists, one query each.
    reports_only_the_n_plus_one_section("neo4j", 600);
}

#[test]
fn sqlite_example_n_plus_one_section_is_the_only_finding() {
    // 5 runs of 200 plots, one query each.
    reports_only_the_n_plus_one_section("sqlite", 1000);
}
