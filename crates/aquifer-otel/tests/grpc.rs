//! OTLP over gRPC (the `grpc` feature). VictoriaMetrics ingests OTLP over HTTP only, so the receiver here is a
//! gRPC MetricsService built from opentelemetry-proto's generated server, running on a runtime of its own.
#![cfg(feature = "grpc")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aquifer_otel::{OtelBuilder, Protocol};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    /// Starts the receiver on 127.0.0.1 (a free port) on a thread and runtime of its own, so that a test
    /// blocking its own thread (a flush) cannot stall it. Returns the endpoint URL.
    fn start(&self) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let service = MetricsServiceServer::new(self.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await
                    .unwrap();
            });
        });
        format!("http://{addr}")
    }

    /// The sum of counter `name`'s points across every export received, and the service.name of the last.
    fn counter(&self, name: &str) -> (Option<f64>, Option<String>) {
        let requests = self.0.lock().unwrap();
        let mut value = None;
        let mut service = None;
        for rm in requests.iter().flat_map(|r| &r.resource_metrics) {
            for sm in &rm.scope_metrics {
                for m in sm.metrics.iter().filter(|m| m.name == name) {
                    if let Some(Data::Sum(sum)) = &m.data {
                        for p in &sum.data_points {
                            if let Some(number_data_point::Value::AsInt(v)) = p.value {
                                value = Some(v as f64);
                            }
                        }
                    }
                    service = rm.resource.as_ref().and_then(|r| {
                        r.attributes.iter().find(|kv| kv.key == "service.name").and_then(|kv| match &kv.value {
                            Some(v) => match &v.value {
                                Some(Value::StringValue(s)) => Some(s.clone()),
                                _ => None,
                            },
                            None => None,
                        })
                    });
                }
            }
        }
        (value, service)
    }
}

fn export_three(endpoint: &str) -> Result<(), aquifer_otel::OtelError> {
    let guard = OtelBuilder::new()
        .protocol(Protocol::Grpc)
        .endpoint(endpoint)
        .service_name("grpc-test")
        .export_interval(Duration::from_secs(60))
        .build()?;
    guard.meter().u64_counter("aquifer_otel_test.records").build().add(3, &[KeyValue::new("case", "grpc")]);
    guard.shutdown()
}

#[test]
fn grpc_export_set_up_outside_any_runtime_reaches_the_receiver() {
    let receiver = Receiver::default();
    let endpoint = receiver.start();
    export_three(&endpoint).expect("export over gRPC");
    assert_eq!(receiver.counter("aquifer_otel_test.records"), (Some(3.0), Some("grpc-test".into())));
}

#[tokio::test(flavor = "current_thread")]
async fn grpc_export_set_up_inside_a_current_thread_runtime_reaches_the_receiver() {
    let receiver = Receiver::default();
    let endpoint = receiver.start();
    export_three(&endpoint).expect("export over gRPC");
    assert_eq!(receiver.counter("aquifer_otel_test.records"), (Some(3.0), Some("grpc-test".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_set_up_inside_a_multi_thread_runtime_reaches_the_receiver() {
    let receiver = Receiver::default();
    let endpoint = receiver.start();
    export_three(&endpoint).expect("export over gRPC");
    assert_eq!(receiver.counter("aquifer_otel_test.records"), (Some(3.0), Some("grpc-test".into())));
}
