//! The alert rules of grafana/alerts/aquifer.rules.yml, live: `vmalert` (from the VictoriaMetrics package that
//! scripts/dev-services.sh unpacks) evaluates them against the test VictoriaMetrics while real PostgreSQL pools
//! export through aquifer-otel and a fault runs. A saturated pool fires the saturation and timeout alerts and
//! they resolve once the load stops; a pool whose server refuses connections fires the unavailable and
//! connect-error alerts and they resolve once the server accepts again; a healthy pool fires nothing. Each test
//! names its pool uniquely and looks only at its alerts, so tests (and other runs) sharing VictoriaMetrics do
//! not collide.
//!
//! Time is compressed. vmalert (like Prometheus) has no setting that overrides a rule's `for` or its ranges, and
//! the shipped values (minutes) would make a test wait minutes per alert, so each test runs a copy of the
//! shipped file in which every duration in minutes becomes the same number of seconds: `for: 10m` becomes
//! `for: 10s`, `[5m]` becomes `[5s]`, `offset 5m` becomes `offset 5s`. The expressions, thresholds, labels and
//! annotations are the shipped ones, on a clock 60 times faster; to match, the pools export every 250 ms
//! (15 s in production), vmalert evaluates every second and looks back 5 s for a gauge (`-datasource.queryStep`,
//! 5 min by default). The shipped durations themselves are tested by grafana/alerts/aquifer.rules.test.yml
//! (scripts/check-alerts.sh).
//!
//! vmalert runs as a child process on a free loopback port, with its log in a temporary directory (printed when
//! a test fails); it is killed (by its PID) when the test ends, panics included.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_postgres::{PgConfig, PgPool};
use aquifer_testing::servers::{self, postgres_addr, victoria_addr, victoria_otlp_endpoint};
use aquifer_testing::{ChaosProxy, Victoria, free_port, unique_name};

/// The shipped rules.
const RULES: &str = include_str!("../grafana/alerts/aquifer.rules.yml");
/// The pools' export interval: 15 s on the compressed clock.
const EXPORT_INTERVAL: Duration = Duration::from_millis(250);
/// How long after its `for` (from the start of the fault) an alert may take to fire: the first export, the
/// evaluation that sees it (every second), and a loaded machine.
const FIRE_SLACK: Duration = Duration::from_secs(10);
/// How long an alert may take to resolve once the fault ends: the longest window of a rule that can fire here
/// (5 s) plus the same slack.
const RESOLVE_WITHIN: Duration = Duration::from_secs(20);
/// Every rule's name and its `for` on the compressed clock.
fn rule_for() -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    let mut name = None;
    for line in RULES.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- alert: ") {
            name = Some(n.to_owned());
        } else if let Some(f) = line.strip_prefix("for: ") {
            let n = name.take().expect("`for` after `alert`");
            out.insert(n, Duration::from_secs(minutes(f)));
        }
    }
    out
}

/// `10m` -> 10; panics on any other unit, so a rule written with `1h` or `30s` is not left uncompressed.
fn minutes(d: &str) -> u64 {
    let n = d.strip_suffix('m').unwrap_or_else(|| panic!("duration {d:?}: the live test compresses minutes only"));
    n.parse().unwrap_or_else(|e| panic!("duration {d:?}: {e}"))
}

