//! The whole controller (kube's `Controller`, its reflector, the owned-object and Secret
//! watches) against the in-memory API server with streaming watches: what unit tests of
//! the reconcile cannot show.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bounce_operator::controller::{self, Scope};
use bounce_operator::metrics::Metrics;
use bounce_operator::reconcile::desired::Settings;
use bounceops_api::ConditionStatus;
use common::{FakeApi, deployment_path};

const NS: &str = "mail";
const SPEC: &str = "database: {urlSecretRef: {name: db, key: url}}\napi: {credentialsSecretRef: {name: api, key: credentials}}\nwebhook: {replicas: 2}\n";

fn condition(fake: &FakeApi, name: &str, type_: &str) -> Option<(ConditionStatus, String)> {
    let cfg = fake.config(NS, name);
    let c = cfg.status?.condition(type_)?.clone();
    Some((c.status, c.reason))
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The database Secret each config of this test reads, and only it: a GET of it in the
/// log is the start of a reconcile of that config.
fn database_secret(name: &str) -> String {
    let secret = if name == "news" { "db" } else { "other-db" };
    format!("/api/v1/namespaces/{NS}/secrets/{secret}")
}

/// Re-applies each config unchanged (a new resourceVersion, the same generation), which
/// wakes its reconcile without changing what it should make, and waits until a reconcile of
/// each has started since and every reconcile started since has ended. Returns the log's
/// length before: what those reconciles wrote is `writes_since` it. Waiting on what the
/// controller did, not on time, is what makes "nothing was written" mean something.
async fn reconciled_again(fake: &FakeApi, metrics: &Metrics, names: &[&str]) -> usize {
    let ended = || {
        ["ok", "degraded", "error"]
            .map(|r| metrics.reconciles(r))
            .iter()
            .sum::<u64>()
    };
    let mark = fake.log_len();
    let before = ended();
    for name in names {
        let spec = serde_yaml::to_string(&fake.config(NS, name).spec).unwrap();
        fake.put_config(NS, name, &spec);
    }
    until(
        "a reconcile of each config, started since and ended",
        || {
            let log = fake.log();
            let started = |name: &str| {
                let path = database_secret(name);
                log[mark..]
                    .iter()
                    .filter(|c| c.method == http::Method::GET && c.path == path)
                    .count() as u64
            };
            names.iter().all(|n| started(n) > 0)
                && ended() - before >= started("news") + started("other")
        },
    )
    .await;
    mark
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_follows_secrets_and_children_and_then_rests() {
    let (client, fake) = FakeApi::start_streaming();
    fake.put_secret(NS, "db", &["url"]);
    fake.put_config(NS, "news", SPEC);
    fake.put_config(NS, "other", &SPEC.replace("name: db,", "name: other-db,"));
    fake.put_secret(NS, "other-db", &["url"]);
    fake.put_secret(NS, "api", &["credentials"]);
    fake.remove(&format!("/api/v1/namespaces/{NS}/secrets/api"));

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = Arc::new(Metrics::new());
    let op = tokio::spawn(controller::run(
        client,
        Scope(None),
        Settings::default(),
        "test".into(),
        metrics.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    until("both configs Degraded: SecretMissing", || {
        ["news", "other"].iter().all(|n| {
            condition(&fake, n, "Degraded") == Some((ConditionStatus::True, "SecretMissing".into()))
        })
    })
    .await;

    // The Secret appears: the Secret watch re-queues the configs that use it.
    fake.put_secret(NS, "api", &["credentials"]);
    until("both configs Ready", || {
        ["news", "other"]
            .iter()
            .all(|n| condition(&fake, n, "Ready").map(|c| c.0) == Some(ConditionStatus::True))
    })
    .await;

    // Its own writes come back as watch events; a reconcile of the converged state, whatever
    // woke it, writes nothing.
    let mark = reconciled_again(&fake, &metrics, &["news", "other"]).await;
    assert_eq!(
        fake.writes_since(mark),
        [],
        "a converged controller writes nothing"
    );

    // Rotating a Secret used by one config re-applies that config's Deployment only.
    let mark = fake.log_len();
    fake.put_secret(NS, "other-db", &["url", "rotated"]);
    until("other-webhook re-applied", || {
        fake.writes_since(mark)
            .iter()
            .any(|c| c.path == deployment_path(NS, "other-webhook"))
    })
    .await;
    // A reconcile of the other config after the rotation leaves it as it was.
    reconciled_again(&fake, &metrics, &["news"]).await;
    assert!(
        !fake
            .writes_since(mark)
            .iter()
            .any(|c| c.path.contains("/news-")),
        "the config that does not use the Secret is left alone"
    );

    // A child deleted by hand comes back (owned-object watch).
    let dep = deployment_path(NS, "news-webhook");
    fake.remove(&dep);
    until("news-webhook recreated", || fake.get(&dep).is_some()).await;

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), op)
        .await
        .expect("graceful shutdown")
        .unwrap();
    assert!(metrics.reconciles("ok") > 0);
}
