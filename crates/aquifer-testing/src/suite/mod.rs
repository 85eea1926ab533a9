//! The behaviour suite every adapter runs: one test per behaviour the adapter contract promises, written
//! once, generically over [`Adapter`](aquifer_core::Adapter) and the adapter's [`Hooks`].
//!
//! An adapter's `tests/suite.rs` is its hooks and one macro call:
//!
//! ```ignore
//! struct PgSuite;
//! impl aquifer_testing::suite::Hooks for PgSuite { /* the test server, the statements, the capabilities */ }
//! aquifer_testing::behaviour_suite!(PgSuite);
//! ```
//!
//! The macro expands to one `#[test]` per behaviour, named for it (`a_dropped_transaction_is_rolled_back`,
//! ...), each on a runtime of its own (multi-thread, two workers). The behaviours, by group:
//!
//! - [`env`](mod@env): configuration from `{PREFIX}_*` variables, the process environment (a value that is not
//!   UTF-8), unknown and misspelt variables, no fallback to another prefix's variables;
//! - [`parsers`]: property tests of variables, URLs and serde: nothing panics, every error names its input,
//!   no password shows;
//! - [`no_secret`]: no output (errors, `Debug`, health reports, logs) holds the password;
//! - [`lifecycle`]: checkout and return, `min_idle`, health fields, metric names, a refused start;
//! - [`faults`]: a dropped statement or transaction, a failed statement, sessions killed while idle;
//! - [`load`]: many tasks on a small pool, waiters served in order, restarts of a private server under load.
//!
//! # Behaviours a backend cannot have
//!
//! Some behaviours need a capability not every backend has: SQLite has no server sessions to kill and no
//! server to restart; the fake adapter has no driver that could show a password. The hooks of such a
//! capability return [`Unsupported`] (their default). A behaviour that meets `Unsupported` fails, naming the
//! hook, unless the adapter declares it unsupported in its macro call, with the reason:
//!
//! ```ignore
//! aquifer_testing::behaviour_suite!(SqliteSuite, unsupported {
//!     helpers_fail_no_request_after_idle_sessions_were_killed: "SQLite has no server sessions to kill",
//! });
//! ```
//!
//! A declared behaviour still runs as a test of the declaration: it passes when the behaviour stops at the
//! missing capability (printing the reason and the hook on stderr), and fails when it runs to the end, since
//! then the declaration is false and would hide a behaviour the backend has. Nothing is skipped or ignored,
//! and a backend never passes a behaviour by doing nothing. A name that is not a behaviour does not compile.
//!
//! A behaviour that uses an optional capability only for one check (counting server sessions while many
//! tasks run) runs without it and says so on stderr.

pub mod env;
pub mod faults;
mod hooks;
pub mod lifecycle;
pub mod load;
pub mod no_secret;
pub mod parsers;

use std::future::Future;
use std::time::Duration;

pub use hooks::{
    BoxError, BoxFuture, Hooks, PoolOf, Private, Secret, Serde, Sessions, Unsupported, Write, classify, failures,
};
pub use opentelemetry::metrics::Meter;

/// What a behaviour returns: done, or stopped by a capability the backend does not have.
pub type Checked = Result<(), Unsupported>;

/// The longest any single step (a checkout, a statement, a health check) may take before the test fails
/// instead of hanging.
pub const STEP: Duration = Duration::from_secs(20);

/// The script that starts the test servers, named when one does not answer.
pub const SCRIPT: &str = "bash scripts/dev-services.sh";

/// Every behaviour, flat, as `behaviour_suite!` calls them.
pub mod behaviours {
    pub use super::env::{
        a_near_miss_variable_names_the_closest_known_one, a_non_utf8_variable_is_an_error_naming_it,
        an_unknown_pool_variable_names_the_closest_known_one, config_comes_from_the_environment,
        no_variable_of_another_prefix_is_used,
    };
    pub use super::faults::{
        a_dropped_in_flight_query_is_never_handed_out_dirty, a_dropped_transaction_is_rolled_back,
        a_failed_statement_leaves_the_connection_usable, get_checks_idle_connections_once_one_is_found_dead,
        helpers_fail_no_request_after_idle_sessions_were_killed,
    };
    pub use super::lifecycle::{
        a_refused_start_is_a_typed_permanent_error, checkout_and_return,
        metrics_have_the_same_names_units_and_attributes, min_idle_connections_exist_after_start,
        the_health_report_has_the_same_fields,
    };
    pub use super::load::{
        many_tasks_share_a_small_pool, the_pool_recovers_from_server_restarts_under_load, waiters_are_served_in_order,
    };
    pub use super::no_secret::no_output_contains_the_password;
    pub use super::parsers::{
        a_url_never_panics_nor_shows_its_password, each_bad_value_is_named_as_written,
        every_env_error_names_its_variable_and_value, serde_never_panics_nor_shows_the_password,
    };
}

/// One generated test: its name, where it was generated, and the reason it is declared unsupported.
#[derive(Debug, Clone, Copy)]
pub struct Test {
    name: &'static str,
    module: &'static str,
    unsupported: Option<&'static str>,
}

impl Test {
    /// The test `name`, generated by `behaviour_suite!` in `module` (`module_path!()`), declared unsupported
    /// for `unsupported` when given.
    pub fn new(name: &'static str, module: &'static str, unsupported: Option<&'static str>) -> Self {
        Test { name, module, unsupported }
    }

    /// The behaviour's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The name of a pool of this test, unique to the process and short enough for a MySQL user name:
    /// `aqs_<pid>_<initials of the behaviour>`.
    pub fn pool(&self) -> String {
        let initials: String = self.name.split('_').filter_map(|w| w.chars().next()).collect();
        format!("aqs_{}_{initials}", std::process::id())
    }

