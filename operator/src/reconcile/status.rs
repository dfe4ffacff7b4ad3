//! Phase 5, "status": what the BounceConfig's `status` should say, computed purely from
//! the earlier phases, and the write that replaces it only when it changed.
//!
//! Conditions (see docs/operator.md): Ready, Progressing, Degraded, and
//! ServiceMonitorReady when `metrics.serviceMonitor` is set, IngressReady with an enabled
//! Ingress, SMTPServiceReady with a LoadBalancer bounce MX, RelayReady with a relay
//! Deployment. A condition keeps its
//! lastTransitionTime while its status stays the same, so an unchanged world yields an
//! identical status and no write.

use std::collections::BTreeMap;

use bounceops_api::{
    BounceConfig, BounceConfigStatus, Condition, ConditionStatus, RelayStatus, WorkloadStatus,
};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use super::apply::DeploymentState;
use super::desired::ChildKind;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const SERVICE_MONITOR_READY: &str = "ServiceMonitorReady";
pub const INGRESS_READY: &str = "IngressReady";
pub const SMTP_SERVICE_READY: &str = "SMTPServiceReady";
pub const RELAY_READY: &str = "RelayReady";

/// Why a config cannot be (fully) reconciled; the reason of the Degraded condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    SecretMissing(String),
    InvalidSpec(String),
    ApplyFailed(String),
    /// Objects with a child's name that this config does not own: left alone.
    Conflict(String),
    /// The API server is older than the oldest Kubernetes supported.
    UnsupportedKubernetesVersion(String),
}

impl Problem {
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::SecretMissing(_) => "SecretMissing",
            Problem::InvalidSpec(_) => "InvalidSpec",
            Problem::ApplyFailed(_) => "ApplyFailed",
            Problem::Conflict(_) => "Conflict",
            Problem::UnsupportedKubernetesVersion(_) => "UnsupportedKubernetesVersion",
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Problem::SecretMissing(m)
            | Problem::InvalidSpec(m)
            | Problem::ApplyFailed(m)
            | Problem::Conflict(m)
            | Problem::UnsupportedKubernetesVersion(m) => m,
        }
    }
}

/// Whether a ServiceMonitor was asked for and could be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceMonitorState {
    NotRequested,
    Created,
    CrdMissing,
}

/// What is known of the Ingress, when the spec asks for one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngressState {
    NotRequested,
    /// `tlsSecretName` names a Secret that does not exist (yet: cert-manager makes it).
    TlsSecretMissing {
        secret: String,
        cert_manager: bool,
    },
    /// No ingress controller has given it an address.
    NoAddress {
        class: Option<String>,
    },
    /// The address its controller reported.
    Admitted(String),
}

/// What is known of the bounce MX's Service, when it is a LoadBalancer (the other types
/// have no address to wait for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmtpServiceState {
    NotRequested,
    /// No load-balancer controller has given it an address (yet).
    Pending {
        service: String,
    },
    /// The address its controller reported: where the MX records point.
    Address {
        service: String,
        address: String,
    },
}

/// Everything the status is computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub generation: Option<i64>,
    pub mailboxes: u32,
    pub problem: Option<Problem>,
    /// Deployment states seen by the apply phase; empty when apply did not run.
    pub deployments: Vec<(ChildKind, String, DeploymentState)>,
    pub service_monitor: ServiceMonitorState,
    pub ingress: IngressState,
    pub smtp_service: SmtpServiceState,
    /// The relay Service's address, when a relay Deployment was applied.
    pub relay_address: Option<String>,
    pub webhook_url: Option<String>,
    /// The Secret versions and hash applied to the workers; `None` when apply did not run.
    pub applied_secrets: Option<(BTreeMap<String, String>, String)>,
    pub enabled: bool,
}

