//! Every panel query of grafana/dashboards runs against VictoriaMetrics holding what the examples exported
//! through aquifer-otel, and against Prometheus 3 scraping VictoriaMetrics' `/federate` (Prometheus's own
//! parser and engine, which are stricter than VictoriaMetrics' MetricsQL): a query that fails to parse fails
//! the test, and so does one that returns nothing, except the panels listed in NO_DATA_ON_THIS_BRANCH with the
//! reason. The per-host panels get their data from the replicas example run against a PostgreSQL cluster of the
//! test's own (a primary and two replicas), and are checked for one series per host with its role. Template
//! variables are checked the same way. (The dashboards' JSON is checked against Grafana's
//! schema by scripts/check-deploy-files.sh.)

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use aquifer_postgres::{Credential, Credentials, PgConfig, sqlx};
use aquifer_testing::{PrivatePgCluster, Sample, Victoria, unique_name};
use common::{marked_call_site, run_example, succeeded};

const WAIT: Duration = Duration::from_secs(10);

/// Panels whose query must parse but may return nothing here, and why.
const NO_DATA_ON_THIS_BRANCH: &[(&str, &str)] =
    &[("Failed operations per second", "needs an operation that fails inside an adapter helper; no example fails one")];

struct Query {
    dashboard: String,
    panel: String,
    expr: String,
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/dashboards");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("grafana/dashboards")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("dashboard file");
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 2, "the pools and queries dashboards");
    out
}

