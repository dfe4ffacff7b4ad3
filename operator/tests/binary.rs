//! The `bounce-operator` binary itself, against the in-memory API server over HTTP on
//! 127.0.0.1: flags, leader election through a Lease, graceful shutdown on SIGTERM, and
//! the hand-over of the Lease to a second replica.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bounceops_api::ConditionStatus;
use common::FakeApi;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases/bounce-operator";
const SPEC: &str = "database: {urlSecretRef: {name: db, key: url}}\napi: {credentialsSecretRef: {name: api, key: credentials}}\nwebhook: {replicas: 1}\n";

struct Operator(Child);

impl Operator {
    fn start(kubeconfig: &std::path::Path, identity: &str) -> Operator {
        let child = Command::new(env!("CARGO_BIN_EXE_bounce-operator"))
            .args([
                "--leader-election=true",
                "--lease-namespace=default",
                "--listen=127.0.0.1:0",
            ])
            .args(["--identity", identity])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start bounce-operator");
        Operator(child)
    }

    /// SIGTERM, as Kubernetes stops a pod; returns whether it exited cleanly.
    fn stop(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.0.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn holder(fake: &FakeApi) -> Option<String> {
    fake.get(LEASE)?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_reconciles_hands_over_on_sigterm() {
    let (_, fake) = FakeApi::start_streaming();
    fake.put_secret("mail", "db", &["url"]);
    fake.put_secret("mail", "api", &["credentials"]);
    fake.put_config("mail", "news", SPEC);
    let api = fake.serve_http().await;
    let kubeconfig = std::env::temp_dir().join(format!(
        "bounceops-binary-test-{}.kubeconfig",
        std::process::id()
    ));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: 'http://{api}'}}}}]\nusers: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\ncurrent-context: fake\n"
        ),
    )
    .unwrap();
    let ready = |fake: &FakeApi| {
        fake.config("mail", "news")
            .status
            .and_then(|s| {
                s.condition("Ready")
                    .map(|c| c.status == ConditionStatus::True)
            })
            .unwrap_or(false)
    };

    let a = Operator::start(&kubeconfig, "op-a");
    until("op-a holds the Lease", 30, || {
        holder(&fake).as_deref() == Some("op-a")
    })
    .await;
    until("the config is Ready", 30, || ready(&fake)).await;

    // A second replica waits: it neither takes the Lease nor writes anything else.
    let b = Operator::start(&kubeconfig, "op-b");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = fake.log_len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(holder(&fake).as_deref(), Some("op-a"));
    let writes: Vec<_> = fake
        .writes_since(mark)
        .into_iter()
        .filter(|c| !c.path.contains("/leases"))
        .collect();
    assert_eq!(
        writes,
        [],
        "with a leader in place and nothing changed, nobody writes"
    );

    // The leader stops cleanly and releases the Lease; the other takes over and reconciles.
    assert!(a.stop(), "op-a exits 0 on SIGTERM");
    until("op-b holds the Lease", 40, || {
        holder(&fake).as_deref() == Some("op-b")
    })
    .await;
    fake.put_config("mail", "news", &SPEC.replace("replicas: 1", "replicas: 3"));
    until("op-b reconciles the change", 30, || {
        fake.get(&common::deployment_path("mail", "news-webhook"))
            .is_some_and(|d| d["spec"]["replicas"] == 3)
    })
    .await;
    assert!(b.stop(), "op-b exits 0 on SIGTERM");
    let _ = std::fs::remove_file(&kubeconfig);
}