/// The new status. `now` is only used for conditions whose status changed.
pub fn compute(
    prior: Option<&BounceConfigStatus>,
    obs: &Observation,
    now: &str,
) -> BounceConfigStatus {
    let workload = |kind: ChildKind| {
        obs.deployments
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, name, s)| WorkloadStatus {
                name: name.clone(),
                desired_replicas: s.desired,
                ready_replicas: s.ready,
            })
    };
    let applied = !obs.deployments.is_empty();
    // When apply did not run, the workloads are as last seen; say so rather than guess.
    let (webhook, mailbox, smtp, relay) = if applied {
        (
            workload(ChildKind::WebhookDeployment),
            workload(ChildKind::MailboxDeployment),
            workload(ChildKind::SmtpDeployment),
            workload(ChildKind::RelayDeployment).map(|w| RelayStatus {
                name: w.name,
                desired_replicas: w.desired_replicas,
                ready_replicas: w.ready_replicas,
                address: obs.relay_address.clone().unwrap_or_default(),
            }),
        )
    } else {
        (
            prior.and_then(|p| p.webhook.clone()),
            prior.and_then(|p| p.mailbox.clone()),
            prior.and_then(|p| p.smtp.clone()),
            prior.and_then(|p| p.relay.clone()),
        )
    };
    let rolling: Vec<&str> = obs
        .deployments
        .iter()
        .filter(|(_, _, s)| !s.rolled_out())
        .map(|(_, name, _)| name.as_str())
        .collect();

    let mut conds = Vec::new();
    match &obs.problem {
        Some(p) => {
            conds.push((
                DEGRADED,
                ConditionStatus::True,
                p.reason(),
                p.message().to_owned(),
            ));
            conds.push((
                READY,
                ConditionStatus::False,
                p.reason(),
                p.message().to_owned(),
            ));
            conds.push((
                PROGRESSING,
                ConditionStatus::False,
                "Blocked",
                format!("waiting for the {} problem to be fixed", p.reason()),
            ));
        }
        None => {
            conds.push((
                DEGRADED,
                ConditionStatus::False,
                "AsExpected",
                String::new(),
            ));
            if rolling.is_empty() {
                let (reason, message) = if obs.enabled {
                    ("AllWorkersReady", "every worker is ready".to_owned())
                } else {
                    (
                        "Disabled",
                        "spec.enabled is false: workers scaled to zero".to_owned(),
                    )
                };
                conds.push((READY, ConditionStatus::True, reason, message));
                conds.push((
                    PROGRESSING,
                    ConditionStatus::False,
                    "Complete",
                    String::new(),
                ));
            } else {
                let message = format!("not all replicas ready: {}", rolling.join(", "));
                conds.push((
                    READY,
                    ConditionStatus::False,
                    "WorkersUnavailable",
                    message.clone(),
                ));
                conds.push((PROGRESSING, ConditionStatus::True, "RollingOut", message));
            }
        }
    }
    match obs.service_monitor {
        ServiceMonitorState::NotRequested => {}
        ServiceMonitorState::Created => conds.push((
            SERVICE_MONITOR_READY,
            ConditionStatus::True,
            "Created",
            String::new(),
        )),
        ServiceMonitorState::CrdMissing => conds.push((
            SERVICE_MONITOR_READY,
            ConditionStatus::False,
            "CRDNotInstalled",
            "metrics.serviceMonitor is set but the cluster has no monitoring.coreos.com/v1 ServiceMonitor CRD (install the Prometheus operator)".to_owned(),
        )),
    }

    match &obs.ingress {
        IngressState::NotRequested => {}
        IngressState::TlsSecretMissing {
            secret,
            cert_manager,
        } => conds.push((
            INGRESS_READY,
            ConditionStatus::False,
            "TLSSecretMissing",
            if *cert_manager {
                format!("the TLS Secret {secret:?} does not exist yet: cert-manager has not issued the certificate (kubectl describe certificate {secret})")
            } else {
                format!("the TLS Secret {secret:?} (webhook.ingress.tlsSecretName) does not exist: the ingress controller serves no certificate for the host; create it, or let cert-manager make it (webhook.ingress.annotations)")
            },
        )),
        IngressState::NoAddress { class } => conds.push((
            INGRESS_READY,
            ConditionStatus::False,
            "NoAddress",
            format!(
                "no ingress controller has admitted the Ingress yet (no address in its status): is one installed{}? Until then nothing outside the cluster reaches the webhook URL",
                class
                    .as_ref()
                    .map(|c| format!(" for class {c:?}"))
                    .unwrap_or_default()
            ),
        )),
        IngressState::Admitted(address) => conds.push((
            INGRESS_READY,
            ConditionStatus::True,
            "Admitted",
            format!("the ingress controller serves it at {address}"),
        )),
    }

    match &obs.smtp_service {
        SmtpServiceState::NotRequested => {}
        SmtpServiceState::Pending { service } => conds.push((
            SMTP_SERVICE_READY,
            ConditionStatus::False,
            "LoadBalancerPending",
            format!(
                "the LoadBalancer Service {service} has no address yet: no load-balancer controller has given it one (is one installed?). Until then MTAs outside the cluster cannot reach the bounce MX"
            ),
        )),
        SmtpServiceState::Address { service, address } => conds.push((
            SMTP_SERVICE_READY,
            ConditionStatus::True,
            "AddressAssigned",
            format!(
                "the LoadBalancer Service {service} listens on {address}:25: point the bounce domains' MX records at it"
            ),
        )),
    }

    // Apart from Ready, which waits for every replica: whether listmonk's mail is taken. A
    // disabled config's relay has no replica to be ready, and says nothing.
    if let (Some(address), Some(r), true) = (&obs.relay_address, &relay, obs.enabled) {
        conds.push(if r.ready_replicas > 0 {
            (
                RELAY_READY,
                ConditionStatus::True,
                "Serving",
                format!(
                    "the relay takes mail at {address} ({} of {} replicas ready)",
                    r.ready_replicas, r.desired_replicas
                ),
            )
        } else {
            (
                RELAY_READY,
                ConditionStatus::False,
                "NoReplicaReady",
                format!(
                    "no replica of the relay Deployment {} is ready: mail sent to {address} is not taken until one is (kubectl describe deployment {})",
                    r.name, r.name
                ),
            )
        });
    }

    let conditions = conds
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let since = prior
                .and_then(|p| p.condition(type_))
                .filter(|c| c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.to_owned());
            Condition {
                type_: type_.to_owned(),
                status,
                reason: reason.to_owned(),
                message,
                last_transition_time: since,
                observed_generation: obs.generation,
            }
        })
        .collect();

    BounceConfigStatus {
        observed_generation: obs.generation,
        conditions,
        webhook_url: obs
            .webhook_url
            .clone()
            .or_else(|| prior.and_then(|p| p.webhook_url.clone())),
        mailboxes: Some(obs.mailboxes),
        webhook,
        mailbox,
        smtp,
        relay,
        observed_secrets: match &obs.applied_secrets {
            Some((versions, _)) => versions.clone(),
            None => prior
                .map(|p| p.observed_secrets.clone())
                .unwrap_or_default(),
        },
        config_hash: match &obs.applied_secrets {
            Some((_, hash)) => Some(hash.clone()),
            None => prior.and_then(|p| p.config_hash.clone()),
        },
    }
}

