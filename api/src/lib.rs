//! The `BounceConfig` custom resource (`bounceops.io/v1alpha1`).
//!
//! This crate is the one definition of the resource: the operator generates the CRD from
//! these types and reconciles them, and the worker reads the very same YAML from a file.
//! Field names are a public contract (see DESIGN §6): add fields freely, rename none.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod decode;
pub mod defaults;
pub mod durations;
pub mod providers;
pub mod reasons;
pub mod relay;
pub mod role;
pub mod secret_refs;
pub mod smtp;
pub mod validate;

pub use providers::{
    AzureProvider, ForwardemailProvider, LettermintProvider, MailgunProvider, PostmarkProvider,
    ResendProvider, SendgridProvider, SesProvider, TokenAuthProvider,
};
pub mod status;

pub use reasons::{REASONS, ReasonRule, ReasonType};
pub use relay::{RelaySpec, RelayUpstreamSpec};
pub use role::Role;
pub use smtp::{ServiceType, SmtpServiceSpec, SmtpSpec};
pub use status::{BounceConfigStatus, Condition, ConditionStatus, RelayStatus, WorkloadStatus};
pub use validate::{Problem, validate};

/// How one BounceOps installation processes bounces: where to store them, which rules to
/// apply, which providers and mailboxes feed it, and how the workers run.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "bounceops.io",
    version = "v1alpha1",
    kind = "BounceConfig",
    namespaced,
    status = "BounceConfigStatus",
    shortname = "bcfg",
    category = "bounceops",
    doc = "How one BounceOps installation processes bounces: the database and listmonk's rules, the provider webhooks and bounce mailboxes that feed it, and how its workers run.",
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether every worker is ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Webhook URL","type":"string","description":"Where providers send bounces","jsonPath":".status.webhookUrl"}"#,
    printcolumn = r#"{"name":"Mailboxes","type":"integer","description":"Mailboxes scanned","jsonPath":".status.mailboxes"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.relay) || has(self.smtp)", "message": "relay needs smtp: its return paths are the bounce MX's signed VERP addresses"},
    {"rule": "!has(self.relay) || !has(self.smtp) || self.relay.returnPathDomain in self.smtp.domains", "message": "relay.returnPathDomain must be one of smtp.domains"}
]))]
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
    /// Which provider webhooks are accepted; an enabled provider needs its secret.
    #[serde(default)]
    #[schemars(transform = providers::required_secret_rules)]
    pub providers: ProvidersSpec,
    /// Bounce mailboxes scanned over POP3 or IMAP; names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub mailboxes: Vec<MailboxSpec>,
    /// The webhook workload.
    #[serde(default)]
    pub webhook: WebhookSpec,
    /// The bounce MX: SMTP workers that receive bounce mail addressed to signed VERP
    /// return paths and bounce addresses. No SMTP workers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSpec>,
    /// The sending relay between listmonk and its SMTP server: it gives each message a
    /// signed VERP return path of the bounce MX and records the upstream's refusals as
    /// bounces. Needs `smtp`. No relay when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelaySpec>,
    /// Metrics scraping.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// What is kept of each bounce's origin (the bounce mail, the provider's JSON event),
    /// served at `GET /api/bounces/{id}/message`, and for how long.
    #[serde(default)]
    pub evidence: EvidenceSpec,
    /// How long the bounces that never reach listmonk's `bounces` are kept: those of unknown
    /// subscribers (`bounceops.unmatched`, served at `GET /api/unmatched`) and those whose
    /// reason `rules.reasons` ignores (`bounceops.ignored`, `GET /api/ignored`).
    #[serde(default)]
    pub retention: RetentionSpec,
    /// The worker image (`repository:tag` or `repository@digest`). Absent: the operator's
    /// default, set by its `--worker-image` flag (the Helm chart's `worker.image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
}

/// CPU and memory for a worker container, as in a Kubernetes container's `resources`
/// (quantities such as `100m`, `128Mi`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Resources {
    /// Guaranteed amounts, e.g. `{cpu: 50m, memory: 64Mi}`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 64}))]
    pub requests: std::collections::BTreeMap<String, String>,
    /// Upper bounds, e.g. `{memory: 256Mi}`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 64}))]
    pub limits: std::collections::BTreeMap<String, String>,
}

/// A reference to one key of a Kubernetes Secret. In a cluster the operator mounts the
/// Secret; the worker reads the file `<secrets-dir>/<name>/<key>`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret, in the BounceConfig's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Where bounces are stored.
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
    /// Upper bound of connections each worker opens; at least 2.
    #[serde(default = "defaults::max_connections")]
    #[schemars(range(min = 2, max = 1000))]
    pub max_connections: u32,
}

