//! `spec.relay`: the sending relay, an SMTP server between listmonk and its real SMTP server.
//! It rewrites each message's return path to a signed VERP address of the bounce MX
//! (`spec.smtp`) and records the refusals of its own SMTP conversation with the upstream as
//! bounces. It runs as a native sidecar in listmonk's pod (listening on 127.0.0.1, no login)
//! or as a Deployment `<name>-relay` behind a ClusterIP Service (with a login). docs/relay.md
//! tells how to point listmonk at it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Resources, SecretRef, TlsMode, defaults};

/// The sending relay. Needs `spec.smtp`: its return paths are the bounce MX's signed VERP
/// addresses, signed with `spec.smtp.verpKeySecretRef`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.replicas == 0 || has(self.credentialsSecretRef)", "message": "a relay Deployment (replicas above 0) needs credentialsSecretRef: its Service is reachable from every pod"}
]))]
pub struct RelaySpec {
    /// The domain of the return paths the relay writes, one of `spec.smtp.domains`, e.g.
    /// `bounces.example.com`.
    #[schemars(length(min = 1, max = 253))]
    pub return_path_domain: String,
    /// The SMTP server that delivers the mail (the one listmonk used before).
    pub upstream: RelayUpstreamSpec,
    /// The port the relay listens on: on 127.0.0.1 as a sidecar, on every interface in the
    /// Deployment (its Service's port 2525 leads to it).
    #[serde(default = "defaults::relay_port")]
    #[schemars(range(min = 1, max = 65535))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self >= 1 && self <= 65535", "message": "port must be between 1 and 65535"}]))]
    pub port: u16,
    /// Replicas of the Deployment `<name>-relay` behind its ClusterIP Service, for a listmonk
    /// that cannot take a sidecar. 0: no Deployment, the relay runs only as listmonk's
    /// sidecar (docs/relay.md).
    #[serde(default = "defaults::relay_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Secret key holding lines of `user:password` that senders log in with (AUTH PLAIN or
    /// LOGIN). Required when `replicas` is above 0; the sidecar, reachable only from its
    /// own pod, asks for no login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Secret of type kubernetes.io/tls whose certificate the Deployment's relay offers with
    /// STARTTLS (and then requires before a login); no STARTTLS when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tls_secret_name: Option<String>,
    /// Also record the upstream's temporary refusals (`4xx`) as soft bounces. They are
    /// always counted in the metrics; listmonk's own retries are not bounces.
    #[serde(default)]
    pub record_temporary_failures: bool,
    /// Largest message accepted, in bytes (advertised with SIZE; larger ones get
    /// `552 5.3.4`). 10 MiB when absent, 64 KiB to 1 GiB.
    #[serde(default = "defaults::max_message_bytes")]
    #[schemars(range(min = 65536, max = 1073741824))]
    pub max_message_bytes: u64,
    /// Most recipients of one message.
    #[serde(default = "defaults::smtp_max_recipients")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_recipients: u32,
    /// Most sessions one relay serves at once; more wait for a free one.
    #[serde(default = "defaults::smtp_max_sessions")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_sessions: u32,
    /// How long the relay waits for each command of the sender, e.g. `5m`. 1s to 1h.
    #[serde(default = "defaults::smtp_command_timeout")]
    #[schemars(length(min = 1, max = 64))]
    pub command_timeout: String,
    /// CPU and memory of each relay (the Deployment's and the sidecar's). Absent: requests
    /// 50m CPU and 32Mi memory, limit 128Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// The SMTP server the relay hands each message to.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.usernameSecretRef) == has(self.passwordSecretRef)", "message": "usernameSecretRef and passwordSecretRef go together"}
]))]
pub struct RelayUpstreamSpec {
    /// Host name or address of the SMTP server, e.g. `smtp.example.com`.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port: 587 (submission, STARTTLS) when absent; 465 for implicit TLS, 25 for a
    /// relay inside the network.
    #[serde(default = "defaults::relay_upstream_port")]
    #[schemars(range(min = 1, max = 65535))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self >= 1 && self <= 65535", "message": "port must be between 1 and 65535"}]))]
    pub port: u16,
    /// `starttls` (the default), `tls` (implicit TLS) or `none`. The certificate is always
    /// verified, against the system's roots or `caSecretRef`.
    #[serde(default = "defaults::relay_upstream_tls")]
    pub tls: TlsMode,
    /// Secret key holding PEM certificates of the authorities the upstream's certificate is
    /// verified against, for a server with a private CA; the system's roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretRef>,
    /// Secret key holding the login name (AUTH PLAIN or LOGIN); no login when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretRef>,
    /// Secret key holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretRef>,
    /// Most connections each relay keeps open to the upstream.
    #[serde(default = "defaults::relay_pool_size")]
    #[schemars(range(min = 1, max = 100))]
    pub pool_size: u32,
    /// How long the relay waits for each of the upstream's answers (connecting included),
    /// e.g. `30s`; past it the sender is told `451 4.4.1` and nothing is recorded. 1s to 1h.
    #[serde(default = "defaults::relay_upstream_timeout")]
    #[schemars(length(min = 1, max = 64))]
    pub timeout: String,
}
