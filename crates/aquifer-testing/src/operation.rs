//! The check every adapter's `db.operation.name` function passes: the rules live once in
//! `aquifer_core::metrics::operation_name`, each adapter brings only its keyword list, so one checker proves
//! that each adapter wires its list in and names its statements the same way.

use aquifer_core::metrics::OTHER_OPERATION;

/// What comes before a statement's first keyword in real statements and must not change its name: white space,
/// each comment style an adapter's language has (`--`, `//`, `#`, `/* */`) and opening parentheses.
const PREFIXES: [&str; 7] =
    ["", "  \n\t", "/* app */ ", "-- note\n", "// note\n ", "# note\n", "  /* tag */ -- note\n (("];

/// Asserts that `operation_name` names a statement by its leading keyword when that keyword is one of
/// `keywords` (each entry, in upper and lower case, after each of the prefixes real statements carry), and
/// `_OTHER` when it is not: for each statement of `unknown` (which start with a word the adapter does not list),
/// an empty statement and a statement that is only a comment.
///
/// ```
/// fn operation_name(sql: &str) -> &'static str {
///     aquifer_core::metrics::operation_name(sql, &["SELECT", "OPTIONAL MATCH"])
/// }
/// aquifer_testing::check_operation_names(operation_name, &["SELECT", "OPTIONAL MATCH"], &["GRANT ALL"]);
/// ```
///
/// # Panics
/// On the first statement named otherwise, naming the statement.
pub fn check_operation_names(operation_name: impl Fn(&str) -> &'static str, keywords: &[&str], unknown: &[&str]) {
    for keyword in keywords {
        for prefix in PREFIXES {
            for spelling in [keyword.to_string(), keyword.to_lowercase()] {
                let statement = format!("{prefix}{spelling} x");
                assert_eq!(operation_name(&statement), *keyword, "{statement:?}");
            }
        }
    }
    for statement in unknown.iter().copied().chain(["", "-- only a comment", "/* unterminated"]) {
        assert_eq!(operation_name(statement), OTHER_OPERATION, "{statement:?}");
    }
}
