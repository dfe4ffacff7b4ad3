//! Phase 4, "apply": brings the cluster to the desired children with server-side apply
//! under one field manager, and prunes the children a spec no longer wants.
//!
//! Each child is read first and applied only when it differs from the desired object, so
//! a steady state costs reads and no writes: no PATCH, no new resourceVersion, no watch
//! event bouncing back into another reconcile.

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::desired::{ChildKind, Desired};
use crate::metrics::Metrics;

/// What a Deployment reported when the apply phase last saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeploymentState {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    /// The Deployment controller has seen the latest spec (status.observedGeneration).
    pub observed_latest: bool,
}

impl DeploymentState {
    pub fn rolled_out(&self) -> bool {
        self.observed_latest && self.updated >= self.desired && self.ready >= self.desired
    }
}

/// What the apply phase did and saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// `Kind/name` of each child created or changed.
    pub changed: Vec<String>,
    /// `Kind/name` of each child deleted.
    pub pruned: Vec<String>,
    pub deployments: BTreeMap<ChildKind, DeploymentState>,
    /// `Kind/name` of each object that has a child's name but not this config as owner:
    /// someone else's. When there is one, nothing at all is applied.
    pub conflicts: Vec<String>,
    /// The Ingress's address (IP or host name) as its controller reports it; `None` when
    /// there is no Ingress or no controller has admitted it.
    pub ingress_address: Option<String>,
    /// The SMTP Service's load-balancer address (IP or host name) as its controller reports
    /// it; `None` when there is none (yet).
    pub smtp_address: Option<String>,
}

/// `actual` holds every field of `wanted` with the same value. Lists must match element
/// by element; fields the API server adds (defaults, status, managedFields) are ignored.
pub fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(a), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| a.get(k).is_some_and(|av| contains(av, wv))),
        (Value::Array(a), Value::Array(w)) => {
            a.len() == w.len() && a.iter().zip(w).all(|(av, wv)| contains(av, wv))
        }
        (Value::Number(a), Value::Number(w)) => a.as_f64() == w.as_f64(),
        _ => actual == wanted,
    }
}

pub async fn apply(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    desired: &Desired,
    metrics: &Metrics,
) -> Result<Applied, kube::Error> {
    let mut out = Applied::default();
    // Server-side apply with force would take over any object of that name, whoever made
    // it; so every child is read first, and an object this config does not own stops the
    // whole apply (a half-applied config could route traffic to someone else's pods).
    let mut found = Vec::with_capacity(desired.apply.len());
    for child in &desired.apply {
        let ar = child.kind.api_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        let existing = api.get_opt(&child.name).await?;
        if let Some(obj) = &existing
            && !owned_by(obj, owner_uid)
        {
            out.conflicts.push(format!("{}/{}", ar.kind, child.name));
        }
        found.push(existing);
    }
    if !out.conflicts.is_empty() {
        return Ok(out);
    }
    let params = PatchParams::apply(crate::MANAGER).force();
    for (child, existing) in desired.apply.iter().zip(found) {
        let ar = child.kind.api_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        let current = match existing {
            Some(obj)
                if contains(
                    &serde_json::to_value(&obj).unwrap_or_default(),
                    &child.object,
                ) =>
            {
                obj
            }
            _ => {
                metrics.write("apply");
                out.changed.push(format!("{}/{}", ar.kind, child.name));
                api.patch(&child.name, &params, &Patch::Apply(&child.object))
                    .await?
            }
        };
        if matches!(child.kind, ChildKind::Ingress | ChildKind::SmtpService) {
            // Ingresses and Services report their load balancer in the same shape.
            let lb = &serde_json::to_value(&current).unwrap_or_default()["status"]["loadBalancer"]
                ["ingress"][0];
            let address = lb["ip"]
                .as_str()
                .or_else(|| lb["hostname"].as_str())
                .map(str::to_owned);
            if child.kind == ChildKind::Ingress {
                out.ingress_address = address;
            } else {
                out.smtp_address = address;
            }
        }
        if child.kind.is_deployment() {
            out.deployments
                .insert(child.kind, deployment_state(&current, &child.object));
        }
    }
    for (kind, name) in &desired.prune {
        let ar = kind.api_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        // A ServiceMonitor whose CRD is absent cannot exist; asking would be a 404 anyway.
        let existing = match api.get(name).await {
            Ok(o) => Some(o),
            Err(e) if is_absent(&e) => None,
            Err(e) => return Err(e),
        };
        // Only what this config owns: a same-named object someone else made stays.
        if let Some(obj) = existing
            && owned_by(&obj, owner_uid)
        {
            metrics.write("delete");
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(e),
            }
            out.pruned.push(format!("{}/{name}", ar.kind));
        }
    }
    Ok(out)
}

