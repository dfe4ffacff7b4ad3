//! The mailbox scanner's Prometheus metrics, registered into the worker's registry so
//! `/metrics` serves them with the rest. Names are a contract with dashboards and alerts.

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::metrics::registered;

#[derive(Clone)]
pub struct MailboxMetrics {
    /// By mailbox and result: ok, locked (another replica was scanning), connect_error,
    /// auth_error, protocol_error, database_error.
    pub scans: IntCounterVec,
    pub scan_duration: HistogramVec,
    /// Messages read, by mailbox and kind (bounce, complaint, autoreply, delivery, unknown),
    /// and messages over `maxMessageBytes` not read (oversized), each counted once.
    pub messages: IntCounterVec,
    /// Messages removed from the mailbox after their bounces were committed.
    pub removed: IntCounterVec,
    pub connection_failures: IntCounterVec,
    pub auth_failures: IntCounterVec,
    pub last_success: GaugeVec,
}

impl MailboxMetrics {
    pub fn register(registry: &Registry) -> Result<MailboxMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = registered(registry, IntCounterVec::new(Opts::new(name, help), labels))?;
            Ok::<_, prometheus::Error>(c)
        };
        let scans = counter(
            "bounceops_mailbox_scans_total",
            "Mailbox scans by mailbox and result (ok, locked, connect_error, auth_error, protocol_error, database_error).",
            &["mailbox", "result"],
        )?;
        let messages = counter(
            "bounceops_mailbox_messages_total",
            "Messages read from mailboxes, by mailbox and kind (bounce, complaint, autoreply, delivery, unknown); oversized: over maxMessageBytes, not read, counted once.",
            &["mailbox", "kind"],
        )?;
        let removed = counter(
            "bounceops_mailbox_messages_removed_total",
            "Messages removed from mailboxes after their bounces were committed.",
            &["mailbox"],
        )?;
        let connection_failures = counter(
            "bounceops_mailbox_connection_failures_total",
            "Connections to a mail server that failed (TCP, TLS or STARTTLS), by mailbox.",
            &["mailbox"],
        )?;
        let auth_failures = counter(
            "bounceops_mailbox_auth_failures_total",
            "Logins a mail server refused, by mailbox.",
            &["mailbox"],
        )?;
        let scan_duration = registered(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "bounceops_mailbox_scan_duration_seconds",
                    "Duration of mailbox scans, by mailbox.",
                )
                .buckets(vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ]),
                &["mailbox"],
            ),
        )?;
        let last_success = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    "bounceops_mailbox_last_success_timestamp_seconds",
                    "Unix time of the last scan of each mailbox that completed.",
                ),
                &["mailbox"],
            ),
        )?;
        Ok(MailboxMetrics {
            scans,
            scan_duration,
            messages,
            removed,
            connection_failures,
            auth_failures,
            last_success,
        })
    }

    /// Makes every series of `mailbox` visible at zero before the first scan, so alert
    /// rules on rates see the mailbox from the start.
    pub fn init(&self, mailbox: &str) {
        for result in [
            "ok",
            "locked",
            "connect_error",
            "auth_error",
            "protocol_error",
            "database_error",
        ] {
            self.scans.with_label_values(&[mailbox, result]);
        }
        for kind in [
            "bounce",
            "complaint",
            "autoreply",
            "delivery",
            "unknown",
            super::scan::OVERSIZED,
            super::scan::TOO_MANY_RECIPIENTS,
        ] {
            self.messages.with_label_values(&[mailbox, kind]);
        }
        self.removed.with_label_values(&[mailbox]);
        self.connection_failures.with_label_values(&[mailbox]);
        self.auth_failures.with_label_values(&[mailbox]);
    }
}
