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
    Ingress,
    PodDisruptionBudget,
    SmtpPodDisruptionBudget,
    ServiceMonitor,
}

impl ChildKind {
    pub const ALL: [ChildKind; 12] = [
        ChildKind::ConfigMap,
        ChildKind::WebhookDeployment,
        ChildKind::WebhookService,
        ChildKind::MailboxDeployment,
        ChildKind::MailboxService,
        ChildKind::SmtpDeployment,
        ChildKind::SmtpService,
        ChildKind::SmtpMetricsService,
        ChildKind::Ingress,
        ChildKind::PodDisruptionBudget,
        ChildKind::SmtpPodDisruptionBudget,
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
            ChildKind::WebhookDeployment | ChildKind::MailboxDeployment | ChildKind::SmtpDeployment
        )
    }

    pub fn api_resource(self) -> ApiResource {
        match self {
            ChildKind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            ChildKind::WebhookDeployment
            | ChildKind::MailboxDeployment
            | ChildKind::SmtpDeployment => ApiResource::erase::<Deployment>(&()),
            ChildKind::WebhookService
            | ChildKind::MailboxService
            | ChildKind::SmtpService
            | ChildKind::SmtpMetricsService => ApiResource::erase::<Service>(&()),
            ChildKind::Ingress => ApiResource::erase::<Ingress>(&()),
            ChildKind::PodDisruptionBudget | ChildKind::SmtpPodDisruptionBudget => {
                ApiResource::erase::<PodDisruptionBudget>(&())
            }
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
/// same way (an MTA refused would only retry later, but need not). The mailbox scanner
/// takes no traffic.
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

fn deployment(
    cfg: &BounceConfig,
    settings: &Settings,
    role: Role,
    replicas: i32,
    hash: &str,
) -> Value {
    let kind = deployment_kind(role);
    let component = role.as_str();
    let secrets = secret_names(&refs_for_role(&cfg.spec, role));

    let mut volumes = vec![
        Volume {
            name: "config".into(),
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
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let database_secret = cfg.spec.database.url_secret_ref.as_ref().map(|r| &r.name);
    let base_mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        },
    ];
    let mut mounts = base_mounts.clone();
    let mut migrate_mounts = base_mounts;
    for s in &secrets {
        let name = secret_volume_name(s);
        volumes.push(Volume {
            name: name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.clone()),
                // Group-readable, and the pod's fsGroup is the worker's group: the
                // non-root worker can read the files, nobody else can.
                default_mode: Some(0o440),
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

    let probe = |path: &str, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        ..Probe::default()
    };
    let container = Container {
        name: "worker".into(),
        image: Some(
            cfg.spec
                .image
                .clone()
                .unwrap_or_else(|| settings.worker_image.clone()),
        ),
        image_pull_policy: settings.worker_image_pull_policy.clone(),
        args: Some(run_args(cfg, role)),
        ports: Some(container_ports(cfg, role)),
        readiness_probe: Some(probe("/readyz", 5)),
        liveness_probe: Some(probe("/healthz", 10)),
        lifecycle: drain_delay(role),
        resources: Some(resources(cfg, role)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

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
        volume_mounts: Some(migrate_mounts),
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
            volumes: Some(volumes),
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

/// `bounce-worker run` for one role; the SMTP role also listens for mail on its port.
fn run_args(cfg: &BounceConfig, role: Role) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--config",
        &format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        "--secrets-dir",
        SECRETS_DIR,
        "--listen",
        &format!("0.0.0.0:{HTTP_PORT}"),
        "--role",
        role.as_str(),
    ]
    .map(str::to_owned)
    .to_vec();
    if let (Role::Smtp, Some(smtp)) = (role, &cfg.spec.smtp) {
        args.push("--smtp-listen".into());
        args.push(format!("0.0.0.0:{}", smtp.port));
    }
    args
}

/// Every role serves `/metrics` and its probes on `http`; the SMTP role takes mail on `smtp`.
fn container_ports(cfg: &BounceConfig, role: Role) -> Vec<ContainerPort> {
    let port = |name: &str, number: i32| ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    let mut ports = vec![port("http", HTTP_PORT)];
    if let (Role::Smtp, Some(smtp)) = (role, &cfg.spec.smtp) {
        ports.push(port("smtp", i32::from(smtp.port)));
    }
    ports
}

/// The webhook workers' resources come from `spec.webhook.resources` when given; the
/// defaults suit one worker's idle footprint (about 15 MiB) with room for bursts. The
/// scanner's memory limit grows with the largest message it may download: a scan holds
/// about 30 MiB plus six times `maxMessageBytes` at its peak (BENCHMARKS.md), so a limit
/// fixed at 256 MiB would get it OOM-killed on every scan of a mailbox allowed larger mail.
/// The SMTP workers take `spec.smtp.resources` the same way, with the webhook's defaults:
/// they stream DATA with bounded memory whatever `maxMessageBytes` allows.
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
        Role::Mailbox => None,
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
                ("memory".into(), Quantity("64Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".into(),
                Quantity(format!("{}Mi", memory_limit_mib(cfg, role))),
            )])),
            ..ResourceRequirements::default()
        },
    }
}

/// 256 MiB, or for the scanner 64 MiB plus eight times its largest `maxMessageBytes`
/// when that is more.
fn memory_limit_mib(cfg: &BounceConfig, role: Role) -> u64 {
    const DEFAULT_MIB: u64 = 256;
    let largest = match role {
        Role::Webhook | Role::Smtp => 0,
        Role::Mailbox => cfg
            .spec
            .mailboxes
            .iter()
            .map(|m| m.max_message_bytes)
            .max()
            .unwrap_or(0),
    };
    DEFAULT_MIB.max(64 + (8 * largest).div_ceil(1 << 20))
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
    // headless metrics Services. The SMTP Service matches too but has no `http` port, so
    // it yields no target.
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
