//! The `BounceConfig` custom resource (`bounceops.io/v1alpha1`).
//!
//! This crate is the one definition of the resource: the operator generates the CRD from
//! these types and reconciles them, and the worker reads the very same YAML from a file.
//! Field names are a public contract (see DESIGN §6): add fields freely, rename none.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod defaults;

/// How one BounceOps installation processes bounces: where to store them, which rules to
/// apply, which providers and mailboxes feed it, and how the workers run.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "bounceops.io",
    version = "v1alpha1",
    kind = "BounceConfig",
    namespaced,
    status = "BounceConfigStatus",
    shortname = "bcfg"
)]
#[serde(rename_all = "camelCase")]
pub struct BounceConfigSpec {
    /// When false the workers are scaled to zero and nothing is processed.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// The Postgres database that holds listmonk's tables (or standalone ones).
    pub database: DatabaseSpec,
    /// Thresholds and actions per bounce type; listmonk's defaults when absent.
    #[serde(default)]
    pub rules: RulesSpec,
    /// Credentials of the generic webhook and the bounce API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiSpec>,
    /// Which provider webhooks are accepted.
    #[serde(default)]
    pub providers: ProvidersSpec,
    /// Bounce mailboxes scanned over POP3 or IMAP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mailboxes: Vec<MailboxSpec>,
    /// The webhook workload.
    #[serde(default)]
    pub webhook: WebhookSpec,
    /// Metrics scraping.
    #[serde(default)]
    pub metrics: MetricsSpec,
}

/// A reference to one key of a Kubernetes Secret. In a cluster the operator mounts the
/// Secret; the worker reads the file `<secrets-dir>/<name>/<key>`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret, in the BounceConfig's namespace.
    pub name: String,
    /// Key inside the Secret.
    pub key: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Secret key holding a `postgres://` URL. `DATABASE_URL` in the worker's environment
    /// overrides it (for local runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretRef>,
    /// `listmonk`: use listmonk's existing tables. `standalone`: the worker's migration also
    /// creates listmonk-shaped tables (for senders without listmonk, demos and tests).
    #[serde(default)]
    pub schema: DatabaseSchema,
    /// Upper bound of connections each worker opens.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseSchema {
    #[default]
    Listmonk,
    Standalone,
}

/// What to do with a subscriber whose bounces of one type reach a count.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Record the bounce, change nothing.
    #[default]
    None,
    /// Unsubscribe the subscriber from every list.
    Unsubscribe,
    /// Set the subscriber's status to blocklisted.
    Blocklist,
    /// Delete the subscriber (its bounces and list memberships go with it).
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Unsubscribe => "unsubscribe",
            Action::Blocklist => "blocklist",
            Action::Delete => "delete",
        }
    }
}

/// One threshold: when the subscriber's bounces of this type reach `count`, apply `action`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub struct Rule {
    /// Number of bounces (this one included) at which the action applies; 1 to 1000.
    #[schemars(range(min = 1, max = 1000))]
    pub count: u32,
    pub action: Action,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RulesSpec {
    /// Transient failures (4.x.x). listmonk's default: 2, none.
    #[serde(default = "defaults::soft_rule")]
    pub soft: Rule,
    /// Permanent failures (5.x.x). listmonk's default: 1, blocklist.
    #[serde(default = "defaults::hard_rule")]
    pub hard: Rule,
    /// Spam complaints. listmonk's default: 1, blocklist.
    #[serde(default = "defaults::complaint_rule")]
    pub complaint: Rule,
    /// Count only bounces newer than this duration (e.g. `720h`). Absent: every bounce
    /// counts, as in listmonk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Keep storing bounces once the threshold is passed (listmonk stops storing them).
    #[serde(default)]
    pub record_after_threshold: bool,
}

