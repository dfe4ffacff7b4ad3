//! The user's path on a real cluster with nodes: `helm install` of the chart with locally
//! built images, a BounceConfig applied in a namespace that enforces the `restricted` Pod
//! Security Standard, workers whose `migrate` init containers meet a real Postgres, and
//! bounces, the bounce API and the export through the webhook Service.
//!
//! Runs when `BOUNCEOPS_CLUSTER_KUBECONFIG` names the kubeconfig of a cluster whose nodes
//! have the images (`scripts/images.sh`, then `ctr -n k8s.io images import FILE` or your
//! cluster's way), and the test runs where ClusterIPs route (a node); otherwise it prints
//! that it skipped. (Its own variable, not `KUBECONFIG`: the API-server suites of the same
//! run use a control plane of their own.) Knobs:
//! - `BOUNCEOPS_E2E_WORKER_IMAGE`, `BOUNCEOPS_E2E_OPERATOR_IMAGE`: the images
//!   (default `localhost/bounceops/bounce-{worker,operator}:dev`), pulled `Never`;
//! - `BOUNCEOPS_E2E_HOST_ADDRESS`: an address of this machine that pods reach (default
//!   10.87.0.1, the node address of the one-node cluster): the test serves Postgres there,
//!   through a TCP relay to `BOUNCEOPS_TEST_DATABASE_URL`'s server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bounceops_api::{BounceConfig, ConditionStatus};
use bounceops_tests::cluster::{self, TestNamespace, wait_until};
use bounceops_tests::helm::{self, CHART};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use tokio::net::{TcpListener, TcpStream};

const SUITE: &str = "cluster user path";
const TOKEN: &str = "listmonk:e2e-token";

struct Setup {
    kubeconfig: std::path::PathBuf,
    worker_image: String,
    operator_image: String,
    host: String,
}

fn setup() -> Option<Setup> {
    let Some(kubeconfig) =
        std::env::var_os("BOUNCEOPS_CLUSTER_KUBECONFIG").filter(|v| !v.is_empty())
    else {
        println!(
            "{SUITE}: SKIPPED: set BOUNCEOPS_CLUSTER_KUBECONFIG to the kubeconfig of a cluster \
             with nodes that has the images of scripts/images.sh (docs/development.md)"
        );
        return None;
    };
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    Some(Setup {
        kubeconfig: kubeconfig.into(),
        worker_image: var(
            "BOUNCEOPS_E2E_WORKER_IMAGE",
            "localhost/bounceops/bounce-worker:dev",
        ),
        operator_image: var(
            "BOUNCEOPS_E2E_OPERATOR_IMAGE",
            "localhost/bounceops/bounce-operator:dev",
        ),
        host: var("BOUNCEOPS_E2E_HOST_ADDRESS", "10.87.0.1"),
    })
}

/// `repository:tag` split for helm's `image.repository` / `image.tag`.
fn split_image(image: &str) -> (&str, &str) {
    image.rsplit_once(':').expect("an image with a tag")
}