/// Which tables the worker expects: listmonk's own, or listmonk-shaped ones it creates.
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
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self >= 1 && self <= 1000", "message": "count must be between 1 and 1000"}]))]
    pub count: u32,
    /// What happens to the subscriber at that count: none, unsubscribe, blocklist or delete.
    pub action: Action,
}

/// Thresholds and actions per bounce type (listmonk's semantics by default).
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
    /// Count only bounces newer than this duration (e.g. `720h` or `30d`; longer than zero).
    /// Absent: every bounce counts, as in listmonk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub window: Option<String>,
    /// Keep storing bounces once the threshold is passed (listmonk stops storing them).
    #[serde(default)]
    pub record_after_threshold: bool,
    /// Rules by reason: a bounce whose reason (the classifier's, docs/reasons.md) is a key
    /// here counts as the `type` given instead of the type it was reported with; with
    /// `type: ignore` it is neither counted nor acted upon nor stored in listmonk's
    /// `bounces`, only kept in `bounceops.ignored`. E.g.
    /// `{blocked: {type: ignore}, mailboxfull: {type: soft}}`. Bounces without a reason,
    /// or with one not listed, count as their own type. Empty by default, as in listmonk;
    /// docs/reasons.md proposes a profile for sender-side reasons.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = REASONS.len(),
        "x-kubernetes-validations" = [{"rule": reasons::cel_rule(), "message": reasons::UNKNOWN_REASON}]
    ))]
    pub reasons: std::collections::BTreeMap<String, ReasonRule>,
}

impl Default for RulesSpec {
    fn default() -> Self {
        RulesSpec {
            soft: defaults::soft_rule(),
            hard: defaults::hard_rule(),
            complaint: defaults::complaint_rule(),
            window: None,
            record_after_threshold: false,
            reasons: Default::default(),
        }
    }
}

/// Credentials of the generic webhook and the bounce API.
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
    /// Amazon SES through SNS, `POST /webhooks/service/ses`.
    #[serde(default)]
    pub ses: SesProvider,
    /// SendGrid's signed Event Webhook, `POST /webhooks/service/sendgrid`.
    #[serde(default)]
    pub sendgrid: SendgridProvider,
    /// Postmark's bounce and spam-complaint webhooks, `POST /webhooks/service/postmark`.
    #[serde(default)]
    pub postmark: PostmarkProvider,
    /// Forward Email's bounce webhook, `POST /webhooks/service/forwardemail`.
    #[serde(default)]
    pub forwardemail: ForwardemailProvider,
    /// Mailgun's event webhooks, `POST /webhooks/service/mailgun`.
    #[serde(default)]
    pub mailgun: MailgunProvider,
    /// Lettermint's webhooks, `POST /webhooks/service/lettermint`.
    #[serde(default)]
    pub lettermint: LettermintProvider,
    /// Azure Communication Services via Event Grid, `POST /webhooks/service/azure`.
    #[serde(default)]
    pub azure: AzureProvider,
    /// Resend's webhooks (signed by Svix), `POST /webhooks/service/resend`.
    #[serde(default)]
    pub resend: ResendProvider,
    /// Brevo's transactional webhooks, `POST /webhooks/service/brevo`.
    #[serde(default)]
    pub brevo: TokenAuthProvider,
    /// Mailjet's event webhooks, `POST /webhooks/service/mailjet`.
    #[serde(default)]
    pub mailjet: TokenAuthProvider,
    /// SparkPost's webhooks, `POST /webhooks/service/sparkpost`.
    #[serde(default)]
    pub sparkpost: TokenAuthProvider,
}

/// listmonk's generic bounce webhook; it authenticates with `api.credentialsSecretRef`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct GenericProvider {
    /// Accept `POST /webhooks/bounce`.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
}

impl Default for GenericProvider {
    fn default() -> Self {
        GenericProvider { enabled: true }
    }
}

/// How the mailbox is read.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MailboxProtocol {
    Pop3,
    Imap,
}

/// Transport security: `tls` (implicit TLS, e.g. 995/993), `starttls`, or `none`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Tls,
    Starttls,
    None,
}

