//! Secrets in connection strings: [`DatabaseUrl`], a URL whose password is never shown, and [`redact_url`],
//! which hides the password of any connection string (a URL, a URL the parser refuses, a libpq-style
//! `key=value` string) before it reaches an error, a log line or a serialised config.
//!
//! In this crate, [`DatabaseUrl`]'s `Debug`, `Display` and `Serialize` and [`EnvVars`](crate::EnvVars) (when
//! an error shows a variable's value) go through [`redact_url`]; the adapters use both for their own
//! connection settings and errors. This module depends on nothing else in the crate, so the environment
//! reader (`env.rs`) can use it without depending on the configuration (`config.rs`), which itself depends on
//! the environment reader.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A connection URL whose password is never shown.
///
/// `Debug` and `Display` print the URL with the password replaced by `***`; [`DatabaseUrl::expose`] gives the
/// real string to the driver.
///
/// ```
/// use aquifer_core::DatabaseUrl;
///
/// let url = DatabaseUrl::new("postgres://app:hunter2@db:5432/orders");
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/orders");
/// assert!(!format!("{url:?}").contains("hunter2"));
/// assert!(url.expose().contains("hunter2"));
/// ```
///
/// Serialising it writes the redacted form too, so a config written back to a file or an API never carries
/// the password; a config read back from that output has `***` as its password. To round-trip a config, keep
/// the password out of what is serialised: give the URL at load time (the `{PREFIX}_URL` variable, a secret
/// store) and set it after deserialising the rest.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of a URL (`scheme://user:password@host`) and of `password=` key-value pairs with
/// `***`, whatever the shape of the string: a valid URL, a URL the parser refuses (a bad port, say), or a
/// libpq-style `host=db password=secret` string. When the user-info part of an unparseable URL cannot be told
/// apart from the host, everything between `://` and `@` is hidden.
///
/// ```
/// use aquifer_core::redact_url;
///
/// assert_eq!(redact_url("postgres://app:hunter2@db/orders"), "postgres://app:***@db/orders");
/// assert_eq!(redact_url("postgres://db:notaport/x?password=hunter2"), "postgres://db:notaport/x?password=***");
/// assert_eq!(redact_url("host=db password='hunter 2' user=app"), "host=db password=*** user=app");
/// assert_eq!(redact_url("mysql://app:hun@ter2@db:99999/x"), "mysql://***@db:99999/x");
/// assert_eq!(redact_url("postgres:/app:hunter2@db/x"), "postgres:/***@db/x");
/// ```
pub fn redact_url(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url)
        && !parsed.cannot_be_a_base()
    {
        // `scheme:/user:password@host` (one slash) parses as a path without a host: the user info is in the
        // path, where `password()` does not see it.
        if parsed.host_str().is_none_or(str::is_empty)
            && let Some(at) = parsed.path().rfind('@')
        {
            let (scheme, rest) = url.split_at(url.find(':').map_or(0, |i| i + 1));
            let slashes = rest.len() - rest.trim_start_matches('/').len();
            let end = rest.find(['?', '#']).unwrap_or(rest.len());
            return match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}{}***{}", &rest[..slashes], redact_unparsed(&rest[at..])),
                // Written percent-encoded: show the parsed form, which holds the same characters.
                None => format!("{scheme}***{}", redact_unparsed(&parsed.path()[at..])),
            };
        }
        let secret_pair = parsed.query_pairs().any(|(k, _)| is_secret_key(&k));
        if parsed.password().is_none() && !secret_pair {
            // Nothing to hide: show it exactly as written, not as the parser normalises it.
            return url.to_owned();
        }
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret = is_secret_key(&k);
                (k.into_owned(), if secret { "***".to_owned() } else { v.into_owned() })
            })
            .collect();
        if !pairs.is_empty() {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return parsed.to_string();
    }
    redact_unparsed(url)
}

/// Keys whose values are secrets, in URL queries and key-value connection strings.
fn is_secret_key(key: &str) -> bool {
    matches!(key.trim().to_ascii_lowercase().as_str(), "password" | "pass" | "pwd" | "passwd" | "sslpassword")
}

/// Redaction for strings the URL parser refuses: user info of `scheme://user:pw@host` up to the LAST `@`
/// before the path (a password may hold `@`), and every `secret=value` pair, where a pair is separated by
/// white space, `&`, `;` or `?`, and a value may be single- or double-quoted.
fn redact_unparsed(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    if let Some(i) = s.find("://") {
        let (scheme, after) = s.split_at(i + 3);
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        out.push_str(scheme);
        match after[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &after[at..];
            }
            None => rest = after,
        }
    }
    // `user:password@host` without a scheme (a Go-style DSN, a typo): hide the user info of that word.
    let owned;
    if !s.contains("://") && rest.contains('@') {
        owned = rest
            .split(' ')
            .map(|word| match word.rfind('@') {
                Some(at) if word[..at].contains(':') => format!("***{}", &word[at..]),
                _ => word.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
        rest = &owned;
    }
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < rest.len() {
        let at_boundary = i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'&' | b';' | b'?' | b'\n');
        if at_boundary
            && let Some(eq) = rest[i..].find('=')
            && !rest[i..i + eq].contains([' ', '\t', '&', ';', '?'])
            && is_secret_key(&rest[i..i + eq])
        {
            out.push_str(&rest[i..=i + eq]);
            out.push_str("***");
            let value = &rest[i + eq + 1..];
            let len = match value.chars().next() {
                Some(q @ ('\'' | '"')) => value[1..].find(q).map_or(value.len(), |end| end + 2),
                _ => value.find([' ', '\t', '&', ';', '\n']).unwrap_or(value.len()),
            };
            i += eq + 1 + len;
            continue;
        }
        let ch = rest[i..].chars().next().expect("i is on a char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}
