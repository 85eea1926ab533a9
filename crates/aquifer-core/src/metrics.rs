//! OpenTelemetry instruments of a pool, under the `db.client.connection.*` names of the semantic conventions.
//!
//! Counts (connections, pending requests, limits, health) are observed from the pool's state by callbacks at
//! collection time, so they cost nothing per operation. Histograms and counters are recorded as things happen,
//! with attribute sets built once per pool, except the zero waits of checkouts served at once, which are
//! counted under the pool's lock and recorded at collection (see `record_zero_waits`). This crate uses the OpenTelemetry API only: with no SDK installed
//! every instrument is a no-op.
//!
//! With the `otel-bound-instruments` feature, per-operation instruments are bound to the pool's attributes
//! once (OpenTelemetry's experimental bound instruments), which removes the attribute lookup from every
//! record. The SDK must be built with its `experimental_metrics_bound_instruments` feature too, or bound
//! measurements are dropped; `aquifer-otel` enables both.

use std::borrow::Cow;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::metrics::{AsyncInstrument, Counter, Histogram, Meter};
use opentelemetry::{InstrumentationScope, KeyValue};

use crate::internals::CloseReason;
use crate::manager::Descriptor;

/// `db.client.connection.pool.name`
pub const POOL_NAME: &str = "db.client.connection.pool.name";
/// `db.system.name`
pub const DB_SYSTEM_NAME: &str = "db.system.name";
/// `db.client.connection.state`
pub const CONNECTION_STATE: &str = "db.client.connection.state";
/// `db.operation.name`
pub const DB_OPERATION_NAME: &str = "db.operation.name";
/// `error.type`
pub const ERROR_TYPE: &str = "error.type";

/// Instrument names, for code that records the same metrics outside a [`Pool`](crate::Pool) (the r2d2 pool of
/// `aquifer-sqlite`) and for dashboards.
pub mod names {
    /// `db.client.connection.count` (UpDownCounter, `{connection}`, attribute `db.client.connection.state`).
    pub const CONNECTION_COUNT: &str = "db.client.connection.count";
    /// `db.client.connection.idle.max` (UpDownCounter, `{connection}`).
    pub const IDLE_MAX: &str = "db.client.connection.idle.max";
    /// `db.client.connection.idle.min` (UpDownCounter, `{connection}`).
    pub const IDLE_MIN: &str = "db.client.connection.idle.min";
    /// `db.client.connection.max` (UpDownCounter, `{connection}`).
    pub const MAX: &str = "db.client.connection.max";
    /// `db.client.connection.pending_requests` (UpDownCounter, `{request}`).
    pub const PENDING_REQUESTS: &str = "db.client.connection.pending_requests";
    /// `db.client.connection.timeouts` (Counter, `{timeout}`).
    pub const TIMEOUTS: &str = "db.client.connection.timeouts";
    /// `db.client.connection.create_time` (Histogram, `s`).
    pub const CREATE_TIME: &str = "db.client.connection.create_time";
    /// `db.client.connection.wait_time` (Histogram, `s`).
    pub const WAIT_TIME: &str = "db.client.connection.wait_time";
    /// `db.client.connection.use_time` (Histogram, `s`).
    pub const USE_TIME: &str = "db.client.connection.use_time";
    /// `db.client.operation.duration` (Histogram, `s`).
    pub const OPERATION_DURATION: &str = "db.client.operation.duration";
    /// `aquifer.pool.keyed.pools` (UpDownCounter, `{pool}`): the pools a [`KeyedPools`](crate::KeyedPools)
    /// holds.
    pub const KEYED_POOLS: &str = "aquifer.pool.keyed.pools";
    /// `aquifer.pool.connections.created` (Counter, `{connection}`).
    pub const CREATED: &str = "aquifer.pool.connections.created";
    /// `aquifer.pool.connections.closed` (Counter, `{connection}`, attribute `reason`).
    pub const CLOSED: &str = "aquifer.pool.connections.closed";
    /// `aquifer.pool.connect.errors` (Counter, `{error}`, attribute `error.type`).
    pub const CONNECT_ERRORS: &str = "aquifer.pool.connect.errors";
    /// `aquifer.pool.leaks` (Counter, `{connection}`).
    pub const LEAKS: &str = "aquifer.pool.leaks";
    /// `aquifer.pool.health` (Gauge, `1`: 1 healthy, 0.5 degraded, 0 unhealthy).
    pub const HEALTH: &str = "aquifer.pool.health";
    /// `aquifer.pool.paused` (Gauge, `1`: 1 while the pool is paused, 0 otherwise).
    pub const PAUSED: &str = "aquifer.pool.paused";
    /// `aquifer.pool.connections.retired` (Counter, `{connection}`, attribute `reason`: why the connection was
    /// retired; `operator` for [`Pool::retire`](crate::Pool::retire), `credential_rotation` for a connection
    /// opened with a rotated-out credential under
    /// [`retire_on_rotation`](crate::PoolConfig::retire_on_rotation)). Each also counts in [`CLOSED`] with
    /// `reason="retired"`.
    pub const RETIRED: &str = "aquifer.pool.connections.retired";
    /// `aquifer.cluster.host.role` (Gauge, `1`): 1 while a [`ClusterPool`](crate::ClusterPool)'s host is the
    /// primary, 0 while a replica, -1 while down or not yet probed. Attributes: `db.client.connection.pool.name`,
    /// `db.system.name`, `server.address`, `server.port`.
    pub const HOST_ROLE: &str = "aquifer.cluster.host.role";
    /// `aquifer.cluster.replica.lag` (Gauge, `s`): a cluster replica's lag as its last probe measured it,
    /// reported for replicas whose lag is known. Same attributes as [`HOST_ROLE`].
    pub const REPLICA_LAG: &str = "aquifer.cluster.replica.lag";
    /// `aquifer.n_plus_one` (Counter, `{loop}`, attributes `code.file.path` and `code.line.number` of the call
    /// site): N+1 loops found, each once per scope ([`n_plus_one`](crate::n_plus_one)).
    pub const N_PLUS_ONE: &str = "aquifer.n_plus_one";
}

