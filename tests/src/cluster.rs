//! What the suites that talk to a real Kubernetes API server share: the admin client (or
//! a clear "skipped"), throwaway namespaces, ServiceAccount identities, requests whose
//! `Warning` headers are kept, and polling with a deadline.
//!
//! These suites run when `KUBECONFIG` names a cluster. `scripts/test.sh` starts a control
//! plane on loopback (`scripts/envtest.sh`) and sets it when `KUBEBUILDER_ASSETS` names
//! the Kubernetes binaries; without either they print that they skipped.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

/// The field manager of everything these suites apply.
pub const MANAGER: &str = "bounceops-tests";

/// The kubeconfig these suites use, or `None` after saying why they skip.
pub fn kubeconfig(suite: &str) -> Option<PathBuf> {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            skipped(
                suite,
                "no Kubernetes API server: set KUBECONFIG, or run through `bash scripts/test.sh` \
                 with KUBEBUILDER_ASSETS (or /usr/local/kubebuilder/bin) holding kube-apiserver \
                 (`setup-envtest use 1.33 -p path`, docs/development.md)",
            );
            None
        }
    }
}

/// Says that a test skipped its suite, and why. A skipped test passes, and its line is lost
/// among nextest's; so it is also appended to the file `BOUNCEOPS_SKIPPED_LOG` names, from
/// which `scripts/test.sh` ends the run with a count of what was skipped, and why: a skip
/// must never read as a pass.
pub fn skipped(suite: &str, why: &str) {
    println!("{suite}: SKIPPED: {why}");
    if let Some(path) = std::env::var_os("BOUNCEOPS_SKIPPED_LOG") {
        use std::io::Write as _;
        let line = format!("{suite}\t{}\n", why.replace(['\t', '\n'], " "));
        // One write of a short line to a file opened for appending: the lines of tests
        // running in parallel processes do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// An admin client for the cluster of the kubeconfig file `path`.
pub async fn client_for(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("read the kubeconfig {}: {e}", path.display()));
    Client::try_from(
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("a config from the kubeconfig"),
    )
    .expect("a client")
}

/// An admin client for the cluster `KUBECONFIG` names, or `None` (skipped, said why).
pub async fn admin(suite: &str) -> Option<Client> {
    kubeconfig(suite)?;
    Some(
        Client::try_default()
            .await
            .expect("a Kubernetes client from KUBECONFIG"),
    )
}

/// A namespace made for one test, deleted when dropped (best effort: a namespace that
/// outlives a crashed test is harmless and named for the test that made it).
pub struct TestNamespace {
    pub name: String,
    /// The cluster's kubeconfig when it is not `KUBECONFIG`'s, for the cleanup.
    kubeconfig: Option<PathBuf>,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        Self::create_labelled(client, prefix, json!({})).await
    }

    /// A namespace on the cluster of `kubeconfig` (not `KUBECONFIG`'s).
    pub async fn create_on(
        client: &Client,
        kubeconfig: &Path,
        prefix: &str,
        labels: Value,
    ) -> TestNamespace {
        let mut ns = Self::create_labelled(client, prefix, labels).await;
        ns.kubeconfig = Some(kubeconfig.to_owned());
        ns
    }

    pub async fn create_labelled(client: &Client, prefix: &str, labels: Value) -> TestNamespace {
        let name = format!("{prefix}-{}-{}", std::process::id(), unique());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                .expect("a Namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        TestNamespace {
            name,
            kubeconfig: None,
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        cleanup(self.kubeconfig.clone(), move |client| async move {
            let _ = Api::<Namespace>::all(client)
                .delete(&name, &DeleteParams::background())
                .await;
        });
    }
}

/// Runs `work` to completion from a `Drop`, which cannot await: on a thread of its own,
/// with its own runtime and its own client. (The test's client cannot serve there: its
/// connection task lives on the test's runtime, which this very drop is blocking.)
fn cleanup<F, Fut>(kubeconfig: Option<PathBuf>, work: F)
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let client = match kubeconfig {
                Some(path) => Some(client_for(&path).await),
                None => Client::try_default().await.ok(),
            };
            if let Some(client) = client {
                let _ = tokio::time::timeout(Duration::from_secs(30), work(client)).await;
            }
        });
    })
    .join();
}

/// A short suffix that differs between calls in one process.
fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What the server answered to a raw request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The `Warning` headers (deprecations, unknown formats, ...), which kube's typed
    /// calls drop.
    pub warnings: Vec<String>,
    pub body: Value,
}

