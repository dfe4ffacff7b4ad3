//! The reconcile against kube's mocked API (tower-test), scenario by scenario. Each test
//! plays what the controller would do on a watch event: read the BounceConfig as the API
//! has it, reconcile it, and look at what reached the API server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bounce_operator::metrics::Metrics;
use bounce_operator::reconcile::desired::Settings;
use bounce_operator::reconcile::{self, Context};
use bounceops_api::{BounceConfig, ConditionStatus};
use common::{FakeApi, config_path, deployment_path};
use http::Method;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};

const NS: &str = "mail";

const SPEC: &str = r#"
database: {urlSecretRef: {name: listmonk-db, key: url}}
api: {credentialsSecretRef: {name: bounce-api, key: credentials}}
mailboxes:
  - {name: bounces, protocol: pop3, host: pop.example.com, port: 995, usernameSecretRef: {name: mailbox, key: username}, passwordSecretRef: {name: mailbox, key: password}}
webhook:
  replicas: 2
  ingress: {enabled: true, host: bounces.example.com, className: nginx}
"#;

fn context(client: Client) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: bounce_operator::MANAGER.into(),
            instance: None,
        },
    );
    Arc::new(
        Context::new(
            client,
            Settings {
                worker_image: "registry.test/bounce-worker:1".into(),
                worker_image_pull_policy: None,
            },
            recorder,
            Arc::new(Metrics::new()),
        )
        .with_clock(|| "2026-01-01T00:00:00Z".into()),
    )
}

fn secrets(fake: &FakeApi) {
    fake.put_secret(NS, "listmonk-db", &["url"]);
    fake.put_secret(NS, "bounce-api", &["credentials"]);
    fake.put_secret(NS, "mailbox", &["username", "password"]);
}

async fn reconcile_once(fake: &FakeApi, ctx: &Arc<Context>) -> Result<Action, reconcile::Error> {
    reconcile::reconcile(Arc::new(fake.config(NS, "news")), ctx.clone()).await
}

fn condition(fake: &FakeApi, type_: &str) -> (ConditionStatus, String) {
    let cfg = fake.config(NS, "news");
    let c = cfg
        .status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .unwrap_or_else(|| panic!("no {type_} condition"))
        .clone();
    (c.status, c.reason)
}

fn applied_paths(calls: &[common::Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| {
            c.method == Method::PATCH && c.content_type.starts_with("application/apply-patch")
        })
        .map(|c| c.path.clone())
        .collect()
}

#[tokio::test]
async fn first_reconcile_applies_children_and_patches_status() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);

    reconcile_once(&fake, &ctx).await.expect("reconcile");

    let writes = fake.writes_since(0);
    assert_eq!(
        applied_paths(&writes),
        [
            "/api/v1/namespaces/mail/configmaps/news-config",
            "/apis/apps/v1/namespaces/mail/deployments/news-webhook",
            "/api/v1/namespaces/mail/services/news-webhook",
            "/apis/apps/v1/namespaces/mail/deployments/news-mailbox",
            "/api/v1/namespaces/mail/services/news-mailbox",
            "/apis/networking.k8s.io/v1/namespaces/mail/ingresses/news-webhook",
            "/apis/policy/v1/namespaces/mail/poddisruptionbudgets/news-webhook",
        ]
    );
    assert!(
        writes.iter().all(|c| !c.path.contains("servicemonitors")),
        "not asked for"
    );
    assert!(
        writes
            .iter()
            .any(|c| c.path == format!("{}/status", config_path(NS, "news")))
    );
    let events = fake.events(NS);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "Applied");

    let cfg = fake.config(NS, "news");
    let status = cfg.status.expect("status written");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.webhook_url.as_deref(),
        Some("http://bounces.example.com/webhooks")
    );
    assert_eq!(status.mailboxes, Some(1));
    assert_eq!(status.webhook.as_ref().unwrap().ready_replicas, 2);
    assert_eq!(status.mailbox.as_ref().unwrap().desired_replicas, 1);
    assert_eq!(
        condition(&fake, "Ready"),
        (ConditionStatus::True, "AllWorkersReady".into())
    );
    assert_eq!(condition(&fake, "Degraded").0, ConditionStatus::False);
    assert_eq!(condition(&fake, "Progressing").0, ConditionStatus::False);
}

#[tokio::test]
async fn unchanged_state_performs_no_writes() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();

    let mark = fake.log_len();
    for _ in 0..3 {
        let action = reconcile_once(&fake, &ctx).await.unwrap();
        assert_eq!(action, Action::requeue(reconcile::RESYNC));
    }
    assert_eq!(fake.writes_since(mark), [], "steady state must not write");
    assert!(fake.log_len() > mark, "it did look");
}

/// One reconcile of a fresh config, and the object as the watch cache still holds it:
/// from before that reconcile's status write.
async fn reconciled_once_with_a_stale_copy() -> (FakeApi, Arc<Context>, Arc<BounceConfig>) {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);
    let stale = Arc::new(fake.config(NS, "news"));
    reconcile::reconcile(stale.clone(), ctx.clone())
        .await
        .unwrap();
    (fake, ctx, stale)
}

#[tokio::test]
async fn a_stale_cached_object_does_not_rewrite_the_status() {
    let (fake, ctx, stale) = reconciled_once_with_a_stale_copy().await;
    let mark = fake.log_len();
    reconcile::reconcile(stale, ctx.clone()).await.unwrap();
    assert_eq!(
        fake.writes_since(mark),
        [],
        "no second status write, no second Event"
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.writes_since(mark), []);
}

