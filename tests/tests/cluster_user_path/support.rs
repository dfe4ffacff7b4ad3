//! What the scenario needs from the host: its knobs, a Postgres the pods reach, listmonk
//! subscribers, a SendGrid signing key, and reading the pods' objects.

use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::{TcpListener, TcpStream};

pub const SUITE: &str = "cluster user path";

pub struct Setup {
    pub kubeconfig: PathBuf,
    pub worker_image: String,
    pub operator_image: String,
    pub host: String,
}

pub fn setup() -> Option<Setup> {
    let Some(kubeconfig) =
        std::env::var_os("BOUNCEOPS_CLUSTER_KUBECONFIG").filter(|v| !v.is_empty())
    else {
        bounceops_tests::cluster::skipped(
            SUITE,
            "no cluster with nodes: set BOUNCEOPS_CLUSTER_KUBECONFIG to the kubeconfig of a \
             cluster that has the images of scripts/images.sh (docs/development.md)",
        );
        return None;
    };
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    Some(Setup {
        kubeconfig: kubeconfig.into(),
        // scripts/images.sh tags them with the workspace version, as docs/install.md says.
        worker_image: var(
            "BOUNCEOPS_E2E_WORKER_IMAGE",
            concat!(
                "localhost/bounceops/bounce-worker:",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        operator_image: var(
            "BOUNCEOPS_E2E_OPERATOR_IMAGE",
            concat!(
                "localhost/bounceops/bounce-operator:",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        host: var("BOUNCEOPS_E2E_HOST_ADDRESS", "10.87.0.1"),
    })
}

/// `repository:tag` split for helm's `image.repository` / `image.tag`.
pub fn split_image(image: &str) -> (&str, &str) {
    image.rsplit_once(':').expect("an image with a tag")
}

/// A database with listmonk-shaped tables, created for this test; returns its URL.
pub async fn database() -> (url::Url, PgPool) {
    database_named("").await
}

/// As [`database`], one more of them: `suffix` tells the databases of one run apart.
pub async fn database_named(suffix: &str) -> (url::Url, PgPool) {
    let admin_url = std::env::var("BOUNCEOPS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .expect("Postgres at BOUNCEOPS_TEST_DATABASE_URL");
    let name = format!("bounceops_cluster_{}{suffix}", std::process::id());
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

/// The URL pods use for `db`: the same credentials and database, through a TCP relay on
/// `host` (an address pods reach), so nothing of the machine's Postgres configuration has
/// to change.
pub async fn relayed(db: &url::Url, host: &str) -> String {
    let server_host = match db.host_str() {
        Some("localhost") | None => "127.0.0.1",
        Some(h) => h,
    };
    let server: SocketAddr = format!("{server_host}:{}", db.port().unwrap_or(5432))
        .parse()
        .expect("Postgres at an IP address");
    let listener = TcpListener::bind(format!("{host}:0"))
        .await
        .unwrap_or_else(|e| panic!("bind {host}: {e} (is it an address of this machine?)"));
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(server).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let mut url = db.clone();
    url.set_ip_host(addr.ip()).expect("a URL with a host");
    url.set_port(Some(addr.port())).expect("a URL with a port");
    url.to_string()
}

/// `n` listmonk subscribers `<prefix>-<i>@example.com`; returns their (uuid, e-mail).
pub async fn subscribers(pool: &PgPool, prefix: &str, n: i32) -> Vec<(uuid::Uuid, String)> {
    sqlx::query_as(
        "INSERT INTO subscribers (uuid, email, name)
         SELECT gen_random_uuid(), $1 || '-' || i || '@example.com', 'Subscriber ' || i
         FROM generate_series(1, $2) AS i
         RETURNING uuid, email",
    )
    .bind(prefix)
    .bind(n)
    .fetch_all(pool)
    .await
    .expect("subscribers")
}

/// How many of `emails` have at least one bounce recorded.
pub async fn bounced(pool: &PgPool, emails: &[String]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(DISTINCT s.id) FROM bounces b JOIN subscribers s ON s.id = b.subscriber_id
         WHERE s.email = ANY($1)",
    )
    .bind(emails)
    .fetch_one(pool)
    .await
    .expect("count bounces")
}

/// A SendGrid Event Webhook signing key (ECDSA P-256), as the SendGrid console makes one.
pub struct SendgridKey(p256::ecdsa::SigningKey);

impl SendgridKey {
    pub fn new() -> SendgridKey {
        SendgridKey(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// The public key as SendGrid shows it: base64 DER (SubjectPublicKeyInfo).
    pub fn public_b64(&self) -> String {
        let der = self.0.verifying_key().to_public_key_der().unwrap();
        base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
    }

    /// The signature and timestamp headers SendGrid sends with `body`.
    pub fn headers(&self, body: &str) -> [(&'static str, String); 2] {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let signature: p256::ecdsa::Signature = self
            .0
            .sign(&[timestamp.as_bytes(), body.as_bytes()].concat());
        [
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes()),
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", timestamp),
        ]
    }
}

/// `http://<ClusterIP>:<port>` of a Service (kube-proxy routes ClusterIPs on the node).
pub async fn service_url(client: &Client, ns: &str, name: &str) -> String {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("the Service {name}: {e}"));
    let spec = svc.spec.expect("a Service spec");
    let ip = spec.cluster_ip.expect("a ClusterIP");
    format!("http://{ip}:{}", spec.ports.expect("ports")[0].port)
}

/// The pods of one component of a BounceConfig's workers, terminating ones included.
pub async fn pods(client: &Client, ns: &str, component: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/component={component}")))
        .await
        .expect("list pods")
        .items
}

/// [`pods`] that are not being deleted.
pub async fn live_pods(client: &Client, ns: &str, component: &str) -> Vec<Pod> {
    let mut pods = pods(client, ns, component).await;
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    pods
}

/// The names and uids of `pods`, sorted: to tell whether pods were replaced.
pub fn identities(pods: &[Pod]) -> Vec<(String, String)> {
    let mut ids: Vec<_> = pods
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect();
    ids.sort();
    ids
}
