//! The `status` of a BounceConfig: what the operator observed, in the shapes `kubectl`
//! and other Kubernetes tooling expect (conditions keyed by `type`, workloads with ready
//! and desired replicas). Written by the operator only; the worker ignores it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the operator observed; written by the operator only.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BounceConfigStatus {
    /// The `metadata.generation` this status describes. Older than the resource's
    /// generation: the operator has not yet acted on the latest change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded (and ServiceMonitorReady when metrics are asked for,
    /// IngressReady, SMTPServiceReady, RelayReady for those parts), in the standard
    /// Kubernetes condition shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where providers send bounce webhooks: the Ingress URL when an Ingress is enabled,
    /// else the Service's in-cluster URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Number of mailboxes configured (shown by `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailboxes: Option<u32>,
    /// The webhook workers' Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WorkloadStatus>,
    /// The mailbox scanner's Deployment; absent when no mailbox is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<WorkloadStatus>,
    /// The bounce MX's Deployment; absent without `spec.smtp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<WorkloadStatus>,
    /// The sending relay's Deployment and where listmonk reaches it; absent without one
    /// (no `spec.relay`, or `replicas: 0`: a relay in listmonk's pod is listmonk's to watch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayStatus>,
    /// The resourceVersion of each referenced Secret as the operator last applied it to the
    /// workers. After changing a Secret, wait until its entry shows the Secret's new
    /// resourceVersion: from then on the workers' Deployments carry the change, and
    /// `kubectl rollout status` follows their roll.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub observed_secrets: std::collections::BTreeMap<String, String>,
    /// The hash of the config and those Secret versions that the workers' pod templates
    /// carry (annotation `bounceops.io/config-hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

impl BounceConfigStatus {
    /// The condition of this type, if any.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// Replicas of one worker Deployment.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// Name of the Deployment.
    pub name: String,
    /// Replicas the operator asked for.
    pub desired_replicas: i32,
    /// Replicas whose pods pass their readiness probe.
    pub ready_replicas: i32,
}

/// The relay's Deployment, and its Service's address.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelayStatus {
    /// Name of the Deployment (and of its Service).
    pub name: String,
    /// Replicas the operator asked for.
    pub desired_replicas: i32,
    /// Replicas whose pods pass their readiness probe.
    pub ready_replicas: i32,
    /// Where senders in the cluster submit mail: `<name>-relay.<namespace>.svc:2525`, the
    /// host and port of listmonk's SMTP settings.
    pub address: String,
}

/// One aspect of the resource's state, in the shape of Kubernetes' `metav1.Condition`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The aspect: Ready, Progressing, Degraded or ServiceMonitorReady.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether the condition holds.
    pub status: ConditionStatus,
    /// One CamelCase word a program can match on, e.g. SecretMissing.
    pub reason: String,
    /// What a person should know, e.g. which Secret is missing.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Whether a condition holds.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}