impl Answer {
    /// The `message` of a refusal (a `Status` object).
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

/// Sends `body` (JSON) with `method` to `path` and keeps what kube's typed API drops.
pub async fn request(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Answer {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("accept", "application/json")
        .body(kube::client::Body::from(
            serde_json::to_vec(body).expect("JSON"),
        ))
        .expect("a request");
    // `send` returns error statuses as responses, so a refusal can be read.
    let res = client
        .send(req)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status().as_u16();
    let warnings = res
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let bytes = res
        .into_body()
        .collect()
        .await
        .expect("a response body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        warnings,
        body,
    }
}

/// Server-side applies an object by its JSON path, keeping the answer's warnings.
pub async fn apply(client: &Client, path: &str, object: &Value, dry_run: bool) -> Answer {
    let mut uri = format!("{path}?fieldManager={MANAGER}&force=true");
    if dry_run {
        uri.push_str("&dryRun=All");
    }
    request(
        client,
        "PATCH",
        &uri,
        "application/apply-patch+yaml",
        object,
    )
    .await
}

/// Installs a CRD (server-side apply) and waits until it is Established; returns the
/// warnings the server gave. Panics on refusal, with the server's message.
pub async fn install_crd(client: &Client, crd: &Value) -> Vec<String> {
    let name = crd["metadata"]["name"].as_str().expect("a CRD name");
    let answer = apply(
        client,
        &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"),
        crd,
        false,
    )
    .await;
    assert!(
        answer.status < 300,
        "CRD {name} refused ({}): {}",
        answer.status,
        answer.message()
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_until(
        &format!("CRD {name} Established"),
        Duration::from_secs(60),
        || async {
            crds.get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        },
    )
    .await;
    answer.warnings
}

/// The CRD committed in `crds/`, as JSON.
pub fn bounceconfig_crd() -> Value {
    serde_yaml::from_str(&crate::read("crds/bounceconfig.yaml")).expect("crds/ is YAML")
}

/// Polls `check` every 200 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A kubeconfig file (written to `dir`) and a client that authenticate as the
/// ServiceAccount `namespace/name` with a short-lived token from the TokenRequest API:
/// exactly what a pod running as that ServiceAccount gets, RBAC and all.
pub async fn service_account_identity(
    admin: &Client,
    namespace: &str,
    name: &str,
    dir: &Path,
) -> (PathBuf, Client) {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = sas
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for {namespace}/{name}: {e}"))
        .status
        .expect("a token in the answer")
        .token;
    let admin_path = kubeconfig("service account").expect("KUBECONFIG is set");
    let mut config: Value = serde_yaml::from_str(
        &std::fs::read_to_string(&admin_path).expect("the kubeconfig is readable"),
    )
    .expect("the kubeconfig is YAML");
    let current = config["current-context"].as_str().unwrap_or("").to_owned();
    let cluster = config["contexts"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == current.as_str()))
        .map(|c| c["context"]["cluster"].clone())
        .expect("the current context names a cluster");
    config["users"] = json!([{"name": "sa", "user": {"token": token}}]);
    config["contexts"] = json!([{"name": "sa", "context": {"cluster": cluster, "user": "sa", "namespace": namespace}}]);
    config["current-context"] = json!("sa");
    let path = dir.join(format!("{namespace}-{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML")).expect("write kubeconfig");
    let kc = Kubeconfig::read_from(&path).expect("the written kubeconfig reads back");
    let client = Client::try_from(
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("a config from the ServiceAccount kubeconfig"),
    )
    .expect("a client");
    (path, client)
}

/// The chart's RBAC for one release, applied to the cluster: its ServiceAccount, its
/// ClusterRole and ClusterRoleBinding, and its leader-election Role and RoleBinding, as
/// `helm template` renders them with default values. Dropping it deletes the
/// cluster-scoped objects (the namespaced ones go with their namespace).
pub struct ChartRbac {
    pub service_account: String,
    /// (group, resource, verb) that the ClusterRole grants.
    pub cluster_grants: std::collections::BTreeSet<(String, String, String)>,
    /// (group, resource, verb) that the namespaced Role grants.
    pub namespace_grants: std::collections::BTreeSet<(String, String, String)>,
    cluster_scoped: Vec<String>,
}

impl ChartRbac {
    /// `sets` are `helm --set` values, e.g. `replicaCount=2`, which turns leader election
    /// (and so the Lease Role) on.
    pub async fn install(
        admin: &Client,
        release: &str,
        namespace: &str,
        sets: &[&str],
    ) -> ChartRbac {
        let rendered = crate::helm::template_release(release, namespace, &[], sets);
        let mut cluster_scoped = Vec::new();
        let mut service_account = None;
        for kind in [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ] {
            for doc in rendered.of_kind(kind) {
                let obj: Value = serde_json::to_value(doc).expect("YAML is JSON");
                let name = obj["metadata"]["name"].as_str().expect("a name").to_owned();
                let path = match kind {
                    "ServiceAccount" => {
                        service_account = Some(name.clone());
                        format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
                    }
                    "Role" | "RoleBinding" => format!(
                        "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/{}s/{name}",
                        kind.to_lowercase()
                    ),
                    _ => {
                        let p = format!(
                            "/apis/rbac.authorization.k8s.io/v1/{}s/{name}",
                            kind.to_lowercase()
                        );
                        cluster_scoped.push(p.clone());
                        p
                    }
                };
                let answer = apply(admin, &path, &obj, false).await;
                assert!(
                    answer.status < 300,
                    "apply the chart's {kind} {name}: {} {}",
                    answer.status,
                    answer.message()
                );
            }
        }
        ChartRbac {
            service_account: service_account.expect("the chart renders a ServiceAccount"),
            cluster_grants: crate::helm::grants(rendered.of_kind("ClusterRole")),
            namespace_grants: crate::helm::grants(rendered.of_kind("Role")),
            cluster_scoped,
        }
    }
}

impl Drop for ChartRbac {
    fn drop(&mut self) {
        let paths = std::mem::take(&mut self.cluster_scoped);
        cleanup(None, move |client| async move {
            for p in paths {
                let _ = request(&client, "DELETE", &p, "application/json", &json!({})).await;
            }
        });
    }
}

/// One request of the API server's audit log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Audited {
    pub verb: String,
    pub group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    pub code: u16,
}

/// The requests `username` made, from the audit log `scripts/envtest.sh` keeps (named by
/// `BOUNCEOPS_KUBE_AUDIT_LOG`); `None` on a cluster whose audit log is not ours to read.
pub fn audited(username: &str) -> Option<Vec<Audited>> {
    let path = std::env::var_os("BOUNCEOPS_KUBE_AUDIT_LOG")?;
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read the audit log {}: {e}", PathBuf::from(&path).display()));
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if ev["stage"] != "ResponseComplete" || ev["user"]["username"] != username {
            continue;
        }
        let obj = &ev["objectRef"];
        let mut resource = obj["resource"].as_str().unwrap_or("").to_owned();
        if let Some(sub) = obj["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        out.push(Audited {
            verb: ev["verb"].as_str().unwrap_or("").to_owned(),
            group: obj["apiGroup"].as_str().unwrap_or("").to_owned(),
            resource,
            code: ev["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
        });
    }
    Some(out)
}

