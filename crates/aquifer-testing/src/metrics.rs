//! [`MetricsCapture`]: the OpenTelemetry SDK with its in-memory exporter, for asserting on exported metrics.

use std::collections::BTreeMap;

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

/// An SDK meter provider whose exports land in memory.
pub struct MetricsCapture {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Default for MetricsCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsCapture {
    /// A fresh provider with cumulative temporality.
    pub fn new() -> Self {
        let exporter = InMemoryMetricExporter::default();
        let provider =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
        MetricsCapture { provider, exporter }
    }

    /// A meter of this provider, to pass to `PoolBuilder::meter`.
    pub fn meter(&self) -> Meter {
        self.provider.meter("aquifer")
    }

    /// Collects and exports now, and returns the newest export flattened.
    pub fn collect(&self) -> Captured {
        self.exporter.reset();
        self.provider.force_flush().expect("force_flush of the in-memory exporter");
        let exports = self.exporter.get_finished_metrics().expect("in-memory metrics");
        let mut metrics = BTreeMap::new();
        if let Some(last) = exports.last() {
            for scope in last.scope_metrics() {
                for m in scope.metrics() {
                    let (kind, points) = flatten(m.data());
                    metrics.insert(
                        m.name().to_owned(),
                        CapturedMetric { name: m.name().to_owned(), unit: m.unit().to_owned(), kind, points },
                    );
                }
            }
        }
        Captured { metrics }
    }
}

/// The instrument kind as seen in the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic sum (Counter, ObservableCounter).
    Counter,
    /// A non-monotonic sum (UpDownCounter, ObservableUpDownCounter).
    UpDownCounter,
    /// A gauge.
    Gauge,
    /// An explicit-bucket histogram.
    Histogram,
    /// Anything else.
    Other,
}

/// One data point: attributes (as strings) and, for sums and gauges, the value; for histograms count and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Attribute key to value, as strings.
    pub attributes: BTreeMap<String, String>,
    /// Sum or gauge value; histogram sum.
    pub value: f64,
    /// Histogram count (1 for other kinds).
    pub count: u64,
    /// Histogram bucket boundaries (empty for other kinds).
    pub bounds: Vec<f64>,
}

impl Point {
    /// The value of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// One exported metric.
#[derive(Debug, Clone)]
pub struct CapturedMetric {
    /// Its name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// Its kind.
    pub kind: Kind,
    /// Its data points.
    pub points: Vec<Point>,
}

impl CapturedMetric {
    /// The sum of all points' values.
    pub fn total(&self) -> f64 {
        self.points.iter().map(|p| p.value).sum()
    }

    /// The sum of all histogram counts.
    pub fn count(&self) -> u64 {
        self.points.iter().map(|p| p.count).sum()
    }

    /// The point whose attribute `key` equals `value`.
    pub fn point_with(&self, key: &str, value: &str) -> Option<&Point> {
        self.points.iter().find(|p| p.attr(key) == Some(value))
    }
}

/// All metrics of one export, by name.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Metrics by name.
    pub metrics: BTreeMap<String, CapturedMetric>,
}

impl Captured {
    /// The metric called `name`.
    pub fn get(&self, name: &str) -> Option<&CapturedMetric> {
        self.metrics.get(name)
    }
}

fn attrs<'a>(it: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> BTreeMap<String, String> {
    it.map(|kv| (kv.key.to_string(), kv.value.to_string())).collect()
}

fn flatten(data: &AggregatedMetrics) -> (Kind, Vec<Point>) {
    match data {
        AggregatedMetrics::F64(d) => flatten_typed(d, |v| v),
        AggregatedMetrics::U64(d) => flatten_typed(d, |v| v as f64),
        AggregatedMetrics::I64(d) => flatten_typed(d, |v| v as f64),
    }
}

fn flatten_typed<T: Copy>(data: &MetricData<T>, f: impl Fn(T) -> f64) -> (Kind, Vec<Point>) {
    let point = |a, value, count, bounds| Point { attributes: a, value, count, bounds };
    match data {
        MetricData::Sum(s) => (
            if s.is_monotonic() { Kind::Counter } else { Kind::UpDownCounter },
            s.data_points().map(|p| point(attrs(p.attributes()), f(p.value()), 1, Vec::new())).collect(),
        ),
        MetricData::Gauge(g) => {
            (Kind::Gauge, g.data_points().map(|p| point(attrs(p.attributes()), f(p.value()), 1, Vec::new())).collect())
        }
        MetricData::Histogram(h) => (
            Kind::Histogram,
            h.data_points()
                .map(|p| point(attrs(p.attributes()), f(p.sum()), p.count(), p.bounds().collect()))
                .collect(),
        ),
        MetricData::ExponentialHistogram(_) => (Kind::Other, Vec::new()),
    }
}
