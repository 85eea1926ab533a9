//! Histogram bucket boundaries, applied as SDK views so they hold whatever the instrument asked for.

use opentelemetry_sdk::metrics::{Aggregation, Instrument, Stream};

use aquifer_core::metrics::names;

/// Boundaries (seconds) of `db.client.connection.create_time`, `wait_time` and `use_time`: 1 µs to 60 s. A
/// pool's wait is often a few microseconds and a use a fraction of a millisecond; the SDK's defaults
/// (0, 5, 10, 25, ... 10000) would put every one of them in the first bucket.
pub const POOL_TIME_BUCKETS: &[f64] = &aquifer_core::metrics::DURATION_BUCKETS;

/// Boundaries (seconds) of `db.client.operation.duration`: the ones the OpenTelemetry semantic conventions
/// advise for it, so dashboards built for other clients read Aquifer's the same way.
pub const OPERATION_DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// The view: explicit buckets for the four duration histograms, the default stream for everything else.
pub(crate) fn duration_buckets(instrument: &Instrument) -> Option<Stream> {
    let boundaries = match instrument.name() {
        names::CREATE_TIME | names::WAIT_TIME | names::USE_TIME => POOL_TIME_BUCKETS,
        names::OPERATION_DURATION => OPERATION_DURATION_BUCKETS,
        _ => return None,
    };
    Stream::builder()
        .with_aggregation(Aggregation::ExplicitBucketHistogram {
            boundaries: boundaries.to_vec(),
            record_min_max: true,
        })
        .build()
        .ok()
}
