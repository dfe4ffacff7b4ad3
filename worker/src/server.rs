//! Wiring: from resolved settings to a running HTTP server, and an orderly stop.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Settings;
use crate::connections;
use crate::http::providers::Providers;
use crate::http::{self, App};
use crate::ingest::Ingest;
use crate::mailbox::{self, MailboxConfig};
use crate::metrics::Metrics;
use crate::store::Store;

/// Why the worker could not start serving; `main` prints it and exits.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Mailbox(#[from] mailbox::MailboxError),
    #[error(transparent)]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Listener(#[from] std::io::Error),
    /// A listener handed to the server for a role whose spec section is missing: a caller's
    /// mistake, as `main` binds only what the spec asks for.
    #[error("an SMTP listener without spec.smtp")]
    SmtpWithoutSpec,
    #[error("a relay listener without spec.relay")]
    RelayWithoutSpec,
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
/// (their bounces are committed before they are answered) for up to the shutdown grace
/// period, and closes the database pool.
pub async fn serve(
    settings: &Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_mailboxes(settings, listener, shutdown, Vec::new()).await
}

/// [`serve`], plus a scanner per mailbox (each on its own interval) until `shutdown`;
/// a scan in progress stops after its current batch.
pub async fn serve_with_mailboxes(
    settings: &Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mailboxes: Vec<MailboxConfig>,
) -> Result<(), ServeError> {
    serve_everything(settings, listener, shutdown, mailboxes, None).await
}

/// [`serve_with_mailboxes`], plus the bounce MX on `smtp` (with `settings.smtp`), sharing
/// the database pool, the group commit and the metrics registry. At shutdown the HTTP
/// server and the SMTP server stop together.
pub async fn serve_everything(
    settings: &Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mailboxes: Vec<MailboxConfig>,
    smtp: Option<TcpListener>,
) -> Result<(), ServeError> {
    serve_with_relay(settings, listener, shutdown, mailboxes, smtp, None).await
}

/// [`serve_everything`], plus the sending relay on `relay` (with `settings.relay`), which
/// records the upstream's refusals through the same `Ingest`.
pub async fn serve_with_relay(
    settings: &Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mailboxes: Vec<MailboxConfig>,
    smtp: Option<TcpListener>,
    relay: Option<TcpListener>,
) -> Result<(), ServeError> {
    let store = Store::connect_lazy_with(
        &settings.database_url,
        settings.spec.database.max_connections,
        settings.tuning.export,
    )?;
    if let Err(why) = store.readiness().await {
        tracing::warn!(%why, "starting while not ready; /readyz reports it until it is fixed");
    }
    let metrics = Metrics::new();
    let writers = settings.tuning.writers;
    let ingest = Ingest::start_keeping(
        store.clone(),
        Arc::new(settings.rules.clone()),
        metrics.clone(),
        writers,
        (&settings.spec.evidence).into(),
        settings.spec.retention.clone(),
    );
    let scanners = match mailboxes.is_empty() {
        true => None,
        false => {
            let deps =
                mailbox::Deps::new(store.clone(), ingest.clone(), metrics.clone(), &mailboxes)?;
            Some(mailbox::Scanners::start(mailboxes, deps))
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let smtp_server = match (smtp, &settings.smtp) {
        (Some(listener), Some(config)) => {
            let shared = Arc::new(crate::smtp::Shared::new(
                config.clone(),
                ingest.clone(),
                crate::smtp::SmtpMetrics::register(metrics.registry())?,
            ));
            Some(tokio::spawn(crate::smtp::serve(
                listener,
                shared,
                stop_rx.clone(),
                settings.tuning.connections.shutdown_grace,
            )))
        }
        (Some(_), None) => return Err(ServeError::SmtpWithoutSpec),
        _ => None,
    };
    let relay_server = match (relay, &settings.relay) {
        (Some(listener), Some(config)) => {
            let shared = Arc::new(crate::relay::Shared::new(
                config.clone(),
                ingest.clone(),
                store.clone(),
                crate::relay::RelayMetrics::register(metrics.registry())?,
            ));
            Some(tokio::spawn(crate::relay::serve(
                listener,
                shared,
                stop_rx.clone(),
                settings.tuning.connections.shutdown_grace,
            )))
        }
        (Some(_), None) => return Err(ServeError::RelayWithoutSpec),
        _ => None,
    };
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let providers = Providers::new(
        settings.providers.clone(),
        store.clone(),
        &metrics,
        settings.max_body_bytes,
        settings.tuning.unverified_body_bytes,
    );
    let app = Arc::new(App {
        store: store.clone(),
        ingest,
        credentials: settings.credentials.clone(),
        metrics,
        // A process that read no API credentials (the mailbox scanner) serves no webhook.
        generic_webhook: settings.spec.providers.generic.enabled
            && settings.reads == crate::config::Reads::Everything,
        providers,
    });
    let router = http::router(
        app,
        settings.max_body_bytes,
        settings.tuning.request_timeout,
    );
    tracing::info!(
        addr = %listener.local_addr()?,
        writers,
        header_read_timeout = ?settings.tuning.connections.header_read_timeout,
        max_connections = settings.tuning.connections.max_connections,
        shutdown_grace = ?settings.tuning.connections.shutdown_grace,
        "listening"
    );
    connections::serve(listener, router, settings.tuning.connections, shutdown).await;
    tracing::info!("stopped accepting; in-flight requests are done");
    if let Some(smtp) = smtp_server {
        let _ = smtp.await;
    }
    if let Some(relay) = relay_server {
        let _ = relay.await;
    }
    if let Some(scanners) = scanners {
        scanners.stop().await;
    }
    store.close().await;
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