/// A database with listmonk-shaped tables, created for this test; returns its URL.
async fn database() -> (url::Url, PgPool) {
    let admin_url = std::env::var("BOUNCEOPS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .expect("Postgres at BOUNCEOPS_TEST_DATABASE_URL");
    let name = format!("bounceops_cluster_{}", std::process::id());
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create the test database");
    let mut url = url::Url::parse(&admin_url).expect("BOUNCEOPS_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(url.as_str())
        .await
        .expect("connect");
    bounce_worker::store::migrate::run(&pool, true)
        .await
        .expect("listmonk-shaped tables");
    (url, pool)
}

/// Relays TCP from `listen` (an address pods reach) to `target` (the test's Postgres on
/// loopback), so nothing of the machine's Postgres configuration has to change.
async fn relay(listen: &str, target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind(format!("{listen}:0"))
        .await
        .unwrap_or_else(|e| panic!("bind {listen}: {e} (is it an address of this machine?)"));
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_then_bounces_through_the_service() {
    let Some(setup) = setup() else {
        return;
    };
    let admin = cluster::client_for(&setup.kubeconfig).await;
    let kubeconfig = Some(setup.kubeconfig.as_path());
    let started = Instant::now();

    // Postgres for the pods: a database of our own, relayed on the host address.
    let (mut pod_db_url, pool) = database().await;
    let host = match pod_db_url.host_str() {
        Some("localhost") | None => "127.0.0.1",
        Some(h) => h,
    };
    let server: SocketAddr = format!("{host}:{}", pod_db_url.port().unwrap_or(5432))
        .parse()
        .expect("Postgres at an IP address");
    // The same URL, credentials and database, with the relay's address in place of the
    // server's.
    let relayed = relay(&setup.host, server).await;
    pod_db_url
        .set_ip_host(relayed.ip())
        .expect("a URL with a host");
    pod_db_url
        .set_port(Some(relayed.port()))
        .expect("a URL with a port");
    let pod_db_url = pod_db_url.to_string();
    let subscriber: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO subscribers (uuid, email, name) VALUES (gen_random_uuid(), 'gone@example.com', 'Gone') RETURNING uuid",
    )
    .fetch_one(&pool)
    .await
    .expect("a subscriber");

    // 1. helm install with the local images; the operator becomes Ready and leads.
    let system =
        TestNamespace::create_on(&admin, &setup.kubeconfig, "bounceops-system", json!({})).await;
    let (op_repo, op_tag) = split_image(&setup.operator_image);
    let (wk_repo, wk_tag) = split_image(&setup.worker_image);
    let sets = format!(
        "image.repository={op_repo},image.tag={op_tag},image.pullPolicy=Never,\
         worker.image.repository={wk_repo},worker.image.tag={wk_tag},worker.image.pullPolicy=Never,\
         leaderElection.enabled=true"
    );
    let release = format!("e2e{}", std::process::id());
    helm::on(
        kubeconfig,
        &[
            "install",
            &release,
            CHART,
            "--namespace",
            &system.name,
            "--set",
            &sets,
            "--wait",
            "--timeout",
            "3m",
        ],
    );
    let _uninstall = helm::Release::new(Some(&setup.kubeconfig), &release, &system.name);
    let operator = Api::<Deployment>::namespaced(admin.clone(), &system.name)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .expect("the operator Deployment");
    assert_eq!(
        operator.status.as_ref().and_then(|s| s.ready_replicas),
        Some(1),
        "helm --wait returned with the operator Ready"
    );
    let pods = Api::<Pod>::namespaced(admin.clone(), &system.name)
        .list(&ListParams::default())
        .await
        .unwrap();
    let sa = pods.items[0]
        .spec
        .as_ref()
        .unwrap()
        .service_account_name
        .clone();
    assert!(
        sa.as_deref().is_some_and(|s| s.starts_with(&release)),
        "the operator runs as the chart's ServiceAccount: {sa:?}"
    );
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &system.name);
    wait_until(
        "the operator holds its Lease",
        Duration::from_secs(60),
        || async {
            leases
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items.iter().any(|x| {
                        x.spec
                            .as_ref()
                            .and_then(|s| s.holder_identity.as_deref())
                            .is_some_and(|h| h.starts_with(&release))
                    })
                })
                .unwrap_or(false)
        },
    )
    .await;
    let installed = started.elapsed();

    // 2. A BounceConfig as the docs show it, in a `restricted` namespace.
    let mail = TestNamespace::create_on(
        &admin,
        &setup.kubeconfig,
        "mail",
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await;
    let pp = PatchParams::apply(cluster::MANAGER).force();
    for (name, key, value) in [
        ("listmonk-db", "url", pod_db_url.as_str()),
        ("bounce-api", "credentials", TOKEN),
    ] {
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                       "stringData": {key: value}});
        Api::<Secret>::namespaced(admin.clone(), &mail.name)
            .patch(name, &pp, &Patch::Apply(&s))
            .await
            .expect("a Secret");
    }
    let config = json!({"apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig",
        "metadata": {"name": "newsletter"},
        "spec": {"database": {"urlSecretRef": {"name": "listmonk-db", "key": "url"}, "schema": "listmonk"},
                 "api": {"credentialsSecretRef": {"name": "bounce-api", "key": "credentials"}},
                 "providers": {"generic": {"enabled": true}},
                 "webhook": {"replicas": 2}}});
    let configs: Api<BounceConfig> = Api::namespaced(admin.clone(), &mail.name);
    configs
        .patch("newsletter", &pp, &Patch::Apply(&config))
        .await
        .expect("apply the BounceConfig");
    wait_until(
        "the BounceConfig is Ready",
        Duration::from_secs(180),
        || async {
            configs
                .get("newsletter")
                .await
                .ok()
                .and_then(|c| c.status)
                .is_some_and(|s| {
                    s.condition("Ready")
                        .is_some_and(|c| c.status == ConditionStatus::True)
                        && s.webhook.as_ref().is_some_and(|w| w.ready_replicas == 2)
                })
        },
    )
    .await;

    // 3. A bounce through the webhook Service (kube-proxy routes its ClusterIP).
    let svc = Api::<Service>::namespaced(admin.clone(), &mail.name)
        .get("newsletter-webhook")
        .await
        .expect("the webhook Service");
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap();
    let port = svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port;
    let base = format!("http://{ip}:{port}");
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/webhooks/bounce"))
        .header("Authorization", format!("token {TOKEN}"))
        .json(&json!({"email": "gone@example.com", "type": "hard", "source": "e2e"}))
        .send()
        .await
        .expect("POST through the Service");
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let first_bounce = started.elapsed();
    let status: String = sqlx::query("SELECT status::text FROM subscribers WHERE uuid = $1")
        .bind(subscriber)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        status, "blocklisted",
        "listmonk's hard rule blocklisted the subscriber"
    );

    // 4. The bounce API and the export answer through the Service too.
    let list: Value = http
        .get(format!("{base}/api/bounces"))
        .header("Authorization", format!("token {TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"]["total"], 1, "{list}");
    let csv = http
        .get(format!("{base}/api/bounces/export?format=csv"))
        .header("Authorization", format!("token {TOKEN}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.contains("gone@example.com"), "{csv}");

    println!(
        "{SUITE}: helm install to operator leading: {:.1} s; to the first bounce recorded through the Service: {:.1} s",
        installed.as_secs_f64(),
        first_bounce.as_secs_f64()
    );
    let pods = Api::<Pod>::namespaced(admin.clone(), &mail.name)
        .list(&ListParams::default())
        .await
        .unwrap();
    for p in &pods.items {
        println!(
            "{SUITE}: pod {} {:?}",
            p.name_any(),
            p.status.as_ref().and_then(|s| s.phase.clone())
        );
    }
    pool.close().await;
}