/// Whether `obj` names the config with `owner_uid` among its owners (every child is made
/// with that reference).
fn owned_by(obj: &DynamicObject, owner_uid: &str) -> bool {
    obj.owner_references().iter().any(|o| o.uid == owner_uid)
}

fn deployment_state(current: &DynamicObject, wanted: &Value) -> DeploymentState {
    let status = current.data.get("status");
    let int = |v: Option<&Value>| v.and_then(Value::as_i64).unwrap_or(0) as i32;
    let generation = current.metadata.generation.unwrap_or(0);
    let observed = status
        .and_then(|s| s.get("observedGeneration"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    DeploymentState {
        desired: int(wanted.pointer("/spec/replicas")),
        ready: int(status.and_then(|s| s.get("readyReplicas"))),
        updated: int(status.and_then(|s| s.get("updatedReplicas"))),
        observed_latest: observed >= generation,
    }
}

/// Whether the cluster serves ServiceMonitors (the Prometheus operator's CRD exists).
pub async fn service_monitor_served(client: &Client) -> Result<bool, kube::Error> {
    match client
        .list_api_group_resources("monitoring.coreos.com/v1")
        .await
    {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "servicemonitors")),
        Err(e) if is_absent(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The API server's two ways of saying "not there": a `NotFound` Status for a missing
/// object, and a plain-text `404 page not found` for a path it does not serve (a group or
/// resource type whose CRD is not installed). kube's `is_not_found()` recognises only the
/// first: it falls back to the HTTP code only for reasons it does not know.
pub fn is_absent(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.is_not_found() || s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contains_ignores_what_the_server_adds() {
        let wanted = json!({"spec": {"replicas": 2, "ports": [{"name": "http", "port": 80}]}});
        let actual = json!({"spec": {"replicas": 2, "clusterIP": "10.0.0.1",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}, "status": {}});
        assert!(contains(&actual, &wanted));
    }

    #[test]
    fn contains_sees_changed_values_and_lists() {
        let wanted = json!({"spec": {"replicas": 2, "args": ["a", "b"]}});
        assert!(!contains(
            &json!({"spec": {"replicas": 3, "args": ["a", "b"]}}),
            &wanted
        ));
        assert!(!contains(
            &json!({"spec": {"replicas": 2, "args": ["a"]}}),
            &wanted
        ));
        assert!(!contains(
            &json!({"spec": {"replicas": 2, "args": ["a", "b", "c"]}}),
            &wanted
        ));
        assert!(!contains(&json!({"spec": {}}), &wanted));
        assert!(contains(
            &json!({"spec": {"replicas": 2.0, "args": ["a", "b"]}}),
            &wanted
        ));
    }

    #[test]
    fn rollout_needs_the_latest_generation_and_ready_replicas() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "generation": 3},
            "status": {"observedGeneration": 3, "readyReplicas": 2, "updatedReplicas": 2}
        }))
        .unwrap();
        let s = deployment_state(&obj, &json!({"spec": {"replicas": 2}}));
        assert!(s.rolled_out());
        let s = deployment_state(&obj, &json!({"spec": {"replicas": 3}}));
        assert!(!s.rolled_out());
        let mut stale = obj.clone();
        stale.metadata.generation = Some(4);
        assert!(!deployment_state(&stale, &json!({"spec": {"replicas": 2}})).rolled_out());
    }
}