/// How the worker logs in: `userpass` (POP3 `USER`/`PASS`, IMAP `LOGIN`) with the username and
/// password Secrets.
///
/// There is no `none`: POP3 has no unauthenticated state that reaches mail (RFC 1939), and
/// IMAP's only login-free path, a `PREAUTH` greeting, is offered on connections the server
/// already trusts (a local pipe, an SSH tunnel), never on the TCP port a worker connects
/// to. A mailbox without a login could only fail, so the value is refused up front rather
/// than at every scan. The field stays, as the place for a future method (e.g. XOAUTH2).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MailboxAuth {
    #[default]
    Userpass,
}

/// A bounce mailbox. Only messages whose bounce was committed are removed from it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.moveTo) || self.protocol == 'imap'", "message": "moveTo is for IMAP mailboxes only"},
    {"rule": "!has(self.moveTo) || self.moveTo.trim() != ''", "message": "moveTo must not be blank"},
    {"rule": "!has(self.moveTo) || (self.moveTo != (has(self.folder) ? self.folder : 'INBOX') && !(self.moveTo.lowerAscii() == 'inbox' && (has(self.folder) ? self.folder : 'INBOX').lowerAscii() == 'inbox'))", "message": "moveTo must differ from folder (INBOX in any case is one folder)"}
]))]
pub struct MailboxSpec {
    /// Unique within the BounceConfig; names the mailbox in logs and metrics.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// `pop3` or `imap`.
    pub protocol: MailboxProtocol,
    /// Host name or address of the mail server.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port, e.g. 995 (POP3 over TLS) or 993 (IMAP over TLS).
    #[schemars(range(min = 1, max = 65535))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self >= 1 && self <= 65535", "message": "port must be between 1 and 65535"}]))]
    pub port: u16,
    /// `tls`, `starttls` or `none`.
    #[serde(default)]
    pub tls: TlsMode,
    /// Accept any server certificate (for self-signed test servers only).
    #[serde(default)]
    pub tls_skip_verify: bool,
    /// `userpass`, the only method: every POP3 and IMAP server asks for a login.
    #[serde(default)]
    pub auth: MailboxAuth,
    /// Secret key holding the login name.
    pub username_secret_ref: SecretRef,
    /// Secret key holding the password.
    pub password_secret_ref: SecretRef,
    /// IMAP folder to scan.
    #[serde(default = "defaults::inbox")]
    #[schemars(length(min = 1, max = 255))]
    pub folder: String,
    /// IMAP only: move each message whose bounce was recorded into this folder (created
    /// when missing) instead of deleting it. Absent: the message is flagged \Deleted and
    /// expunged. An ASCII name, in the server's hierarchy (e.g. `INBOX.Processed` on
    /// servers that keep folders under INBOX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub move_to: Option<String>,
    /// Time between scans, e.g. `15m` or `1h30m`; at least `1s`.
    #[serde(default = "defaults::scan_interval")]
    #[schemars(length(min = 1, max = 64))]
    pub scan_interval: String,
    /// Most messages read in one scan; the rest wait for the next one.
    #[serde(default = "defaults::max_messages_per_scan")]
    #[schemars(range(min = 1))]
    pub max_messages_per_scan: u32,
    /// Largest message downloaded, in bytes (the size the server lists: POP3 `LIST`, IMAP
    /// `RFC822.SIZE`); 10 MiB when absent, at least 64 KiB, at most 1 GiB. A larger message
    /// is never downloaded: it is left in place (IMAP with `moveTo`: moved there), counted
    /// once as `kind="oversized"`, and logged once. It bounds the scanner's memory.
    #[serde(default = "defaults::max_message_bytes")]
    #[schemars(range(min = 65536, max = 1073741824))]
    pub max_message_bytes: u64,
}

/// The webhook workers: a Deployment behind a Service, optionally an Ingress.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// Webhook worker replicas; above 1 a PodDisruptionBudget keeps one up.
    #[serde(default = "defaults::replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Largest request body accepted, in bytes; larger ones get 413. At least 1024.
    #[serde(default = "defaults::max_body_bytes")]
    #[schemars(range(min = 1024))]
    pub max_body_bytes: u64,
    /// Expose the webhooks outside the cluster, for providers.
    #[serde(default)]
    pub ingress: IngressSpec,
    /// CPU and memory of each webhook worker. Absent: requests 50m CPU and 64Mi memory,
    /// limit 256Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

impl Default for WebhookSpec {
    fn default() -> Self {
        WebhookSpec {
            replicas: defaults::replicas(),
            max_body_bytes: defaults::max_body_bytes(),
            ingress: IngressSpec::default(),
            resources: None,
        }
    }
}

