//! The sending relay's two forms (`spec.relay`, docs/relay.md): its own Deployment behind a
//! ClusterIP Service, and a native sidecar in listmonk's pod. Both containers come from the
//! one rendering of the relay's worker container, so what `bounce-operator relay-sidecar`
//! prints for listmonk's Deployment is what the operator would run itself, and the docs'
//! YAML is tested against it.

use k8s_openapi::api::core::v1::{
    Container, Probe, SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::{
    ChildKind, HTTP_PORT, Role, Settings, WORKER_UID, container_port, http_probe, meta, run_args,
    selector_labels, to_value, worker_container, worker_files, worker_security_context,
};
use bounceops_api::BounceConfig;

/// The relay Service's port, where listmonk (or any sender in the cluster) submits mail.
pub const RELAY_SERVICE_PORT: i32 = 2525;
/// The container port the relay takes mail on, in its Deployment.
pub const SUBMISSION_PORT_NAME: &str = "submission";
/// The sidecar's name in listmonk's pod.
pub const RELAY_CONTAINER: &str = "bounce-relay";
/// The sidecar's ops port (probes, `/metrics`): not listmonk's 9000, nor the Deployment's
/// 8080, which other sidecars of a listmonk pod (proxies, exporters) often take.
pub const RELAY_SIDECAR_OPS_PORT: i32 = 9125;
/// The sidecar's ops port's name; unique in a pod whose listmonk container has its own
/// `http`.
pub const SIDECAR_OPS_PORT_NAME: &str = "relay-metrics";
/// Start of the sidecar's volume names in listmonk's pod.
pub const SIDECAR_VOLUME_PREFIX: &str = "bounceops-";

/// Where listmonk reaches the relay's Deployment: `<name>-relay.<namespace>.svc:2525`.
pub fn relay_service_address(cfg: &BounceConfig) -> String {
    format!(
        "{}.{}.svc:{RELAY_SERVICE_PORT}",
        ChildKind::RelayService.name(&cfg.name_any()),
        cfg.namespace().unwrap_or_else(|| "default".into())
    )
}

/// The relay's ClusterIP Service: mail on 2525, and `http` for the ServiceMonitor, as the
/// webhook's Service has it. Never a LoadBalancer: the relay sends mail as the domain's
/// owner, so it is for senders inside the cluster only.
pub(super) fn service(cfg: &BounceConfig) -> Value {
    let component = Role::Relay.as_str();
    let port = |name: &str, number: i32| ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    to_value(&Service {
        metadata: meta(cfg, ChildKind::RelayService, component),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(cfg, component)),
            ports: Some(vec![
                port(SUBMISSION_PORT_NAME, RELAY_SERVICE_PORT),
                port("http", HTTP_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The mode of the Secret files in listmonk's pod. The Deployment's 0440 relies on the
/// pod's fsGroup being the worker's group, and listmonk's pod is not ours to give one;
/// readable by every user is safe here because a Secret volume is seen only by the
/// containers that mount it, and only the relay's does.
const SIDECAR_SECRET_MODE: i32 = 0o444;

/// The volumes the sidecar mounts, to add to listmonk's pod: the config, `/tmp`, and the
/// relay's Secrets only, each named with [`SIDECAR_VOLUME_PREFIX`].
pub fn sidecar_volumes(cfg: &BounceConfig) -> Vec<Volume> {
    worker_files(cfg, Role::Relay, SIDECAR_VOLUME_PREFIX, SIDECAR_SECRET_MODE).volumes
}

/// The relay as a native sidecar of listmonk's pod (an init container that keeps running,
/// Kubernetes 1.29 and later): the relay Deployment's container, listening on 127.0.0.1,
/// its ops port moved off listmonk's, and with the security its pod cannot give it.
pub fn sidecar_container(cfg: &BounceConfig, settings: &Settings) -> Container {
    let files = worker_files(cfg, Role::Relay, SIDECAR_VOLUME_PREFIX, SIDECAR_SECRET_MODE);
    let relay = worker_container(cfg, settings, Role::Relay, files.mounts);
    let ops = SIDECAR_OPS_PORT_NAME;
    Container {
        name: RELAY_CONTAINER.into(),
        // What makes an init container a sidecar: started before listmonk, kept running
        // beside it, stopped after it.
        restart_policy: Some("Always".into()),
        args: Some(run_args(
            cfg,
            Role::Relay,
            &format!("0.0.0.0:{RELAY_SIDECAR_OPS_PORT}"),
            "127.0.0.1",
        )),
        ports: Some(vec![container_port(ops, RELAY_SIDECAR_OPS_PORT)]),
        // listmonk starts only once the relay answers, so its first send finds it.
        startup_probe: Some(Probe {
            failure_threshold: Some(30),
            ..http_probe("/healthz", ops, 2)
        }),
        liveness_probe: Some(http_probe("/healthz", ops, 10)),
        // A sidecar's readiness is its pod's: a relay that is not ready (its database
        // down) must not take listmonk's web UI out of its Service.
        readiness_probe: None,
        // Sidecars are stopped after listmonk has exited: nothing left to drain for.
        lifecycle: None,
        security_context: Some(SecurityContext {
            run_as_user: Some(WORKER_UID),
            run_as_group: Some(WORKER_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..worker_security_context()
        }),
        ..relay
    }
}

/// The strategic-merge patch that adds the sidecar to listmonk's Deployment
/// (`kubectl patch deployment listmonk --patch-file`): init containers and volumes merge
/// by name, so applying it again changes nothing, and an updated one replaces the relay.
pub fn sidecar_patch(cfg: &BounceConfig, settings: &Settings) -> Value {
    json!({
        "spec": {"template": {"spec": {
            "initContainers": [sidecar_container(cfg, settings)],
            "volumes": sidecar_volumes(cfg),
        }}}
    })
}
