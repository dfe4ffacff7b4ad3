//! An in-memory Kubernetes API server. Three ways in: kube's mocked transport
//! (`tower-test`, [`FakeApi::start`]), a `tower` service with streaming watches
//! ([`FakeApi::start_streaming`]) and plain HTTP on 127.0.0.1 ([`FakeApi::serve_http`]).
//! The operator's real client talks to it; tests read its request log and objects.
//!
//! It does what the operator needs and no more: GET, LIST, WATCH, server-side apply, merge
//! PATCH, PUT of `/status` (whole status, resourceVersion checked), POST, DELETE, discovery
//! of the ServiceMonitor group,
//! and a stand-in Deployment controller that marks replicas ready (as on a cluster with
//! nodes) unless told otherwise. Failures can be injected per method and path.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bounceops_api::BounceConfig;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub content_type: String,
}

impl Call {
    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

struct Failure {
    method: Method,
    path_contains: String,
    code: u16,
    remaining: usize,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    log: Vec<Call>,
    rv: u64,
    uid: u64,
    failures: Vec<Failure>,
    service_monitor_crd: bool,
    /// When false, Deployments never report ready replicas (a cluster without nodes).
    nodes: bool,
    /// What `/version` answers, as a real server fills it in (`major`, `minor`,
    /// `gitVersion`); empty: a 1.33 server.
    version: Option<Value>,
    /// Every change, for watches that start from an older resourceVersion.
    history: Vec<(u64, String, &'static str, Value)>,
    watchers: Vec<(
        String,
        futures::channel::mpsc::UnboundedSender<bytes::Bytes>,
    )>,
}

/// What the server answers: a whole body, or a watch stream.
enum Reply {
    Full(StatusCode, Value),
    Watch(futures::channel::mpsc::UnboundedReceiver<bytes::Bytes>),
}

#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// A client wired to a new fake server; the server runs until the client is dropped.
    pub fn start() -> (Client, FakeApi) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = FakeApi {
            state: Arc::new(Mutex::new(State {
                nodes: true,
                ..State::default()
            })),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let resp = match server.handle(req).await {
                    Reply::Full(code, v) => respond(code, v),
                    Reply::Watch(_) => respond(StatusCode::METHOD_NOT_ALLOWED, json!({})),
                };
                send.send_response(resp);
            }
        });
        (Client::new(service, "default"), fake)
    }

    /// Like [`FakeApi::start`], but also serves LIST and streaming WATCH, so kube's
    /// `Controller` (reflectors, owned-object and Secret watches) runs against it.
    pub fn start_streaming() -> (Client, FakeApi) {
        use http_body_util::BodyExt;
        type Boxed =
            http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::convert::Infallible>;
        let fake = FakeApi {
            state: Arc::new(Mutex::new(State {
                nodes: true,
                ..State::default()
            })),
        };
        let server = fake.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let server = server.clone();
            async move {
                let resp: Response<Boxed> = match server.handle(req).await {
                    Reply::Full(code, v) => Response::builder()
                        .status(code)
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(
                            http_body_util::Full::new(bytes::Bytes::from(
                                serde_json::to_vec(&v).unwrap(),
                            ))
                            .boxed_unsync(),
                        )
                        .unwrap(),
                    Reply::Watch(rx) => {
                        use futures::StreamExt;
                        let frames = rx
                            .map(|b| Ok::<_, std::convert::Infallible>(http_body::Frame::data(b)));
                        Response::builder()
                            .status(StatusCode::OK)
                            .header(http::header::CONTENT_TYPE, "application/json")
                            .body(http_body_util::StreamBody::new(frames).boxed_unsync())
                            .unwrap()
                    }
                };
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        (Client::new(service, "default"), fake)
    }

    async fn handle(&self, req: Request<Body>) -> Reply {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
        self.answer(method, path, query, content_type, &body)
    }

    /// Serves the fake over plain HTTP on a loopback port, for a real `bounce-operator`
    /// process (its kubeconfig points at the returned address).
    pub async fn serve_http(&self) -> std::net::SocketAddr {
        use futures::StreamExt;
        let fake = self.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let fake = fake.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let content_type = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let reply = fake.answer(
                    parts.method,
                    parts.uri.path().to_owned(),
                    parts.uri.query().unwrap_or("").to_owned(),
                    content_type,
                    &bytes,
                );
                let (code, body) = match reply {
                    Reply::Full(code, v) => (
                        code,
                        axum::body::Body::from(serde_json::to_vec(&v).unwrap()),
                    ),
                    Reply::Watch(rx) => (
                        StatusCode::OK,
                        axum::body::Body::from_stream(rx.map(Ok::<_, std::convert::Infallible>)),
                    ),
                };
                axum::response::Response::builder()
                    .status(code)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn answer(
        &self,
        method: Method,
        path: String,
        query: String,
        content_type: String,
        body: &[u8],
    ) -> Reply {
        let mut st = self.state.lock().unwrap();
        st.log.push(Call {
            method: method.clone(),
            path: path.clone(),
            content_type: content_type.clone(),
        });
        if let Some(f) = st
            .failures
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == method && path.contains(&f.path_contains))
        {
            f.remaining -= 1;
            let code = f.code;
            return status(code, "injected failure");
        }
        if method == Method::GET && is_collection(&path) {
            let param = |k: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(str::to_owned)
            };
            if matches!(param("watch").as_deref(), Some("true" | "1")) {
                let since: u64 = param("resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let (tx, rx) = futures::channel::mpsc::unbounded();
                for (rv, key, type_, obj) in &st.history {
                    if *rv > since && in_collection(key, &path) {
                        let _ = tx.unbounded_send(watch_line(type_, obj));
                    }
                }
                st.watchers.push((path.clone(), tx));
                return Reply::Watch(rx);
            }
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, _)| in_collection(k, &path))
                .map(|(_, v)| v.clone())
                .collect();
            return ok(json!({"apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}));
        }
        if method == Method::GET && path == "/version" {
            return ok(st
                .version
                .clone()
                .unwrap_or_else(|| version_info("1", "33", "v1.33.1")));
        }
        if path == "/apis/monitoring.coreos.com/v1" {
            return if st.service_monitor_crd {
                ok(
                    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
                    "resources": [{"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true,
                                   "kind": "ServiceMonitor", "verbs": ["get", "patch", "delete"]}]}),
                )
            } else {
                status(404, "the server could not find the requested resource")
            };
        }
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap_or(Value::Null)
        };
        match method {
            Method::GET => match st.objects.get(&path) {
                Some(o) => ok(o.clone()),
                None => status(404, "not found"),
            },
            Method::POST => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("unnamed")
                    .to_owned();
                let key = format!("{path}/{name}");
                let obj = st.stamp(&key, body, None);
                st.objects.insert(key.clone(), obj.clone());
                st.emit(&key, "ADDED", &obj);
                Reply::Full(StatusCode::CREATED, obj)
            }
            Method::PATCH if content_type.starts_with("application/apply-patch") => {
                let prior = st.objects.get(&path).cloned();
                let mut obj = st.stamp(&path, body, prior.as_ref());
                if obj["kind"] == "Service" {
                    st.allocate_service(&mut obj, prior.as_ref());
                }
                if obj["kind"] == "Deployment" {
                    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
                    let ready = if st.nodes { replicas } else { 0 };
                    obj["status"] = json!({"observedGeneration": obj["metadata"]["generation"],
                        "replicas": replicas, "readyReplicas": ready, "updatedReplicas": ready});
                }
                let type_ = if prior.is_some() { "MODIFIED" } else { "ADDED" };
                st.objects.insert(path.clone(), obj.clone());
                st.emit(&path, type_, &obj);
                ok(obj)
            }
            Method::PUT if path.ends_with("/status") => {
                let key = path.trim_end_matches("/status").to_owned();
                let Some(mut obj) = st.objects.get(&key).cloned() else {
                    return status(404, "not found");
                };
                if body["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"] {
                    return status(409, "the object has been modified");
                }
                match body.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        if let Some(o) = obj.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                st.rv += 1;
                obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                st.objects.insert(key.clone(), obj.clone());
                st.emit(&key, "MODIFIED", &obj);
                ok(obj)
            }
            Method::PATCH => {
                let Some(mut obj) = st.objects.get(&path).cloned() else {
                    return status(404, "not found");
                };
                merge(&mut obj, &body);
                st.rv += 1;
                obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                st.objects.insert(path.clone(), obj.clone());
                st.emit(&path, "MODIFIED", &obj);
                ok(obj)
            }
            Method::DELETE => match st.objects.remove(&path) {
                Some(_) => ok(
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                ),
                None => status(404, "not found"),
            },
            _ => status(405, "method not allowed"),
        }
    }

    // ----- what tests do to the "cluster" -----

    pub fn put(&self, path: &str, obj: Value) {
        let mut st = self.state.lock().unwrap();
        let prior = st.objects.get(path).cloned();
        let type_ = if prior.is_some() { "MODIFIED" } else { "ADDED" };
        let obj = st.stamp(path, obj, prior.as_ref());
        st.objects.insert(path.to_owned(), obj.clone());
        st.emit(path, type_, &obj);
    }

    pub fn remove(&self, path: &str) {
        let mut st = self.state.lock().unwrap();
        if let Some(obj) = st.objects.remove(path) {
            st.rv += 1;
            st.emit(path, "DELETED", &obj);
        }
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    pub fn paths_under(&self, prefix: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.objects
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    pub fn put_secret(&self, ns: &str, name: &str, keys: &[&str]) {
        let data: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| (k.to_string(), json!("c2VjcmV0")))
            .collect();
        self.put(
            &format!("/api/v1/namespaces/{ns}/secrets/{name}"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": data}),
        );
    }

    /// A `kubernetes.io/tls` Secret, as cert-manager or `kubectl create secret tls` make
    /// it (the API server refuses one without both keys).
    pub fn put_tls_secret(&self, ns: &str, name: &str) {
        self.put(
            &format!("/api/v1/namespaces/{ns}/secrets/{name}"),
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                   "metadata": {"name": name, "namespace": ns},
                   "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}),
        );
    }

    /// Stores a BounceConfig as a user's `kubectl apply` would (generation bumps on spec change).
    pub fn put_config(&self, ns: &str, name: &str, spec_yaml: &str) {
        let spec: Value = serde_yaml::from_str::<bounceops_api::BounceConfigSpec>(spec_yaml)
            .map(|s| serde_json::to_value(s).unwrap())
            .expect("spec parses");
        let path = config_path(ns, name);
        let mut obj = self.get(&path).unwrap_or_else(|| {
            json!({"apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig",
                   "metadata": {"name": name, "namespace": ns}})
        });
        obj["spec"] = spec;
        self.put(&path, obj);
    }

    pub fn config(&self, ns: &str, name: &str) -> BounceConfig {
        serde_json::from_value(self.get(&config_path(ns, name)).expect("config exists")).unwrap()
    }

    pub fn set_service_monitor_crd(&self, on: bool) {
        self.state.lock().unwrap().service_monitor_crd = on;
    }

    /// The server's `/version`: `major`, `minor` and `gitVersion` as a real server (or a
    /// provider's: `"30+"`, `v1.30.4-gke.1`) reports them.
    pub fn set_version(&self, major: &str, minor: &str, git_version: &str) {
        self.state.lock().unwrap().version = Some(version_info(major, minor, git_version));
    }

    pub fn set_nodes(&self, on: bool) {
        self.state.lock().unwrap().nodes = on;
    }

    /// The next `times` requests with this method and a path containing `path_contains`
    /// fail with `code`.
    pub fn fail(&self, method: Method, path_contains: &str, code: u16, times: usize) {
        self.state.lock().unwrap().failures.push(Failure {
            method,
            path_contains: path_contains.into(),
            code,
            remaining: times,
        });
    }

    pub fn log(&self) -> Vec<Call> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn log_len(&self) -> usize {
        self.state.lock().unwrap().log.len()
    }

    pub fn writes_since(&self, mark: usize) -> Vec<Call> {
        self.state.lock().unwrap().log[mark..]
            .iter()
            .filter(|c| c.is_write())
            .cloned()
            .collect()
    }

    pub fn events(&self, ns: &str) -> Vec<Value> {
        let prefix = format!("/apis/events.k8s.io/v1/namespaces/{ns}/events/");
        let st = self.state.lock().unwrap();
        st.objects
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl State {
    /// Records a change and tells the watches of its collection.
    fn emit(&mut self, key: &str, type_: &'static str, obj: &Value) {
        let mut obj = obj.clone();
        if type_ == "DELETED" {
            obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        }
        self.history
            .push((self.rv, key.to_owned(), type_, obj.clone()));
        let line = watch_line(type_, &obj);
        self.watchers.retain(|(coll, tx)| {
            !in_collection(key, coll) || tx.unbounded_send(line.clone()).is_ok()
        });
    }

    /// What a real API server fills into a Service it stores: the type's default, a
    /// cluster IP (kept for the Service's life), each port's protocol, a node port for each
    /// port of a NodePort or LoadBalancer Service (kept while the type needs it, dropped
    /// when it changes to ClusterIP, as the server does since 1.20), and an empty
    /// `status.loadBalancer` until a load-balancer controller writes one (none here).
    fn allocate_service(&mut self, obj: &mut Value, prior: Option<&Value>) {
        let spec = &mut obj["spec"];
        if spec.get("type").is_none() {
            spec["type"] = json!("ClusterIP");
        }
        let ip = match (spec.get("clusterIP"), prior) {
            (Some(ip), _) => ip.clone(),
            (None, Some(p)) if p["spec"].get("clusterIP").is_some() => {
                p["spec"]["clusterIP"].clone()
            }
            (None, _) => {
                self.uid += 1;
                json!(format!("10.96.{}.{}", self.uid / 250, self.uid % 250 + 1))
            }
        };
        spec["clusterIP"] = ip.clone();
        spec["clusterIPs"] = json!([ip]);
        let node_ports = matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"));
        let prior_ports = prior
            .and_then(|p| p["spec"]["ports"].as_array())
            .cloned()
            .unwrap_or_default();
        if let Some(ports) = spec["ports"].as_array_mut() {
            for port in ports {
                if port.get("protocol").is_none() {
                    port["protocol"] = json!("TCP");
                }
                if !node_ports {
                    if let Some(p) = port.as_object_mut() {
                        p.remove("nodePort");
                    }
                } else if port.get("nodePort").is_none() {
                    let kept = prior_ports
                        .iter()
                        .find(|p| p["name"] == port["name"])
                        .and_then(|p| p.get("nodePort").cloned());
                    port["nodePort"] = kept.unwrap_or_else(|| {
                        self.uid += 1;
                        json!(30000 + self.uid % 2768)
                    });
                }
            }
        }
        if obj.get("status").is_none() {
            obj["status"] = json!({"loadBalancer": {}});
        }
    }

    /// Adds what the API server adds: uid, resourceVersion, generation (bumped when the
    /// spec changes), creationTimestamp; keeps the status of an existing object.
    fn stamp(&mut self, path: &str, mut obj: Value, prior: Option<&Value>) -> Value {
        self.rv += 1;
        let meta = obj["metadata"].as_object_mut().cloned().unwrap_or_default();
        let mut meta = Value::Object(meta);
        match prior {
            Some(p) => {
                meta["uid"] = p["metadata"]["uid"].clone();
                meta["creationTimestamp"] = p["metadata"]["creationTimestamp"].clone();
                let gen_ = p["metadata"]["generation"].as_i64().unwrap_or(1);
                let changed = p.get("spec") != obj.get("spec") || p.get("data") != obj.get("data");
                meta["generation"] = json!(if changed { gen_ + 1 } else { gen_ });
                if obj.get("status").is_none()
                    && let Some(s) = p.get("status")
                {
                    obj["status"] = s.clone();
                }
            }
            None => {
                self.uid += 1;
                meta["uid"] = json!(format!("uid-{}", self.uid));
                meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                meta["generation"] = json!(1);
            }
        }
        meta["resourceVersion"] = json!(self.rv.to_string());
        let _ = path;
        obj["metadata"] = meta;
        obj
    }
}

/// `/version`'s body, with the fields a real server always sends.
fn version_info(major: &str, minor: &str, git_version: &str) -> Value {
    json!({"major": major, "minor": minor, "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64"})
}

pub fn config_path(ns: &str, name: &str) -> String {
    format!("/apis/bounceops.io/v1alpha1/namespaces/{ns}/bounceconfigs/{name}")
}

pub fn deployment_path(ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}")
}

fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn ok(v: Value) -> Reply {
    Reply::Full(StatusCode::OK, v)
}

fn watch_line(type_: &str, obj: &Value) -> bytes::Bytes {
    let mut line = serde_json::to_vec(&json!({"type": type_, "object": obj})).unwrap();
    line.push(b'\n');
    bytes::Bytes::from(line)
}

/// `/api/v1/secrets` or `/api/v1/namespaces/ns/secrets` (not an object, not discovery).
fn is_collection(path: &str) -> bool {
    match path.split_once("/namespaces/") {
        Some((_, rest)) => rest.split('/').count() == 2,
        None => {
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match parts.first() {
                Some(&"api") => parts.len() == 3,
                Some(&"apis") => parts.len() == 4,
                _ => false,
            }
        }
    }
}

/// Whether the object stored at `key` belongs to the collection `coll`.
fn in_collection(key: &str, coll: &str) -> bool {
    let Some((gv, rest)) = key.split_once("/namespaces/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != 3 {
        return false;
    }
    match coll.split_once("/namespaces/") {
        Some((cgv, crest)) => cgv == gv && crest == format!("{}/{}", parts[0], parts[1]),
        None => coll == format!("{gv}/{}", parts[1]),
    }
}

fn respond(code: StatusCode, v: Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&v).unwrap()))
        .unwrap()
}

fn status(code: u16, message: &str) -> Reply {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        500 => "InternalError",
        _ => "Unknown",
    };
    Reply::Full(
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
               "reason": reason, "message": message}),
    )
}
