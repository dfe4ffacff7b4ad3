//! Leader election on a real API server: two `bounce-operator` processes, each as the
//! chart's ServiceAccount with the chart's RBAC. One leads and reconciles, the other waits
//! and writes nothing; SIGKILL the leader (no chance to release the Lease) and the other
//! takes over within the Lease duration plus one renew period, then reconciles.
//! Runs when `KUBECONFIG` is set, otherwise prints that it skipped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bounceops_tests::cluster::{self, ChartRbac, TestNamespace, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const SUITE: &str = "leader election";
/// The operator's Lease duration and how long before its end the holder renews it
/// (`run_as_leader` in src/main.rs): a dead leader's Lease expires after at most 15 s,
/// and a waiting replica notices at its next renew-period check.
const LEASE_SECONDS: u64 = 15;
const RENEW_PERIOD_SECONDS: u64 = 10;

struct Operator {
    child: Child,
    identity: String,
    metrics: String,
}

impl Operator {
    fn start(kubeconfig: &Path, identity: &str, lease_ns: &str, watch_ns: &str) -> Operator {
        // A free port for /metrics, so the test can read what this replica wrote.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_bounce-operator"))
            .args(["--leader-election=true", "--lease-name=bounce-operator"])
            .arg(format!("--lease-namespace={lease_ns}"))
            .arg(format!("--namespace={watch_ns}"))
            .arg(format!("--listen=127.0.0.1:{port}"))
            .args(["--identity", identity])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start bounce-operator");
        Operator {
            child,
            identity: identity.to_owned(),
            metrics: format!("127.0.0.1:{port}"),
        }
    }