/// The `db.operation.name` of a statement whose leading keyword is not in the adapter's list.
pub const OTHER_OPERATION: &str = "_OTHER";

/// `db.operation.name` of a statement: its leading keyword — after whitespace, comments (`--`, `//`, `#`,
/// `/* */`) and opening parentheses — as spelled in `keywords` when it is one of them (compared without case;
/// an entry of several words, like `OPTIONAL MATCH`, matches on its first), [`OTHER_OPERATION`] otherwise. A
/// fixed list keeps the metric's cardinality bounded. Every adapter's helpers name operations this way.
///
/// ```
/// use aquifer_core::metrics::operation_name;
///
/// const SQL: &[&str] = &["SELECT", "INSERT"];
/// assert_eq!(operation_name("  /* tag */ (select 1)", SQL), "SELECT");
/// assert_eq!(operation_name("VACUUM", SQL), "_OTHER");
/// assert_eq!(operation_name("optional match (n) return n", &["MATCH", "OPTIONAL MATCH"]), "OPTIONAL MATCH");
/// ```
pub fn operation_name(statement: &str, keywords: &[&'static str]) -> &'static str {
    let mut rest = statement.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
        } else if rest.starts_with("--") || rest.starts_with("//") || rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(r) = rest.strip_prefix('(') {
            rest = r;
        } else {
            break;
        }
        rest = rest.trim_start();
    }
    let word = &rest[..rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len())];
    if word.is_empty() {
        return OTHER_OPERATION;
    }
    keywords
        .iter()
        .find(|k| k.split(' ').next().is_some_and(|first| first.eq_ignore_ascii_case(word)))
        .copied()
        .unwrap_or(OTHER_OPERATION)
}

/// Histogram bucket boundaries in seconds, from 1 µs to 60 s: pool waits and uses are often microseconds,
/// queries milliseconds, stalls seconds. The OpenTelemetry defaults (0..10000) would put them all in one bucket.
pub const DURATION_BUCKETS: [f64; 23] = [
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    60.0,
];

/// The meter pools use unless given one: the global meter provider's, under the scope `aquifer`.
///
/// Install the SDK's meter provider (`opentelemetry::global::set_meter_provider`) before building pools:
/// instruments made while the no-op provider is installed stay no-ops.
pub fn default_meter() -> Meter {
    opentelemetry::global::meter_with_scope(
        InstrumentationScope::builder("aquifer")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url("https://opentelemetry.io/schemas/1.37.0")
            .build(),
    )
}