/// What [`write_if_changed`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// The status already said this: nothing was sent.
    Unchanged,
    /// Written; the object's resourceVersion after the write.
    Wrote(String),
    /// The object changed after the copy the status was computed from was read: nothing
    /// was written, and a reconcile of the newer copy will decide again.
    Conflict,
}

/// Writes `status` unless it equals `prior` (what the resource has), as the whole status
/// of `config` at `resource_version`.
///
/// The write replaces the status (PUT to the status subresource), so whatever the new
/// status lacks is gone afterwards, however it got there, with no list of fields to keep
/// up to date. Server-side apply would not do: an apply removes only the fields its own
/// manager owned, and the fields an operator before this one wrote by merge patch belong
/// to that patch's Update manager, so an operator upgraded in place would leave them
/// stale for good. The resourceVersion makes the write conditional: the status was
/// computed from the one read (transition times, last seen workloads) and must not
/// overwrite a newer one.
pub async fn write_if_changed(
    client: &Client,
    config: &BounceConfig,
    resource_version: Option<&str>,
    prior: Option<&BounceConfigStatus>,
    status: &BounceConfigStatus,
    metrics: &crate::metrics::Metrics,
) -> Result<Written, kube::Error> {
    if prior == Some(status) {
        return Ok(Written::Unchanged);
    }
    let name = config.name_any();
    let api: Api<BounceConfig> =
        Api::namespaced(client.clone(), &config.namespace().unwrap_or_default());
    // The server takes only the status from this object: spec and metadata stay as
    // stored whatever it says of them.
    let mut body = BounceConfig::new(&name, config.spec.clone());
    body.metadata.resource_version = resource_version.map(str::to_owned);
    body.status = Some(status.clone());
    metrics.write("status");
    let params = PostParams {
        field_manager: Some(crate::MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api.replace_status(&name, &params, &body).await {
        Ok(written) => Ok(Written::Wrote(
            written.resource_version().unwrap_or_default(),
        )),
        Err(kube::Error::Api(s)) if s.is_conflict() => Ok(Written::Conflict),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:05:00Z";

    fn obs() -> Observation {
        Observation {
            generation: Some(3),
            mailboxes: 1,
            problem: None,
            deployments: vec![(
                ChildKind::WebhookDeployment,
                "n-webhook".into(),
                DeploymentState {
                    desired: 2,
                    ready: 2,
                    updated: 2,
                    observed_latest: true,
                },
            )],
            service_monitor: ServiceMonitorState::NotRequested,
            ingress: IngressState::NotRequested,
            smtp_service: SmtpServiceState::NotRequested,
            relay_address: None,
            webhook_url: Some("http://n-webhook.mail.svc/webhooks".into()),
            applied_secrets: Some((
                BTreeMap::from([("db".into(), "41".into())]),
                "0123abcd".into(),
            )),
            enabled: true,
        }
    }

    #[test]
    fn the_ingress_is_reported_as_it_is() {
        let with = |ingress| {
            let o = Observation { ingress, ..obs() };
            let s = compute(None, &o, T0);
            let c = cond(&s, INGRESS_READY).clone();
            (s, c)
        };
        assert!(compute(None, &obs(), T0).condition(INGRESS_READY).is_none());
        let (s, c) = with(IngressState::NoAddress {
            class: Some("nginx".into()),
        });
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::False, "NoAddress")
        );
        assert!(c.message.contains("\"nginx\""), "{}", c.message);
        // The workers are ready whatever the Ingress: listmonk in the cluster reaches them.
        assert_eq!(cond(&s, READY).status, ConditionStatus::True);
        let (_, c) = with(IngressState::TlsSecretMissing {
            secret: "bounces-tls".into(),
            cert_manager: true,
        });
        assert_eq!(c.reason, "TLSSecretMissing");
        assert!(
            c.message.contains("cert-manager has not issued"),
            "{}",
            c.message
        );
        let (_, c) = with(IngressState::Admitted("203.0.113.7".into()));
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::True, "Admitted")
        );
        assert!(c.message.contains("203.0.113.7"));
    }

    #[test]
    fn the_smtp_load_balancer_is_reported_as_it_is() {
        assert!(
            compute(None, &obs(), T0)
                .condition(SMTP_SERVICE_READY)
                .is_none()
        );
        let with = |smtp_service| {
            let o = Observation {
                smtp_service,
                ..obs()
            };
            compute(None, &o, T0)
        };
        let s = with(SmtpServiceState::Pending {
            service: "n-smtp".into(),
        });
        let c = cond(&s, SMTP_SERVICE_READY);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::False, "LoadBalancerPending")
        );
        assert!(c.message.contains("n-smtp"), "{}", c.message);
        // The workers are ready whatever the way in: an MTA in the cluster reaches them.
        assert_eq!(cond(&s, READY).status, ConditionStatus::True);
        let s = with(SmtpServiceState::Address {
            service: "n-smtp".into(),
            address: "203.0.113.25".into(),
        });
        let c = cond(&s, SMTP_SERVICE_READY);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::True, "AddressAssigned")
        );
        assert!(c.message.contains("203.0.113.25:25"), "{}", c.message);
    }

    #[test]
    fn the_relay_deployment_is_reported_with_its_address() {
        let relay_dep = |ready| {
            (
                ChildKind::RelayDeployment,
                "n-relay".to_owned(),
                DeploymentState {
                    desired: 2,
                    ready,
                    updated: 2,
                    observed_latest: true,
                },
            )
        };
        let with = |ready| {
            let mut o = obs();
            o.deployments.push(relay_dep(ready));
            o.relay_address = Some("n-relay.mail.svc:2525".into());
            compute(None, &o, T0)
        };
        // No relay Deployment (none in the spec, or the sidecar form only): nothing said.
        let none = compute(None, &obs(), T0);
        assert!(none.condition(RELAY_READY).is_none());
        assert_eq!(none.relay, None);

        let s = with(2);
        assert_eq!(
            s.relay,
            Some(RelayStatus {
                name: "n-relay".into(),
                desired_replicas: 2,
                ready_replicas: 2,
                address: "n-relay.mail.svc:2525".into(),
            })
        );
        let c = cond(&s, RELAY_READY);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::True, "Serving")
        );
        assert!(c.message.contains("n-relay.mail.svc:2525"), "{}", c.message);
        assert_eq!(cond(&s, READY).status, ConditionStatus::True);

        // One of two: mail is taken, but the config is not Ready until both are.
        let s = with(1);
        assert_eq!(cond(&s, RELAY_READY).status, ConditionStatus::True);
        assert_eq!(cond(&s, READY).reason, "WorkersUnavailable");
        assert!(cond(&s, READY).message.contains("n-relay"));

        let s = with(0);
        let c = cond(&s, RELAY_READY);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::False, "NoReplicaReady")
        );
        assert!(c.message.contains("n-relay.mail.svc:2525"), "{}", c.message);
        assert_eq!(cond(&s, READY).status, ConditionStatus::False);

        // A problem blocks apply: the relay is as last seen, and no RelayReady is claimed.
        let before = with(2);
        let blocked = Observation {
            problem: Some(Problem::SecretMissing("x".into())),
            deployments: Vec::new(),
            applied_secrets: None,
            ..obs()
        };
        let later = compute(Some(&before), &blocked, T1);
        assert_eq!(later.relay, before.relay);
        assert!(later.condition(RELAY_READY).is_none());

        // Disabled: scaled to zero, still at its address, no condition to claim.
        let mut o = obs();
        o.enabled = false;
        o.deployments = vec![(
            ChildKind::RelayDeployment,
            "n-relay".to_owned(),
            DeploymentState {
                desired: 0,
                ready: 0,
                updated: 0,
                observed_latest: true,
            },
        )];
        o.relay_address = Some("n-relay.mail.svc:2525".into());
        let s = compute(None, &o, T0);
        assert_eq!(
            s.relay
                .as_ref()
                .map(|r| (r.desired_replicas, r.address.as_str())),
            Some((0, "n-relay.mail.svc:2525"))
        );
        assert!(s.condition(RELAY_READY).is_none());
        assert_eq!(cond(&s, READY).reason, "Disabled");
    }

    #[test]
    fn the_secrets_applied_are_shown_and_kept_when_apply_did_not_run() {
        let s = compute(None, &obs(), T0);
        assert_eq!(s.observed_secrets.get("db").map(String::as_str), Some("41"));
        assert_eq!(s.config_hash.as_deref(), Some("0123abcd"));
        let blocked = Observation {
            applied_secrets: None,
            problem: Some(Problem::SecretMissing("x".into())),
            ..obs()
        };
        let later = compute(Some(&s), &blocked, T1);
        assert_eq!(later.observed_secrets, s.observed_secrets);
        assert_eq!(later.config_hash, s.config_hash);
    }

    fn cond<'a>(s: &'a BounceConfigStatus, t: &str) -> &'a Condition {
        s.condition(t).unwrap_or_else(|| panic!("no {t} condition"))
    }

    #[test]
    fn all_ready_is_ready_and_not_progressing() {
        let s = compute(None, &obs(), T0);
        assert_eq!(cond(&s, READY).status, ConditionStatus::True);
        assert_eq!(cond(&s, PROGRESSING).status, ConditionStatus::False);
        assert_eq!(cond(&s, DEGRADED).status, ConditionStatus::False);
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.webhook.as_ref().unwrap().ready_replicas, 2);
        assert!(s.condition(SERVICE_MONITOR_READY).is_none());
    }

    #[test]
    fn unready_replicas_mean_progressing_and_workers_unavailable() {
        let mut o = obs();
        o.deployments[0].2.ready = 1;
        let s = compute(None, &o, T0);
        assert_eq!(cond(&s, READY).reason, "WorkersUnavailable");
        assert_eq!(cond(&s, PROGRESSING).status, ConditionStatus::True);
    }

    #[test]
    fn each_problem_is_degraded_with_its_reason_and_keeps_last_workloads() {
        let before = compute(None, &obs(), T0);
        for (p, reason) in [
            (
                Problem::SecretMissing("Secret \"db\" does not exist".into()),
                "SecretMissing",
            ),
            (Problem::InvalidSpec("spec.x".into()), "InvalidSpec"),
            (Problem::ApplyFailed("500".into()), "ApplyFailed"),
            (Problem::Conflict("Service/x".into()), "Conflict"),
        ] {
            let mut o = obs();
            o.problem = Some(p);
            o.deployments.clear();
            let s = compute(Some(&before), &o, T1);
            assert_eq!(cond(&s, DEGRADED).status, ConditionStatus::True);
            assert_eq!(cond(&s, DEGRADED).reason, reason);
            assert_eq!(cond(&s, READY).status, ConditionStatus::False);
            assert_eq!(s.webhook, before.webhook, "last seen workloads are kept");
        }
    }

    #[test]
    fn unchanged_world_gives_an_identical_status() {
        let first = compute(None, &obs(), T0);
        let again = compute(Some(&first), &obs(), T1);
        assert_eq!(first, again, "same inputs later must not change the status");
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let first = compute(None, &obs(), T0);
        let mut o = obs();
        o.deployments[0].2.ready = 0;
        let later = compute(Some(&first), &o, T1);
        assert_eq!(cond(&later, READY).last_transition_time, T1);
        assert_eq!(cond(&later, DEGRADED).last_transition_time, T0);
    }

    #[test]
    fn service_monitor_condition_says_why_not() {
        let mut o = obs();
        o.service_monitor = ServiceMonitorState::CrdMissing;
        let s = compute(None, &o, T0);
        let c = cond(&s, SERVICE_MONITOR_READY);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::False, "CRDNotInstalled")
        );
        o.service_monitor = ServiceMonitorState::Created;
        assert_eq!(
            cond(&compute(None, &o, T0), SERVICE_MONITOR_READY).status,
            ConditionStatus::True
        );
    }

    #[test]
    fn disabled_config_is_ready_with_reason_disabled() {
        let mut o = obs();
        o.enabled = false;
        o.deployments[0].2 = DeploymentState {
            desired: 0,
            ready: 0,
            updated: 0,
            observed_latest: true,
        };
        let s = compute(None, &o, T0);
        assert_eq!(cond(&s, READY).reason, "Disabled");
    }
}
