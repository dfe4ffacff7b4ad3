//! `spec.smtp`: the bounce MX, an SMTP server that receives bounce mail (DSNs, ARF reports)
//! addressed to signed VERP return paths, to plain bounce addresses and to feedback-loop
//! addresses. docs/smtp.md tells how to point an MX record at it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Resources, SecretRef, defaults};

/// The longest `verpPrefix`. A VERP local part is `<prefix>+<token>`, and RFC 5321 bounds a
/// local part at 64 octets; the longest token (a subscriber and a campaign UUID with their
/// signature, in case-insensitive base32) takes 60 of them, and the `+` one more.
pub const MAX_VERP_PREFIX: usize = 3;

/// The bounce MX: a Deployment `<name>-smtp` behind a Service on port 25.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpSpec {
    /// The bounce domains, e.g. `bounces.example.com`: the domains of the return paths,
    /// whose MX records point at the SMTP Service. Mail to any other domain is refused.
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 253)))]
    pub domains: Vec<String>,
    /// The local part's first part in VERP addresses `<verpPrefix>+<token>@<domain>`:
    /// 1 to 3 letters or digits (the token takes the rest of the 64 octets RFC 5321 allows).
    #[serde(default = "defaults::verp_prefix")]
    #[schemars(length(min = 1, max = 3), regex(pattern = r"^[A-Za-z0-9]+$"))]
    pub verp_prefix: String,
    /// Secret key holding the key that signs VERP tokens (at least 32 bytes).
    pub verp_key_secret_ref: SecretRef,
    /// Secret key holding the previous signing key, still accepted while a rotation lasts
    /// (the return paths of mail sent before it may bounce for days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_verp_key_secret_ref: Option<SecretRef>,
    /// Plain bounce addresses, for senders that cannot write VERP return paths: their
    /// mail is matched like a bounce mailbox's, by the recipient the report names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 3, max = 254)))]
    pub addresses: Vec<String>,
    /// Feedback-loop addresses, where mailbox providers send ARF complaint reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 3, max = 254)))]
    pub feedback_addresses: Vec<String>,
    /// Largest message accepted, in bytes (advertised with SIZE; larger ones get
    /// `552 5.3.4`). 10 MiB when absent, 64 KiB to 1 GiB.
    #[serde(default = "defaults::max_message_bytes")]
    #[schemars(range(min = 65536, max = 1073741824))]
    pub max_message_bytes: u64,
    /// Most recipients of one message (RFC 5321 asks servers to take at least 100).
    #[serde(default = "defaults::smtp_max_recipients")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_recipients: u32,
    /// Most SMTP sessions one worker serves at once; more wait for a free one.
    #[serde(default = "defaults::smtp_max_sessions")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_sessions: u32,
    /// Most refused commands in one session before it is closed (`421 4.7.0`).
    #[serde(default = "defaults::smtp_max_errors")]
    #[schemars(range(min = 1, max = 100))]
    pub max_errors: u32,
    /// How long the server waits for each command, e.g. `5m` (RFC 5321 §4.5.3.2: at least
    /// 5 minutes; shorter only where senders are known to be quick). 1s to 1h.
    #[serde(default = "defaults::smtp_command_timeout")]
    #[schemars(length(min = 1, max = 64))]
    pub command_timeout: String,
    /// How long a whole DATA transfer may take, e.g. `10m`. 1s to 1h.
    #[serde(default = "defaults::smtp_data_timeout")]
    #[schemars(length(min = 1, max = 64))]
    pub data_timeout: String,
    /// The container port the server listens on (the Service's port 25 leads to it).
    #[serde(default = "defaults::smtp_port")]
    #[schemars(range(min = 1, max = 65535))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self >= 1 && self <= 65535", "message": "port must be between 1 and 65535"}]))]
    pub port: u16,
    /// SMTP worker replicas; above 1 a PodDisruptionBudget keeps one up.
    #[serde(default = "defaults::replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Secret of type kubernetes.io/tls whose certificate the server offers with STARTTLS;
    /// no STARTTLS when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tls_secret_name: Option<String>,
    /// The Service in front of the SMTP workers.
    #[serde(default)]
    pub service: SmtpServiceSpec,
    /// CPU and memory of each SMTP worker. Absent: requests 50m CPU and 64Mi memory,
    /// limit 256Mi memory, or 64Mi plus 16 times `maxMessageBytes` when that is more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// The Service that the bounce domains' MX records point at.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpServiceSpec {
    /// `ClusterIP`, `NodePort` or `LoadBalancer` (the usual one for an MX).
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations put on the Service, e.g. for a cloud's load balancer.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A Kubernetes Service type.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    /// The name Kubernetes gives it in a Service's `spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}