/// The shipped rules with every duration in minutes (after `for: `, `[` and `offset `) turned into seconds.
fn compressed_rules() -> String {
    const MARKERS: [&str; 3] = ["for: ", "[", "offset "];
    let mut out = String::with_capacity(RULES.len());
    let mut rest = RULES;
    let mut converted = 0;
    while let Some((at, marker)) =
        MARKERS.iter().filter_map(|m| rest.find(m).map(|at| (at, *m))).min_by_key(|(at, _)| *at)
    {
        let after = at + marker.len();
        out.push_str(&rest[..after]);
        rest = &rest[after..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        let unit_end = digits + rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
        out.push_str(&format!("{}s", minutes(&rest[..unit_end])));
        rest = &rest[unit_end..];
        converted += 1;
    }
    out.push_str(rest);
    let rules = RULES.matches("- alert: ").count();
    assert!(rules >= 8 && converted > rules, "{converted} durations compressed in {rules} rules");
    out
}

/// The vmalert binary of the VictoriaMetrics package unpacked by scripts/services/50-victoriametrics.sh.
fn vmalert_bin() -> PathBuf {
    let bin = servers::services_dir().join("victoriametrics/pkg/usr/bin/vmalert");
    assert!(
        bin.exists(),
        "{} is missing; `bash scripts/dev-services.sh victoria` unpacks it with VictoriaMetrics",
        bin.display()
    );
    bin
}

/// One alert as vmalert's `/api/v1/alerts` lists it.
#[derive(Debug, Clone)]
struct Alert {
    name: String,
    state: String,
    labels: BTreeMap<String, String>,
    summary: String,
}

/// A vmalert process evaluating the compressed rules against the test VictoriaMetrics every second.
struct VmAlert {
    child: Child,
    addr: SocketAddr,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl VmAlert {
    async fn start() -> VmAlert {
        let dir = tempfile::tempdir().expect("temporary directory");
        let rules = dir.path().join("aquifer.rules.yml");
        std::fs::write(&rules, compressed_rules()).expect("writing the compressed rules");
        let log = std::fs::File::create(dir.path().join("vmalert.log")).expect("vmalert.log");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(vmalert_bin())
            .arg(format!("-rule={}", rules.display()))
            .arg(format!("-datasource.url=http://{}", victoria_addr()))
            .arg(format!("-httpListenAddr={addr}"))
            .arg("-evaluationInterval=1s")
            // The default 30 s matches VictoriaMetrics' default -search.latencyOffset; the test one runs with 0.
            .arg("-rule.evalDelay=0s")
            // 5 min compressed: how far back an instant query finds a gauge's last sample.
            .arg("-datasource.queryStep=5s")
            .arg("-notifier.blackhole")
            .arg("-loggerLevel=WARN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", vmalert_bin().display()));
        let mut vmalert = VmAlert { child, addr, http: reqwest::Client::new(), dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(rules) = vmalert.rules().await
                && rules.len() == rule_for().len()
            {
                return vmalert;
            }
            if let Ok(Some(status)) = vmalert.child.try_wait() {
                panic!("vmalert exited ({status}):\n{}", vmalert.log());
            }
            assert!(Instant::now() < deadline, "vmalert did not load the rules within 20 s:\n{}", vmalert.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vmalert.log")).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Result<serde_json::Value, String> {
        let url = format!("http://{}{path}", self.addr);
        let response = self.http.get(&url).timeout(Duration::from_secs(5)).send().await.map_err(|e| e.to_string())?;
        response.json().await.map_err(|e| format!("{url}: {e}"))
    }

    /// Every rule as `(name, last evaluation error)`.
    async fn rules(&self) -> Result<Vec<(String, String)>, String> {
        let body = self.get("/api/v1/rules").await?;
        let groups = body["data"]["groups"].as_array().ok_or_else(|| format!("no data.groups in {body}"))?;
        Ok(groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .map(|r| (r["name"].as_str().unwrap_or("").to_owned(), r["lastError"].as_str().unwrap_or("").to_owned()))
            .collect())
    }

    /// The alerts, pending or firing, of pool `pool`.
    async fn alerts(&self, pool: &str) -> Vec<Alert> {
        let body = self.get("/api/v1/alerts").await.unwrap_or_else(|e| panic!("vmalert /api/v1/alerts: {e}"));
        let alerts = body["data"]["alerts"].as_array().unwrap_or_else(|| panic!("no data.alerts in {body}"));
        alerts
            .iter()
            .map(|a| Alert {
                name: a["name"].as_str().unwrap_or("").to_owned(),
                state: a["state"].as_str().unwrap_or("").to_owned(),
                labels: a["labels"]
                    .as_object()
                    .map(|l| l.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())).collect())
                    .unwrap_or_default(),
                summary: a["annotations"]["summary"].as_str().unwrap_or("").to_owned(),
            })
            .filter(|a| a.labels.get("db_client_connection_pool_name").map(String::as_str) == Some(pool))
            .collect()
    }

    /// Fails the test if any rule's last evaluation failed (a query VictoriaMetrics rejects, or two results
    /// with the same labels).
    async fn assert_rules_evaluate(&self) {
        let rules = self.rules().await.unwrap_or_else(|e| panic!("vmalert /api/v1/rules: {e}"));
        let failed: Vec<_> = rules.iter().filter(|(_, e)| !e.is_empty()).collect();
        assert!(failed.is_empty(), "rules whose evaluation failed: {failed:?}\n{}", self.log());
    }
}

impl Drop for VmAlert {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("vmalert log:\n{}", self.log());
        }
    }
}

