#![doc = include_str!("../README.md")]

mod fake;
mod metrics;
mod server;

pub use fake::{FakeConn, FakeError, FakeHook, FakeManager, FakeStats};
pub use metrics::{Captured, CapturedMetric, Kind, MetricsCapture, Point};
pub use server::{require_server, require_server_blocking};
