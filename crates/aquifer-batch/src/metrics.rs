//! [`BatchMetrics`]: the OpenTelemetry instruments a [`BatchLoader`](crate::BatchLoader) records into.
//!
//! Instruments are created once (per meter) and shared by every loader, so creating a loader per request costs
//! no instrument lookups. Per-key counts are summed under the loader's lock and added once per dispatched batch
//! (and when the loader is dropped), not once per call.

use std::sync::OnceLock;

use aquifer_core::metrics::DURATION_BUCKETS;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

/// Metric and attribute names.
pub mod names {
    /// `aquifer.batch.size` (Histogram, `{key}`): distinct keys per dispatched batch.
    pub const BATCH_SIZE: &str = "aquifer.batch.size";
    /// `aquifer.batch.keys` (Counter, `{key}`, attribute [`OUTCOME`]).
    pub const BATCH_KEYS: &str = "aquifer.batch.keys";
    /// `db.client.operation.duration` (Histogram, `s`): one point per dispatched batch.
    pub const OPERATION_DURATION: &str = aquifer_core::metrics::names::OPERATION_DURATION;
    /// `aquifer.batch.loader`: the loader's name (see `BatchLoaderBuilder::name`).
    pub const LOADER: &str = "aquifer.batch.loader";
    /// `outcome` of [`BATCH_KEYS`]: `requested` (every key asked for), `deduplicated` (joined a key already
    /// pending or in flight, or repeated in one `load_many`), `cached` (answered from the cache), `loaded`
    /// (returned by the loader), `missing` (asked of the loader, not returned).
    pub const OUTCOME: &str = "outcome";
    /// `error.type` on the duration of a failed batch: `load` or `panic`.
    pub const ERROR_TYPE: &str = aquifer_core::metrics::ERROR_TYPE;
}

/// Keys-per-batch histogram boundaries: powers of ten and their halves and fifths, 1 to 10,000.
const SIZE_BUCKETS: [f64; 13] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4];

/// The instruments of batch loading. Cheap to clone; create it once per meter.
#[derive(Clone, Debug)]
pub struct BatchMetrics {
    pub(crate) size: Histogram<u64>,
    pub(crate) keys: Counter<u64>,
    pub(crate) duration: Histogram<f64>,
}

impl BatchMetrics {
    /// Instruments from `meter`.
    pub fn new(meter: &Meter) -> Self {
        BatchMetrics {
            size: meter
                .u64_histogram(names::BATCH_SIZE)
                .with_unit("{key}")
                .with_description("Distinct keys per dispatched batch")
                .with_boundaries(SIZE_BUCKETS.to_vec())
                .build(),
            keys: meter
                .u64_counter(names::BATCH_KEYS)
                .with_unit("{key}")
                .with_description("Keys through batch loaders, by outcome")
                .build(),
            duration: meter
                .f64_histogram(names::OPERATION_DURATION)
                .with_unit("s")
                .with_description("Duration of database client operations")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
        }
    }

    /// Instruments from the global meter provider's `aquifer-batch` meter, created on first use. Install the
    /// SDK's provider before the first loader records anything: instruments created from the no-op provider stay
    /// no-ops.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<BatchMetrics> = OnceLock::new();
        GLOBAL.get_or_init(|| BatchMetrics::new(&opentelemetry::global::meter("aquifer-batch"))).clone()
    }
}

/// Key counts summed between flushes.
#[derive(Default, Debug)]
pub(crate) struct KeyCounts {
    pub(crate) requested: u64,
    pub(crate) deduplicated: u64,
    pub(crate) cached: u64,
}

impl KeyCounts {
    pub(crate) fn take(&mut self) -> KeyCounts {
        std::mem::take(self)
    }
}

/// A loader's attribute sets, built once per loader.
#[derive(Debug)]
pub(crate) struct Attributes {
    pub(crate) loader: Vec<KeyValue>,
    outcomes: [Vec<KeyValue>; 5],
    errors: [Vec<KeyValue>; 2],
}

#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    Requested = 0,
    Deduplicated = 1,
    Cached = 2,
    Loaded = 3,
    Missing = 4,
}

const OUTCOMES: [&str; 5] = ["requested", "deduplicated", "cached", "loaded", "missing"];
const ERRORS: [&str; 2] = ["load", "panic"];

impl Attributes {
    /// `system`: the `db.system.name` of the database the loader queries, on every data point when given
    /// (the semantic conventions require it on `db.client.operation.duration`).
    pub(crate) fn new(name: opentelemetry::StringValue, system: Option<opentelemetry::StringValue>) -> Self {
        let mut loader = vec![KeyValue::new(names::LOADER, name)];
        loader.extend(system.map(|s| KeyValue::new(aquifer_core::metrics::DB_SYSTEM_NAME, s)));
        let with = |key: &'static str, value: &'static str| {
            let mut attrs = loader.clone();
            attrs.push(KeyValue::new(key, value));
            attrs
        };
        Attributes {
            outcomes: OUTCOMES.map(|o| with(names::OUTCOME, o)),
            errors: ERRORS.map(|e| with(names::ERROR_TYPE, e)),
            loader,
        }
    }

    pub(crate) fn outcome(&self, o: Outcome) -> &[KeyValue] {
        &self.outcomes[o as usize]
    }

    pub(crate) fn error(&self, kind: &str) -> &[KeyValue] {
        let i = ERRORS.iter().position(|e| *e == kind).unwrap_or(0);
        &self.errors[i]
    }
}

impl BatchMetrics {
    pub(crate) fn add_counts(&self, attrs: &Attributes, counts: KeyCounts) {
        for (n, o) in [
            (counts.requested, Outcome::Requested),
            (counts.deduplicated, Outcome::Deduplicated),
            (counts.cached, Outcome::Cached),
        ] {
            if n > 0 {
                self.keys.add(n, attrs.outcome(o));
            }
        }
    }
}