/// Every panel target's PromQL, rows' nested panels included.
fn panel_queries(name: &str, dashboard: &serde_json::Value) -> Vec<Query> {
    fn walk(name: &str, panels: &[serde_json::Value], out: &mut Vec<Query>) {
        for p in panels {
            if let Some(nested) = p["panels"].as_array() {
                walk(name, nested, out);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr =
                    t["expr"].as_str().unwrap_or_else(|| panic!("{name}: a target without expr in {}", p["title"]));
                out.push(Query {
                    dashboard: name.into(),
                    panel: p["title"].as_str().unwrap_or("").into(),
                    expr: expr.into(),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(name, dashboard["panels"].as_array().expect("panels"), &mut out);
    out
}

/// The dashboard variables as Grafana would set them for "All" of the services `services`.
fn substitute(expr: &str, services: &[&str]) -> String {
    expr.replace("$service", &services.join("|"))
        .replace("$backend", ".*")
        .replace("$pool", ".*")
        .replace("$operation", ".*")
        .replace("$__rate_interval", "1m")
}

/// Runs the sqlite example, the postgres example and the postgres example with a refused password (for connect
/// errors), each exporting to VictoriaMetrics, and [`export_controls_data`]; returns their service names. The
/// first two also run aquifer-batch's BatchLoader, so the batch panels have data.
fn export_example_data() -> Vec<String> {
    let controls = export_controls_data();
    let sqlite = unique_name("dash-sqlite");
    succeeded("sqlite", &run_example("sqlite", &sqlite, &[]));
    let postgres = unique_name("dash-postgres");
    succeeded("postgres", &run_example("postgres", &postgres, &[("POSTGRES_POOL_LEAK_THRESHOLD", "2ms")]));
    let refused = unique_name("dash-postgres-refused");
    let url = aquifer_testing::servers::postgres_url_as("aquifer_pw:wrong");
    assert!(!run_example("postgres", &refused, &[("POSTGRES_URL", &url)]).status.success());
    vec![sqlite, postgres, refused, controls]
}

/// What no example does, done once per test process on a PostgreSQL pool of its own exporting to
/// VictoriaMetrics: an operator pauses it (`aquifer.pool.paused` 1), resumes it and retires its connections
/// (`retired{reason="operator"}`); its password comes from a provider whose tokens live 2 s and are refreshed
/// 1.5 s ahead, one refresh in three failing (`aquifer.credentials.refreshes` by outcome), and with
/// `retire_on_rotation` the connections of each old token are retired (`retired{reason="credential_rotation"}`).
/// The local server trusts every password, so each token is accepted. Returns the service name.
fn export_controls_data() -> String {
    static SERVICE: OnceLock<String> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            let service = unique_name("dash-controls");
            runtime().block_on(async {
                let otel = aquifer_otel::OtelBuilder::new()
                    .endpoint(aquifer_testing::servers::victoria_otlp_endpoint())
                    .service_name(service.clone())
                    .export_interval(Duration::from_millis(100))
                    .install()
                    .expect("OTLP to VictoriaMetrics");
                let issued = std::sync::Arc::new(AtomicU32::new(0));
                let mut config = PgConfig::from_url(aquifer_testing::servers::postgres_url());
                config.pool.name = Some("controls".into());
                config.pool.max_size = 4;
                config.pool.retire_on_rotation = true;
                config.pool.retire_on_rotation_window = Duration::from_millis(200);
                config.credentials =
                    Credentials::provider_fn("dashboard-test", Duration::from_millis(1500), move || {
                        let n = issued.fetch_add(1, Ordering::SeqCst);
                        async move {
                            if n % 3 == 2 {
                                return Err("injected refresh failure".into());
                            }
                            Ok(Credential::expiring(format!("token-{n}"), SystemTime::now() + Duration::from_secs(2)))
                        }
                    });
                let pool = config.connect().await.expect("the controls pool starts");
                let query = || async {
                    let (one,): (i32,) = pool.fetch_one(|| sqlx::query("SELECT 1")).await.expect("SELECT 1");
                    assert_eq!(one, 1);
                };
                query().await;
                pool.pause();
                tokio::time::sleep(Duration::from_millis(500)).await;
                pool.resume();
                query().await;
                pool.retire();
                let started = tokio::time::Instant::now();
                while started.elapsed() < Duration::from_secs(3) {
                    tokio::join!(query(), query());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let stats = pool.stats();
                assert!(stats.closed_retired > 0 && stats.closed_rotated > 0, "{stats:?}");
                pool.close().await;
                otel.shutdown().expect("the final export");
            });
            service
        })
        .clone()
}

/// What the replicas example exported, run once per test process against a cluster of its own.
struct ClusterRun {
    service: String,
    primary_port: String,
    replica_ports: BTreeSet<String>,
}

/// Runs the replicas example, exporting to VictoriaMetrics, on a private PostgreSQL cluster of a primary and two
/// replicas (stopped once the example has exited: its points are in VictoriaMetrics by then).
fn export_replicas_data() -> &'static ClusterRun {
    static RUN: OnceLock<ClusterRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let cluster = PrivatePgCluster::start(2).unwrap_or_else(|e| panic!("the replicated PostgreSQL cluster: {e}"));
        let service = unique_name("dash-replicas");
        succeeded("replicas", &run_example("replicas", &service, &[("POSTGRES_CLUSTER_URL", &cluster.url())]));
        ClusterRun {
            service,
            primary_port: cluster.port(0).to_string(),
            replica_ports: (1..cluster.len()).map(|i| cluster.port(i).to_string()).collect(),
        }
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn no_data_exemptions_name_existing_panels() {
    let titles: BTreeSet<String> =
        dashboards().iter().flat_map(|(n, d)| panel_queries(n, d)).map(|q| q.panel).collect();
    for (panel, _) in NO_DATA_ON_THIS_BRANCH {
        assert!(titles.contains(*panel), "exempted panel {panel:?} is not in any dashboard");
    }
}

#[test]
fn every_panel_query_parses_and_returns_the_examples_data() {
    let mut services = export_example_data();
    services.push(export_replicas_data().service.clone());
    let services: Vec<&str> = services.iter().map(String::as_str).collect();
    runtime().block_on(async {
        let vm = Victoria::require().await;
        let prometheus = Victoria::prometheus().await;
        vm.force_flush().await;
        let mut failures = Vec::new();
        let mut checked = 0;
        for (server, api) in [("VictoriaMetrics", &vm), ("Prometheus", &prometheus)] {
            for (name, dashboard) in dashboards() {
                for q in panel_queries(&name, &dashboard) {
                    let expr = substitute(&q.expr, &services);
                    let exempt = NO_DATA_ON_THIS_BRANCH.iter().any(|(p, _)| *p == q.panel);
                    let result = match api.query(&expr).await {
                        Err(e) => Err(e),
                        Ok(_) if exempt => Ok(()),
                        Ok(_) => {
                            // Prometheus needs two scrapes of a new series before rate() has two samples.
                            let got = api.wait_until(&expr, WAIT, |r| !r.is_empty()).await;
                            if got.is_empty() { Err("returned nothing".to_owned()) } else { Ok(()) }
                        }
                    };
                    checked += 1;
                    if let Err(e) = result {
                        failures.push(format!("{server}: {} / {}: {expr}: {e}", q.dashboard, q.panel));
                    }
                }
            }
        }
        assert!(checked >= 50, "only {checked} panel queries checked on the two servers");
        assert!(failures.is_empty(), "panel queries that failed:\n{}", failures.join("\n"));
    });
}

/// The per-operation panels of the queries dashboard show the adapters' helpers only: the BatchLoader's
/// `db.client.operation.duration` points (no `db.operation.name`, an `aquifer.batch.loader`) have their own
/// panel, and mixed in they would add a series without an operation name to every panel.
#[test]
fn operation_panels_leave_out_batch_points_and_the_batch_panel_has_only_them() {
    let services = export_example_data();
    let services: Vec<&str> = services.iter().map(String::as_str).collect();
    let (_, queries) = dashboards().into_iter().find(|(n, _)| n == "aquifer-queries.json").expect("queries dashboard");
    let queries = panel_queries("aquifer-queries.json", &queries);
    runtime().block_on(async {
        let vm = Victoria::require().await;
        vm.force_flush().await;
        let mut checked = 0;
        for q in queries.iter().filter(|q| q.expr.contains("db_client_operation_duration")) {
            let expr = substitute(&q.expr, &services);
            let batch_panel = q.panel.starts_with("Batch");
            let got = vm.wait_until(&expr, WAIT, |r| !r.is_empty()).await;
            if got.is_empty() && NO_DATA_ON_THIS_BRANCH.iter().any(|(p, _)| *p == q.panel) {
                continue;
            }
            assert!(!got.is_empty(), "{}: {expr} returned nothing", q.panel);
            for sample in &got {
                if batch_panel {
                    assert!(
                        sample.label("aquifer_batch_loader").is_some(),
                        "{}: a series of no loader: {sample:?}",
                        q.panel
                    );
                } else if !q.expr.starts_with("sum by (le)") {
                    assert!(
                        sample.label("db_operation_name").is_some(),
                        "{}: a batch series mixed in: {sample:?}",
                        q.panel
                    );
                }
            }
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} operation-duration queries checked");
        // The unfiltered selector does hold batch points: the filter is what keeps them out.
        let all = format!(
            "sum by (aquifer_batch_loader) (db_client_operation_duration_seconds_count{{service_name=~\"{}\"}})",
            services.join("|")
        );
        let loaders = vm.query(&all).await.unwrap();
        assert!(
            loaders.iter().any(|s| s.label("aquifer_batch_loader").is_some()),
            "no batch points exported: {loaders:?}"
        );
    });
}

#[test]
fn every_template_variable_lists_the_examples_values() {
    let services = export_example_data();
    let refs: Vec<&str> = services.iter().map(String::as_str).collect();
    runtime().block_on(async {
        let vm = Victoria::require().await;
        vm.force_flush().await;
        for (name, dashboard) in dashboards() {
            for var in dashboard["templating"]["list"].as_array().expect("templating.list") {
                if var["type"] != "query" {
                    continue;
                }
                let query = var["query"]["query"].as_str().expect("variable query");
                let inner = query
                    .strip_prefix("label_values(")
                    .and_then(|q| q.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("{name}: variable {} is not label_values(...): {query}", var["name"]));
                let (matcher, label) = inner.rsplit_once(", ").expect("label_values(matcher, label)");
                let matcher = substitute(matcher, &refs);
                let values: BTreeSet<String> = vm.label_values(label, &matcher).await.unwrap().into_iter().collect();
                let expected: &[&str] = match var["name"].as_str().unwrap() {
                    "service" => &[&services[0], &services[1]],
                    "backend" => &["sqlite", "postgresql"],
                    "pool" => &["books/readers", "books/writer", "music-library"],
                    "operation" => &["TRANSACTION", "SELECT", "INSERT"],
                    other => panic!("{name}: no expectation for variable {other}"),
                };
                for e in expected {
                    assert!(values.contains(*e), "{name}: variable {} lacks {e}: {values:?}", var["name"]);
                }
            }
        }
    });
}

/// The "N+1 loops found" panel shows, by call site, the N+1 sections of the examples that exported data (the
/// sqlite and postgres examples, each run as one N+1 scope): `file:line` of the call each example marks.
#[test]
fn n_plus_one_panel_shows_the_examples_call_sites() {
    let services = export_example_data();
    let services: Vec<&str> = services.iter().map(String::as_str).collect();
    let (_, queries) = dashboards().into_iter().find(|(n, _)| n == "aquifer-queries.json").expect("queries dashboard");
    let panel = panel_queries("aquifer-queries.json", &queries)
        .into_iter()
        .find(|q| q.panel == "N+1 loops found")
        .expect("the N+1 panel");
    let expected: BTreeSet<String> = ["sqlite", "postgres"].into_iter().map(marked_call_site).collect();
    runtime().block_on(async {
        let vm = Victoria::require().await;
        vm.force_flush().await;
        let expr = substitute(&panel.expr, &services);
        let sites = |got: &[aquifer_testing::Sample]| -> BTreeSet<String> {
            got.iter()
                .filter_map(|s| Some(format!("{}:{}", s.label("code_file_path")?, s.label("code_line_number")?)))
                .collect()
        };
        let got = vm.wait_until(&expr, WAIT, |r| sites(r) == expected).await;
        assert_eq!(sites(&got), expected, "{expr}: {got:?}");
    });
}

/// The per-host panels of the pools dashboard, on the replicas example's cluster: "Host role" has one series per
/// host, 1 for the primary and 0 for each replica; "Replica lag" one per replica; "Connections by host" the
/// hosts' used and idle connections, every host present.
#[test]
fn host_panels_show_each_cluster_host_with_its_role() {
    let run = export_replicas_data();
    let (_, pools) = dashboards().into_iter().find(|(n, _)| n == "aquifer-pools.json").expect("pools dashboard");
    let queries = panel_queries("aquifer-pools.json", &pools);
    let expr = |title: &str| {
        let q = queries.iter().find(|q| q.panel == title).unwrap_or_else(|| panic!("no panel {title:?}"));
        substitute(&q.expr, &[&run.service])
    };
    let all_ports: BTreeSet<String> = run.replica_ports.iter().chain([&run.primary_port]).cloned().collect();
    let ports = |got: &[Sample]| -> BTreeSet<String> {
        got.iter().filter_map(|s| s.label("server_port")).map(str::to_owned).collect()
    };
    runtime().block_on(async {
        let vm = Victoria::require().await;
        vm.force_flush().await;

        let role = expr("Host role");
        let got = vm.wait_until(&role, WAIT, |r| r.len() == all_ports.len()).await;
        assert_eq!(got.len(), all_ports.len(), "{role}: not one series per host: {got:?}");
        assert_eq!(ports(&got), all_ports, "{role}: {got:?}");
        for s in &got {
            assert_eq!(s.label("server_address"), Some("127.0.0.1"), "{role}: {s:?}");
            let expected = if s.label("server_port") == Some(run.primary_port.as_str()) { 1.0 } else { 0.0 };
            assert_eq!(s.value, expected, "{role}: the role of {s:?}");
        }

        let lag = expr("Replica lag");
        let got = vm.wait_until(&lag, WAIT, |r| ports(r) == run.replica_ports).await;
        assert_eq!(got.len(), run.replica_ports.len(), "{lag}: not one series per replica: {got:?}");
        assert_eq!(ports(&got), run.replica_ports, "{lag}: {got:?}");
        assert!(got.iter().all(|s| s.value >= 0.0), "{lag}: {got:?}");

        let connections = expr("Connections by host");
        let got = vm.wait_until(&connections, WAIT, |r| ports(r) == all_ports).await;
        assert_eq!(ports(&got), all_ports, "{connections}: {got:?}");
        for s in &got {
            let state = s.label("db_client_connection_state");
            assert!(matches!(state, Some("used" | "idle")), "{connections}: {s:?}");
        }
        assert!(got.len() <= 2 * all_ports.len(), "{connections}: more than used and idle per host: {got:?}");
    });
}