    /// The replica's API writes so far (sum of `bounceops_operator_api_writes_total`),
    /// read from its own /metrics.
    async fn writes(&self) -> Option<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&self.metrics).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).await.ok()?;
        text.contains("\r\n\r\n").then(|| {
            text.lines()
                .filter(|l| l.starts_with("bounceops_operator_api_writes_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The replicas of the config's webhook Deployment; `None` until it exists.
async fn webhook_replicas(deployments: &Api<Deployment>) -> Option<i32> {
    deployments
        .get_opt("news-webhook")
        .await
        .ok()
        .flatten()?
        .spec?
        .replicas
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("bounce-operator")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_takeover_after_sigkill() {
    let Some(admin) = cluster::admin(SUITE).await else {
        return;
    };
    cluster::install_crd(&admin, &cluster::bounceconfig_crd()).await;
    let operator_ns = TestNamespace::create(&admin, "bounceops-leader").await;
    let watched = TestNamespace::create(&admin, "leader-watched").await;
    // Two replicas: the chart turns leader election on and grants the Lease Role.
    let release = format!("le{}", std::process::id());
    let rbac = ChartRbac::install(&admin, &release, &operator_ns.name, &["replicaCount=2"]).await;
    assert!(
        !rbac.namespace_grants.is_empty(),
        "with two replicas the chart grants the Lease Role"
    );
    let (kubeconfig, _) = cluster::service_account_identity(
        &admin,
        &operator_ns.name,
        &rbac.service_account,
        &std::env::temp_dir(),
    )
    .await;
    put_inputs(&admin, &watched.name, 1).await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &operator_ns.name);
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &watched.name);

    let mut a = Some(Operator::start(
        &kubeconfig,
        "op-a",
        &operator_ns.name,
        &watched.name,
    ));
    let b = Operator::start(&kubeconfig, "op-b", &operator_ns.name, &watched.name);
    wait_until(
        "one of the two holds the Lease",
        Duration::from_secs(60),
        || async { holder(&leases).await.is_some() },
    )
    .await;
    let leader_id = holder(&leases).await.unwrap();
    let (mut leader, mut follower) = if leader_id == "op-a" {
        (a.take().unwrap(), b)
    } else {
        (b, a.take().unwrap())
    };
    println!(
        "{SUITE}: {} leads, {} waits",
        leader.identity, follower.identity
    );
    wait_until(
        "the leader reconciles the config",
        Duration::from_secs(60),
        || async { webhook_replicas(&deployments).await.is_some() },
    )
    .await;
    wait_until(
        "the follower serves its metrics",
        Duration::from_secs(30),
        || async { follower.writes().await.is_some() },
    )
    .await;
    let (lw, fw) = (leader.writes().await, follower.writes().await);
    assert!(
        lw.unwrap_or(0.0) > 0.0,
        "the leader wrote the children (writes: leader {lw:?}, follower {fw:?})"
    );
    assert_eq!(
        follower.writes().await,
        Some(0.0),
        "the waiting replica made no reconcile write"
    );
    // A replica that believed it led and then saw the Lease taken exits (src/main.rs):
    // both alive means neither ever led alongside the other.
    for op in [&mut leader, &mut follower] {
        assert!(
            op.child.try_wait().unwrap().is_none(),
            "{} exited: two replicas led at once",
            op.identity
        );
    }
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some(leader.identity.as_str())
    );

    // SIGKILL: the leader cannot release the Lease; the follower must wait it out.
    let killed_at = Instant::now();
    drop(leader);
    let follower_id = follower.identity.clone();
    let bound = Duration::from_secs(LEASE_SECONDS + RENEW_PERIOD_SECONDS + 1);
    wait_until("the follower takes the Lease", bound, || async {
        holder(&leases).await.as_deref() == Some(follower_id.as_str())
    })
    .await;
    let takeover = killed_at.elapsed();
    println!(
        "{SUITE}: takeover after SIGKILL of the leader: {:.1} s (bound {} s)",
        takeover.as_secs_f64(),
        bound.as_secs()
    );

    put_inputs(&admin, &watched.name, 3).await;
    wait_until(
        "the new leader reconciles a change",
        Duration::from_secs(60),
        || async { webhook_replicas(&deployments).await == Some(3) },
    )
    .await;
    assert!(follower.writes().await.unwrap_or(0.0) > 0.0);

    let username = format!(
        "system:serviceaccount:{}:{}",
        operator_ns.name, rbac.service_account
    );
    if let Some(requests) = cluster::audited(&username) {
        let refused: Vec<_> = requests.iter().filter(|r| r.code == 403).collect();
        assert!(
            refused.is_empty(),
            "refused by the chart's RBAC: {refused:#?}"
        );
        let lease_verbs: std::collections::BTreeSet<_> = requests
            .iter()
            .filter(|r| r.resource == "leases")
            .map(|r| r.verb.clone())
            .collect();
        let granted: std::collections::BTreeSet<_> = rbac
            .namespace_grants
            .iter()
            .filter(|g| g.1 == "leases")
            .map(|g| g.2.clone())
            .collect();
        assert_eq!(
            granted, lease_verbs,
            "the chart's leader-election Role grants exactly the Lease verbs used"
        );
    }
}

/// The Secrets and a one-config BounceConfig with `replicas` webhook workers.
async fn put_inputs(admin: &Client, ns: &str, replicas: i32) {
    let pp = PatchParams::apply(cluster::MANAGER).force();
    for (name, key) in [("db", "url"), ("api", "credentials")] {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                            "stringData": {key: "x"}});
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), ns)
            .patch(name, &pp, &Patch::Apply(&secret))
            .await
            .expect("apply a Secret");
    }
    let config = json!({"apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig",
        "metadata": {"name": "news"},
        "spec": {"database": {"urlSecretRef": {"name": "db", "key": "url"}},
                 "api": {"credentialsSecretRef": {"name": "api", "key": "credentials"}},
                 "webhook": {"replicas": replicas}}});
    Api::<bounceops_api::BounceConfig>::namespaced(admin.clone(), ns)
        .patch("news", &pp, &Patch::Apply(&config))
        .await
        .expect("apply the BounceConfig");
}
