//! Prometheus metrics: requests by route and status, latency histograms, grades by judge, and
//! the LLM judge's tokens, cost, retries and errors.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::AppState;
use crate::audit::AuditStats;
use crate::llm::LlmStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JudgeLabel {
    pub judge: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    pub grades: Family<JudgeLabel, Counter>,
    pub grade_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("grader");
        let requests = Family::<RouteStatus, Counter>::default();
        let latency = Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let grades = Family::<JudgeLabel, Counter>::default();
        let grade_errors = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register("grades", "Answers graded, by judge", grades.clone());
        registry.register(
            "grade_errors",
            "Grading requests that failed (any reason)",
            grade_errors.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            grades,
            grade_errors,
        }
    }

    /// The Prometheus text exposition, with the LLM judge's and the audit store's counters.
    pub fn render(&self, llm: Option<&LlmStats>, audit: Option<&AuditStats>) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        // The registry closes with "# EOF"; the LLM counters go before it.
        if let Some(stripped) = out.strip_suffix("# EOF\n") {
            out.truncate(stripped.len());
        }
        let zero = LlmStats::default();
        let s = llm.unwrap_or(&zero);
        let counters = [
            (
                "grader_llm_requests_total",
                "Calls to the LLM endpoint",
                s.requests.load(Ordering::Relaxed) as f64,
            ),
            (
                "grader_llm_retries_total",
                "LLM calls retried",
                s.retries.load(Ordering::Relaxed) as f64,
            ),
            (
                "grader_llm_errors_total",
                "LLM calls that failed after retries",
                s.errors.load(Ordering::Relaxed) as f64,
            ),
            (
                "grader_llm_prompt_tokens_total",
                "Prompt tokens sent to the LLM",
                s.prompt_tokens.load(Ordering::Relaxed) as f64,
            ),
            (
                "grader_llm_completion_tokens_total",
                "Completion tokens received from the LLM",
                s.completion_tokens.load(Ordering::Relaxed) as f64,
            ),
            (
                "grader_llm_cost_usd_total",
                "Estimated LLM cost in USD (price table in config)",
                s.cost_micro_usd.load(Ordering::Relaxed) as f64 / 1e6,
            ),
        ];
        for (name, help, value) in counters {
            out.push_str(&format!(
                "# HELP {name} {help}.\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        if let Some(a) = audit {
            let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            for (name, kind, help, value) in [
                (
                    "grader_audit_writes_total",
                    "counter",
                    "Grades written to the audit store",
                    load(&a.written),
                ),
                (
                    "grader_audit_write_errors_total",
                    "counter",
                    "Audit store writes that failed (retried)",
                    load(&a.write_errors),
                ),
                (
                    "grader_audit_dropped_total",
                    "counter",
                    "Grades not stored: queues full, or shutdown before the store took them",
                    load(&a.dropped),
                ),
                (
                    "grader_audit_queued",
                    "gauge",
                    "Grades waiting to be written to the audit store",
                    load(&a.queued),
                ),
            ] {
                out.push_str(&format!(
                    "# HELP {name} {help}.\n# TYPE {name} {kind}\n{name} {value}\n"
                ));
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// Count and time every request by its route template (not the raw path: ids would explode
/// the label space).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.requests
        .get_or_create(&RouteStatus {
            route: route.clone(),
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabel { route })
        .observe(started.elapsed().as_secs_f64());
    resp
}
