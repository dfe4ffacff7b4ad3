//! The worker's Prometheus metrics, in one registry served at `/metrics`.
//!
//! Names are a contract with the Grafana dashboard and the alert rules: rename none.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

use crate::event::{BounceEvent, Outcome};

/// `source` is free text in the generic webhook; past this many distinct values, new ones
/// are counted as `other` so a careless client cannot grow the metric without bound.
const MAX_SOURCES: usize = 64;

/// Buckets of a request's or a reply's duration, 1 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `metric` (as its constructor returned it) registered with `registry`, and handed back to
/// be kept: every module that owns metrics registers them in the one registry this way.
pub fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: Result<M, prometheus::Error>,
) -> Result<M, prometheus::Error> {
    let metric = metric?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

pub struct Inner {
    registry: Registry,
    pub events: IntCounterVec,
    pub actions: IntCounterVec,
    pub unmatched: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub db_errors: IntCounterVec,
    pub batch_size: Histogram,
    pub exports_refused: IntCounter,
    sources: Mutex<HashSet<String>>,
}

impl std::ops::Deref for Metrics {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            registered(&registry, IntCounterVec::new(Opts::new(name, help), labels))
                .expect("a valid, unique metric")
        };
        let events = counter(
            "bounceops_events_total",
            "Bounce events handled, by source, type, outcome (recorded, blocklisted, over_threshold, unmatched, ignored, duplicate, committed) and reason (docs/reasons.md; other when none is known).",
            &["source", "type", "outcome", "reason"],
        );
        let actions = counter(
            "bounceops_actions_total",
            "Rule actions that changed a subscriber, by action and bounce type.",
            &["action", "type"],
        );
        let unmatched = counter(
            "bounceops_unmatched_total",
            "Bounces whose subscriber is unknown, kept in bounceops.unmatched, by source.",
            &["source"],
        );
        let dead_letters = counter(
            "bounceops_dead_letters_total",
            "Events the database refused, parked in bounceops.dead_letters, by source.",
            &["source"],
        );
        let http_requests = counter(
            "bounceops_http_requests_total",
            "HTTP requests by route, method and status code.",
            &["route", "method", "status"],
        );
        let db_errors = counter(
            "bounceops_db_errors_total",
            "Database operations that failed, by operation.",
            &["op"],
        );
        let http_duration = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "bounceops_http_request_duration_seconds",
                    "HTTP request duration by route.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            ),
        )
        .expect("a valid, unique metric");
        let batch_size = registered(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "bounceops_ingest_batch_events",
                    "Events recorded per database transaction (group commit).",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
            ),
        )
        .expect("a valid, unique metric");
        let exports_refused = registered(
            &registry,
            IntCounter::new(
                "bounceops_exports_refused_total",
                "Exports refused with 503 because every export connection was in use.",
            ),
        )
        .expect("a valid, unique metric");
        Metrics(Arc::new(Inner {
            registry,
            events,
            actions,
            unmatched,
            dead_letters,
            http_requests,
            http_duration,
            db_errors,
            batch_size,
            exports_refused,
            sources: Mutex::new(HashSet::new()),
        }))
    }

    pub fn observe_outcomes(&self, events: &[BounceEvent], outcomes: &[Outcome]) {
        for (event, outcome) in events.iter().zip(outcomes) {
            let source = self.source_label(&event.source);
            let kind = event.bounce_type.as_str();
            // The reason is an enum, so the label takes at most the vocabulary's 33 values
            // and `other`; never the free text of a diagnostic.
            let reason = event.reason.map_or("other", |r| r.as_str());
            self.events
                .with_label_values(&[source.as_str(), kind, outcome.label(), reason])
                .inc();
            if let Outcome::Unmatched = outcome {
                self.unmatched.with_label_values(&[source.as_str()]).inc();
            }
            if let Some(action) = outcome.action() {
                self.actions
                    .with_label_values(&[action.as_str(), kind])
                    .inc();
            }
        }
    }

    /// One event parked in `bounceops.dead_letters` (counted where it is parked: a retry
    /// answered with the same dead letter is not another one).
    pub fn count_dead_letter(&self, source: &str) {
        let source = self.source_label(source);
        self.dead_letters
            .with_label_values(&[source.as_str()])
            .inc();
    }

    fn source_label(&self, source: &str) -> String {
        let mut seen = self.sources.lock().expect("not poisoned");
        if seen.contains(source) {
            source.to_owned()
        } else if seen.len() < MAX_SOURCES {
            seen.insert(source.to_owned());
            source.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// The shared registry, for modules that keep their own metrics (providers, mailboxes):
    /// they register into it so that `/metrics` serves everything.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding metrics into memory cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}
