//! Error chains as a report prints them, for the tests of Aquifer's error convention (docs/architecture.md,
//! "Errors"): a `Display` that prints a cause's message must not have `source()` return that cause too, or
//! anyhow's `{:#}` (and every other chain walker) prints it twice.

use std::error::Error;

/// The messages of `error`'s chain: its own, then each [`source`](Error::source)'s, walked by hand.
pub fn error_chain(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        messages.push(e.to_string());
        next = e.source();
    }
    messages
}

/// The chain as anyhow's `{:#}` renders it: the messages joined by `": "`.
pub fn render_chain(error: &(dyn Error + 'static)) -> String {
    error_chain(error).join(": ")
}

/// Panics (showing the rendering) when a message of `error`'s chain already appears in an earlier one: a cause
/// that a chain walker would print twice. Returns the rendering.
pub fn assert_each_cause_once(error: &(dyn Error + 'static)) -> String {
    let chain = error_chain(error);
    let rendered = chain.join(": ");
    for (i, cause) in chain.iter().enumerate().skip(1) {
        if let Some(earlier) = chain[..i].iter().find(|m| m.contains(cause.as_str())) {
            panic!("cause {i} of the chain, {cause:?}, is already in {earlier:?}; rendered:\n{rendered}");
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Wraps(std::io::Error, bool);

    impl fmt::Display for Wraps {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.1 { write!(f, "outer: {}", self.0) } else { f.write_str("outer") }
        }
    }

    impl Error for Wraps {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_in_its_wrapper_s_message_and_in_source_is_caught() {
        let io = || std::io::Error::other("disk on fire");
        assert_eq!(assert_each_cause_once(&Wraps(io(), false)), "outer: disk on fire");
        let twice = std::panic::catch_unwind(|| assert_each_cause_once(&Wraps(io(), true)));
        assert!(twice.is_err(), "printed twice: outer: disk on fire: disk on fire");
    }
}
