//! Prometheus from Debian's package, on the host, scraping the pods through Kubernetes
//! discovery, and the dashboard's queries evaluated by it.
//!
//! No Prometheus operator runs here, so each ServiceMonitor in the cluster is turned into
//! the scrape job the Prometheus operator would generate from it: EndpointSlice discovery in
//! its namespaces, `keep` on the selected Service's labels and the endpoint's port name,
//! and the `namespace`, `service`, `pod`, `container`, `endpoint` and `job` target labels
//! the dashboard and the alerts group by. For a short run every job scrapes every 2 s
//! instead of the ServiceMonitor's interval.
//!
//! Debian builds Prometheus without `kubernetes_sd_configs` (removed for the Kubernetes
//! client's dependencies; the package's NEWS.Debian says so), so the discovery itself is
//! served by [`Discovery`] through `http_sd_configs`: the cluster's EndpointSlices, read
//! through the API with the same kubeconfig, as targets carrying the very
//! `__meta_kubernetes_*` labels Prometheus's own `endpointslice` role gives them. The
//! relabelling above is unchanged by that: on a Prometheus with Kubernetes discovery the
//! same jobs work with `kubernetes_sd_configs: [{role: endpointslice}]` in its place.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

pub const SCRAPE_INTERVAL: &str = "2s";

/// The scrape jobs of every ServiceMonitor in `namespaces`, as the Prometheus operator
/// generates them (`serviceMonitor/<namespace>/<name>/<endpoint index>`).
pub async fn scrape_jobs(
    client: &Client,
    namespaces: &[&str],
    discovery: &Discovery,
) -> Vec<Value> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
    ));
    let mut jobs = vec![];
    for ns in namespaces {
        let monitors = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
            .list(&ListParams::default())
            .await
            .expect("list ServiceMonitors");
        for sm in monitors.items {
            let name = sm.metadata.name.clone().unwrap_or_default();
            jobs.extend(jobs_of(ns, &name, &sm.data["spec"], discovery));
        }
    }
    jobs
}

