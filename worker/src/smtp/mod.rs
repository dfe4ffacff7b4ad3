//! The bounce MX (`spec.smtp`, docs/smtp.md): an SMTP server that receives bounce mail
//! (DSNs, ARF reports) addressed to signed VERP return paths, to plain bounce addresses
//! and to feedback-loop addresses, and records it through the same `Ingest` as every other
//! input.
//!
//! - `verp`: the signed tokens, and the keys;
//! - `recipients`: who may be mailed (RCPT);
//! - `conn`, `dialogue`, `session`, `data`: the protocol (commands parsed by Stalwart's
//!   smtp-proto); `dialogue` is the part the sending relay shares;
//! - `listen`: the accept loop, shared with the sending relay (`crate::relay`);
//! - `deliver`, `events`: from a received message to committed bounces;
//! - `metrics`, `config`.
//!
//! A `250` after DATA means committed; a database that cannot be reached gets `451`, so the
//! sending MTA keeps the message and retries.

pub mod cli;
pub mod config;
pub mod conn;
pub mod data;
pub mod deliver;
pub mod dialogue;
pub mod events;
pub mod listen;
pub mod metrics;
pub mod recipients;
pub mod session;
pub mod verp;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub use config::SmtpConfig;
pub use metrics::SmtpMetrics;

use crate::ingest::Ingest;

/// What every session shares.
pub struct Shared {
    pub config: SmtpConfig,
    pub ingest: Ingest,
    pub metrics: SmtpMetrics,
    /// Messages classified at once: one per core ([`Shared::classifiers_for_this_machine`]).
    pub classifiers: Semaphore,
}

impl Shared {
    pub fn classifiers_for_this_machine() -> Semaphore {
        Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

/// Accepts sessions on `listener` until `stop` turns true, at most `maxSessions` at once
/// (further connections wait in the listen queue), then waits up to `grace` for the
/// sessions in progress: one in DATA finishes its commit and reply, an idle one is told
/// `421`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    grace: Duration,
) {
    tracing::info!(
        addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        max_sessions = shared.config.server.max_sessions,
        starttls = shared.config.server.tls.is_some(),
        "SMTP listening"
    );
    dialogue::serve(listener, shared, stop, grace, "smtp").await;
}
