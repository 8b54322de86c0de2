//! Prometheus metrics (SPEC §6 `/metrics`): one registry per application, rendered in the
//! Prometheus text format by `prometheus-client`.
//!
//! Owns: HTTP requests by route template, method and status (counted and timed by the edge
//! middleware), deliveries by outcome (counted by the delivery engine through
//! [`Metrics::delivery`]), and the error notifier's counters, read at scrape time.
//!
//! Labels stay bounded: routes are templates (`/admin/users/{id}`), never raw paths; a request
//! no route matched is `unmatched`; unknown methods are `other`.

use std::fmt;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::reporting::ErrorNotifier;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The route label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds (seconds) of the request latency buckets: 5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The application's metrics. Shared through `AppState` (behind an `Arc`).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    deliveries: Family<OutcomeLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every family registered; `reporter` is read at each scrape.
    pub fn new(reporter: ErrorNotifier) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "autosend_http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "autosend_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status",
            latency.clone(),
        );
        registry.register(
            "autosend_deliveries",
            "Mailing deliveries finished, by outcome (sent, error, dry_run, skipped, cancelled)",
            deliveries.clone(),
        );
        registry.register_collector(Box::new(ReportCounters(reporter)));
        Self {
            registry,
            requests,
            latency,
            deliveries,
        }
    }

    /// Counts and times one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let labels = RequestLabels {
            route: route.to_string(),
            method: method_label(method).to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Counts one delivery that reached `outcome` (the delivery's final status).
    pub fn delivery(&self, outcome: &str) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a collector.
        if let Err(err) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %err, "cannot encode metrics");
        }
        out
    }
}

/// Known methods keep their name; anything else is one `other` label value.
fn method_label(method: &str) -> &str {
    match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => "other",
    }
}

/// The notifier's counters, read when scraped (they live in the notifier, not here).
struct ReportCounters(ErrorNotifier);

impl fmt::Debug for ReportCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReportCounters").finish()
    }
}

impl Collector for ReportCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.0.stats();
        let reports = [
            ("sent", stats.sent),
            ("suppressed", stats.suppressed),
            ("dropped", stats.dropped),
            ("failed", stats.failed),
        ];
        let mut family = encoder.encode_descriptor(
            "autosend_error_reports",
            "Error reports by outcome: e-mailed (sent), held back by cooldown or the per-minute \
             cap (suppressed), dropped on a full queue (dropped), not sendable (failed)",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (outcome, value) in reports {
            let labels = [("outcome", outcome)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let links = ConstCounter::new(stats.broken_links_sent);
        links.encode(encoder.encode_descriptor(
            "autosend_broken_link_reports_sent",
            "Broken-link (404) reports e-mailed to MANAGERS",
            None,
            links.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
    }
}
