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
//! - `memory`: what messages may take at once;
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
pub mod memory;
pub mod metrics;
pub mod recipients;
pub mod session;
pub mod verp;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::SmtpConfig;
pub use memory::MessageMemory;
pub use metrics::SmtpMetrics;

use crate::ingest::Ingest;

/// What every session shares.
pub struct Shared {
    pub config: SmtpConfig,
    pub ingest: Ingest,
    pub metrics: SmtpMetrics,
    /// The messages held and classified at once (`memory`).
    pub memory: MessageMemory,
}

impl Shared {
    /// Classifying one message per core of this machine: more cannot run faster, and each
    /// blocking thread the pool adds keeps its own allocator heap (32 sessions classifying
    /// at once took the worker's peak RSS to 191 MiB, BENCHMARKS.md).
    pub fn new(config: SmtpConfig, ingest: Ingest, metrics: SmtpMetrics) -> Shared {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Shared {
            memory: MessageMemory::new(
                config.server.max_message_bytes,
                cores,
                metrics.held_bytes.clone(),
            ),
            config,
            ingest,
            metrics,
        }
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
