//! The bounce MX (`spec.smtp`, docs/smtp.md): an SMTP server that receives bounce mail
//! (DSNs, ARF reports) addressed to signed VERP return paths, to plain bounce addresses
//! and to feedback-loop addresses, and records it through the same `Ingest` as every other
//! input.
//!
//! - `verp`: the signed tokens, and the keys;
//! - `recipients`: who may be mailed (RCPT);
//! - `conn`, `session`, `data`: the protocol (commands parsed by Stalwart's smtp-proto);
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
pub mod events;
pub mod listen;
pub mod metrics;
pub mod recipients;
pub mod session;
pub mod verp;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

pub use config::SmtpConfig;
pub use metrics::SmtpMetrics;

use crate::ingest::Ingest;
use conn::Conn;
use session::{End, converse};

/// What every session shares.
pub struct Shared {
    pub config: SmtpConfig,
    pub ingest: Ingest,
    pub metrics: SmtpMetrics,
    /// Turns true at shutdown: sessions waiting for a command answer `421` and end.
    pub stop: watch::Receiver<bool>,
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
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, grace: Duration) {
    tracing::info!(
        addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        max_sessions = shared.config.max_sessions,
        starttls = shared.config.tls.is_some(),
        "SMTP listening"
    );
    let (max, stop) = (shared.config.max_sessions, shared.stop.clone());
    listen::accept(listener, max, stop, grace, "smtp", move |tcp| {
        let shared = shared.clone();
        async move { session(tcp, &shared).await }
    })
    .await;
}

/// Resolves once `stop` turns true (or its sender is gone). Not `wait_for` in `select!`
/// directly: its guard is not `Send`.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Counts the session as active while it lives, even if it panics.
struct Active(SmtpMetrics);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.dec();
    }
}

async fn session(tcp: TcpStream, shared: &Shared) {
    shared.metrics.sessions.inc();
    shared.metrics.active.inc();
    let _active = Active(shared.metrics.clone());
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn::new(tcp);
    let greeting = format!("{} ESMTP BounceOps bounce MX", shared.config.hostname);
    conn.reply(220, &[greeting.as_str()]);
    if converse(&mut conn, shared, false).await != End::StartTls {
        return;
    }
    let Some(tls) = shared.config.tls.clone() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let handshake = tokio::time::timeout(shared.config.command_timeout, async move {
        conn.flush().await.ok()?;
        acceptor.accept(conn.io).await.ok()
    })
    .await;
    match handshake {
        Ok(Some(tls)) => {
            let mut conn = Conn::new(tls);
            converse(&mut conn, shared, true).await;
        }
        _ => tracing::debug!("STARTTLS handshake failed or timed out"),
    }
}
