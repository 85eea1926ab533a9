//! [`Victoria`]: the VictoriaMetrics that scripts/dev-services.sh runs ([`crate::servers::VICTORIA`]) as the OTLP receiver, queried through its
//! Prometheus API, and the Prometheus that scrapes it (the same API, Prometheus's own PromQL engine).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::servers::{prometheus_addr, victoria_addr};

/// One series of a PromQL instant query: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels, `__name__` included when the query keeps it.
    pub labels: BTreeMap<String, String>,
    /// The value at the query time.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// A client of the test VictoriaMetrics, or (from [`Victoria::prometheus`]) of the Prometheus that scrapes it:
/// both answer the Prometheus HTTP API.
#[derive(Debug, Clone)]
pub struct Victoria {
    client: reqwest::Client,
    base: String,
    /// VictoriaMetrics has `/internal/force_flush`; Prometheus has nothing to flush.
    flushes: bool,
}

impl Victoria {
    /// The client, after checking that VictoriaMetrics answers (the test fails naming scripts/dev-services.sh
    /// otherwise).
    pub async fn require() -> Self {
        Self::answering("VictoriaMetrics (the OTLP receiver)", &victoria_addr(), "victoria", true).await
    }

    /// A client of the Prometheus that scrapes VictoriaMetrics' `/federate` every second, after checking that it
    /// answers (the test fails naming scripts/dev-services.sh otherwise): the same queries, evaluated by
    /// Prometheus's own PromQL engine. A series reaches it a second or two after VictoriaMetrics has it.
    pub async fn prometheus() -> Self {
        Self::answering("Prometheus (scraping VictoriaMetrics' /federate)", &prometheus_addr(), "prometheus", false)
            .await
    }

    /// A client of the server `what` at `addr`, after checking that it answers (else the test fails naming
    /// `scripts/dev-services.sh {service}`); `flushes`: whether the server has a flush endpoint.
    async fn answering(what: &str, addr: &str, service: &str, flushes: bool) -> Self {
        crate::require_server(what, addr, &format!("bash scripts/dev-services.sh {service}")).await;
        Victoria { client: reqwest::Client::new(), base: format!("http://{addr}"), flushes }
    }

    /// Runs a PromQL instant query. `Err` carries VictoriaMetrics' message when the query does not parse or
    /// fails.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let body = self.get("/api/v1/query", &[("query", promql)]).await?;
        let result = body["data"]["result"].as_array().ok_or_else(|| format!("no data.result in {body}"))?;
        Ok(result.iter().filter_map(sample).collect())
    }

    /// Runs a PromQL range query over the last `range` with `step`, returning each series' latest value.
    pub async fn query_range(&self, promql: &str, range: Duration, step: Duration) -> Result<Vec<Sample>, String> {
        let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let start = (end - range.as_secs_f64()).to_string();
        let (end, step) = (end.to_string(), step.as_secs_f64().to_string());
        let body = self
            .get("/api/v1/query_range", &[("query", promql), ("start", &start), ("end", &end), ("step", &step)])
            .await?;
        let result = body["data"]["result"].as_array().ok_or_else(|| format!("no data.result in {body}"))?;
        Ok(result
            .iter()
            .filter_map(|s| {
                let last = s["values"].as_array()?.last()?.clone();
                sample(&serde_json::json!({"metric": s["metric"], "value": last}))
            })
            .collect())
    }

    /// Polls `promql` until it returns at least `min` series, for up to `timeout`; returns the last answer.
    /// Exports land asynchronously, so a test waits for what it expects rather than sleeping a fixed time.
    pub async fn wait_for(&self, promql: &str, min: usize, timeout: Duration) -> Vec<Sample> {
        self.wait_until(promql, timeout, |got| got.len() >= min).await
    }

    /// Polls `promql` until `done` holds for its answer, for up to `timeout`; returns the last answer. The
    /// newest samples of a series can become searchable a moment after older ones, so a test expecting a final
    /// value waits for it and then asserts on what it got.
    pub async fn wait_until(&self, promql: &str, timeout: Duration, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.force_flush().await;
            let got = self.query(promql).await.unwrap_or_else(|e| panic!("query {promql} failed: {e}"));
            if done(&got) || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Makes everything ingested so far searchable now (VictoriaMetrics' `/internal/force_flush`): otherwise
    /// new series become visible only after its in-memory buffers are flushed, up to ~10 s later.
    pub async fn force_flush(&self) {
        if !self.flushes {
            return;
        }
        let url = format!("{}/internal/force_flush", self.base);
        if let Err(e) = self.client.get(url).timeout(Duration::from_secs(10)).send().await {
            panic!("VictoriaMetrics force_flush failed: {e}");
        }
    }

    /// The label sets of every series matching the selector `matcher`.
    pub async fn series(&self, matcher: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
        let body = self.get("/api/v1/series", &[("match[]", matcher), ("start", "-1h")]).await?;
        let data = body["data"].as_array().ok_or_else(|| format!("no data in {body}"))?;
        Ok(data
            .iter()
            .filter_map(|s| {
                Some(
                    s.as_object()?
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect(),
                )
            })
            .collect())
    }

    /// The values of label `label` among the series matching `matcher` (what Grafana's `label_values(matcher,
    /// label)` lists).
    pub async fn label_values(&self, label: &str, matcher: &str) -> Result<Vec<String>, String> {
        let body =
            self.get(&format!("/api/v1/label/{label}/values"), &[("match[]", matcher), ("start", "-1h")]).await?;
        let data = body["data"].as_array().ok_or_else(|| format!("no data in {body}"))?;
        Ok(data.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<serde_json::Value, String> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .form(params)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| format!("{path}: {status}: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("{path}: {status}: {}", body["error"].as_str().unwrap_or(&body.to_string())));
        }
        Ok(body)
    }
}

fn sample(s: &serde_json::Value) -> Option<Sample> {
    let labels =
        s["metric"].as_object()?.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
    let value = s["value"].as_array()?.get(1)?.as_str()?.parse().ok()?;
    Some(Sample { labels, value })
}

/// A name no other test run uses, for the `service.name` that keeps one test's series apart from the rest.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}
