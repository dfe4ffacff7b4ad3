//! Phase 3, "build": the children a BounceConfig should have, as a pure function of the
//! resource, the resolved Secret versions and the operator's settings.
//!
//! Every child kind the operator can create is listed in [`ChildKind`]; each build
//! function below makes one of them. A kind that is not wanted for this spec is returned
//! in `prune`, so the apply phase removes what an earlier spec created.

use std::collections::BTreeMap;

use bounceops_api::{BounceConfig, SmtpSpec};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec, SleepAction, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::secrets::{refs_for_role, secret_names};

mod relay;
pub use relay::{
    RELAY_CONTAINER, RELAY_SERVICE_PORT, RELAY_SIDECAR_OPS_PORT, SIDECAR_VOLUME_PREFIX,
    relay_service_address, sidecar_container, sidecar_patch, sidecar_volumes,
};

/// Where the worker finds its files; the same paths the worker's flags name.
pub const CONFIG_DIR: &str = "/etc/bounceops";
pub const CONFIG_FILE: &str = "config.yaml";
pub const SECRETS_DIR: &str = "/var/run/bounceops/secrets";
pub const HTTP_PORT: i32 = 8080;
/// The SMTP Service's port: where MTAs deliver (the container listens on `spec.smtp.port`).
pub const SMTP_SERVICE_PORT: i32 = 25;
/// What the SMTP workers' metrics Service adds to the config's name; the longest suffix of
/// any child, so it bounds the config's name (`validate::max_name_len`).
pub const SMTP_METRICS_SUFFIX: &str = "smtp-metrics";
/// Annotation of every child: a hash of the rest of its desired object. The apply phase
/// sends a child only when the cluster's copy lacks something of the desired object
/// (`apply::contains`), which cannot see a field the desired object no longer has (an
/// annotation or a resource limit removed from the spec): this hash changes with every
/// change of the desired object, removals included, so such a child is applied, and
/// server-side apply removes the fields the operator no longer sets.
pub const DESIRED_HASH_ANNOTATION: &str = "bounceops.io/desired-hash";
/// Pod-template annotation whose change rolls the pods.
pub const HASH_ANNOTATION: &str = "bounceops.io/config-hash";
/// UID and GID of the non-root user the worker runs as.
const WORKER_UID: i64 = 65532;

/// Settings of the operator that shape every child (flags of `bounce-operator`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Worker image, e.g. `ghcr.io/bounceops/bounce-worker:0.1.0`.
    pub worker_image: String,
    /// `imagePullPolicy` of the worker containers; `None`: the cluster's default (which
    /// pulls `:latest` always and other tags when missing). `Never` for images loaded into
    /// the nodes by hand, as on clusters without a registry.
    pub worker_image_pull_policy: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            worker_image: default_worker_image(),
            worker_image_pull_policy: None,
        }
    }
}