    /// The test's path as the test harness names it (`module::name`, without the crate), to run it again
    /// in a child process.
    pub(crate) fn path(&self) -> String {
        match self.module.split_once("::") {
            Some((_, module)) => format!("{module}::{}", self.name),
            None => self.name.to_owned(),
        }
    }
}

/// Runs one behaviour on a runtime of its own (what `behaviour_suite!`'s tests call). `Unsupported` fails the
/// test unless the test was declared unsupported; then it is reported on stderr. A behaviour declared
/// unsupported that runs to the end fails too: the declaration is no longer true and would hide the behaviour.
pub fn run<F, Fut>(test: Test, behaviour: F)
where
    F: FnOnce(Test) -> Fut,
    Fut: Future<Output = Checked>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the behaviour");
    match (runtime.block_on(behaviour(test)), test.unsupported) {
        (Ok(()), None) => {}
        (Ok(()), Some(reason)) => panic!(
            "{} is declared unsupported ({reason}) but this adapter ran it to the end: remove it from the \
             adapter's `behaviour_suite!(.., unsupported {{ .. }})` so that it is checked",
            test.name
        ),
        (Err(missing), Some(reason)) => eprintln!("{}: not supported by this backend ({reason}): {missing}", test.name),
        (Err(missing), None) => panic!(
            "{} needs a capability this adapter's hooks do not have ({missing}); implement the hook, or declare the \
             behaviour in the adapter's `behaviour_suite!(.., unsupported {{ {}: \"why\" }})`",
            test.name, test.name
        ),
    }
}

/// A note on stderr that one check of a behaviour did not run, and why.
pub(crate) fn not_checked(test: &Test, what: &str, why: &Unsupported) {
    eprintln!("{}: {what} not checked: {why}", test.name);
}

/// Generates the behaviour suite for a [`Hooks`](crate::suite::Hooks) implementation: one `#[test]` per
/// behaviour, named for it. Behaviours the backend cannot have are listed after `unsupported`, each with its
/// reason; their tests check that the backend really stops at the missing capability (see [the suite's
/// docs](crate::suite)).
///
/// ```ignore
/// aquifer_testing::behaviour_suite!(PgSuite);
/// aquifer_testing::behaviour_suite!(SqliteSuite, unsupported {
///     the_pool_recovers_from_server_restarts_under_load: "SQLite has no server to restart",
/// });
/// ```
#[macro_export]
macro_rules! behaviour_suite {
    ($hooks:ty $(, unsupported { $($skip:ident : $reason:literal),* $(,)? })? $(,)?) => {
        $crate::behaviour_suite!(@with_dollar ($) $hooks; $($($skip : $reason),*)?);
    };
    // A local macro with one arm per unsupported behaviour (matching its name literally) and a catch-all:
    // macro_rules cannot compare two identifiers otherwise. `$d` is a `$` for the local macro's own variables.
    (@with_dollar ($d:tt) $hooks:ty; $($skip:ident : $reason:literal),*) => {
        // Every declared name is a behaviour (a misspelt one does not compile).
        const _: () = { $( let _ = $crate::suite::behaviours::$skip::<$hooks>; )* };

        macro_rules! __aquifer_behaviour {
            $(
                ($skip) => {
                    #[test]
                    fn $skip() {
                        $crate::suite::run(
                            $crate::suite::Test::new(stringify!($skip), module_path!(), Some($reason)),
                            $crate::suite::behaviours::$skip::<$hooks>,
                        );
                    }
                };
            )*
            ($d name:ident) => {
                #[test]
                fn $d name() {
                    $crate::suite::run(
                        $crate::suite::Test::new(stringify!($d name), module_path!(), None),
                        $crate::suite::behaviours::$d name::<$hooks>,
                    );
                }
            };
        }

        __aquifer_behaviour!(config_comes_from_the_environment);
        __aquifer_behaviour!(a_non_utf8_variable_is_an_error_naming_it);
        __aquifer_behaviour!(an_unknown_pool_variable_names_the_closest_known_one);
        __aquifer_behaviour!(a_near_miss_variable_names_the_closest_known_one);
        __aquifer_behaviour!(no_variable_of_another_prefix_is_used);
        __aquifer_behaviour!(every_env_error_names_its_variable_and_value);
        __aquifer_behaviour!(each_bad_value_is_named_as_written);
        __aquifer_behaviour!(a_url_never_panics_nor_shows_its_password);
        __aquifer_behaviour!(serde_never_panics_nor_shows_the_password);
        __aquifer_behaviour!(no_output_contains_the_password);
        __aquifer_behaviour!(checkout_and_return);
        __aquifer_behaviour!(min_idle_connections_exist_after_start);
        __aquifer_behaviour!(the_health_report_has_the_same_fields);
        __aquifer_behaviour!(metrics_have_the_same_names_units_and_attributes);
        __aquifer_behaviour!(a_refused_start_is_a_typed_permanent_error);
        __aquifer_behaviour!(a_dropped_in_flight_query_is_never_handed_out_dirty);
        __aquifer_behaviour!(a_dropped_transaction_is_rolled_back);
        __aquifer_behaviour!(a_failed_statement_leaves_the_connection_usable);
        __aquifer_behaviour!(helpers_fail_no_request_after_idle_sessions_were_killed);
        __aquifer_behaviour!(get_checks_idle_connections_once_one_is_found_dead);
        __aquifer_behaviour!(many_tasks_share_a_small_pool);
        __aquifer_behaviour!(waiters_are_served_in_order);
        __aquifer_behaviour!(the_pool_recovers_from_server_restarts_under_load);
    };
}