#[tokio::test]
async fn a_status_change_seen_on_a_stale_cached_object_is_written_without_a_conflict() {
    let (fake, ctx, stale) = reconciled_once_with_a_stale_copy().await;
    // The world changes before the watch delivers the status write: the next write must
    // be based on the object that write made, not on the stale copy's resourceVersion.
    fake.remove("/api/v1/namespaces/mail/secrets/bounce-api");
    let mark = fake.log_len();
    assert_eq!(
        reconcile::reconcile(stale, ctx.clone()).await.unwrap(),
        Action::requeue(reconcile::RESYNC)
    );
    assert_eq!(
        condition(&fake, "Degraded"),
        (ConditionStatus::True, "SecretMissing".into())
    );
    let status_writes: Vec<_> = fake
        .writes_since(mark)
        .into_iter()
        .filter(|c| c.path.ends_with("/status"))
        .collect();
    assert_eq!(status_writes.len(), 1, "{status_writes:?}");
}

#[tokio::test]
async fn missing_secret_is_degraded_with_an_event_and_no_children() {
    let (client, fake) = FakeApi::start();
    fake.put_secret(NS, "listmonk-db", &["url"]);
    fake.put_secret(NS, "mailbox", &["username", "password"]);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);

    reconcile_once(&fake, &ctx)
        .await
        .expect("a missing Secret is a condition, not an error");
    assert_eq!(
        applied_paths(&fake.log()),
        Vec::<String>::new(),
        "no children until the Secret exists"
    );
    assert_eq!(
        condition(&fake, "Degraded"),
        (ConditionStatus::True, "SecretMissing".into())
    );
    assert_eq!(
        condition(&fake, "Ready"),
        (ConditionStatus::False, "SecretMissing".into())
    );
    let events = fake.events(NS);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "SecretMissing");
    assert_eq!(events[0]["type"], "Warning");
    assert!(events[0]["note"].as_str().unwrap().contains("bounce-api"));

    // Retried while still missing: no new Event, no status write.
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.writes_since(mark), []);

    // The Secret appears (the Secret watch re-queues the config): it converges.
    fake.put_secret(NS, "bounce-api", &["credentials"]);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(condition(&fake, "Degraded").0, ConditionStatus::False);
    assert_eq!(condition(&fake, "Ready").0, ConditionStatus::True);
    assert_eq!(applied_paths(&fake.log()).len(), 7);
}

#[tokio::test]
async fn missing_key_is_secret_missing_too() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_secret(NS, "mailbox", &["username"]);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(condition(&fake, "Degraded").1, "SecretMissing");
    let msg = fake.events(NS)[0]["note"].as_str().unwrap().to_owned();
    assert!(msg.contains("no key \"password\""), "{msg}");
}

#[tokio::test]
async fn invalid_spec_is_degraded_and_changes_nothing() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(
        NS,
        "news",
        "database: {urlSecretRef: {name: listmonk-db, key: url}}\n",
    );
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "Degraded"),
        (ConditionStatus::True, "InvalidSpec".into())
    );
    assert!(applied_paths(&fake.log()).is_empty());
    assert_eq!(fake.events(NS)[0]["reason"], "InvalidSpec");
}

#[tokio::test]
async fn api_errors_are_retried_with_growing_backoff() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);

    fake.fail(Method::PATCH, "/deployments/", 500, 2);
    let mut delays = Vec::new();
    for _ in 0..2 {
        let err = reconcile_once(&fake, &ctx).await.expect_err("500 on apply");
        assert!(err.to_string().contains("injected failure"), "{err}");
        delays.push(reconcile::error_policy(
            Arc::new(fake.config(NS, "news")),
            &err,
            ctx.clone(),
        ));
    }
    assert_eq!(
        delays,
        [
            Action::requeue(Duration::from_secs(5)),
            Action::requeue(Duration::from_secs(10))
        ]
    );
    assert_eq!(
        condition(&fake, "Degraded"),
        (ConditionStatus::True, "ApplyFailed".into())
    );
    assert!(fake.events(NS).iter().any(|e| e["reason"] == "ApplyFailed"));

    // 409 on the status write: someone changed the object, no failure; looked at again
    // soon, and the backoff starts over.
    fake.fail(Method::PUT, "/status", 409, 1);
    assert_eq!(
        reconcile_once(&fake, &ctx)
            .await
            .expect("a conflict is no error"),
        Action::requeue(reconcile::CONFLICT_RETRY)
    );
    assert_eq!(
        condition(&fake, "Degraded"),
        (ConditionStatus::True, "ApplyFailed".into()),
        "nothing written"
    );
    fake.fail(Method::GET, "/secrets/", 500, 1);
    let err = reconcile_once(&fake, &ctx).await.expect_err("500 on read");
    assert_eq!(
        reconcile::error_policy(Arc::new(fake.config(NS, "news")), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );

    // The API recovers: the next reconcile converges and the backoff starts over.
    reconcile_once(&fake, &ctx).await.expect("recovered");
    assert_eq!(condition(&fake, "Degraded").0, ConditionStatus::False);
    assert_eq!(condition(&fake, "Ready").0, ConditionStatus::True);
    fake.fail(Method::GET, "/secrets/", 500, 1);
    let err = reconcile_once(&fake, &ctx).await.expect_err("500 on read");
    assert_eq!(
        reconcile::error_policy(Arc::new(fake.config(NS, "news")), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
}

#[tokio::test]
async fn spec_changes_converge_in_one_reconcile() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let hash = |fake: &FakeApi| {
        fake.get(&deployment_path(NS, "news-webhook")).unwrap()["spec"]["template"]["metadata"]["annotations"]
            ["bounceops.io/config-hash"]
            .clone()
    };
    let first_hash = hash(&fake);

    // Scale down to one replica and remove the mailbox.
    let smaller = SPEC
        .replace("replicas: 2", "replicas: 1")
        .replace(
            "mailboxes:\n  - {name: bounces, protocol: pop3, host: pop.example.com, port: 995, usernameSecretRef: {name: mailbox, key: username}, passwordSecretRef: {name: mailbox, key: password}}\n",
            "",
        );
    fake.put_config(NS, "news", &smaller);
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    let writes = fake.writes_since(mark);
    let deleted: Vec<&str> = writes
        .iter()
        .filter(|c| c.method == Method::DELETE)
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(
        deleted,
        [
            "/apis/apps/v1/namespaces/mail/deployments/news-mailbox",
            "/api/v1/namespaces/mail/services/news-mailbox",
            "/apis/policy/v1/namespaces/mail/poddisruptionbudgets/news-webhook",
        ]
    );
    assert_eq!(
        fake.get(&deployment_path(NS, "news-webhook")).unwrap()["spec"]["replicas"],
        1
    );
    let cfg = fake.config(NS, "news");
    let status = cfg.status.unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(
        status.mailbox, None,
        "the removed Deployment leaves the status"
    );
    assert_eq!(status.mailboxes, Some(0));
    assert!(fake.events(NS).iter().any(|e| e["reason"] == "Pruned"));
    // The mailbox Secret is no longer mounted, so the config hash moved; not because of the scaling.
    let second_hash = hash(&fake);

    // Rotating a Secret rolls the pods (new hash) without touching the ConfigMap.
    fake.put_secret(NS, "listmonk-db", &["url", "spare"]);
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    let applied = applied_paths(&fake.writes_since(mark));
    assert_eq!(
        applied,
        ["/apis/apps/v1/namespaces/mail/deployments/news-webhook"]
    );
    assert_ne!(hash(&fake), second_hash);
    assert_ne!(hash(&fake), first_hash);

    // And it settles again.
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.writes_since(mark), []);
}

