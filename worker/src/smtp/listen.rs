//! The accept loop the bounce MX and the sending relay share: at most `max_sessions`
//! sessions at once (further connections wait in the listen queue), until `stop` turns
//! true, then up to `grace` for the sessions in progress.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// Runs `session` for each accepted connection. `what` names the server in logs.
pub async fn accept<F, Fut>(
    listener: TcpListener,
    max_sessions: usize,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    what: &'static str,
    session: F,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let sessions = Arc::new(Semaphore::new(max_sessions));
    loop {
        let permit = tokio::select! {
            p = sessions.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = super::dialogue::stopped(&mut stop) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = super::dialogue::stopped(&mut stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, server = what, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let run = session(tcp);
        tokio::spawn(async move {
            run.await;
            tracing::debug!(%peer, server = what, "session ended");
            drop(permit);
        });
    }
    drop(listener);
    let all = u32::try_from(max_sessions).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, sessions.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            server = what,
            "sessions still open after the shutdown grace period"
        );
    }
}
