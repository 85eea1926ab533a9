//! Running a pool's health check (the report types are in `health.rs`).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::errors::PoolError;
use crate::health::{HealthReport, HealthStatus};
use crate::hooks::{HookError, Hooks};
use crate::manager::Manager;
use crate::shared::Shared;

/// Runs a health check. Without a round trip: a closed pool, an open circuit, or a pool holding no connection
/// while its connects fail is unhealthy; a paused pool is degraded ("paused: ..."); a pool whose every slot is
/// taken is degraded, with a message that says what takes them. Otherwise a pooled connection is validated (always, ignoring the bypass window) and
/// timed.
pub(crate) async fn check<M: Manager>(shared: &Arc<Shared<M>>) -> HealthReport {
    let (state, live, open, closed, last_error, version) = {
        let g = shared.lock();
        (
            g.state(),
            g.live(),
            g.circuit().open().map(|(since, _)| since),
            g.is_closed(),
            g.circuit().last_error().map(|e| e.to_string()),
            g.server_version().map(str::to_owned),
        )
    };
    let mut report = HealthReport {
        status: HealthStatus::from_state(&state),
        pool: shared.name.to_string(),
        system: shared.descriptor.system.to_string(),
        server: shared.descriptor.default_pool_name(),
        server_version: version,
        latency: None,
        state,
        utilization: state.utilization(),
        last_error,
        checked_at: SystemTime::now(),
    };
    if closed {
        report.status = HealthStatus::Unhealthy;
        report.last_error = Some("the pool is closed".into());
        return report;
    }
    if let Some(since) = open {
        report.status = HealthStatus::Unhealthy;
        report.last_error = Some(format!(
            "failing fast for {:?}: {}",
            since.elapsed(),
            report.last_error.as_deref().unwrap_or("connects keep failing")
        ));
        return report;
    }
    if live == 0
        && let Some(error) = &report.last_error
    {
        report.status = HealthStatus::Unhealthy;
        report.last_error = Some(format!("no connection to the server; connects are failing: {error}"));
        return report;
    }
    // A paused pool lends nothing, the check included: degraded (on purpose, and recoverable), saying why.
    if state.paused {
        report.status = HealthStatus::Degraded;
        report.last_error =
            Some(format!("paused: the pool lends and opens no connection until resumed ({} waiting)", state.waiting));
        return report;
    }
    // An exhausted pool is degraded, and a health endpoint must not queue behind the work it reports on.
    let here = std::panic::Location::caller();
    let wait = shared.config.acquire_timeout.min(shared.config.validation_timeout);
    let acquired = match shared.try_acquire(here).await {
        Ok(None) if state.size >= state.max_size => {
            report.status = HealthStatus::Degraded;
            let mut message = if state.in_use >= state.max_size {
                format!("pool exhausted: all {} connections in use", state.max_size)
            } else {
                format!(
                    "pool exhausted: {} of {} connections in use, {} connecting",
                    state.in_use, state.max_size, state.connecting
                )
            };
            if let Some(error) = &report.last_error {
                message.push_str(&format!("; last connect error: {error}"));
            }
            report.last_error = Some(message);
            return report;
        }
        Ok(None) => crate::acquire::Acquire::new(shared, wait, here).await.map(Some),
        other => other,
    };
    match acquired {
        Ok(Some(mut conn)) => {
            let started = Instant::now();
            let validated =
                tokio::time::timeout(shared.config.validation_timeout, Hooks::validate(&shared.manager, &mut conn))
                    .await;
            report.latency = Some(started.elapsed());
            match validated {
                Ok(Ok(())) if report.server_version.is_none() => {
                    let version = Hooks::server_version(&shared.manager, &mut conn);
                    match tokio::time::timeout(shared.config.validation_timeout, version).await {
                        Ok(Ok(Some(v))) => {
                            shared.lock().set_server_version(v.clone());
                            report.server_version = Some(v);
                        }
                        Ok(Err(HookError::Panicked(message))) => shared.hook_panicked("server_version", &message),
                        // A version is a nicety: the check itself passed.
                        Ok(Ok(None)) | Ok(Err(HookError::Failed(_))) | Err(_) => {}
                    }
                }
                Ok(Ok(())) => {}
                Ok(Err(HookError::Failed(e))) => {
                    report.status = HealthStatus::Unhealthy;
                    report.last_error = Some(format!("validation failed: {e}"));
                    conn.discard();
                }
                Ok(Err(HookError::Panicked(message))) => {
                    shared.hook_panicked("validate", &message);
                    report.status = HealthStatus::Unhealthy;
                    report.last_error = Some(format!("validation panicked: {message}"));
                    conn.discard();
                }
                Err(_) => {
                    report.status = HealthStatus::Unhealthy;
                    report.last_error =
                        Some(format!("validation timed out after {:?}", shared.config.validation_timeout));
                    conn.discard();
                }
            }
        }
        Ok(None) => {}
        Err(e @ PoolError::Timeout { .. }) => {
            // Exhausted but answering is degraded; timed out because connects fail is unhealthy.
            let failing = matches!(&e, PoolError::Timeout { last_error: Some(_), .. });
            report.status = if failing { HealthStatus::Unhealthy } else { HealthStatus::Degraded };
            report.last_error = Some(e.to_string());
        }
        Err(e) => {
            report.status = HealthStatus::Unhealthy;
            report.last_error = Some(e.to_string());
        }
    }
    report
}