/// An observable instrument's callback that calls `observe` on `target` while it is alive: it holds `target`
/// weakly, so the meter, which keeps its callbacks, does not keep the pool (or set) open.
pub(crate) fn while_alive<T, V>(
    target: &Arc<T>,
    observe: impl Fn(&T, &dyn AsyncInstrument<V>) + Send + Sync + 'static,
) -> impl Fn(&dyn AsyncInstrument<V>) + Send + Sync + 'static
where
    T: Send + Sync + 'static,
{
    let weak = Arc::downgrade(target);
    move |o| {
        if let Some(target) = weak.upgrade() {
            observe(&target, o);
        }
    }
}

/// Counts one refresh of a [`CredentialProvider`](crate::CredentialProvider) as
/// `aquifer.credentials.refreshes{provider, outcome}` (`success` or `failure`) on the global meter provider.
/// Refreshes are rare (minutes apart), so the instrument is looked up per call: a provider installed after the
/// pool was built still receives them.
pub(crate) fn credential_refreshed(provider: &str, outcome: &'static str) {
    default_meter()
        .u64_counter("aquifer.credentials.refreshes")
        .with_unit("{refresh}")
        .with_description("Refreshes of a credential provider's token, by outcome.")
        .build()
        .add(1, &[KeyValue::new("provider", provider.to_owned()), KeyValue::new("outcome", outcome)]);
}

#[cfg(feature = "otel-bound-instruments")]
mod recorder {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram};

    #[derive(Clone)]
    pub(super) struct Hist(BoundHistogram<f64>);
    pub(super) struct Ctr(BoundCounter<u64>);

    impl Hist {
        pub(super) fn new(h: Histogram<f64>, attrs: &[KeyValue]) -> Self {
            Hist(h.bind(attrs))
        }
        #[inline]
        pub(super) fn record(&self, v: f64) {
            self.0.record(v)
        }
    }

    impl Ctr {
        pub(super) fn new(c: Counter<u64>, attrs: &[KeyValue]) -> Self {
            Ctr(c.bind(attrs))
        }
        #[inline]
        pub(super) fn add(&self, v: u64) {
            self.0.add(v)
        }
    }
}

#[cfg(not(feature = "otel-bound-instruments"))]
mod recorder {
    use std::sync::Arc;

    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{Counter, Histogram};

    #[derive(Clone)]
    pub(super) struct Hist(Histogram<f64>, Arc<[KeyValue]>);
    pub(super) struct Ctr(Counter<u64>, Arc<[KeyValue]>);

    impl Hist {
        pub(super) fn new(h: Histogram<f64>, attrs: &[KeyValue]) -> Self {
            Hist(h, attrs.into())
        }
        #[inline]
        pub(super) fn record(&self, v: f64) {
            self.0.record(v, &self.1)
        }
    }

    impl Ctr {
        pub(super) fn new(c: Counter<u64>, attrs: &[KeyValue]) -> Self {
            Ctr(c, attrs.into())
        }
        #[inline]
        pub(super) fn add(&self, v: u64) {
            self.0.add(v, &self.1)
        }
    }
}

use recorder::{Ctr, Hist};

/// What the observable instruments read, at collection time.
pub(crate) trait Observed: Send + Sync + 'static {
    fn observe(&self) -> Option<Observation>;
    /// Checkouts served at once since the last call, whose zero waits are not recorded yet.
    fn take_zero_waits(&self) -> u64;
}

/// One reading of a pool for the observable instruments.
#[derive(Clone, Copy)]
pub(crate) struct Observation {
    pub(crate) state: crate::stats::State,
    pub(crate) health: f64,
    /// A closed pool exports no health: closing is the program's decision, not a fault to alert on.
    pub(crate) closed: bool,
}

/// What an observable instrument's callback reads: the live pool, and once it is gone, its last reading,
/// exactly once.
///
/// A short-lived program that creates its OpenTelemetry guard first (as it should, so the pools record into
/// it) drops its pools before the guard's final export. Reading the pool alone, that export would carry no
/// pool gauges at all: the program's only export, or its last, would lack the counts. So the pool leaves its
/// last reading behind when it is dropped ([`PoolMetrics::keep_last`]), and each callback reports it at the
/// next collection, then nothing more (a pool dropped long ago must not be exported forever: services that
/// create pools on demand would accumulate series).
struct Reader {
    pool: Weak<dyn Observed>,
    last: Arc<parking_lot::Mutex<Option<Observation>>>,
    reported_last: std::sync::atomic::AtomicBool,
}

