//! Identifier validation and quoting: table, column, label and property names are never spliced into a
//! statement unquoted. Each backend module quotes by its server's rules; this module holds the shared checks
//! and the error.

/// An identifier that cannot be used, naming what it was for and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    /// The name is empty (or a dotted name has an empty part).
    #[error("{what} name is empty")]
    Empty {
        /// What the name was for: `table`, `column`, `label`, `property`.
        what: &'static str,
    },
    /// The name is longer than the server accepts (PostgreSQL would silently truncate it).
    #[error("{what} name {name:?} is {len} bytes long; {system} allows at most {max}")]
    TooLong {
        /// What the name was for.
        what: &'static str,
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The server's maximum.
        max: usize,
        /// The database system.
        system: &'static str,
    },
    /// The name holds a character no quoting can carry.
    #[error("{what} name {name:?} contains {reason}")]
    Invalid {
        /// What the name was for.
        what: &'static str,
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No names were given where at least one is needed.
    #[error("no {what} names given")]
    NoneGiven {
        /// What the names were for.
        what: &'static str,
    },
}

/// Wraps `name` in `quote`, doubling every `quote` inside it, after the checks every backend shares.
pub(crate) fn quote(
    name: &str,
    what: &'static str,
    quote: char,
    max_len: usize,
    system: &'static str,
) -> Result<String, IdentError> {
    if name.is_empty() {
        return Err(IdentError::Empty { what });
    }
    if name.contains('\0') {
        return Err(IdentError::Invalid { what, name: name.to_owned(), reason: "a NUL character" });
    }
    if name.len() > max_len {
        return Err(IdentError::TooLong { what, name: name.to_owned(), len: name.len(), max: max_len, system });
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push(quote);
    for c in name.chars() {
        if c == quote {
            out.push(quote);
        }
        out.push(c);
    }
    out.push(quote);
    Ok(out)
}

#[cfg_attr(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")), allow(dead_code))]
/// Quotes each part of a dotted name (`schema.table`) with `quote_one`.
pub(crate) fn quote_dotted(
    name: &str,
    quote_one: impl Fn(&str) -> Result<String, IdentError>,
) -> Result<String, IdentError> {
    let parts = name.split('.').map(quote_one).collect::<Result<Vec<_>, _>>()?;
    Ok(parts.join("."))
}

#[cfg_attr(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")), allow(dead_code))]
/// Quotes a list of names, joined by `, `; at least one.
pub(crate) fn quote_list(
    names: &[&str],
    what: &'static str,
    quote_one: impl Fn(&str) -> Result<String, IdentError>,
) -> Result<Vec<String>, IdentError> {
    if names.is_empty() {
        return Err(IdentError::NoneGiven { what });
    }
    names.iter().map(|n| quote_one(n)).collect()
}
