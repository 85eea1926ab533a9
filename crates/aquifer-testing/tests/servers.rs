//! The addresses of `aquifer_testing::servers` and the ports of `scripts/services/ports.env`, which
//! scripts/dev-services.sh starts the servers on, are one set: same variables, same defaults, same order.

use std::collections::BTreeSet;

use aquifer_testing::servers::{self, ALL, Port};

/// `(variable, default)` of every `: "${VAR:=PORT}"` line of scripts/services/ports.env.
fn ports_env() -> Vec<(String, u16)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/services/ports.env");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|line| line.trim().strip_prefix(": \"${"))
        .map(|rest| {
            let (var, rest) = rest.split_once(":=").unwrap_or_else(|| panic!("no := in ports.env line {rest:?}"));
            let default = rest.split_once('}').map(|(d, _)| d).unwrap_or_else(|| panic!("no }} in {rest:?}"));
            (var.to_owned(), default.parse().unwrap_or_else(|_| panic!("{var}: {default:?} is not a port")))
        })
        .collect()
}

#[test]
fn the_defaults_agree_with_ports_env() {
    let env = ports_env();
    let here: Vec<(String, u16)> = ALL.iter().map(|p| (p.var.to_owned(), p.default)).collect();
    assert_eq!(here, env, "aquifer_testing::servers::ALL against scripts/services/ports.env");
}

#[test]
fn ports_env_exports_every_variable_it_sets() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/services/ports.env");
    let text = std::fs::read_to_string(path).unwrap();
    let exported: BTreeSet<&str> = text
        .split("export ")
        .skip(1)
        .flat_map(|s| s.split_whitespace().take_while(|w| w.starts_with("AQUIFER_") || *w == "\\"))
        .filter(|w| *w != "\\")
        .collect();
    for (var, _) in ports_env() {
        assert!(exported.contains(var.as_str()), "ports.env sets {var} but does not export it");
    }
}

#[test]
fn the_ports_are_distinct_and_clear_of_the_standard_ones() {
    let ports: BTreeSet<u16> = ALL.iter().map(|p| p.default).collect();
    assert_eq!(ports.len(), ALL.len(), "two servers on one port: {ALL:?}");
    // The servers' standard ports, which the compose stack and servers installed on the machine take.
    for taken in [5432, 3306, 3307, 6432, 7474, 7687, 2480, 8428, 9090, 3000, 4317, 4318, 8080] {
        assert!(!ports.contains(&taken), "{taken} is a standard port (docker-compose.yml, the machine's servers)");
    }
    // Linux's ephemeral range, from which the private servers take free ports.
    assert!(ports.iter().all(|p| *p < 32768), "{ports:?}");
}

#[test]
fn the_urls_carry_the_ports() {
    // The variables are unset in CI; when set, the URLs follow them.
    let pg = servers::POSTGRES.get();
    assert_eq!(servers::postgres_url(), format!("postgres://postgres@127.0.0.1:{pg}/test?sslmode=disable"));
    assert_eq!(
        servers::mariadb_url_as("aquifer_pw:x"),
        format!("mysql://aquifer_pw:x@{}/test", servers::mariadb_addr())
    );
    assert_eq!(servers::bolt_uri(), format!("bolt://127.0.0.1:{}", servers::BOLT.get()));
    assert_eq!(
        servers::victoria_otlp_endpoint(),
        format!("http://127.0.0.1:{}/opentelemetry", servers::VICTORIA.get())
    );
    let unset = Port { var: "AQUIFER_TEST_UNSET_PORT_VARIABLE", default: 1 };
    assert_eq!(unset.get(), 1);
}
