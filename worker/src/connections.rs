//! The HTTP connections themselves, for a server the whole internet can reach: how long a
//! client may take to send a request's head, how many connections are open at once, and a
//! stop that ends within a bound whatever the clients do.
//!
//! hyper serves each connection (HTTP/1.1; providers, ingress controllers and listmonk all
//! speak it) and times the request head itself; this module owns the accept loop around it,
//! since axum's `serve` offers neither a cap on connections nor a bounded stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How connections are served. `Default` gives the reasons of the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time for a whole request head, counted from the moment the connection opens or its
    /// previous answer is sent: hyper times both the same way, so it is also how long an
    /// idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Connections open at once; past it, new ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long a stop waits for in-flight requests before closing their connections.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    /// 10 s for a request head: a sender writes its head in one packet, so 10 s is a
    /// client that trickles on purpose or is gone, and an idle connection costs a slot.
    /// 512 connections: far beyond what the replicas of a worker see from providers and
    /// an ingress controller, and within the 1,024 file descriptors a container gets by
    /// default, with room for the database's connections. 20 s to stop: Kubernetes kills
    /// a pod 30 s after asking it to stop, 5 s of which the webhook pods spend draining
    /// (the operator's preStop); what is left closes the database cleanly.
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Serves `router` on the connections of `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish for up to `shutdown_grace`, and closes every
/// connection still open after it. A request cut off that way gets no answer at all (its
/// sender retries), never a partial one; a bounce is answered 2xx only once committed, so
/// nothing it answered is lost.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut open = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the cap, stop accepting: new connections wait in the kernel's queue (no
        // error, no request read) until one of the open ones closes.
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        while open.try_join_next().is_some() {}
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let mut stopping = stopping.clone();
        open.spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
                    // Closes an idle connection now, a busy one after its answer.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                // A client's doing (a slow or broken head, a reset), not the server's.
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while open.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = open.len(),
            grace = ?limits.shutdown_grace,
            "closing connections still busy after the shutdown grace period"
        );
        open.shutdown().await;
    }
}

/// An error of `accept`: one connection's (reset before it was accepted) is skipped; the
/// process's (out of file descriptors) would repeat at once, so the loop pauses first.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted => {}
        _ => {
            tracing::error!(error = %e, "cannot accept connections; trying again in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