#[tokio::test]
async fn drift_made_by_someone_else_is_reverted() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let path = deployment_path(NS, "news-webhook");
    let mut dep = fake.get(&path).unwrap();
    dep["spec"]["replicas"] = 7.into();
    fake.put(&path, dep);
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        applied_paths(&fake.writes_since(mark)),
        std::slice::from_ref(&path)
    );
    assert_eq!(fake.get(&path).unwrap()["spec"]["replicas"], 2);
}

#[tokio::test]
async fn prune_leaves_objects_it_does_not_own() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(NS, "news", &SPEC.replace("replicas: 2", "replicas: 1"));
    // A PodDisruptionBudget with the name the operator would use, made by someone else.
    let pdb = "/apis/policy/v1/namespaces/mail/poddisruptionbudgets/news-webhook";
    fake.put(
        pdb,
        serde_json::json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "news-webhook", "namespace": NS}}),
    );
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(fake.get(pdb).is_some());
    assert!(fake.log().iter().all(|c| c.method != Method::DELETE));
}

#[tokio::test]
async fn service_monitor_needs_its_crd_and_says_so() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(
        NS,
        "news",
        &format!("{SPEC}metrics: {{serviceMonitor: true}}\n"),
    );
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "ServiceMonitorReady"),
        (ConditionStatus::False, "CRDNotInstalled".into())
    );
    assert_eq!(
        condition(&fake, "Ready").0,
        ConditionStatus::True,
        "metrics do not block readiness"
    );
    assert!(
        fake.events(NS)
            .iter()
            .any(|e| e["reason"] == "ServiceMonitorCRDMissing")
    );

    fake.set_service_monitor_crd(true);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "ServiceMonitorReady"),
        (ConditionStatus::True, "Created".into())
    );
    assert!(
        fake.get("/apis/monitoring.coreos.com/v1/namespaces/mail/servicemonitors/news-webhook")
            .is_some()
    );
}

#[tokio::test]
async fn without_nodes_the_config_is_progressing_not_ready() {
    let (client, fake) = FakeApi::start();
    fake.set_nodes(false);
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "Ready"),
        (ConditionStatus::False, "WorkersUnavailable".into())
    );
    assert_eq!(
        condition(&fake, "Progressing"),
        (ConditionStatus::True, "RollingOut".into())
    );
    assert_eq!(condition(&fake, "Degraded").0, ConditionStatus::False);
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        fake.writes_since(mark),
        [],
        "waiting for pods writes nothing either"
    );
}

#[tokio::test]
async fn metrics_count_reconciles_and_conditions() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let text = ctx.metrics.render();
    assert!(
        text.contains("bounceops_operator_reconciles_total{result=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("bounceops_operator_configs{condition=\"Ready\",status=\"True\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("bounceops_operator_api_writes_total{kind=\"apply\"} 7"),
        "{text}"
    );
}

/// A server older than the oldest supported one would refuse the children (1.29 refuses
/// the webhook Deployment's `preStop` sleep as an empty handler) or keep them half: the
/// operator applies nothing and every config says why, until the control plane is
/// upgraded, which it notices without a restart.
#[tokio::test]
async fn an_api_server_older_than_the_minimum_gets_no_children_and_every_config_says_why() {
    let (client, fake) = FakeApi::start();
    fake.set_version("1", "29", "v1.29.14");
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    fake.put_secret("other", "listmonk-db", &["url"]);
    fake.put_secret("other", "bounce-api", &["credentials"]);
    fake.put_config(
        "other",
        "digest",
        "database: {urlSecretRef: {name: listmonk-db, key: url}}\napi: {credentialsSecretRef: {name: bounce-api, key: credentials}}\n",
    );
    let ctx = context(client);

    for (ns, name) in [(NS, "news"), ("other", "digest")] {
        let action = reconcile::reconcile(Arc::new(fake.config(ns, name)), ctx.clone())
            .await
            .expect("an old server is a condition, not a reconcile error");
        assert_eq!(action, Action::requeue(reconcile::RESYNC));
        let status = fake.config(ns, name).status.expect("status written");
        let degraded = status.condition("Degraded").expect("Degraded");
        assert_eq!(
            (&degraded.status, degraded.reason.as_str()),
            (&ConditionStatus::True, "UnsupportedKubernetesVersion")
        );
        assert!(
            degraded.message.contains("v1.29.14") && degraded.message.contains("1.33"),
            "the message names the server and the minimum: {}",
            degraded.message
        );
        let ready = status.condition("Ready").expect("Ready");
        assert_eq!(ready.status, ConditionStatus::False);
        let events = fake.events(ns);
        assert_eq!(events.len(), 1, "one Warning, not one per retry");
        assert_eq!(events[0]["reason"], "UnsupportedKubernetesVersion");
        assert_eq!(events[0]["type"], "Warning");
    }
    assert_eq!(
        applied_paths(&fake.log()),
        Vec::<String>::new(),
        "nothing the old server would refuse is sent"
    );

    // Looked at again on the resync: still old, nothing new written.
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.writes_since(mark), []);

    // The control plane is upgraded (a provider's version string): the next look heals it.
    fake.set_version("1", "33+", "v1.33.2-eks-4096722");
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(applied_paths(&fake.writes_since(mark)).len(), 7);
    assert_eq!(condition(&fake, "Degraded").0, ConditionStatus::False);
    assert_eq!(
        condition(&fake, "Ready"),
        (ConditionStatus::True, "AllWorkersReady".into())
    );
    // Once a server is known to be new enough it is not asked again.
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert!(fake.log()[mark..].iter().all(|c| c.path != "/version"));
}