pub fn default_worker_image() -> String {
    format!(
        "ghcr.io/bounceops/bounce-worker:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Kinds of children, in the order they are applied (config before the pods that read
/// it, the Service before the Ingress that points at it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildKind {
    ConfigMap,
    WebhookDeployment,
    WebhookService,
    MailboxDeployment,
    /// Headless: only so that a ServiceMonitor finds the scanner's `/metrics`.
    MailboxService,
    /// The bounce MX's workers (`spec.smtp`).
    SmtpDeployment,
    /// Port 25, of `spec.smtp.service.type`: what the bounce domains' MX records point at.
    SmtpService,
    /// Headless: the SMTP workers' `/metrics` for a ServiceMonitor, kept off the SMTP
    /// Service, which may be a LoadBalancer facing the internet.
    SmtpMetricsService,
    /// The sending relay's workers (`spec.relay` with replicas), for a listmonk that
    /// cannot take the relay as its sidecar.
    RelayDeployment,
    /// ClusterIP: where listmonk sends mail (port 2525), and the relay's `/metrics`.
    RelayService,
    Ingress,
    PodDisruptionBudget,
    SmtpPodDisruptionBudget,
    RelayPodDisruptionBudget,
    ServiceMonitor,
}

impl ChildKind {
    pub const ALL: [ChildKind; 15] = [
        ChildKind::ConfigMap,
        ChildKind::WebhookDeployment,
        ChildKind::WebhookService,
        ChildKind::MailboxDeployment,
        ChildKind::MailboxService,
        ChildKind::SmtpDeployment,
        ChildKind::SmtpService,
        ChildKind::SmtpMetricsService,
        ChildKind::RelayDeployment,
        ChildKind::RelayService,
        ChildKind::Ingress,
        ChildKind::PodDisruptionBudget,
        ChildKind::SmtpPodDisruptionBudget,
        ChildKind::RelayPodDisruptionBudget,
        ChildKind::ServiceMonitor,
    ];

    /// The child's name for a BounceConfig named `owner`.
    pub fn name(self, owner: &str) -> String {
        match self {
            ChildKind::ConfigMap => format!("{owner}-config"),
            ChildKind::MailboxDeployment | ChildKind::MailboxService => format!("{owner}-mailbox"),
            ChildKind::SmtpDeployment
            | ChildKind::SmtpService
            | ChildKind::SmtpPodDisruptionBudget => format!("{owner}-smtp"),
            ChildKind::SmtpMetricsService => format!("{owner}-{SMTP_METRICS_SUFFIX}"),
            ChildKind::RelayDeployment
            | ChildKind::RelayService
            | ChildKind::RelayPodDisruptionBudget => format!("{owner}-relay"),
            ChildKind::WebhookDeployment
            | ChildKind::WebhookService
            | ChildKind::Ingress
            | ChildKind::PodDisruptionBudget
            | ChildKind::ServiceMonitor => format!("{owner}-webhook"),
        }
    }

    /// Whether the child is a worker Deployment, whose replicas the status reports.
    pub fn is_deployment(self) -> bool {
        matches!(
            self,
            ChildKind::WebhookDeployment
                | ChildKind::MailboxDeployment
                | ChildKind::SmtpDeployment
                | ChildKind::RelayDeployment
        )
    }

    pub fn api_resource(self) -> ApiResource {
        match self {
            ChildKind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            ChildKind::WebhookDeployment
            | ChildKind::MailboxDeployment
            | ChildKind::SmtpDeployment
            | ChildKind::RelayDeployment => ApiResource::erase::<Deployment>(&()),
            ChildKind::WebhookService
            | ChildKind::MailboxService
            | ChildKind::SmtpService
            | ChildKind::SmtpMetricsService
            | ChildKind::RelayService => ApiResource::erase::<Service>(&()),
            ChildKind::Ingress => ApiResource::erase::<Ingress>(&()),
            ChildKind::PodDisruptionBudget
            | ChildKind::SmtpPodDisruptionBudget
            | ChildKind::RelayPodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
            ChildKind::ServiceMonitor => service_monitor_resource(),
        }
    }
}

/// The Prometheus operator's ServiceMonitor, which has no Rust type in k8s-openapi.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

/// One child to create or update: its kind, name and full object (apiVersion and kind
/// included, ready for server-side apply).
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub kind: ChildKind,
    pub name: String,
    pub object: Value,
}

/// Everything the build phase decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub apply: Vec<Child>,
    /// Kinds this spec does not want; any such child owned by the config is deleted.
    pub prune: Vec<(ChildKind, String)>,
    /// Hash of the rendered config and the Secret versions (also in the pod templates).
    pub hash: String,
    /// Where providers post webhooks.
    pub webhook_url: String,
    /// Replicas asked for, per Deployment.
    pub webhook_replicas: i32,
    pub mailbox_replicas: Option<i32>,
    /// `None` without `spec.smtp`.
    pub smtp_replicas: Option<i32>,
    /// `None` without a relay Deployment (no `spec.relay`, or its replicas 0: the relay
    /// runs only as listmonk's sidecar, which the operator does not see).
    pub relay_replicas: Option<i32>,
}