/// The label of every cluster-scoped fixture these suites install, so that they remove
/// only their own.
pub const FIXTURE_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", MANAGER);

/// A stand-in CRD for one of the Prometheus operator's kinds (`ServiceMonitor`,
/// `PrometheusRule`): the group, names and a schema that keeps every field. Enough for a
/// server to serve the type; not the real schema.
pub fn monitoring_crd(kind: &str) -> Value {
    let singular = kind.to_lowercase();
    let plural = format!("{singular}s");
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.monitoring.coreos.com"),
                     "labels": {FIXTURE_LABEL.0: FIXTURE_LABEL.1}},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": kind, "listKind": format!("{kind}List"),
                      "plural": plural, "singular": singular},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                              "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

/// Whether the cluster has the CRD `name` (Helm leaves `crds/` in place on uninstall).
pub async fn has_crd(client: &Client, name: &str) -> bool {
    Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(name)
        .await
        .expect("read CRDs")
        .is_some()
}

/// Who owns the CRD `name`: `None` when absent, `Some(true)` when it is our fixture,
/// `Some(false)` when someone else installed it (a real Prometheus operator: never touch).
pub async fn crd_owner_is_us(client: &Client, name: &str) -> Option<bool> {
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(name)
        .await
        .expect("read CRDs")?;
    Some(
        crd.metadata
            .labels
            .unwrap_or_default()
            .get(FIXTURE_LABEL.0)
            .map(String::as_str)
            == Some(FIXTURE_LABEL.1),
    )
}

/// Installs the ServiceMonitor and PrometheusRule stand-ins where the cluster has no such
/// CRD of its own.
pub async fn ensure_monitoring_crds(client: &Client) {
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        let crd = monitoring_crd(kind);
        let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
        if crd_owner_is_us(client, &name).await != Some(false) {
            let warnings = install_crd(client, &crd).await;
            assert!(warnings.is_empty(), "{name}: {warnings:?}");
        }
    }
}

/// The `kubectl` a person would use with these binaries: the one beside the API server
/// (`KUBEBUILDER_ASSETS`, then `/usr/local/kubebuilder/bin`), else the first on `PATH`.
pub fn kubectl() -> Option<PathBuf> {
    let assets = std::env::var_os("KUBEBUILDER_ASSETS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let path = std::env::var_os("PATH").unwrap_or_default();
    assets
        .into_iter()
        .chain([PathBuf::from("/usr/local/kubebuilder/bin")])
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}
