//! The sending relay (`spec.relay`, docs/relay.md): an SMTP server between listmonk and its
//! real SMTP server. Each message leaves with a signed VERP return path of the bounce MX,
//! and the upstream's refusals in this very conversation (`550 5.1.1` at RCPT, which
//! listmonk only logs) are recorded as bounces through `Ingest`.
//!
//! - `session`: the sender's side (commands, logins, DATA passed through);
//! - `message`: the end of DATA and the headers read, on the wire bytes;
//! - `upstream`: the pool of connections to the real server (Stalwart's mail-send);
//! - `answer`, `record`: from the upstream's answers to the sender's, and to bounces;
//! - `sasl`, `metrics`, `config`.

pub mod answer;
pub mod config;
pub mod message;
pub mod metrics;
pub mod record;
pub mod sasl;
pub mod session;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::RelayConfig;
pub use metrics::RelayMetrics;

use crate::ingest::Ingest;
use crate::smtp::dialogue;
use crate::store::Store;

/// What every session shares.
pub struct Shared {
    pub config: RelayConfig,
    pub ingest: Ingest,
    /// Finds a subscriber by address, for mail without listmonk's headers.
    pub store: Store,
    pub pool: upstream::Pool,
    pub metrics: RelayMetrics,
}

impl Shared {
    pub fn new(config: RelayConfig, ingest: Ingest, store: Store, metrics: RelayMetrics) -> Shared {
        let pool = upstream::Pool::new(config.upstream.clone(), config.server.hostname.clone());
        Shared {
            config,
            ingest,
            store,
            pool,
            metrics,
        }
    }
}

/// `--relay-listen` on an address other than loopback without logins: anything that
/// reaches it could send mail as the sender (an open relay).
#[derive(Debug, thiserror::Error)]
#[error(
    "--relay-listen {0}: a relay on an address other than loopback needs \
     spec.relay.credentialsSecretRef (without logins anyone who reaches it can send mail)"
)]
pub struct OpenRelay(pub SocketAddr);

/// Refuses an open relay ([`OpenRelay`]).
pub fn check_listen(addr: SocketAddr, config: &RelayConfig) -> Result<(), OpenRelay> {
    if config.credentials.is_none() && !addr.ip().is_loopback() {
        return Err(OpenRelay(addr));
    }
    Ok(())
}

/// Accepts sessions on `listener` until `stop` turns true, at most `maxSessions` at once,
/// then waits up to `grace` for those in progress: a message being relayed gets its
/// answer, an idle session is told `421`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    grace: Duration,
) {
    tracing::info!(
        addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        upstream = %format!("{}:{}", shared.config.upstream.host, shared.config.upstream.port),
        logins = shared.config.credentials.is_some(),
        starttls = shared.config.server.tls.is_some(),
        "relay listening"
    );
    dialogue::serve(listener, shared, stop, grace, "relay").await;
}