/// An Ingress with nothing behind it is reported as such (issue: "Ready and a webhook URL
/// with nothing behind them"): no TLS Secret yet, then no controller's address, then the
/// address; each change of the Secret or the Ingress re-queues the config.
#[tokio::test]
async fn the_ingress_condition_says_what_the_ingress_lacks() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    let spec = SPEC.replace(
        "className: nginx}",
        "className: nginx, tlsSecretName: bounces-tls, annotations: {cert-manager.io/cluster-issuer: letsencrypt}}",
    );
    fake.put_config(NS, "news", &spec);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let ingress = fake
        .get("/apis/networking.k8s.io/v1/namespaces/mail/ingresses/news-webhook")
        .expect("the Ingress is applied");
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    assert_eq!(
        condition(&fake, "IngressReady"),
        (ConditionStatus::False, "TLSSecretMissing".into())
    );
    assert_eq!(
        condition(&fake, "Ready"),
        (ConditionStatus::True, "AllWorkersReady".into()),
        "the workers serve the cluster whatever the Ingress"
    );

    // cert-manager issues the certificate: the Secret watch maps it to this config.
    fake.put_secret(NS, "bounces-tls", &["tls.crt", "tls.key"]);
    let cfg = Arc::new(fake.config(NS, "news"));
    assert_eq!(
        bounce_operator::reconcile::secrets::configs_using(&[cfg], NS, "bounces-tls").len(),
        1
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "IngressReady"),
        (ConditionStatus::False, "NoAddress".into())
    );

    // The ingress controller admits it (what a real one writes into the Ingress status).
    let path = "/apis/networking.k8s.io/v1/namespaces/mail/ingresses/news-webhook";
    let mut admitted = fake.get(path).unwrap();
    admitted["status"] = serde_json::json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}});
    fake.put(path, admitted);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "IngressReady"),
        (ConditionStatus::True, "Admitted".into())
    );
}