impl Default for RulesSpec {
    fn default() -> Self {
        RulesSpec {
            soft: defaults::soft_rule(),
            hard: defaults::hard_rule(),
            complaint: defaults::complaint_rule(),
            window: None,
            record_after_threshold: false,
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiSpec {
    /// Secret key holding lines of `user:token`; any of them may call the generic webhook
    /// and the bounce API (as `Authorization: token user:token` or Basic).
    pub credentials_secret_ref: SecretRef,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ProvidersSpec {
    /// listmonk's generic bounce webhook, `POST /webhooks/bounce`.
    #[serde(default)]
    pub generic: GenericProvider,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct GenericProvider {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
}

impl Default for GenericProvider {
    fn default() -> Self {
        GenericProvider { enabled: true }
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MailboxProtocol {
    Pop3,
    Imap,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Tls,
    Starttls,
    None,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MailboxAuth {
    #[default]
    Userpass,
    None,
}

/// A bounce mailbox. Only messages whose bounce was committed are removed from it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxSpec {
    /// Unique within the BounceConfig; names the mailbox in logs and metrics.
    pub name: String,
    pub protocol: MailboxProtocol,
    pub host: String,
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    #[serde(default)]
    pub tls: TlsMode,
    #[serde(default)]
    pub tls_skip_verify: bool,
    #[serde(default)]
    pub auth: MailboxAuth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretRef>,
    /// IMAP folder to scan.
    #[serde(default = "defaults::inbox")]
    pub folder: String,
    /// Time between scans, e.g. `15m`.
    #[serde(default = "defaults::scan_interval")]
    pub scan_interval: String,
    #[serde(default = "defaults::max_messages_per_scan")]
    pub max_messages_per_scan: u32,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// Webhook worker replicas.
    #[serde(default = "defaults::replicas")]
    pub replicas: i32,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: u64,
    #[serde(default)]
    pub ingress: IngressSpec,
}

impl Default for WebhookSpec {
    fn default() -> Self {
        WebhookSpec {
            replicas: defaults::replicas(),
            max_body_bytes: defaults::max_body_bytes(),
            ingress: IngressSpec::default(),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Create a ServiceMonitor (when the Prometheus operator's CRD exists).
    #[serde(default)]
    pub service_monitor: bool,
}

/// What the operator observed; written by the operator only.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BounceConfigStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_spec_gets_listmonk_defaults() {
        let spec: BounceConfigSpec =
            serde_yaml::from_str("database: {urlSecretRef: {name: db, key: url}}").unwrap();
        assert!(spec.enabled);
        assert_eq!(
            spec.rules.soft,
            Rule {
                count: 2,
                action: Action::None
            }
        );
        assert_eq!(
            spec.rules.hard,
            Rule {
                count: 1,
                action: Action::Blocklist
            }
        );
        assert_eq!(
            spec.rules.complaint,
            Rule {
                count: 1,
                action: Action::Blocklist
            }
        );
        assert_eq!(spec.rules.window, None);
        assert!(!spec.rules.record_after_threshold);
        assert_eq!(spec.database.schema, DatabaseSchema::Listmonk);
        assert!(spec.providers.generic.enabled);
        assert_eq!(spec.webhook.max_body_bytes, 1 << 20);
    }

    #[test]
    fn design_example_parses() {
        let yaml = r#"
apiVersion: bounceops.io/v1alpha1
kind: BounceConfig
metadata: {name: newsletter, namespace: mail}
spec:
  enabled: true
  database:
    urlSecretRef: {name: listmonk-db, key: url}
    schema: listmonk
  rules:
    soft:      {count: 2, action: none}
    hard:      {count: 1, action: blocklist}
    complaint: {count: 1, action: blocklist}
    window: 720h
    recordAfterThreshold: false
  api:
    credentialsSecretRef: {name: bounce-api, key: credentials}
  mailboxes:
    - name: bounces
      protocol: pop3
      host: pop.example.com
      port: 995
      tls: tls
      usernameSecretRef: {name: mailbox, key: username}
      passwordSecretRef: {name: mailbox, key: password}
  webhook:
    replicas: 2
    ingress: {enabled: true, host: bounces.example.com, className: nginx, tlsSecretName: bounces-tls}
  metrics: {serviceMonitor: true}
"#;
        let cfg: BounceConfig = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(cfg.spec.rules.window.as_deref(), Some("720h"));
        assert_eq!(cfg.spec.mailboxes[0].protocol, MailboxProtocol::Pop3);
        assert_eq!(cfg.spec.mailboxes[0].folder, "INBOX");
        assert_eq!(cfg.spec.webhook.replicas, 2);
        assert!(cfg.spec.metrics.service_monitor);
    }
}
