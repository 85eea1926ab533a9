//! Host lists: `mysql://user@h1:3306,h2:3307/db` and [`MySqlConfig::hosts`](crate::MySqlConfig::hosts),
//! split into one single-host URL per server.
//!
//! Hand-written: mysql_async's `Opts` and the `url` crate take one host (a comma in the authority is a bad
//! port to them), and the split is a few lines of string handling around `url`, which still parses each
//! resulting single-host URL.

use aquifer_core::{ConfigError, redact_url};

/// One server of a host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    /// A name, an IPv4 address, or an IPv6 address in brackets (`[::1]`).
    pub(crate) host: String,
    /// The port, if given (the URL's default, 3306, otherwise).
    pub(crate) port: Option<u16>,
}

impl HostPort {
    fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; `Err` says what is wrong.
pub(crate) fn parse_host(entry: &str) -> Result<HostPort, String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err("empty host".into());
    }
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(format!("`{entry}`: unclosed `[` of an IPv6 address"));
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{entry}`: `{v6}` is not an IPv6 address"));
        }
        match after {
            "" => (format!("[{v6}]"), None),
            _ => match after.strip_prefix(':') {
                Some(port) => (format!("[{v6}]"), Some(port)),
                None => return Err(format!("`{entry}`: expected `:port` after `]`")),
            },
        }
    } else {
        match entry.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (entry.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ', ',']) {
        return Err(format!("`{entry}`: `{host}` is not a host name or address"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{entry}`: port `{p}` is not a number from 1 to 65535")),
        },
    };
    Ok(HostPort { host, port })
}

/// Parses a comma-separated list (`h1:3306,h2:3307`); the error names the entry.
pub(crate) fn parse_list(list: &str) -> Result<Vec<HostPort>, String> {
    list.split(',').enumerate().map(|(i, e)| parse_host(e).map_err(|why| format!("host {}: {why}", i + 1))).collect()
}

/// The parts of a URL around its authority's host list.
struct Split<'a> {
    /// `mysql://` (scheme and slashes).
    prefix: &'a str,
    /// `user:password@`, or empty.
    userinfo: &'a str,
    /// `h1:3306,h2:3307`.
    hosts: &'a str,
    /// `/db?params`, or empty.
    rest: &'a str,
}

fn split(url: &str) -> Option<Split<'_>> {
    let start = url.find("://")? + 3;
    let (prefix, after) = url.split_at(start);
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    // The password may hold an `@` only percent-encoded, but be lenient as mysql_async is: the last `@` ends it.
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    Some(Split { prefix, userinfo, hosts, rest })
}

/// The single-host URLs of `url` (`mysql://u@h1:1,h2:2/db?x=y` gives `mysql://u@h1:1/db?x=y` and
/// `mysql://u@h2:2/db?x=y`), or with `hosts` in place of the URL's host when `hosts` is not empty (the URL
/// then supplies the user, database and parameters). A URL with one host and no `hosts` gives itself.
///
/// Errors are [`ConfigError::Invalid`] on `url` or `hosts`, naming the entry and showing the URL redacted.
pub(crate) fn host_urls(url: &str, hosts: &[String]) -> Result<Vec<String>, ConfigError> {
    let invalid_url = |reason: String| ConfigError::Invalid { field: "url", value: redact_url(url), reason };
    let Some(parts) = split(url) else {
        // Not `scheme://...`: the single-host path reports what is wrong with it.
        return Ok(vec![url.to_owned()]);
    };
    let list: Vec<HostPort> = if hosts.is_empty() {
        if !parts.hosts.contains(',') {
            return Ok(vec![url.to_owned()]);
        }
        parse_list(parts.hosts).map_err(invalid_url)?
    } else {
        let mut list = Vec::with_capacity(hosts.len());
        for (i, entry) in hosts.iter().enumerate() {
            list.push(parse_host(entry).map_err(|why| ConfigError::Invalid {
                field: "hosts",
                value: format!("[{i}] = {entry:?}"),
                reason: why,
            })?);
        }
        list
    };
    let mut seen = std::collections::HashSet::new();
    for h in &list {
        if !seen.insert(h.authority()) {
            return Err(ConfigError::Invalid {
                field: if hosts.is_empty() { "url" } else { "hosts" },
                value: if hosts.is_empty() { redact_url(url) } else { format!("{hosts:?}") },
                reason: format!("`{}` is listed twice", h.authority()),
            });
        }
    }
    Ok(list.iter().map(|h| format!("{}{}{}{}", parts.prefix, parts.userinfo, h.authority(), parts.rest)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(url: &str) -> Vec<String> {
        host_urls(url, &[]).unwrap()
    }

    #[test]
    fn a_host_list_gives_one_url_per_host_with_the_same_user_database_and_parameters() {
        assert_eq!(
            urls("mysql://app:pw@db1:3306,db2:3307,[::1]:3308,db4/orders?stmt_cache_size=8"),
            [
                "mysql://app:pw@db1:3306/orders?stmt_cache_size=8",
                "mysql://app:pw@db2:3307/orders?stmt_cache_size=8",
                "mysql://app:pw@[::1]:3308/orders?stmt_cache_size=8",
                "mysql://app:pw@db4/orders?stmt_cache_size=8",
            ]
        );
        assert_eq!(urls("mariadb://db1,db2"), ["mariadb://db1", "mariadb://db2"]);
        assert_eq!(urls("mysql://app@db:3306/x"), ["mysql://app@db:3306/x"], "one host: the URL as it is");
    }

    #[test]
    fn the_hosts_field_replaces_the_urls_host() {
        let hosts = vec!["a:1".to_owned(), " b:2 ".to_owned()];
        assert_eq!(
            host_urls("mysql://u:p@ignored:9/db", &hosts).unwrap(),
            ["mysql://u:p@a:1/db", "mysql://u:p@b:2/db"]
        );
    }

    #[test]
    fn a_bad_entry_is_named_and_the_password_is_not_shown() {
        for (url, names) in [
            ("mysql://app:hunter2@db1:3306,db2:33o7/x", "host 2: `db2:33o7`: port `33o7`"),
            ("mysql://app:hunter2@db1,,db3/x", "host 2: empty host"),
            ("mysql://app:hunter2@db1:0,db2/x", "host 1: `db1:0`: port `0`"),
            ("mysql://app:hunter2@[::1:3306,db2/x", "unclosed `[`"),
            ("mysql://app:hunter2@db1,db1/x", "`db1` is listed twice"),
        ] {
            let err = host_urls(url, &[]).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, ConfigError::Invalid { field: "url", .. }), "{text}");
            assert!(text.contains(names), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        let err = host_urls("mysql://u@x/db", &["good:1".into(), "bad:port".into()]).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "hosts", .. }), "{err}");
        assert!(err.to_string().contains("[1] = \"bad:port\""), "{err}");
    }
}