/// After a Secret changes, the status names the version the workers now carry, so
/// `kubectl wait` can tell when the operator has rolled them (docs/install.md).
#[tokio::test]
async fn the_status_shows_the_secret_versions_applied_to_the_workers() {
    let (client, fake) = FakeApi::start();
    secrets(&fake);
    fake.put_config(NS, "news", SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let secret_rv = |name: &str| {
        fake.get(&format!("/api/v1/namespaces/{NS}/secrets/{name}"))
            .unwrap()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let status = fake.config(NS, "news").status.unwrap();
    assert_eq!(
        status.observed_secrets["bounce-api"],
        secret_rv("bounce-api")
    );
    let hash = status.config_hash.clone().expect("config hash");
    let template_hash = |fake: &FakeApi| {
        fake.get(&deployment_path(NS, "news-webhook")).unwrap()["spec"]["template"]["metadata"]
            ["annotations"]["bounceops.io/config-hash"]
            .clone()
    };
    assert_eq!(template_hash(&fake), hash.as_str());

    fake.put_secret(NS, "bounce-api", &["credentials"]);
    reconcile_once(&fake, &ctx).await.unwrap();
    let status = fake.config(NS, "news").status.unwrap();
    assert_eq!(
        status.observed_secrets["bounce-api"],
        secret_rv("bounce-api")
    );
    assert_ne!(status.config_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(template_hash(&fake), status.config_hash.unwrap().as_str());
}

/// The bounce MX beside a webhook (no mailbox), as docs/operator.md shows it.
const SMTP_SPEC: &str = r#"
database: {urlSecretRef: {name: listmonk-db, key: url}}
api: {credentialsSecretRef: {name: bounce-api, key: credentials}}
webhook: {replicas: 1}
smtp:
  domains: [bounces.example.com]
  verpKeySecretRef: {name: verp-key, key: key}
  tlsSecretName: mx-tls
  service: {type: LoadBalancer}
"#;

const SMTP_CHILDREN: [&str; 4] = [
    "/apis/apps/v1/namespaces/mail/deployments/news-smtp",
    "/api/v1/namespaces/mail/services/news-smtp",
    "/api/v1/namespaces/mail/services/news-smtp-metrics",
    "/apis/policy/v1/namespaces/mail/poddisruptionbudgets/news-smtp",
];

fn smtp_secrets(fake: &FakeApi) {
    fake.put_secret(NS, "listmonk-db", &["url"]);
    fake.put_secret(NS, "bounce-api", &["credentials"]);
    fake.put_secret(NS, "verp-key", &["key"]);
    fake.put_tls_secret(NS, "mx-tls");
}

fn pod_hash(fake: &FakeApi, deployment: &str) -> serde_json::Value {
    fake.get(&deployment_path(NS, deployment)).unwrap()["spec"]["template"]["metadata"]
        ["annotations"]["bounceops.io/config-hash"]
        .clone()
}

#[tokio::test]
async fn the_bounce_mx_is_applied_reported_and_settles() {
    let (client, fake) = FakeApi::start();
    smtp_secrets(&fake);
    fake.put_config(NS, "news", SMTP_SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();

    assert_eq!(
        applied_paths(&fake.writes_since(0)),
        [
            "/api/v1/namespaces/mail/configmaps/news-config",
            "/apis/apps/v1/namespaces/mail/deployments/news-webhook",
            "/api/v1/namespaces/mail/services/news-webhook",
            SMTP_CHILDREN[0],
            SMTP_CHILDREN[1],
            SMTP_CHILDREN[2],
            SMTP_CHILDREN[3],
        ]
    );
    let service = fake.get(SMTP_CHILDREN[1]).unwrap();
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["ports"][0]["port"], 25);
    let note = fake.events(NS)[0]["note"].as_str().unwrap().to_owned();
    assert!(
        note.contains("Deployment/news-smtp") && note.contains("Service/news-smtp-metrics"),
        "{note}"
    );

    let status = fake.config(NS, "news").status.unwrap();
    let smtp = status.smtp.as_ref().expect("status.smtp");
    assert_eq!(
        (
            smtp.name.as_str(),
            smtp.desired_replicas,
            smtp.ready_replicas
        ),
        ("news-smtp", 2, 2)
    );
    assert_eq!(status.mailbox, None);
    for secret in ["verp-key", "mx-tls"] {
        assert!(
            status.observed_secrets.contains_key(secret),
            "{secret}: {:?}",
            status.observed_secrets
        );
    }
    assert_eq!(
        condition(&fake, "Ready"),
        (ConditionStatus::True, "AllWorkersReady".into())
    );

    // What the server filled in (cluster IP, node port) is no drift: nothing is written.
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.writes_since(mark), []);
}

#[tokio::test]
async fn smtp_pods_not_ready_keep_the_config_from_ready() {
    let (client, fake) = FakeApi::start();
    smtp_secrets(&fake);
    fake.put_config(NS, "news", SMTP_SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    // The SMTP pods fail their readiness probe (e.g. the database is down): only they.
    let path = deployment_path(NS, "news-smtp");
    let mut dep = fake.get(&path).unwrap();
    dep["status"]["readyReplicas"] = 0.into();
    fake.put(&path, dep);
    reconcile_once(&fake, &ctx).await.unwrap();
    let status = fake.config(NS, "news").status.unwrap();
    let ready = status.condition("Ready").unwrap();
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "WorkersUnavailable")
    );
    assert!(ready.message.contains("news-smtp"), "{}", ready.message);
    assert!(!ready.message.contains("news-webhook"), "{}", ready.message);
    assert_eq!(status.smtp.unwrap().ready_replicas, 0);
}

#[tokio::test]
async fn a_missing_verp_key_or_certificate_is_secret_missing_like_any_other() {
    let (client, fake) = FakeApi::start();
    fake.put_secret(NS, "listmonk-db", &["url"]);
    fake.put_secret(NS, "bounce-api", &["credentials"]);
    fake.put_config(NS, "news", SMTP_SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "Degraded"),
        (ConditionStatus::True, "SecretMissing".into())
    );
    assert!(
        applied_paths(&fake.log()).is_empty(),
        "no pods that cannot start"
    );
    let note = fake.events(NS)[0]["note"].as_str().unwrap().to_owned();
    assert!(
        note.contains(
            "Secret \"verp-key\" (referenced by spec.smtp.verpKeySecretRef) does not exist"
        ) && note
            .contains("Secret \"mx-tls\" (referenced by spec.smtp.tlsSecretName) does not exist"),
        "{note}"
    );

    // The key arrives; the certificate Secret lacks its key (the API server lets an Opaque
    // Secret have any keys).
    fake.put_secret(NS, "verp-key", &["key"]);
    fake.put_secret(NS, "mx-tls", &["tls.crt"]);
    let configs = [Arc::new(fake.config(NS, "news"))];
    for secret in ["verp-key", "mx-tls"] {
        assert_eq!(
            bounce_operator::reconcile::secrets::configs_using(&configs, NS, secret).len(),
            1,
            "the Secret watch re-queues the config for {secret}"
        );
    }
    reconcile_once(&fake, &ctx).await.unwrap();
    let degraded = fake.config(NS, "news").status.unwrap();
    let degraded = degraded.condition("Degraded").unwrap();
    assert_eq!(degraded.reason, "SecretMissing");
    assert_eq!(
        degraded.message,
        "Secret \"mx-tls\" has no key \"tls.key\" (referenced by spec.smtp.tlsSecretName)"
    );
    assert!(applied_paths(&fake.log()).is_empty());

    fake.put_tls_secret(NS, "mx-tls");
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(condition(&fake, "Degraded").0, ConditionStatus::False);
    assert_eq!(condition(&fake, "Ready").0, ConditionStatus::True);
    assert!(fake.get(SMTP_CHILDREN[0]).is_some());
}