/// What a test saw of its pool's alerts: when each first fired, counted from the start of the fault, and the
/// last firing instance of each.
#[derive(Default, Debug)]
struct Watch {
    fired: BTreeMap<String, Duration>,
    firing: BTreeMap<String, Alert>,
    seen: BTreeSet<String>,
}

/// Polls vmalert's alerts of `pool` (flushing VictoriaMetrics first, so what was exported is searchable) until
/// `done` holds for what was seen, or `deadline` (from `start`) passes. An alert outside `allowed` that appears,
/// pending or firing, fails the test at once.
async fn watch(
    vmalert: &VmAlert,
    vm: &Victoria,
    pool: &str,
    allowed: &[&str],
    start: Instant,
    deadline: Duration,
    done: impl Fn(&Watch) -> bool,
) -> Watch {
    let mut watch = Watch::default();
    loop {
        vm.force_flush().await;
        for a in vmalert.alerts(pool).await {
            assert!(
                allowed.contains(&a.name.as_str()),
                "unexpected alert {} ({}) for pool {pool}: {a:?}\n{}",
                a.name,
                a.state,
                vmalert.log()
            );
            watch.seen.insert(a.name.clone());
            if a.state == "firing" {
                watch.fired.entry(a.name.clone()).or_insert_with(|| start.elapsed());
                watch.firing.insert(a.name.clone(), a);
            }
        }
        if done(&watch) || start.elapsed() > deadline {
            return watch;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// [`watch`] until every alert of `expect` has fired.
async fn watch_until_firing(
    vmalert: &VmAlert,
    vm: &Victoria,
    pool: &str,
    expect: &[&str],
    allowed: &[&str],
    start: Instant,
    deadline: Duration,
) -> Watch {
    watch(vmalert, vm, pool, allowed, start, deadline, |w| expect.iter().all(|e| w.fired.contains_key(*e))).await
}

/// Polls until pool `pool` has no alert, pending or firing; returns how long that took from `start`.
async fn watch_until_resolved(vmalert: &VmAlert, vm: &Victoria, pool: &str, start: Instant) -> Duration {
    loop {
        vm.force_flush().await;
        let alerts = vmalert.alerts(pool).await;
        if alerts.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < RESOLVE_WITHIN,
            "alerts of pool {pool} still active {:?} after the fault ended: {alerts:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Checks that each alert of `expect` fired, not before its (compressed) `for` and within FIRE_SLACK after it.
fn assert_fired_in_time(watch: &Watch, expect: &[&str], what: &str) {
    let fors = rule_for();
    for name in expect {
        let for_ = fors[*name];
        let Some(at) = watch.fired.get(*name) else {
            panic!("{what}: {name} did not fire within its `for` ({for_:?}) + {FIRE_SLACK:?}; saw {watch:?}")
        };
        assert!(*at >= for_, "{what}: {name} fired after {at:?}, before its `for` of {for_:?}");
        assert!(*at <= for_ + FIRE_SLACK, "{what}: {name} fired only after {at:?} (`for` {for_:?})");
        eprintln!("{what}: {name} fired after {at:.1?} (for {for_:?})");
    }
}

/// An OTLP exporter to VictoriaMetrics under a unique `service.name`, exporting every EXPORT_INTERVAL.
fn otel(service: &str) -> aquifer_otel::OtelGuard {
    aquifer_otel::OtelBuilder::new()
        .endpoint(victoria_otlp_endpoint())
        .service_name(service)
        .export_interval(EXPORT_INTERVAL)
        .build()
        .expect("OTLP exporter to VictoriaMetrics")
}

/// A pool named `name` on PostgreSQL at `addr`, exporting through `guard`.
fn pool(name: &str, addr: &str, guard: &aquifer_otel::OtelGuard, set: impl FnOnce(&mut PgConfig)) -> PgPool {
    let mut config = PgConfig::from_url(format!("postgres://postgres@{addr}/test?sslmode=disable"));
    config.pool.name = Some(name.to_owned());
    set(&mut config);
    config.builder().expect("pool config").meter(guard.meter()).build().expect("pool").into()
}

async fn require_servers() -> Victoria {
    aquifer_testing::require_server("PostgreSQL", &postgres_addr(), "bash scripts/dev-services.sh postgres").await;
    Victoria::require().await
}

#[test]
fn compressing_turns_every_duration_into_seconds() {
    let rules = compressed_rules();
    assert!(rules.contains("for: 10s") && rules.contains("[5s]") && rules.contains("offset 15s"), "{rules}");
    // No number followed by a unit other than seconds is left outside comments (`5m`, `1h`, `7d`).
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let b = line.as_bytes();
        for i in 1..b.len() {
            let unit_end = b.get(i + 1).is_none_or(|c| !c.is_ascii_alphanumeric());
            assert!(!(b[i - 1].is_ascii_digit() && b"mhdwy".contains(&b[i]) && unit_end), "left uncompressed: {line}");
        }
    }
    assert_eq!(rule_for().len(), RULES.matches("- alert: ").count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_fires_the_saturation_and_timeout_alerts_and_they_resolve_after_the_load() {
    let vm = require_servers().await;
    let vmalert = VmAlert::start().await;
    let name = unique_name("alerts-saturated");
    let guard = otel(&name);
    let pool = pool(&name, &postgres_addr(), &guard, |c| {
        c.pool.max_size = 2;
        c.pool.acquire_timeout = Duration::from_millis(300);
    });

    // The fault: both connections held, and three callers that keep waiting for one and timing out.
    let start = Instant::now();
    let held = vec![pool.get().await.expect("first connection"), pool.get().await.expect("second connection")];
    let stop = Arc::new(AtomicBool::new(false));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                let mut timeouts = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    if pool.get().await.is_err() {
                        timeouts += 1;
                    }
                }
                timeouts
            })
        })
        .collect();

    let expect = [
        "AquiferPoolUtilizationCritical",
        "AquiferPoolUtilizationHigh",
        "AquiferPoolRequestsWaiting",
        "AquiferPoolAcquireTimeouts",
    ];
    let deadline = rule_for()["AquiferPoolUtilizationHigh"] + FIRE_SLACK;
    let watch = watch_until_firing(&vmalert, &vm, &name, &expect, &expect, start, deadline).await;

    stop.store(true, Ordering::Relaxed);
    let mut timeouts = 0;
    for w in waiters {
        timeouts += w.await.unwrap();
    }
    drop(held);
    let released = Instant::now();
    assert!(timeouts > 0, "the waiters never timed out");
    assert_fired_in_time(&watch, &expect, "saturated");
    let critical = &watch.firing["AquiferPoolUtilizationCritical"];
    assert_eq!(critical.labels.get("severity").map(String::as_str), Some("critical"), "{critical:?}");
    assert_eq!(critical.summary, format!("Pool {name} of {name} is saturated (100% in use)"), "{critical:?}");
    vmalert.assert_rules_evaluate().await;

    // The pool stays, idle: every alert resolves (the timeouts once their 5 s window has passed).
    let resolved = watch_until_resolved(&vmalert, &vm, &name, released).await;
    eprintln!("saturated: every alert resolved {resolved:.1?} after the load stopped ({timeouts} timeouts)");
    vmalert.assert_rules_evaluate().await;
    drop(pool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_server_fires_the_unavailable_and_connect_error_alerts_and_they_resolve_when_it_accepts() {
    let vm = require_servers().await;
    let vmalert = VmAlert::start().await;
    let name = unique_name("alerts-refused");
    let guard = otel(&name);
    // The fault: the pool's port refuses connections (the proxy's listening socket is closed).
    let proxy = ChaosProxy::start(postgres_addr().parse().unwrap()).await.expect("proxy");
    proxy.refuse(true);
    let refusing = Instant::now();
    while tokio::net::TcpStream::connect(proxy.addr()).await.is_ok() {
        assert!(refusing.elapsed() < Duration::from_secs(2), "the proxy still accepts");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pool = pool(&name, &proxy.addr().to_string(), &guard, |c| {
        c.pool.max_size = 2;
        c.pool.fail_fast_after = Duration::from_millis(200);
        c.pool.connect_backoff_min = Duration::from_millis(50);
        c.pool.connect_backoff_max = Duration::from_millis(250);
    });
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                match pool.get().await {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (ok, failed)
        })
    };

    let expect = ["AquiferPoolUnavailable", "AquiferPoolConnectErrors"];
    // Callers wait for the 200 ms before the pool fails fast: the waiting alert may go pending, never fire.
    let allowed = ["AquiferPoolUnavailable", "AquiferPoolConnectErrors", "AquiferPoolRequestsWaiting"];
    let deadline = rule_for()["AquiferPoolConnectErrors"] + FIRE_SLACK;
    let watch = watch_until_firing(&vmalert, &vm, &name, &expect, &allowed, start, deadline).await;
    assert_fired_in_time(&watch, &expect, "refused");
    assert!(!watch.fired.contains_key("AquiferPoolRequestsWaiting"), "{watch:?}");
    let errors = &watch.firing["AquiferPoolConnectErrors"];
    assert_eq!(errors.labels.get("error_type").map(String::as_str), Some("connection_refused"), "{errors:?}");
    assert_eq!(errors.labels.get("severity").map(String::as_str), Some("warning"), "{errors:?}");
    vmalert.assert_rules_evaluate().await;

    // The server accepts again: the pool reconnects, and both alerts resolve.
    proxy.heal();
    let healed = Instant::now();
    let resolved = watch_until_resolved(&vmalert, &vm, &name, healed).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = caller.await.unwrap();
    eprintln!(
        "refused: every alert resolved {resolved:.1?} after the server accepted again ({failed} gets failed, then {ok} succeeded)"
    );
    assert!(failed > 0 && ok > 0, "{failed} failed and {ok} succeeded");
    vmalert.assert_rules_evaluate().await;
    drop(pool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_pool_fires_nothing() {
    let vm = require_servers().await;
    let vmalert = VmAlert::start().await;
    let name = unique_name("alerts-healthy");
    let guard = otel(&name);
    let pool = pool(&name, &postgres_addr(), &guard, |c| c.pool.max_size = 4);

    // Two callers, each running a query every 50 ms: at most half the pool in use, nobody waits.
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                let mut queries = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let mut conn = pool.get().await.expect("a healthy pool serves");
                    aquifer_postgres::sqlx::query("SELECT 1").execute(&mut *conn).await.expect("SELECT 1");
                    drop(conn);
                    queries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                queries
            })
        })
        .collect();

    // Longer than the longest `for` (10 s) and the longest window of a rule that could fire here (5 s).
    let start = Instant::now();
    let run = rule_for().values().max().copied().unwrap() + Duration::from_secs(5);
    let watched = watch(&vmalert, &vm, &name, &[], start, run, |_| false).await;
    stop.store(true, Ordering::Relaxed);
    let mut queries = 0;
    for c in callers {
        queries += c.await.unwrap();
    }
    assert!(watched.seen.is_empty(), "{watched:?}");

    // The rules had the pool's data to look at.
    let selector = format!("{{db_client_connection_pool_name=\"{name}\"}}");
    for metric in ["db_client_connection_count", "db_client_connection_max", "aquifer_pool_health_ratio"] {
        let got = vm.query(&format!("{metric}{selector}")).await.unwrap();
        assert!(!got.is_empty(), "{metric} of pool {name} is not in VictoriaMetrics");
    }
    let health = vm.query(&format!("aquifer_pool_health_ratio{selector}")).await.unwrap();
    assert_eq!(health[0].value, 1.0, "{health:?}");
    vmalert.assert_rules_evaluate().await;
    eprintln!("healthy: {queries} queries over {:.1?}, no alert", start.elapsed());
    drop(pool);
}
