//! An in-memory Kubernetes API server behind kube's mocked transport (`tower-test`):
//! the operator's real client talks to it; tests read its request log and objects.
//!
//! It does what the reconcile needs and no more: GET, server-side apply and merge PATCH
//! (including `/status`), POST of Events, DELETE, discovery of the ServiceMonitor group,
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
                let resp = server.handle(req).await;
                send.send_response(resp);
            }
        });
        (Client::new(service, "default"), fake)
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
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
        if path == "/apis/monitoring.coreos.com/v1" {
            return if st.service_monitor_crd {
                ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1",
                    "resources": [{"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true,
                                   "kind": "ServiceMonitor", "verbs": ["get", "patch", "delete"]}]}))
            } else {
                status(404, "the server could not find the requested resource")
            };
        }
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        match method {
            Method::GET => match st.objects.get(&path) {
                Some(o) => ok(o.clone()),
                None => status(404, "not found"),
            },
            Method::POST => {
                let name = body["metadata"]["name"].as_str().unwrap_or("unnamed").to_owned();
                let key = format!("{path}/{name}");
                let obj = st.stamp(&key, body, None);
                st.objects.insert(key, obj.clone());
                respond(StatusCode::CREATED, obj)
            }
            Method::PATCH if content_type.starts_with("application/apply-patch") => {
                let prior = st.objects.get(&path).cloned();
                let mut obj = st.stamp(&path, body, prior.as_ref());
                if obj["kind"] == "Deployment" {
                    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
                    let ready = if st.nodes { replicas } else { 0 };
                    obj["status"] = json!({"observedGeneration": obj["metadata"]["generation"],
                        "replicas": replicas, "readyReplicas": ready, "updatedReplicas": ready});
                }
                st.objects.insert(path, obj.clone());
                ok(obj)
            }
            Method::PATCH => {
                let (key, sub) = match path.strip_suffix("/status") {
                    Some(k) => (k.to_owned(), true),
                    None => (path.clone(), false),
                };
                let Some(mut obj) = st.objects.get(&key).cloned() else {
                    return status(404, "not found");
                };
                if sub {
                    merge(&mut obj["status"], &body["status"]);
                } else {
                    merge(&mut obj, &body);
                }
                st.rv += 1;
                obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                st.objects.insert(key, obj.clone());
                ok(obj)
            }
            Method::DELETE => match st.objects.remove(&path) {
                Some(_) => ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200})),
                None => status(404, "not found"),
            },
            _ => status(405, "method not allowed"),
        }
    }

    // ----- what tests do to the "cluster" -----

    pub fn put(&self, path: &str, obj: Value) {
        let mut st = self.state.lock().unwrap();
        let prior = st.objects.get(path).cloned();
        let obj = st.stamp(path, obj, prior.as_ref());
        st.objects.insert(path.to_owned(), obj);
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().objects.remove(path);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    pub fn paths_under(&self, prefix: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.objects.keys().filter(|k| k.starts_with(prefix)).cloned().collect()
    }

    pub fn put_secret(&self, ns: &str, name: &str, keys: &[&str]) {
        let data: serde_json::Map<String, Value> =
            keys.iter().map(|k| (k.to_string(), json!("c2VjcmV0"))).collect();
        self.put(
            &format!("/api/v1/namespaces/{ns}/secrets/{name}"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": data}),
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

fn ok(v: Value) -> Response<Body> {
    respond(StatusCode::OK, v)
}

fn respond(code: StatusCode, v: Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&v).unwrap()))
        .unwrap()
}

fn status(code: u16, message: &str) -> Response<Body> {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        500 => "InternalError",
        _ => "Unknown",
    };
    respond(
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
               "reason": reason, "message": message}),
    )
}