#[tokio::test]
async fn a_renewed_certificate_or_rotated_verp_key_rolls_the_pods() {
    let (client, fake) = FakeApi::start();
    smtp_secrets(&fake);
    fake.put_config(NS, "news", SMTP_SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let mut last = pod_hash(&fake, "news-smtp");
    let rv = |fake: &FakeApi, name: &str| {
        fake.get(&format!("/api/v1/namespaces/{NS}/secrets/{name}"))
            .unwrap()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for secret in ["mx-tls", "verp-key"] {
        // cert-manager renews the certificate; a key rotation writes the key Secret.
        if secret == "mx-tls" {
            fake.put_tls_secret(NS, secret);
        } else {
            fake.put_secret(NS, secret, &["key"]);
        }
        let mark = fake.log_len();
        reconcile_once(&fake, &ctx).await.unwrap();
        let applied = applied_paths(&fake.writes_since(mark));
        assert!(
            applied.contains(&SMTP_CHILDREN[0].to_owned()),
            "{applied:?}"
        );
        assert!(
            applied.iter().all(|p| p.contains("/deployments/")),
            "only the pod templates change: {applied:?}"
        );
        let now = pod_hash(&fake, "news-smtp");
        assert_ne!(now, last, "{secret}");
        let status = fake.config(NS, "news").status.unwrap();
        assert_eq!(status.observed_secrets[secret], rv(&fake, secret));
        assert_eq!(status.config_hash.as_deref(), now.as_str());
        last = now;
    }
}

#[tokio::test]
async fn removing_spec_smtp_removes_all_of_it() {
    let (client, fake) = FakeApi::start();
    smtp_secrets(&fake);
    fake.put_config(NS, "news", SMTP_SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let webhook_hash = pod_hash(&fake, "news-webhook");

    let without = SMTP_SPEC.split("smtp:\n").next().unwrap().to_owned();
    fake.put_config(NS, "news", &without);
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    let deleted: Vec<String> = fake
        .writes_since(mark)
        .into_iter()
        .filter(|c| c.method == Method::DELETE)
        .map(|c| c.path)
        .collect();
    assert_eq!(deleted, SMTP_CHILDREN);
    for path in SMTP_CHILDREN {
        assert!(fake.get(path).is_none(), "{path}");
    }
    let status = fake.config(NS, "news").status.unwrap();
    assert_eq!(
        status.smtp, None,
        "the removed Deployment leaves the status"
    );
    assert!(!status.observed_secrets.contains_key("verp-key"));
    assert!(!status.observed_secrets.contains_key("mx-tls"));
    assert_ne!(
        pod_hash(&fake, "news-webhook"),
        webhook_hash,
        "the config the workers read changed"
    );
    let pruned = fake
        .events(NS)
        .into_iter()
        .find(|e| e["reason"] == "Pruned")
        .expect("a Pruned Event");
    assert!(
        pruned["note"]
            .as_str()
            .unwrap()
            .contains("Deployment/news-smtp"),
        "{pruned}"
    );
    // Settled: the Secrets no longer referenced are no business of this config.
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.writes_since(mark), []);
}

#[tokio::test]
async fn the_smtp_service_type_follows_the_spec() {
    let (client, fake) = FakeApi::start();
    smtp_secrets(&fake);
    fake.put_config(NS, "news", SMTP_SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let service = SMTP_CHILDREN[1];
    assert!(fake.get(service).unwrap()["spec"]["ports"][0]["nodePort"].is_number());

    fake.put_config(
        NS,
        "news",
        &SMTP_SPEC.replace(
            "service: {type: LoadBalancer}",
            "service: {type: ClusterIP, annotations: {example.com/owner: mail-team}}",
        ),
    );
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    let applied = applied_paths(&fake.writes_since(mark));
    assert!(applied.contains(&service.to_owned()), "{applied:?}");
    let now = fake.get(service).unwrap();
    assert_eq!(now["spec"]["type"], "ClusterIP");
    assert!(now["spec"]["ports"][0].get("nodePort").is_none());
    assert_eq!(
        now["metadata"]["annotations"]["example.com/owner"],
        "mail-team"
    );
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.writes_since(mark), []);
}

/// An object with the SMTP Service's name that someone else made (an MX Service created by
/// hand before the operator took over): nothing is applied, and the status says which.
#[tokio::test]
async fn a_foreign_smtp_service_is_a_conflict() {
    let (client, fake) = FakeApi::start();
    smtp_secrets(&fake);
    fake.put(
        SMTP_CHILDREN[1],
        serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "news-smtp", "namespace": NS},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.9.9", "clusterIPs": ["10.96.9.9"],
                     "ports": [{"port": 25, "protocol": "TCP", "targetPort": 25}]}}),
    );
    fake.put_config(NS, "news", SMTP_SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let status = fake.config(NS, "news").status.unwrap();
    let degraded = status.condition("Degraded").unwrap();
    assert_eq!(degraded.reason, "Conflict");
    assert!(
        degraded.message.contains("Service/news-smtp "),
        "{}",
        degraded.message
    );
    assert!(applied_paths(&fake.log()).is_empty());
}

/// A field removed from the spec leaves the child too: the operator's apply is sent only
/// when a child differs, and a field the desired object no longer has is no difference to
/// a comparison of what it has, so each child carries the hash of its desired object.
#[tokio::test]
async fn removed_annotations_and_resources_leave_the_children() {
    let (client, fake) = FakeApi::start();
    smtp_secrets(&fake);
    let with = SMTP_SPEC.replace(
        "service: {type: LoadBalancer}",
        "service: {type: LoadBalancer, annotations: {example.com/owner: mail-team}}\n  resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}",
    );
    fake.put_config(NS, "news", &with);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let svc = fake.get(SMTP_CHILDREN[1]).unwrap();
    assert_eq!(
        svc["metadata"]["annotations"]["example.com/owner"],
        "mail-team"
    );

    fake.put_config(
        NS,
        "news",
        &with
            .replace(", annotations: {example.com/owner: mail-team}", "")
            .replace("cpu: 100m, ", ""),
    );
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    let applied = applied_paths(&fake.writes_since(mark));
    assert!(
        applied.contains(&SMTP_CHILDREN[1].to_owned()),
        "{applied:?}"
    );
    let svc = fake.get(SMTP_CHILDREN[1]).unwrap();
    assert!(
        svc["metadata"]["annotations"]
            .get("example.com/owner")
            .is_none(),
        "{}",
        svc["metadata"]
    );
    let dep = fake.get(SMTP_CHILDREN[0]).unwrap();
    let requests = &dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"];
    assert!(requests.get("cpu").is_none(), "{requests}");
    // And it settles.
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.writes_since(mark), []);
}

