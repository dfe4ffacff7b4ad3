//! The bounce MX's Prometheus metrics, registered into the worker's registry so `/metrics`
//! serves them with the rest. Names and labels are a contract with the dashboard and the
//! alert rules (docs/metrics.md): rename none.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::metrics::{LATENCY_BUCKETS, registered};

/// Every value of the `outcome` label of `bounceops_smtp_messages_total`.
pub const OUTCOMES: [&str; 8] = [
    "recorded",
    "not_bounce",
    "too_many_recipients",
    "unknown_recipient",
    "forged_token",
    "too_big",
    "insufficient_storage",
    "temporary_failure",
];

#[derive(Clone)]
pub struct SmtpMetrics {
    pub sessions: IntCounter,
    pub active: IntGauge,
    /// Messages by outcome; refused recipients (unknown, forged) are counted per RCPT.
    pub messages: IntCounterVec,
    /// Bytes of messages held at once (`super::memory`).
    pub held_bytes: IntGauge,
    /// From the end of DATA (the final dot) to the reply.
    pub data_duration: Histogram,
}

impl SmtpMetrics {
    pub fn register(registry: &Registry) -> Result<SmtpMetrics, prometheus::Error> {
        let sessions = registered(
            registry,
            IntCounter::new(
                "bounceops_smtp_sessions_total",
                "SMTP sessions accepted by the bounce MX.",
            ),
        )?;
        let active = registered(
            registry,
            IntGauge::new(
                "bounceops_smtp_sessions_active",
                "SMTP sessions in progress.",
            ),
        )?;
        let messages = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "bounceops_smtp_messages_total",
                    "Messages and recipients the bounce MX handled, by outcome: recorded, not_bounce (auto-replies, delivery reports), too_many_recipients (a report naming more than 1,000: refused with 550), unknown_recipient and forged_token (per refused RCPT), too_big, insufficient_storage (452: the messages held at once were at their bound), temporary_failure (451: the database was unreachable).",
                ),
                &["outcome"],
            ),
        )?;
        let held_bytes = registered(
            registry,
            IntGauge::new(
                "bounceops_smtp_message_bytes_held",
                "Bytes the bounce MX holds for messages being received or waiting to be classified; at its bound, messages are answered 452.",
            ),
        )?;
        let data_duration = registered(
            registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "bounceops_smtp_data_duration_seconds",
                    "Time from the end of DATA to the reply (classifying and committing).",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            ),
        )?;
        // Every outcome visible at zero from the start, so rate() alerts see the series.
        for outcome in OUTCOMES {
            messages.with_label_values(&[outcome]);
        }
        Ok(SmtpMetrics {
            sessions,
            active,
            messages,
            held_bytes,
            data_duration,
        })
    }

    pub fn count(&self, outcome: &str) {
        self.messages.with_label_values(&[outcome]).inc();
    }
}