/// Inputs of the build phase.
pub struct Inputs<'a> {
    pub config: &'a BounceConfig,
    /// Secret name -> resourceVersion of every referenced Secret.
    pub secret_versions: &'a BTreeMap<String, String>,
    /// Whether the cluster serves `monitoring.coreos.com/v1` ServiceMonitors.
    pub service_monitor_crd: bool,
    pub settings: &'a Settings,
}

/// The pure build: same inputs, same children, byte for byte.
pub fn build(inputs: &Inputs<'_>) -> Desired {
    let cfg = inputs.config;
    let spec = &cfg.spec;
    let owner = cfg.name_any();
    let config_yaml = render_config(cfg);
    // Scaling must not restart every pod: the worker never reads webhook.replicas, so the
    // hash is taken over the config with it pinned.
    let mut unscaled = cfg.clone();
    unscaled.spec.webhook.replicas = 0;
    if let Some(smtp) = &mut unscaled.spec.smtp {
        smtp.replicas = 0;
    }
    if let Some(relay) = &mut unscaled.spec.relay {
        relay.replicas = 0;
    }
    let hash = config_hash(&render_config(&unscaled), inputs.secret_versions);
    let webhook_replicas = if spec.enabled {
        spec.webhook.replicas
    } else {
        0
    };
    let mailbox_replicas = (!spec.mailboxes.is_empty()).then_some(if spec.enabled { 1 } else { 0 });
    let smtp_replicas = spec
        .smtp
        .as_ref()
        .map(|s| if spec.enabled { s.replicas } else { 0 });
    let relay_replicas = spec
        .relay
        .as_ref()
        .filter(|r| r.replicas > 0)
        .map(|r| if spec.enabled { r.replicas } else { 0 });

    let mut wanted: BTreeMap<ChildKind, Value> = BTreeMap::new();
    wanted.insert(ChildKind::ConfigMap, config_map(cfg, &config_yaml));
    wanted.insert(
        ChildKind::WebhookDeployment,
        deployment(cfg, inputs.settings, Role::Webhook, webhook_replicas, &hash),
    );
    wanted.insert(ChildKind::WebhookService, service(cfg, Role::Webhook));
    if let Some(r) = mailbox_replicas {
        wanted.insert(
            ChildKind::MailboxDeployment,
            deployment(cfg, inputs.settings, Role::Mailbox, r, &hash),
        );
        wanted.insert(ChildKind::MailboxService, service(cfg, Role::Mailbox));
    }
    if let (Some(smtp), Some(r)) = (&spec.smtp, smtp_replicas) {
        wanted.insert(
            ChildKind::SmtpDeployment,
            deployment(cfg, inputs.settings, Role::Smtp, r, &hash),
        );
        wanted.insert(ChildKind::SmtpService, smtp_service(cfg, smtp));
        wanted.insert(ChildKind::SmtpMetricsService, service(cfg, Role::Smtp));
        if r > 1 {
            wanted.insert(ChildKind::SmtpPodDisruptionBudget, pdb(cfg, Role::Smtp));
        }
    }
    if let Some(r) = relay_replicas {
        wanted.insert(
            ChildKind::RelayDeployment,
            deployment(cfg, inputs.settings, Role::Relay, r, &hash),
        );
        wanted.insert(ChildKind::RelayService, service(cfg, Role::Relay));
        if r > 1 {
            wanted.insert(ChildKind::RelayPodDisruptionBudget, pdb(cfg, Role::Relay));
        }
    }
    if spec.webhook.ingress.enabled {
        wanted.insert(ChildKind::Ingress, ingress(cfg));
    }
    if webhook_replicas > 1 {
        wanted.insert(ChildKind::PodDisruptionBudget, pdb(cfg, Role::Webhook));
    }
    if spec.metrics.service_monitor && inputs.service_monitor_crd {
        wanted.insert(ChildKind::ServiceMonitor, service_monitor(cfg));
    }

    let mut apply = Vec::new();
    let mut prune = Vec::new();
    for kind in ChildKind::ALL {
        let name = kind.name(&owner);
        match wanted.remove(&kind) {
            Some(mut object) => {
                stamp_desired_hash(&mut object);
                apply.push(Child { kind, name, object })
            }
            // Without the CRD no ServiceMonitor can exist, and the server answers a request
            // for one with a plain 404 for the whole resource type.
            None if kind == ChildKind::ServiceMonitor && !inputs.service_monitor_crd => {}
            None => prune.push((kind, name)),
        }
    }
    Desired {
        apply,
        prune,
        hash,
        webhook_url: webhook_url(cfg),
        webhook_replicas,
        mailbox_replicas,
        smtp_replicas,
        relay_replicas,
    }
}

