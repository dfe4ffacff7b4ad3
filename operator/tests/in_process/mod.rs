//! The operator run in the test's own process against a real API server, for as long as a
//! scenario runs (the e2e and invalid-spec suites).

use std::sync::Arc;
use std::time::Duration;

use bounce_operator::controller::{self, Scope};
use bounce_operator::metrics::Metrics;
use bounce_operator::reconcile::desired::Settings;
use kube::Client;

/// Runs the operator as `client` (Lease identity `identity`), watching `ns`, while `work`
/// runs; then stops it, and fails as `work` failed.
pub async fn with_operator(
    client: &Client,
    ns: &str,
    identity: &str,
    work: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(controller::run(
        client.clone(),
        Scope(Some(ns.to_owned())),
        Settings::default(),
        identity.to_owned(),
        Arc::new(Metrics::new()),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let result = tokio::spawn(work).await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), operator).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