impl Reader {
    fn new(pool: &Weak<dyn Observed>, last: &Arc<parking_lot::Mutex<Option<Observation>>>) -> Self {
        Reader { pool: pool.clone(), last: Arc::clone(last), reported_last: false.into() }
    }

    fn read(&self) -> Option<Observation> {
        if let Some(pool) = self.pool.upgrade() {
            return pool.observe();
        }
        let last = (*self.last.lock())?;
        (!self.reported_last.swap(true, std::sync::atomic::Ordering::AcqRel)).then_some(last)
    }
}

/// The per-operation instruments of one pool, with their attributes bound once.
pub(crate) struct PoolMetrics {
    /// The pool's last reading, left for the callbacks when it is dropped.
    last: Arc<parking_lot::Mutex<Option<Observation>>>,
    wait_time: Hist,
    use_time: Hist,
    create_time: Hist,
    timeouts: Ctr,
    created: Ctr,
    /// By `reason`, one counter per distinct value (two close reasons share `retired`: bound instruments must
    /// not export two points with the same attributes).
    closed: Vec<(&'static str, Ctr)>,
    /// `aquifer.pool.connections.retired{reason}`, for `operator` and `credential_rotation`.
    retired: [Ctr; 2],
    leaks: Ctr,
    connect_errors: Counter<u64>,
    /// `aquifer.n_plus_one` (Counter, `{loop}`, attributes `code.file.path`, `code.line.number`).
    n_plus_one: Counter<u64>,
    operation: Histogram<f64>,
    base: Arc<[KeyValue]>,
    operation_base: Arc<[KeyValue]>,
    /// Attribute sets of successful operations by `db.operation.name`, built once each (up to
    /// [`MAX_CACHED_OPERATIONS`] names; operation names are low-cardinality by convention).
    operation_attrs: parking_lot::RwLock<std::collections::HashMap<Box<str>, Arc<[KeyValue]>>>,
}

const MAX_CACHED_OPERATIONS: usize = 64;

impl PoolMetrics {
    pub(crate) fn new(
        meter: &Meter,
        pool_name: &str,
        descriptor: &Descriptor,
        observed: Weak<dyn Observed>,
        host_attributes: bool,
    ) -> Self {
        let mut base = vec![
            KeyValue::new(POOL_NAME, pool_name.to_owned()),
            KeyValue::new(DB_SYSTEM_NAME, descriptor.system.to_string()),
        ];
        if host_attributes {
            // A cluster's host pools share its name: the server tells them apart.
            base.extend(descriptor.server_address.clone().map(|a| KeyValue::new("server.address", a)));
            base.extend(descriptor.server_port.map(|p| KeyValue::new("server.port", i64::from(p))));
        }
        let base: Arc<[KeyValue]> = Arc::from(base);
        let mut operation_base = base.to_vec();
        if !host_attributes {
            if let Some(a) = &descriptor.server_address {
                operation_base.push(KeyValue::new("server.address", a.clone()));
            }
            if let Some(p) = descriptor.server_port {
                operation_base.push(KeyValue::new("server.port", i64::from(p)));
            }
        }
        if let Some(ns) = &descriptor.namespace {
            operation_base.push(KeyValue::new("db.namespace", ns.clone()));
        }

        let hist = |name: &'static str, description: &'static str| {
            let h = meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build();
            Hist::new(h, &base)
        };
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter.u64_counter(name).with_unit(unit).with_description(description).build()
        };