/// Puts [`DESIRED_HASH_ANNOTATION`] on a desired object.
fn stamp_desired_hash(object: &mut Value) {
    let digest = Sha256::digest(object.to_string().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    object["metadata"]["annotations"][DESIRED_HASH_ANNOTATION] = Value::String(hex);
}

/// The worker's config file: the resource itself, metadata trimmed to name and
/// namespace. Secrets appear only as references, so the ConfigMap holds no secret.
pub fn render_config(cfg: &BounceConfig) -> String {
    let doc = json!({
        "apiVersion": BounceConfig::api_version(&()),
        "kind": BounceConfig::kind(&()),
        "metadata": {"name": cfg.name_any(), "namespace": cfg.namespace()},
        "spec": cfg.spec,
    });
    let mut text = String::from(
        "# Rendered by bounce-operator from the BounceConfig; edits are overwritten.\n",
    );
    text.push_str(&serde_yaml::to_string(&doc).expect("config serializes to YAML"));
    text
}

/// sha256 over the rendered config and every Secret's resourceVersion, shortened: a
/// change to either changes the pod template, and the Deployment rolls its pods.
pub fn config_hash(config_yaml: &str, secret_versions: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(config_yaml.as_bytes());
    for (name, version) in secret_versions {
        h.update(b"\0");
        h.update(name.as_bytes());
        h.update(b"=");
        h.update(version.as_bytes());
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn webhook_url(cfg: &BounceConfig) -> String {
    let ingress = &cfg.spec.webhook.ingress;
    match (&ingress.host, ingress.enabled) {
        (Some(host), true) => {
            let scheme = if ingress.tls_secret_name.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}/webhooks")
        }
        _ => format!(
            "http://{}.{}.svc/webhooks",
            ChildKind::WebhookService.name(&cfg.name_any()),
            cfg.namespace().unwrap_or_else(|| "default".into())
        ),
    }
}

/// The worker's roles, one Deployment each (the one enum, shared with the worker's `--role`).
pub use bounceops_api::Role;

/// The Deployment of a role.
fn deployment_kind(role: Role) -> ChildKind {
    match role {
        Role::Webhook => ChildKind::WebhookDeployment,
        Role::Mailbox => ChildKind::MailboxDeployment,
        Role::Smtp => ChildKind::SmtpDeployment,
        Role::Relay => ChildKind::RelayDeployment,
    }
}

/// Labels that select one component's pods; stable for the Deployment's life (a
/// Deployment's selector is immutable), so no version in here.
fn selector_labels(cfg: &BounceConfig, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "bounce-worker".into()),
        ("app.kubernetes.io/instance".into(), cfg.name_any()),
        ("app.kubernetes.io/component".into(), component.into()),
    ])
}

fn labels(cfg: &BounceConfig, component: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(cfg, component);
    l.insert("app.kubernetes.io/part-of".into(), "bounceops".into());
    l.insert("app.kubernetes.io/managed-by".into(), crate::MANAGER.into());
    l
}

fn meta(cfg: &BounceConfig, kind: ChildKind, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(kind.name(&cfg.name_any())),
        namespace: cfg.namespace(),
        labels: Some(labels(cfg, component)),
        owner_references: Some(vec![owner_reference(cfg)]),
        ..ObjectMeta::default()
    }
}