/// A LoadBalancer Service without an address is reported, as an Ingress without one is;
/// the address its controller writes is where the MX records point.
#[tokio::test]
async fn the_smtp_load_balancer_address_is_in_the_status() {
    let (client, fake) = FakeApi::start();
    smtp_secrets(&fake);
    fake.put_config(NS, "news", SMTP_SPEC);
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(
        condition(&fake, "SMTPServiceReady"),
        (ConditionStatus::False, "LoadBalancerPending".into())
    );
    assert_eq!(
        condition(&fake, "Ready"),
        (ConditionStatus::True, "AllWorkersReady".into()),
        "the workers serve the cluster whatever the load balancer"
    );

    // The cloud's controller gives it an address (what a real one writes into the status;
    // the Service watch re-queues the config).
    let path = SMTP_CHILDREN[1];
    let mut service = fake.get(path).unwrap();
    service["status"] =
        serde_json::json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.25", "ipMode": "VIP"}]}});
    fake.put(path, service);
    reconcile_once(&fake, &ctx).await.unwrap();
    let status = fake.config(NS, "news").status.unwrap();
    let c = status.condition("SMTPServiceReady").unwrap();
    assert_eq!(
        (c.status, c.reason.as_str()),
        (ConditionStatus::True, "AddressAssigned")
    );
    assert!(c.message.contains("203.0.113.25:25"), "{}", c.message);

    // A ClusterIP has no address to wait for: no condition.
    fake.put_config(
        NS,
        "news",
        &SMTP_SPEC.replace(
            "service: {type: LoadBalancer}",
            "service: {type: ClusterIP}",
        ),
    );
    reconcile_once(&fake, &ctx).await.unwrap();
    let status = fake.config(NS, "news").status.unwrap();
    assert!(status.condition("SMTPServiceReady").is_none(), "{status:?}");
}

/// The bounce MX and the relay's Deployment, with every Secret the relay may read.
const RELAY_SPEC: &str = r#"
relay:
  returnPathDomain: bounces.example.com
  upstream:
    host: smtp.example.com
    caSecretRef: {name: upstream-ca, key: ca.crt}
    usernameSecretRef: {name: upstream-login, key: username}
    passwordSecretRef: {name: upstream-login, key: password}
  credentialsSecretRef: {name: relay-logins, key: logins}
  tlsSecretName: relay-tls
  replicas: 2
"#;

const RELAY_CHILDREN: [&str; 3] = [
    "/apis/apps/v1/namespaces/mail/deployments/news-relay",
    "/api/v1/namespaces/mail/services/news-relay",
    "/apis/policy/v1/namespaces/mail/poddisruptionbudgets/news-relay",
];

fn relay_spec() -> String {
    format!("{SMTP_SPEC}{RELAY_SPEC}")
}

fn relay_secrets(fake: &FakeApi) {
    smtp_secrets(fake);
    fake.put_secret(NS, "upstream-ca", &["ca.crt"]);
    fake.put_secret(NS, "upstream-login", &["username", "password"]);
    fake.put_secret(NS, "relay-logins", &["logins"]);
    fake.put_tls_secret(NS, "relay-tls");
}

#[tokio::test]
async fn the_relay_deployment_is_applied_reported_and_settles() {
    let (client, fake) = FakeApi::start();
    relay_secrets(&fake);
    fake.put_config(NS, "news", &relay_spec());
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();

    let applied = applied_paths(&fake.writes_since(0));
    for path in RELAY_CHILDREN {
        assert!(applied.contains(&path.to_owned()), "{path}: {applied:?}");
    }
    // The relay after the MX's children, its PDB after the MX's.
    let at = |p: &str| applied.iter().position(|a| a == p).unwrap();
    assert!(at(SMTP_CHILDREN[2]) < at(RELAY_CHILDREN[0]));
    assert!(at(SMTP_CHILDREN[3]) < at(RELAY_CHILDREN[2]));
    let service = fake.get(RELAY_CHILDREN[1]).unwrap();
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["port"], 2525);
    let dep = fake.get(RELAY_CHILDREN[0]).unwrap();
    let args = &dep["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args[8], "relay");
    assert_eq!(args[10], "0.0.0.0:2525");

    let status = fake.config(NS, "news").status.unwrap();
    let relay = status.relay.as_ref().expect("status.relay");
    assert_eq!(
        (
            relay.name.as_str(),
            relay.desired_replicas,
            relay.ready_replicas,
            relay.address.as_str()
        ),
        ("news-relay", 2, 2, "news-relay.mail.svc:2525")
    );
    assert_eq!(
        condition(&fake, "RelayReady"),
        (ConditionStatus::True, "Serving".into())
    );
    assert_eq!(
        condition(&fake, "Ready"),
        (ConditionStatus::True, "AllWorkersReady".into())
    );
    for secret in ["upstream-ca", "upstream-login", "relay-logins", "relay-tls"] {
        assert!(
            status.observed_secrets.contains_key(secret),
            "{secret}: {:?}",
            status.observed_secrets
        );
    }

    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(fake.writes_since(mark), []);
}

#[tokio::test]
async fn relay_pods_not_ready_are_relay_not_ready_and_keep_the_config_from_ready() {
    let (client, fake) = FakeApi::start();
    relay_secrets(&fake);
    fake.put_config(NS, "news", &relay_spec());
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let path = deployment_path(NS, "news-relay");
    let mut dep = fake.get(&path).unwrap();
    dep["status"]["readyReplicas"] = 0.into();
    fake.put(&path, dep);
    reconcile_once(&fake, &ctx).await.unwrap();
    let status = fake.config(NS, "news").status.unwrap();
    let relay = status.condition("RelayReady").unwrap();
    assert_eq!(
        (relay.status, relay.reason.as_str()),
        (ConditionStatus::False, "NoReplicaReady")
    );
    assert!(
        relay.message.contains("news-relay.mail.svc:2525"),
        "{}",
        relay.message
    );
    let ready = status.condition("Ready").unwrap();
    assert_eq!(ready.reason, "WorkersUnavailable");
    assert!(ready.message.contains("news-relay"), "{}", ready.message);
    assert_eq!(status.relay.unwrap().ready_replicas, 0);
}