/// An Ingress routing `/webhooks` to the webhook Service.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "!has(self.enabled) || !self.enabled || has(self.host)", "message": "an enabled ingress needs a host"}]))]
pub struct IngressSpec {
    /// Create the Ingress.
    #[serde(default)]
    pub enabled: bool,
    /// Public host name providers post to, e.g. bounces.example.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
    /// IngressClass to use; the cluster's default class when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,
    /// Secret of type kubernetes.io/tls with the host's certificate; plain HTTP when absent.
    /// With cert-manager, name the Secret it should create and set its annotation below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tls_secret_name: Option<String>,
    /// Annotations put on the Ingress, for the ingress controller or cert-manager, e.g.
    /// `cert-manager.io/cluster-issuer: letsencrypt`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// How Prometheus finds the workers' `/metrics`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Create a ServiceMonitor (when the Prometheus operator's CRD exists).
    #[serde(default)]
    pub service_monitor: bool,
}

/// The evidence kept with each bounce: the bounce mail a mailbox received (served as
/// `message/rfc822`) or the provider's original JSON event (`application/json`), compressed,
/// stored beside listmonk's bounce row in `bounceops.evidence` and purged by the workers.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceSpec {
    /// Days each original is kept, then the workers delete it; 0 keeps none (and deletes
    /// what was kept before).
    #[serde(default = "defaults::evidence_keep_days")]
    #[schemars(range(min = 0, max = 3650))]
    pub keep_days: u32,
    /// Most bytes kept of one original, before compression (1 MiB when absent, 1 KiB to
    /// 64 MiB). Of a larger original the first `maxBytes` bytes are kept, served with
    /// `BounceOps-Evidence-Truncated: true`.
    #[serde(default = "defaults::evidence_max_bytes")]
    #[schemars(range(min = 1024, max = 67108864))]
    pub max_bytes: u64,
}

impl Default for EvidenceSpec {
    fn default() -> Self {
        EvidenceSpec {
            keep_days: defaults::evidence_keep_days(),
            max_bytes: defaults::evidence_max_bytes(),
        }
    }
}

/// Days the workers keep the bounces that stay in their own tables, counted from when a
/// worker received each one; then they delete it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Days a bounce of an unknown subscriber is kept in `bounceops.unmatched` (90 when
    /// absent, 1 to 3650): time to find why it matched no one (a wrong database, a subscriber
    /// deleted too early).
    #[serde(default = "defaults::unmatched_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub unmatched_days: u32,
    /// Days a bounce whose reason is ignored is kept in `bounceops.ignored` (30 when absent,
    /// 1 to 3650): the record of a sender-side incident, such as a block listing.
    #[serde(default = "defaults::ignored_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub ignored_days: u32,
    /// Days an event the database refused to store is kept in `bounceops.dead_letters` (30
    /// when absent, 1 to 3650), served by `GET /api/dead-letters`.
    #[serde(default = "defaults::dead_letter_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub dead_letter_days: u32,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        RetentionSpec {
            unmatched_days: defaults::unmatched_days(),
            ignored_days: defaults::ignored_days(),
            dead_letter_days: defaults::dead_letter_days(),
        }
    }
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
        assert!(spec.rules.reasons.is_empty());
        assert_eq!(spec.database.schema, DatabaseSchema::Listmonk);
        assert!(spec.providers.generic.enabled);
        assert_eq!(spec.webhook.max_body_bytes, 1 << 20);
        assert_eq!(spec.evidence.keep_days, 30);
        assert_eq!(spec.evidence.max_bytes, 1 << 20);
        assert_eq!(spec.retention.unmatched_days, 90);
        assert_eq!(spec.retention.ignored_days, 30);
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
    reasons:
      blocked: {type: ignore}
      mailboxfull: {type: soft}
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
        assert_eq!(
            cfg.spec.rules.reasons["blocked"].treat_as,
            ReasonType::Ignore
        );
        assert_eq!(
            cfg.spec.rules.reasons["mailboxfull"].treat_as,
            ReasonType::Soft
        );
        assert_eq!(cfg.spec.mailboxes[0].protocol, MailboxProtocol::Pop3);
        assert_eq!(cfg.spec.mailboxes[0].folder, "INBOX");
        assert_eq!(cfg.spec.mailboxes[0].max_message_bytes, 10 << 20);
        assert_eq!(cfg.spec.webhook.replicas, 2);
        assert!(cfg.spec.metrics.service_monitor);
    }
}