/// Prometheus label names are `[a-zA-Z_][a-zA-Z0-9_]*`: discovery writes a Kubernetes
/// label `app.kubernetes.io/name` as `app_kubernetes_io_name`.
fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn jobs_of(ns: &str, name: &str, spec: &Value, discovery: &Discovery) -> Vec<Value> {
    let names: Vec<&str> = match spec["namespaceSelector"]["matchNames"].as_array() {
        Some(n) if !n.is_empty() => n.iter().filter_map(Value::as_str).collect(),
        _ => vec![ns],
    };
    let keep: Vec<Value> = spec["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            json!({"action": "keep", "regex": v,
                   "source_labels": [format!("__meta_kubernetes_service_label_{}", sanitize(k))]})
        })
        .collect();
    let endpoints = spec["endpoints"].as_array().cloned().unwrap_or_default();
    endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| {
            let port = ep["port"].as_str().expect("a named endpoint port");
            let mut relabel = keep.clone();
            relabel.extend([
                json!({"action": "keep", "regex": port,
                       "source_labels": ["__meta_kubernetes_endpointslice_port_name"]}),
                json!({"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"}),
                json!({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"}),
                json!({"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}),
                json!({"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"}),
                json!({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"}),
                json!({"target_label": "endpoint", "replacement": port}),
            ]);
            json!({
                "job_name": format!("serviceMonitor/{ns}/{name}/{i}"),
                "scrape_interval": SCRAPE_INTERVAL,
                "metrics_path": ep["path"].as_str().unwrap_or("/metrics"),
                "http_sd_configs": [{
                    "url": format!("{}/endpointslices?namespaces={}", discovery.url, names.join(",")),
                    "refresh_interval": SCRAPE_INTERVAL,
                }],
                "relabel_configs": relabel,
            })
        })
        .collect()
}

/// Kubernetes discovery for Prometheus's `http_sd_configs`, served on 127.0.0.1: GET
/// `/endpointslices?namespaces=a,b` answers the target groups Prometheus's
/// `kubernetes_sd_configs` role `endpointslice` would find in those namespaces.
pub struct Discovery {
    pub url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Discovery {
    pub async fn start(client: Client) -> Discovery {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/endpointslices", axum::routing::get(endpointslices))
            .with_state(client);
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the discovery server");
        });
        Discovery { url, server }
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn endpointslices(
    State(client): State<Client>,
    Query(q): Query<BTreeMap<String, String>>,
) -> axum::Json<Vec<Value>> {
    let mut groups = vec![];
    for ns in q
        .get("namespaces")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        groups.extend(target_groups(&client, ns).await);
    }
    axum::Json(groups)
}

/// One target group per endpoint address and port of every EndpointSlice in `ns`, with
/// the meta labels of Prometheus's `endpointslice` role that the relabelling reads.
async fn target_groups(client: &Client, ns: &str) -> Vec<Value> {
    let lp = ListParams::default();
    let (Ok(slices), Ok(services), Ok(pods)) = (
        Api::<EndpointSlice>::namespaced(client.clone(), ns)
            .list(&lp)
            .await,
        Api::<Service>::namespaced(client.clone(), ns)
            .list(&lp)
            .await,
        Api::<Pod>::namespaced(client.clone(), ns).list(&lp).await,
    ) else {
        // Prometheus keeps the last good answer when a refresh fails.
        return vec![];
    };
    let mut groups = vec![];
    for slice in &slices.items {
        let service = slice.labels().get("kubernetes.io/service-name").cloned();
        let mut common = BTreeMap::from([
            ("__meta_kubernetes_namespace".to_owned(), ns.to_owned()),
            (
                "__meta_kubernetes_endpointslice_name".to_owned(),
                slice.name_any(),
            ),
        ]);
        if let Some(svc) = services
            .items
            .iter()
            .find(|s| Some(s.name_any()) == service)
        {
            common.insert("__meta_kubernetes_service_name".into(), svc.name_any());
            for (k, v) in svc.labels() {
                common.insert(
                    format!("__meta_kubernetes_service_label_{}", sanitize(k)),
                    v.clone(),
                );
            }
        }
        for endpoint in &slice.endpoints {
            let pod = endpoint
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| pods.items.iter().find(|p| Some(p.name_any()) == r.name));
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            for port in slice.ports.iter().flatten() {
                let number = port.port.unwrap_or_default();
                let mut labels = common.clone();
                labels.insert(
                    "__meta_kubernetes_endpointslice_port_name".into(),
                    port.name.clone().unwrap_or_default(),
                );
                labels.insert(
                    "__meta_kubernetes_endpointslice_endpoint_conditions_ready".into(),
                    ready.to_string(),
                );
                if let Some(pod) = pod {
                    labels.insert("__meta_kubernetes_pod_name".into(), pod.name_any());
                    let container = pod
                        .spec
                        .iter()
                        .flat_map(|s| &s.containers)
                        .find(|c| c.ports.iter().flatten().any(|p| p.container_port == number));
                    if let Some(c) = container {
                        labels.insert(
                            "__meta_kubernetes_pod_container_name".into(),
                            c.name.clone(),
                        );
                    }
                }
                for address in &endpoint.addresses {
                    groups.push(
                        json!({"targets": [format!("{address}:{number}")], "labels": labels}),
                    );
                }
            }
        }
    }
    groups
}

/// A Prometheus server on 127.0.0.1, stopped when dropped.
pub struct Prometheus {
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

/// The server binary: `BOUNCEOPS_PROMETHEUS` (set by scripts/test.sh), else `prometheus`.
fn binary() -> PathBuf {
    std::env::var_os("BOUNCEOPS_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("prometheus"))
}

impl Prometheus {
    pub async fn start(jobs: Vec<Value>) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let yaml = serde_yaml::to_string(&json!({
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": jobs,
        }))
        .unwrap();
        std::fs::write(&config, &yaml).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e} (Debian package prometheus; scripts/test.sh installs it)",
                    binary().display()
                )
            });
        let mut prometheus = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let ready = format!("{}/-/ready", prometheus.url);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return prometheus;
            }
            let exited = prometheus.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "Prometheus did not become ready ({exited:?}); its log:\n{}\nits configuration:\n{yaml}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The answer of an instant query (`data.result`).
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let answer: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .expect("query Prometheus")
            .json()
            .await
            .expect("Prometheus answers JSON");
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every query of every panel of the chart's dashboard, with its panel's title.
pub fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            if let Some(inner) = p["panels"].as_array() {
                walk(inner, out);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((
                        p["title"].as_str().unwrap_or("?").to_owned(),
                        expr.to_owned(),
                    ));
                }
            }
        }
    }
    let mut out = vec![];
    walk(
        dashboard["panels"].as_array().expect("dashboard panels"),
        &mut out,
    );
    out
}

/// A panel's query as Grafana sends it: the `namespace` variable set to `namespace`, and
/// Grafana's interval variables at the widths a 2 s scrape interval gives a short range.
pub fn as_grafana_sends(expr: &str, namespace: &str) -> String {
    expr.replace("$namespace", namespace)
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
}

/// Whether an instant query's result holds at least one number (NaN is no data: a
/// quantile of nothing).
pub fn has_data(result: &[Value]) -> bool {
    result.iter().any(|s| {
        s["value"][1]
            .as_str()
            .is_some_and(|v| v.parse::<f64>().is_ok_and(|x| !x.is_nan()))
    })
}
