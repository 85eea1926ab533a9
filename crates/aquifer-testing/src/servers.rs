//! Where the project's test servers listen: the one place tests, benches and the chaos backends take their
//! addresses and URLs from.
//!
//! `bash scripts/dev-services.sh` starts project-owned instances on 127.0.0.1 with the ports of
//! `scripts/services/ports.env`. Each port is read here from the same environment variable with the same
//! default (`tests/servers.rs` checks that the defaults agree with that file), so
//! `AQUIFER_PG_PORT=25432 bash scripts/dev-services.sh` and `AQUIFER_PG_PORT=25432 cargo nextest run` go
//! together. The files of the servers (the TLS MariaDB's CA, the ArcadeDB and VictoriaMetrics packages) are in
//! [`services_dir`].

use std::path::PathBuf;

/// The command that starts the servers, for failure messages.
pub const SCRIPT: &str = "bash scripts/dev-services.sh";

/// The host every test server listens on.
pub const HOST: &str = "127.0.0.1";

/// A server's port: the environment variable that overrides it and its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// The variable of `scripts/services/ports.env`, e.g. `AQUIFER_PG_PORT`.
    pub var: &'static str,
    /// Its default there.
    pub default: u16,
}

impl Port {
    /// The port: the variable's value, or the default when it is unset. Panics on a value that is not a port.
    pub fn get(self) -> u16 {
        match std::env::var(self.var) {
            Ok(v) if !v.trim().is_empty() => {
                v.trim().parse().unwrap_or_else(|_| panic!("{}={v:?} is not a port number", self.var))
            }
            _ => self.default,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(self) -> String {
        format!("{HOST}:{}", self.get())
    }
}

/// PostgreSQL 15: superuser `postgres` (trust), the scram role `aquifer_pw`, database `test`.
pub const POSTGRES: Port = Port { var: "AQUIFER_PG_PORT", default: 15432 };
/// MariaDB 10.11: `root` without a password, the user `aquifer_pw`, database `test`.
pub const MARIADB: Port = Port { var: "AQUIFER_MARIADB_PORT", default: 13306 };
/// The second MariaDB, with TLS: user `aquifer_tls`, database `test`.
pub const MARIADB_TLS: Port = Port { var: "AQUIFER_MARIADB_TLS_PORT", default: 13307 };
/// PgBouncer in transaction-pooling mode in front of [`POSTGRES`], database `test`, user `postgres`.
pub const PGBOUNCER: Port = Port { var: "AQUIFER_PGBOUNCER_PORT", default: 16432 };
/// ArcadeDB's Bolt server: `root` / `aquifer-secret`, database `testdb`.
pub const BOLT: Port = Port { var: "AQUIFER_BOLT_PORT", default: 17687 };
/// ArcadeDB's HTTP API.
pub const ARCADEDB_HTTP: Port = Port { var: "AQUIFER_ARCADEDB_HTTP_PORT", default: 12480 };
/// VictoriaMetrics, the OTLP receiver.
pub const VICTORIA: Port = Port { var: "AQUIFER_VICTORIA_PORT", default: 18428 };
/// Prometheus 3, scraping VictoriaMetrics' `/federate`.
pub const PROMETHEUS: Port = Port { var: "AQUIFER_PROMETHEUS_PORT", default: 19090 };

/// Every port of `scripts/services/ports.env`, in its order.
pub const ALL: [Port; 8] = [POSTGRES, MARIADB, MARIADB_TLS, PGBOUNCER, BOLT, ARCADEDB_HTTP, VICTORIA, PROMETHEUS];

/// PostgreSQL's `127.0.0.1:PORT`.
pub fn postgres_addr() -> String {
    POSTGRES.addr()
}

/// `postgres://postgres@127.0.0.1:PORT/test?sslmode=disable`.
pub fn postgres_url() -> String {
    postgres_url_as("postgres")
}

/// `postgres://{userinfo}@127.0.0.1:PORT/test?sslmode=disable`, e.g. `postgres_url_as("aquifer_pw:wrong")`.
pub fn postgres_url_as(userinfo: &str) -> String {
    format!("postgres://{userinfo}@{}/test?sslmode=disable", postgres_addr())
}

/// MariaDB's `127.0.0.1:PORT`.
pub fn mariadb_addr() -> String {
    MARIADB.addr()
}

/// `mysql://root@127.0.0.1:PORT/test`.
pub fn mariadb_url() -> String {
    mariadb_url_as("root")
}

/// `mysql://{userinfo}@127.0.0.1:PORT/test`, e.g. `mariadb_url_as("aquifer_pw:aquifer-secret")`.
pub fn mariadb_url_as(userinfo: &str) -> String {
    format!("mysql://{userinfo}@{}/test", mariadb_addr())
}

/// MariaDB's unix socket, `<services dir>/mariadb/run/mysqld.sock`.
pub fn mariadb_socket() -> PathBuf {
    services_dir().join("mariadb/run/mysqld.sock")
}

/// The TLS MariaDB's `127.0.0.1:PORT`.
pub fn mariadb_tls_addr() -> String {
    MARIADB_TLS.addr()
}

/// PgBouncer's `127.0.0.1:PORT`.
pub fn pgbouncer_addr() -> String {
    PGBOUNCER.addr()
}

/// `postgres://postgres@127.0.0.1:PORT/test?sslmode=disable` through PgBouncer.
pub fn pgbouncer_url() -> String {
    format!("postgres://postgres@{}/test?sslmode=disable", pgbouncer_addr())
}

/// The Bolt server's `127.0.0.1:PORT`.
pub fn bolt_addr() -> String {
    BOLT.addr()
}

/// `bolt://127.0.0.1:PORT`.
pub fn bolt_uri() -> String {
    format!("bolt://{}", bolt_addr())
}

/// ArcadeDB's HTTP API, `http://127.0.0.1:PORT`.
pub fn arcadedb_http_url() -> String {
    format!("http://{}", ARCADEDB_HTTP.addr())
}

/// VictoriaMetrics' `127.0.0.1:PORT`.
pub fn victoria_addr() -> String {
    VICTORIA.addr()
}

/// The base OTLP endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/metrics`).
pub fn victoria_otlp_endpoint() -> String {
    format!("http://{}/opentelemetry", victoria_addr())
}

/// Prometheus's `127.0.0.1:PORT`.
pub fn prometheus_addr() -> String {
    PROMETHEUS.addr()
}

/// The services directory of scripts/dev-services.sh: `$AQUIFER_SERVICES_DIR`, by default
/// `${XDG_STATE_HOME:-$HOME/.local/state}/aquifer/services`, as root `/var/lib/aquifer/services` (the same rule
/// as scripts/services/lib.sh).
pub fn services_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AQUIFER_SERVICES_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    if is_root() {
        return "/var/lib/aquifer/services".into();
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local").join("state"));
    state.join("aquifer").join("services")
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective uid.
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}