        let closed_counter = counter(names::CLOSED, "{connection}", "Connections closed, by reason.");
        let mut closed: Vec<(&'static str, Ctr)> = Vec::new();
        for reason in CloseReason::ALL.map(CloseReason::as_str) {
            if closed.iter().all(|(r, _)| *r != reason) {
                let mut attrs = base.to_vec();
                attrs.push(KeyValue::new("reason", reason));
                closed.push((reason, Ctr::new(closed_counter.clone(), &attrs)));
            }
        }

        let wait_time = hist(names::WAIT_TIME, "The time it took to obtain an open connection from the pool.");
        let last = Arc::new(parking_lot::Mutex::new(None));
        register_observers(meter, &base, &observed, &last, wait_time.clone());

        PoolMetrics {
            last,
            wait_time,
            use_time: hist(names::USE_TIME, "The time between borrowing a connection and returning it to the pool."),
            create_time: hist(names::CREATE_TIME, "The time it took to create a new connection."),
            timeouts: Ctr::new(
                counter(
                    names::TIMEOUTS,
                    "{timeout}",
                    "The number of connection timeouts that have occurred trying to obtain a connection from the pool.",
                ),
                &base,
            ),
            created: Ctr::new(counter(names::CREATED, "{connection}", "Connections opened."), &base),
            closed,
            retired: {
                let retired = counter(names::RETIRED, "{connection}", "Connections retired, by reason.");
                [CloseReason::Retired, CloseReason::CredentialRotation].map(|r| {
                    let mut attrs = base.to_vec();
                    attrs.extend(r.retired_reason().map(|reason| KeyValue::new("reason", reason)));
                    Ctr::new(retired.clone(), &attrs)
                })
            },
            leaks: Ctr::new(
                counter(names::LEAKS, "{connection}", "Connections held longer than the leak detection threshold."),
                &base,
            ),
            connect_errors: counter(names::CONNECT_ERRORS, "{error}", "Failed connect attempts, by error type."),
            n_plus_one: counter(
                names::N_PLUS_ONE,
                "{loop}",
                "N+1 loops found: one statement shape run again and again from one call site in one scope.",
            ),
            operation: meter
                .f64_histogram(names::OPERATION_DURATION)
                .with_unit("s")
                .with_description("Duration of database client operations.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            base,
            operation_base: operation_base.into(),
            operation_attrs: Default::default(),
        }
    }

    #[inline]
    pub(crate) fn wait_time(&self, d: Duration) {
        self.wait_time.record(d.as_secs_f64());
    }

    /// Records `n` zero waits (checkouts served at once, counted under the pool's lock): see
    /// [`record_zero_waits`].
    pub(crate) fn zero_waits(&self, n: u64) {
        record_zero_waits(&self.wait_time, n);
    }

    /// Leaves the pool's last reading for the next collection (see [`Reader`]); called when the pool is
    /// dropped.
    pub(crate) fn keep_last(&self, last: Observation) {
        *self.last.lock() = Some(last);
    }

    #[inline]
    pub(crate) fn use_time(&self, d: Duration) {
        self.use_time.record(d.as_secs_f64());
    }

    pub(crate) fn create_time(&self, d: Duration) {
        self.create_time.record(d.as_secs_f64());
        self.created.add(1);
    }

    pub(crate) fn timeout(&self) {
        self.timeouts.add(1);
    }

    pub(crate) fn closed(&self, reason: CloseReason, n: u64) {
        if let Some((_, counter)) = self.closed.iter().find(|(r, _)| *r == reason.as_str()) {
            counter.add(n);
        }
        match reason {
            CloseReason::Retired => self.retired[0].add(n),
            CloseReason::CredentialRotation => self.retired[1].add(n),
            _ => {}
        }
    }

    pub(crate) fn leak(&self) {
        self.leaks.add(1);
    }

    pub(crate) fn connect_error(&self, error_type: Cow<'static, str>) {
        let mut attrs = self.base.to_vec();
        attrs.push(KeyValue::new(ERROR_TYPE, error_type));
        self.connect_errors.add(1, &attrs);
    }

    /// Where a scope records the N+1 loops it finds on this pool.
    pub(crate) fn n_plus_one_sink(&self, pool: &Arc<str>, system: Cow<'static, str>) -> crate::n_plus_one::Sink {
        crate::n_plus_one::Sink {
            pool: Arc::clone(pool),
            system,
            counter: self.n_plus_one.clone(),
            base: Arc::clone(&self.base),
        }
    }

    pub(crate) fn operation(&self, operation: &str, d: Duration, error_type: Option<&str>) {
        let secs = d.as_secs_f64();
        if error_type.is_none()
            && let Some(attrs) = self.operation_attrs.read().get(operation)
        {
            return self.operation.record(secs, attrs);
        }
        let mut attrs = Vec::with_capacity(self.operation_base.len() + 2);
        attrs.extend_from_slice(&self.operation_base);
        attrs.push(KeyValue::new(DB_OPERATION_NAME, operation.to_owned()));
        match error_type {
            Some(e) => attrs.push(KeyValue::new(ERROR_TYPE, e.to_owned())),
            None => {
                let mut cache = self.operation_attrs.write();
                if cache.len() < MAX_CACHED_OPERATIONS {
                    cache.insert(operation.into(), attrs.clone().into());
                }
            }
        }
        self.operation.record(secs, &attrs);
    }
}

/// Records `n` waits of zero seconds.
///
/// A checkout served at once from the idle queue waited for nothing. Recording that zero into the SDK's
/// histogram on the spot is half of what metrics cost on the uncontended fast path (a bucket search and a
/// mutex inside the SDK, per record), so the pool counts such checkouts under the lock it holds anyway and
/// records them here: in the callback of `db.client.connection.count`, which the SDK runs at the start of
/// every collection, before it reads the histograms, and when the pool is dropped. Every collection thus
/// exports the same data as recording on the spot would have: the same count, bucket counts, sum and min.
/// (With several readers, a collection by one reader records them for all: the others see them at their next
/// collection.)
fn record_zero_waits(wait_time: &Hist, n: u64) {
    for _ in 0..n {
        wait_time.record(0.0);
    }
}

/// Registers the callbacks of the observable instruments. They hold the pool weakly: a dropped pool reports its
/// last reading once (see [`Reader`]), then nothing.
fn register_observers(
    meter: &Meter,
    base: &[KeyValue],
    observed: &Weak<dyn Observed>,
    last: &Arc<parking_lot::Mutex<Option<Observation>>>,
    wait_time: Hist,
) {
    let with = |extra: Option<KeyValue>| -> Vec<KeyValue> {
        let mut v = base.to_vec();
        v.extend(extra);
        v
    };
    let idle = with(Some(KeyValue::new(CONNECTION_STATE, "idle")));
    let used = with(Some(KeyValue::new(CONNECTION_STATE, "used")));
    let plain = with(None);

    let reader = Reader::new(observed, last);
    meter
        .i64_observable_up_down_counter(names::CONNECTION_COUNT)
        .with_unit("{connection}")
        .with_description("The number of connections that are currently in state described by the state attribute.")
        .with_callback(move |o| {
            if let Some(pool) = reader.pool.upgrade() {
                // Callbacks run before the SDK reads the histograms: the zero waits land in this collection.
                record_zero_waits(&wait_time, pool.take_zero_waits());
            }
            if let Some(obs) = reader.read() {
                o.observe(obs.state.idle as i64, &idle);
                o.observe(obs.state.in_use as i64, &used);
            }
        })
        .build();

    let gauge = |name: &'static str, unit: &'static str, description: &'static str, read: fn(&Observation) -> i64| {
        let reader = Reader::new(observed, last);
        let attrs = plain.clone();
        meter
            .i64_observable_up_down_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |o| {
                if let Some(obs) = reader.read() {
                    o.observe(read(&obs), &attrs);
                }
            })
            .build();
    };
    gauge(names::IDLE_MAX, "{connection}", "The maximum number of idle open connections allowed.", |o| {
        o.state.max_size as i64
    });
    gauge(names::IDLE_MIN, "{connection}", "The minimum number of idle open connections allowed.", |o| {
        o.state.min_idle as i64
    });
    gauge(names::MAX, "{connection}", "The maximum number of open connections allowed.", |o| o.state.max_size as i64);
    gauge(
        names::PENDING_REQUESTS,
        "{request}",
        "The number of current pending requests for an open connection.",
        |o| o.state.waiting as i64,
    );

    let reader = Reader::new(observed, last);
    let paused = plain.clone();
    meter
        .i64_observable_gauge(names::PAUSED)
        .with_unit("1")
        .with_description("Whether the pool is paused (1) or lending (0).")
        .with_callback(move |o| {
            if let Some(obs) = reader.read() {
                o.observe(i64::from(obs.state.paused), &paused);
            }
        })
        .build();

    let reader = Reader::new(observed, last);
    let attrs = plain;
    meter
        .f64_observable_gauge(names::HEALTH)
        .with_unit("1")
        .with_description("Pool health: 1 healthy, 0.5 degraded, 0 unhealthy.")
        .with_callback(move |o| {
            if let Some(obs) = reader.read().filter(|obs| !obs.closed) {
                o.observe(obs.health, &attrs);
            }
        })
        .build();
}