#[tokio::test]
async fn a_missing_relay_secret_is_secret_missing_and_applies_nothing() {
    let (client, fake) = FakeApi::start();
    smtp_secrets(&fake);
    fake.put_secret(NS, "upstream-ca", &["ca.crt"]);
    fake.put_secret(NS, "upstream-login", &["username", "password"]);
    fake.put_secret(NS, "relay-logins", &["logins"]);
    fake.put_secret(NS, "relay-tls", &["tls.crt"]);
    fake.put_config(NS, "news", &relay_spec());
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let status = fake.config(NS, "news").status.unwrap();
    let degraded = status.condition("Degraded").unwrap();
    assert_eq!(degraded.reason, "SecretMissing");
    assert_eq!(
        degraded.message,
        "Secret \"relay-tls\" has no key \"tls.key\" (referenced by spec.relay.tlsSecretName)"
    );
    assert!(applied_paths(&fake.log()).is_empty());
    assert!(status.condition("RelayReady").is_none());

    let configs = [Arc::new(fake.config(NS, "news"))];
    for secret in ["upstream-ca", "upstream-login", "relay-logins", "relay-tls"] {
        assert_eq!(
            bounce_operator::reconcile::secrets::configs_using(&configs, NS, secret).len(),
            1,
            "the Secret watch re-queues the config for {secret}"
        );
    }
    fake.put_tls_secret(NS, "relay-tls");
    reconcile_once(&fake, &ctx).await.unwrap();
    assert_eq!(condition(&fake, "Degraded").0, ConditionStatus::False);
    assert!(fake.get(RELAY_CHILDREN[0]).is_some());
}

#[tokio::test]
async fn the_sidecar_form_only_removes_the_relay_deployment_and_rolls_nothing_else() {
    let (client, fake) = FakeApi::start();
    relay_secrets(&fake);
    fake.put_config(NS, "news", &relay_spec());
    let ctx = context(client);
    reconcile_once(&fake, &ctx).await.unwrap();
    let hashes = ["news-webhook", "news-smtp"].map(|d| pod_hash(&fake, d));

    fake.put_config(
        NS,
        "news",
        &relay_spec().replace("  replicas: 2\n", "  replicas: 0\n"),
    );
    let mark = fake.log_len();
    reconcile_once(&fake, &ctx).await.unwrap();
    let writes = fake.writes_since(mark);
    let deleted: Vec<String> = writes
        .iter()
        .filter(|c| c.method == Method::DELETE)
        .map(|c| c.path.clone())
        .collect();
    assert_eq!(deleted, RELAY_CHILDREN);
    for path in RELAY_CHILDREN {
        assert!(fake.get(path).is_none(), "{path}");
    }
    assert!(
        applied_paths(&writes)
            .iter()
            .all(|p| !p.contains("/deployments/")),
        "no worker rolls: {:?}",
        applied_paths(&writes)
    );
    assert_eq!(
        ["news-webhook", "news-smtp"].map(|d| pod_hash(&fake, d)),
        hashes
    );
    let status = fake.config(NS, "news").status.unwrap();
    assert_eq!(status.relay, None);
    assert!(status.condition("RelayReady").is_none());
    assert_eq!(
        status.condition("Ready").unwrap().status,
        ConditionStatus::True
    );
    // The sidecar still reads the relay's Secrets: they stay watched and checked.
    assert!(status.observed_secrets.contains_key("upstream-login"));
}

/// docs/relay.md's sidecar-only BounceConfig, applied to the mocked API server: the
/// operator makes the ConfigMap the documented sidecar mounts, checks every Secret it mounts,
/// and runs no relay of its own.
#[tokio::test]
async fn the_documented_sidecar_config_gives_what_the_documented_sidecar_mounts() {
    use bounceops_tests::{markdown, repo_root};
    let page = std::fs::read_to_string(repo_root().join("docs/relay.md")).unwrap();
    let section = markdown::section(&page, "## Running it in Kubernetes").unwrap();
    let docs: Vec<serde_json::Value> = markdown::fenced_blocks(section)
        .into_iter()
        .filter(|b| b.lang == "yaml")
        .map(|b| serde_yaml::from_str(&b.text).unwrap())
        .collect();
    let config = docs
        .iter()
        .find(|d| d["kind"] == "BounceConfig" && d["spec"]["relay"]["replicas"] == 0)
        .expect("the sidecar-only BounceConfig");
    let listmonk = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("listmonk's Deployment");
    let (ns, name) = (
        config["metadata"]["namespace"].as_str().unwrap(),
        config["metadata"]["name"].as_str().unwrap(),
    );
    let volumes = listmonk["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let mounted_secrets: Vec<&str> = volumes
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str())
        .collect();
    let (client, fake) = FakeApi::start();
    // The Secrets the documented BounceConfig references, with the keys it names.
    let mut keys: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in bounce_operator::reconcile::secrets::worker_refs(
        &serde_json::from_value(config["spec"].clone()).unwrap(),
    ) {
        keys.entry(r.secret.name).or_default().push(r.secret.key);
    }
    for (secret, keys) in &keys {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        fake.put_secret(ns, secret, &keys);
    }
    fake.put_config(ns, name, &serde_yaml::to_string(&config["spec"]).unwrap());
    let ctx = context(client);
    reconcile::reconcile(Arc::new(fake.config(ns, name)), ctx.clone())
        .await
        .unwrap();

    let status = fake.config(ns, name).status.unwrap();
    assert_eq!(
        status.condition("Ready").map(|c| c.status),
        Some(ConditionStatus::True),
        "{status:?}"
    );
    assert_eq!(status.relay, None, "no relay Deployment");
    assert!(
        fake.paths_under(&format!(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}-relay"
        ))
        .is_empty()
    );
    let config_map = volumes
        .iter()
        .find_map(|v| v["configMap"]["name"].as_str())
        .expect("the config volume");
    assert!(
        fake.get(&format!("/api/v1/namespaces/{ns}/configmaps/{config_map}"))
            .is_some(),
        "the operator renders {config_map}"
    );
    for secret in &mounted_secrets {
        assert!(
            status.observed_secrets.contains_key(*secret),
            "{secret} is mounted by the sidecar and checked by the operator: {:?}",
            status.observed_secrets
        );
    }
    assert_eq!(mounted_secrets.len(), 3, "{mounted_secrets:?}");
}