fn owner_reference(cfg: &BounceConfig) -> OwnerReference {
    OwnerReference {
        api_version: BounceConfig::api_version(&()).into_owned(),
        kind: BounceConfig::kind(&()).into_owned(),
        name: cfg.name_any(),
        uid: cfg.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Typed object -> JSON with apiVersion and kind, as server-side apply wants it.
fn to_value<K: Resource<DynamicType = ()> + serde::Serialize>(obj: &K) -> Value {
    let mut v = serde_json::to_value(obj).expect("k8s object serializes");
    let map = v.as_object_mut().expect("object");
    map.insert("apiVersion".into(), K::api_version(&()).into());
    map.insert("kind".into(), K::kind(&()).into());
    v
}

fn config_map(cfg: &BounceConfig, yaml: &str) -> Value {
    to_value(&ConfigMap {
        metadata: meta(cfg, ChildKind::ConfigMap, "config"),
        data: Some(BTreeMap::from([(CONFIG_FILE.into(), yaml.into())])),
        ..ConfigMap::default()
    })
}

/// Volume names must be DNS labels while Secret names may be longer subdomains: a short
/// hash of the name keeps them valid and stable.
fn secret_volume_name(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    let hex: String = d[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("secret-{hex}")
}

/// Seconds a terminating webhook pod keeps serving before it is sent SIGTERM.
pub const DRAIN_SECONDS: i64 = 5;

/// A webhook pod that is being deleted leaves the Service's endpoints at once, but each
/// node's kube-proxy (or an ingress controller) stops sending it connections only when it
/// has seen that, a moment later. Stopping at once on SIGTERM refuses the connections of
/// that moment: the cluster suite saw senders' requests fail while pods rolled. A preStop
/// sleep (no shell needed: the kubelet sleeps) keeps it serving meanwhile; the worker then
/// drains in-flight requests on SIGTERM as before. The SMTP workers take connections the
/// same way (an MTA refused would only retry later, but need not), and so does the relay's
/// Deployment (listmonk would log a failed send). The mailbox scanner takes no traffic.
fn drain_delay(role: Role) -> Option<Lifecycle> {
    (role != Role::Mailbox).then(|| Lifecycle {
        pre_stop: Some(LifecycleHandler {
            sleep: Some(SleepAction {
                seconds: DRAIN_SECONDS,
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    })
}

/// The files a worker reads: its config, a writable `/tmp`, and its role's Secrets, each at
/// `<SECRETS_DIR>/<secret name>`. Volume names start with `prefix`, so that in listmonk's
/// pod (the relay's sidecar form) they cannot meet listmonk's own.
struct WorkerFiles {
    pub volumes: Vec<Volume>,
    /// The worker container's mounts.
    pub mounts: Vec<VolumeMount>,
    /// The migrate init container's: the config and the database's Secret only.
    pub migrate_mounts: Vec<VolumeMount>,
}

/// `secret_mode`: the Secret files' mode, readable by the worker's user (see the callers).
fn worker_files(cfg: &BounceConfig, role: Role, prefix: &str, secret_mode: i32) -> WorkerFiles {
    let secrets = secret_names(&refs_for_role(&cfg.spec, role));
    let mut volumes = vec![
        Volume {
            name: format!("{prefix}config"),
            config_map: Some(ConfigMapVolumeSource {
                name: ChildKind::ConfigMap.name(&cfg.name_any()),
                items: Some(vec![KeyToPath {
                    key: CONFIG_FILE.into(),
                    path: CONFIG_FILE.into(),
                    mode: None,
                }]),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: format!("{prefix}tmp"),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let database_secret = cfg.spec.database.url_secret_ref.as_ref().map(|r| &r.name);
    let base_mounts = vec![
        VolumeMount {
            name: format!("{prefix}config"),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: format!("{prefix}tmp"),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        },
    ];
    let mut mounts = base_mounts.clone();
    let mut migrate_mounts = base_mounts;
    for s in &secrets {
        let name = format!("{prefix}{}", secret_volume_name(s));
        volumes.push(Volume {
            name: name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.clone()),
                default_mode: Some(secret_mode),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        let mount = VolumeMount {
            name,
            mount_path: format!("{SECRETS_DIR}/{s}"),
            read_only: Some(true),
            ..VolumeMount::default()
        };
        if database_secret == Some(s) {
            migrate_mounts.push(mount.clone());
        }
        mounts.push(mount);
    }
    WorkerFiles {
        volumes,
        mounts,
        migrate_mounts,
    }
}

fn http_probe(path: &str, port: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        ..Probe::default()
    }
}

/// No privilege, no writable root, no capability: the worker needs none.
fn worker_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// The worker container of one role as its Deployment runs it (the relay's sidecar is
/// made from the relay's, see [`sidecar_container`]).
fn worker_container(
    cfg: &BounceConfig,
    settings: &Settings,
    role: Role,
    mounts: Vec<VolumeMount>,
) -> Container {
    Container {
        name: "worker".into(),
        image: Some(
            cfg.spec
                .image
                .clone()
                .unwrap_or_else(|| settings.worker_image.clone()),
        ),
        image_pull_policy: settings.worker_image_pull_policy.clone(),
        args: Some(run_args(
            cfg,
            role,
            &format!("0.0.0.0:{HTTP_PORT}"),
            "0.0.0.0",
        )),
        ports: Some(container_ports(cfg, role)),
        readiness_probe: Some(http_probe("/readyz", "http", 5)),
        liveness_probe: Some(http_probe("/healthz", "http", 10)),
        lifecycle: drain_delay(role),
        resources: Some(resources(cfg, role)),
        security_context: Some(worker_security_context()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

fn deployment(
    cfg: &BounceConfig,
    settings: &Settings,
    role: Role,
    replicas: i32,
    hash: &str,
) -> Value {
    let kind = deployment_kind(role);
    let component = role.as_str();
    // Group-readable, and the pod's fsGroup is the worker's group: the non-root worker can
    // read the files, nobody else can.
    let files = worker_files(cfg, role, "", 0o440);
    let container = worker_container(cfg, settings, role, files.mounts);

    // The worker's schema must exist before the worker is ready. Every pod migrates first:
    // migrations are idempotent and serialised by an advisory lock, so replicas starting
    // together are safe, and no separate Job has to be ordered before the Deployment.
    // `migrate` reads the config and the database's Secret only, so it mounts nothing else
    // (no API credentials, no provider keys, no mailbox passwords).
    let migrate = Container {
        name: "migrate".into(),
        args: Some(
            [
                "migrate",
                "--config",
                &format!("{CONFIG_DIR}/{CONFIG_FILE}"),
                "--secrets-dir",
                SECRETS_DIR,
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        ports: None,
        readiness_probe: None,
        liveness_probe: None,
        lifecycle: None,
        volume_mounts: Some(files.migrate_mounts),
        ..container.clone()
    };

    let mut pod_labels = labels(cfg, component);
    pod_labels.remove("app.kubernetes.io/managed-by");
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(BTreeMap::from([(HASH_ANNOTATION.into(), hash.into())])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            init_containers: Some(vec![migrate]),
            containers: vec![container],
            volumes: Some(files.volumes),
            // The worker never talks to the Kubernetes API.
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(WORKER_UID),
                run_as_group: Some(WORKER_UID),
                fs_group: Some(WORKER_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
    };
    to_value(&Deployment {
        metadata: meta(cfg, kind, component),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(cfg, component)),
                ..LabelSelector::default()
            },
            // Two scanners of one mailbox must never overlap, even during a rollout
            // (the advisory lock makes it safe, Recreate makes it quiet).
            strategy: (role == Role::Mailbox).then(|| DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

/// `bounce-worker run` for one role, its ops endpoints on `ops_listen`; the SMTP role also
/// listens for mail on its port, the relay on its port of `relay_host` (all interfaces in
/// its Deployment, 127.0.0.1 as listmonk's sidecar).
fn run_args(cfg: &BounceConfig, role: Role, ops_listen: &str, relay_host: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--config",
        &format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        "--secrets-dir",
        SECRETS_DIR,
        "--listen",
        ops_listen,
        "--role",
        role.as_str(),
    ]
    .map(str::to_owned)
    .to_vec();
    match (role, &cfg.spec.smtp, &cfg.spec.relay) {
        (Role::Smtp, Some(smtp), _) => {
            args.push("--smtp-listen".into());
            args.push(format!("0.0.0.0:{}", smtp.port));
        }
        (Role::Relay, _, Some(relay)) => {
            args.push("--relay-listen".into());
            args.push(format!("{relay_host}:{}", relay.port));
        }
        _ => {}
    }
    args
}

fn container_port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// Every role serves `/metrics` and its probes on `http`; the SMTP role takes mail on
/// `smtp`, the relay on `submission`.
fn container_ports(cfg: &BounceConfig, role: Role) -> Vec<ContainerPort> {
    let mut ports = vec![container_port("http", HTTP_PORT)];
    match (role, &cfg.spec.smtp, &cfg.spec.relay) {
        (Role::Smtp, Some(smtp), _) => {
            ports.push(container_port("smtp", i32::from(smtp.port)));
        }
        (Role::Relay, _, Some(relay)) => {
            ports.push(container_port(
                relay::SUBMISSION_PORT_NAME,
                i32::from(relay.port),
            ));
        }
        _ => {}
    }
    ports
}

/// The webhook workers' resources come from `spec.webhook.resources` when given; the
/// defaults suit one worker's idle footprint (about 15 MiB) with room for bursts. The
/// scanner's memory limit grows with the largest message it may download
/// ([`memory_limit_mib`]), so that a mailbox allowed larger mail does not get it OOM-killed
/// on every scan.
/// The SMTP workers take `spec.smtp.resources` the same way, their memory limit growing
/// with `spec.smtp.maxMessageBytes` as the scanner's does: the messages they hold at once
/// are bounded by it (worker/src/smtp/memory.rs). The relay takes
/// `spec.relay.resources`, with smaller defaults: it streams too, and as a sidecar it sits
/// in every listmonk pod.
fn resources(cfg: &BounceConfig, role: Role) -> ResourceRequirements {
    let quantities = |m: &BTreeMap<String, String>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let given = match role {
        Role::Webhook => cfg.spec.webhook.resources.as_ref(),
        Role::Smtp => cfg.spec.smtp.as_ref().and_then(|s| s.resources.as_ref()),
        Role::Relay => cfg.spec.relay.as_ref().and_then(|r| r.resources.as_ref()),
        Role::Mailbox => None,
    };
    let (memory_request, memory_limit_mib) = match role {
        Role::Relay => ("32Mi", 128),
        Role::Webhook | Role::Smtp | Role::Mailbox => ("64Mi", memory_limit_mib(cfg, role)),
    };
    match given {
        Some(r) => ResourceRequirements {
            requests: quantities(&r.requests),
            limits: quantities(&r.limits),
            ..ResourceRequirements::default()
        },
        _ => ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("50m".into())),
                ("memory".into(), Quantity(memory_request.into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".into(),
                Quantity(format!("{memory_limit_mib}Mi")),
            )])),
            ..ResourceRequirements::default()
        },
    }
}

/// 256 MiB, or 64 MiB plus sixteen times the largest message the role may hold when that
/// is more: classifying a hostile message takes about eleven times its size (a 10 MiB
/// plain-text report), and besides the one classified the bounce MX holds four at most
/// (worker/src/smtp/memory.rs), the scanner one's worth for every mailbox together
/// (`mailbox::scan::downloads_budget`).
fn memory_limit_mib(cfg: &BounceConfig, role: Role) -> u64 {
    const DEFAULT_MIB: u64 = 256;
    let largest = match role {
        Role::Webhook | Role::Relay => 0,
        Role::Smtp => cfg.spec.smtp.as_ref().map_or(0, |s| s.max_message_bytes),
        Role::Mailbox => cfg
            .spec
            .mailboxes
            .iter()
            .map(|m| m.max_message_bytes)
            .max()
            .unwrap_or(0),
    };
    DEFAULT_MIB.max(64 + (16 * largest).div_ceil(1 << 20))
}

fn service(cfg: &BounceConfig, role: Role) -> Value {
    let (kind, port, cluster_ip) = match role {
        Role::Webhook => (ChildKind::WebhookService, 80, None),
        // Nobody calls the scanner; Prometheus scrapes each pod through the endpoints.
        Role::Mailbox => (
            ChildKind::MailboxService,
            HTTP_PORT,
            Some("None".to_owned()),
        ),
        // Only Prometheus reads this one; mail comes through [`smtp_service`].
        Role::Smtp => (
            ChildKind::SmtpMetricsService,
            HTTP_PORT,
            Some("None".to_owned()),
        ),
        // Mail and metrics on one ClusterIP Service: it never faces the internet.
        Role::Relay => return relay::service(cfg),
    };
    to_value(&Service {
        metadata: meta(cfg, kind, role.as_str()),
        spec: Some(ServiceSpec {
            cluster_ip,
            selector: Some(selector_labels(cfg, role.as_str())),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The bounce MX's Service: port 25 only, so a LoadBalancer publishes SMTP and nothing of
/// the worker's HTTP (metrics, probes) to the internet.
fn smtp_service(cfg: &BounceConfig, smtp: &SmtpSpec) -> Value {
    let component = Role::Smtp.as_str();
    let annotations = &smtp.service.annotations;
    to_value(&Service {
        metadata: ObjectMeta {
            // For a cloud's load balancer (internal or external, its address, ...).
            annotations: (!annotations.is_empty()).then(|| annotations.clone()),
            ..meta(cfg, ChildKind::SmtpService, component)
        },
        spec: Some(ServiceSpec {
            type_: Some(smtp.service.type_.as_str().into()),
            selector: Some(selector_labels(cfg, component)),
            ports: Some(vec![ServicePort {
                name: Some("smtp".into()),
                port: SMTP_SERVICE_PORT,
                target_port: Some(IntOrString::String("smtp".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

fn ingress(cfg: &BounceConfig) -> Value {
    let spec = &cfg.spec.webhook.ingress;
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: ChildKind::WebhookService.name(&cfg.name_any()),
            port: Some(ServiceBackendPort {
                name: Some("http".into()),
                ..ServiceBackendPort::default()
            }),
        }),
        ..IngressBackend::default()
    };
    to_value(&Ingress {
        metadata: ObjectMeta {
            // For the ingress controller and cert-manager (e.g. its cluster-issuer).
            annotations: (!spec.annotations.is_empty()).then(|| spec.annotations.clone()),
            ..meta(cfg, ChildKind::Ingress, "webhook")
        },
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            // Only the webhooks face the internet; the bounce API stays in the cluster.
            rules: Some(vec![IngressRule {
                host: spec.host.clone(),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/webhooks".into()),
                        path_type: "Prefix".into(),
                        backend,
                    }],
                }),
            }]),
            tls: spec.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: spec.host.clone().map(|h| vec![h]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

fn pdb(cfg: &BounceConfig, role: Role) -> Value {
    let kind = match role {
        Role::Smtp => ChildKind::SmtpPodDisruptionBudget,
        Role::Relay => ChildKind::RelayPodDisruptionBudget,
        Role::Webhook | Role::Mailbox => ChildKind::PodDisruptionBudget,
    };
    to_value(&PodDisruptionBudget {
        metadata: meta(cfg, kind, role.as_str()),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cfg, role.as_str())),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

fn service_monitor(cfg: &BounceConfig) -> Value {
    let ar = service_monitor_resource();
    let meta = serde_json::to_value(meta(cfg, ChildKind::ServiceMonitor, "webhook"))
        .expect("metadata serializes");
    // Every component: the webhook Service and, with mailboxes or the bounce MX, their
    // headless metrics Services, and the relay's Service (its `http` port). The SMTP
    // Service matches too but has no `http` port, so it yields no target.
    let mut selector = selector_labels(cfg, "webhook");
    selector.remove("app.kubernetes.io/component");
    json!({
        "apiVersion": ar.api_version,
        "kind": ar.kind,
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    })
}

#[cfg(test)]
mod tests;
