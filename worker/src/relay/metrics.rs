//! The relay's Prometheus metrics, registered into the worker's registry so `/metrics`
//! serves them with the rest. Names and labels are a contract with the dashboard and the
//! alert rules (docs/metrics.md): rename none.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::upstream::ERROR_KINDS;
use crate::metrics::registered;

/// Every value of the `outcome` label of `bounceops_relay_messages_total`.
pub const OUTCOMES: [&str; 6] = [
    "relayed",
    "refused",
    "upstream_unavailable",
    "too_big",
    "not_recorded",
    "temporary_failure",
];

/// Every value of the `class` label of `bounceops_relay_recipients_total`.
pub const CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

#[derive(Clone)]
pub struct RelayMetrics {
    pub sessions: IntCounter,
    pub active: IntGauge,
    pub messages: IntCounterVec,
    pub recipients: IntCounterVec,
    pub upstream_duration: Histogram,
    pub upstream_errors: IntCounterVec,
    pub recorded: IntCounter,
    pub logins: IntCounterVec,
}

impl RelayMetrics {
    pub fn register(registry: &Registry) -> Result<RelayMetrics, prometheus::Error> {
        let sessions = registered(
            registry,
            IntCounter::new(
                "bounceops_relay_sessions_total",
                "SMTP sessions the sending relay accepted from senders.",
            ),
        )?;
        let active = registered(
            registry,
            IntGauge::new(
                "bounceops_relay_sessions_active",
                "Relay sessions in progress.",
            ),
        )?;
        let messages = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "bounceops_relay_messages_total",
                    "Messages the relay handled, by outcome: relayed (the upstream accepted it for at least one recipient), refused (for every recipient), upstream_unavailable (451 4.4.1: unreachable, or slower than its timeout), too_big, not_recorded (a refusal that could not be recorded while the message reached other recipients), temporary_failure (451 4.3.0: a refusal could not be recorded, the sender retries).",
                ),
                &["outcome"],
            ),
        )?;
        let recipients = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "bounceops_relay_recipients_total",
                    "Recipients by the class of the upstream's final answer for them (at RCPT, or after DATA): 2xx accepted, 4xx refused for now, 5xx refused.",
                ),
                &["class"],
            ),
        )?;
        let upstream_duration = registered(
            registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "bounceops_relay_upstream_duration_seconds",
                    "Time the upstream took over a message: from MAIL FROM to its answer after the final dot, the message's own transfer included.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0, 30.0,
                ]),
            ),
        )?;
        let upstream_errors = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "bounceops_relay_upstream_errors_total",
                    "Failures to use the upstream, by kind: connect, tls, auth, timeout, io (the connection dropped), protocol (an answer out of place).",
                ),
                &["kind"],
            ),
        )?;
        let recorded = registered(
            registry,
            IntCounter::new(
                "bounceops_relay_bounces_recorded_total",
                "Refusals of the upstream recorded as bounces (each recipient once, a resend of the same message included).",
            ),
        )?;
        let logins = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "bounceops_relay_logins_total",
                    "Senders' AUTH attempts on the relay, by result: ok, refused.",
                ),
                &["result"],
            ),
        )?;
        for r in ["ok", "refused"] {
            logins.with_label_values(&[r]);
        }
        // Every series visible at zero from the start, so rate() alerts see them.
        for o in OUTCOMES {
            messages.with_label_values(&[o]);
        }
        for c in CLASSES {
            recipients.with_label_values(&[c]);
        }
        for k in ERROR_KINDS {
            upstream_errors.with_label_values(&[k]);
        }
        Ok(RelayMetrics {
            sessions,
            active,
            messages,
            recipients,
            upstream_duration,
            upstream_errors,
            recorded,
            logins,
        })
    }

    pub fn count_login(&self, ok: bool) {
        let result = if ok { "ok" } else { "refused" };
        self.logins.with_label_values(&[result]).inc();
    }

    pub fn count(&self, outcome: &str) {
        self.messages.with_label_values(&[outcome]).inc();
    }
}
