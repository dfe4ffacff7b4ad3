//! The reconcile of one BounceConfig, as named phases run in order:
//!
//! 0. [`server`]   check: the API server is a Kubernetes this operator supports
//! 1. [`secrets`]  resolve: find every referenced Secret, check it and its keys exist
//! 2. [`validate`] validate: `bounceops_api::validate`, and what a cluster adds
//! 3. [`desired`]  build: the desired children (pure)
//! 4. [`apply`]    apply: server-side apply what differs, prune what is no longer wanted
//! 5. [`status`]   status: compute conditions and write the whole status only when it changed
//!
//! A problem in 0, 1 or 2 stops before 4, so a missing Secret never yields pods that cannot
//! start: the config is Degraded, an Event says why, and the Secret watch re-queues it
//! when the Secret appears.

pub mod apply;
pub mod desired;
pub mod secrets;
pub mod server;
pub mod status;
pub mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bounceops_api::BounceConfig;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use tracing::Instrument;

use crate::metrics::Metrics;
use desired::Settings;
use status::{IngressState, Observation, Problem, ServiceMonitorState, SmtpServiceState, Written};

/// How often a healthy config is looked at again even without a watch event: catches
/// drift the watches cannot see (e.g. a ServiceMonitor CRD installed later).
pub const RESYNC: Duration = Duration::from_secs(300);

/// How soon a config whose status write met a newer object is looked at again. The watch
/// event of that newer object re-queues it anyway; this is the fallback, and a conflict is
/// no failure, so it takes no backoff.
pub const CONFLICT_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the BounceConfig has no namespace")]
    NoNamespace,
}

/// A status write as [`Context`] remembers it.
struct StatusWrite {
    based_on: String,
    made: String,
    status: bounceops_api::BounceConfigStatus,
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Whether the API server is new enough.
    server: server::ServerCheck,
    /// Consecutive failures per config, for the error policy's backoff.
    failures: Mutex<HashMap<ObjectRef<BounceConfig>, u32>>,
    /// Per config: the resourceVersion a status write was based on, the one it made, and
    /// what it wrote.
    written: Mutex<HashMap<ObjectRef<BounceConfig>, StatusWrite>>,
    /// The clock used for condition transition times; tests pin it.
    now: fn() -> String,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Self {
        Context {
            client,
            settings,
            recorder,
            metrics,
            server: server::ServerCheck::default(),
            failures: Mutex::default(),
            written: Mutex::default(),
            now: || {
                jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .unwrap_or_else(|_| jiff::Timestamp::now())
                    .to_string()
            },
        }
    }

    /// Forgets configs that no longer exist (keys as [`config_key`] makes them).
    pub fn retain(&self, keep: &std::collections::BTreeSet<String>) {
        let known = |r: &ObjectRef<BounceConfig>| {
            keep.contains(&format!(
                "{}/{}",
                r.namespace.as_deref().unwrap_or_default(),
                r.name
            ))
        };
        self.failures
            .lock()
            .expect("failures lock")
            .retain(|k, _| known(k));
        self.written
            .lock()
            .expect("written lock")
            .retain(|k, _| known(k));
    }

    /// Pins the clock of condition transition times (tests and benchmarks).
    pub fn with_clock(mut self, now: fn() -> String) -> Self {
        self.now = now;
        self
    }
}

/// The delay before retrying a config that failed `n` times in a row: 5 s doubling up
/// to 5 minutes, so a broken API server is not hammered and a blip heals fast.
pub fn backoff(n: u32) -> Duration {
    let secs = 5u64.saturating_mul(1 << n.saturating_sub(1).min(16));
    Duration::from_secs(secs.min(300))
}

pub fn error_policy(config: Arc<BounceConfig>, error: &Error, ctx: Arc<Context>) -> Action {
    let n = {
        let mut f = ctx.failures.lock().expect("failures lock");
        let n = f.entry(ObjectRef::from_obj(config.as_ref())).or_insert(0);
        *n += 1;
        *n
    };
    let delay = backoff(n);
    tracing::warn!(config = %config.name_any(), namespace = ?config.namespace(), %error, attempt = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

pub async fn reconcile(config: Arc<BounceConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", config = %config.name_any(), namespace = ?config.namespace());
    let result = run_phases(&config, &ctx).instrument(span).await;
    let outcome = match &result {
        Ok((_, None)) => "ok",
        Ok((_, Some(_))) => "degraded",
        Err(_) => "error",
    };
    ctx.metrics.observe_reconcile(outcome, started.elapsed());
    if result.is_ok() {
        ctx.failures
            .lock()
            .expect("failures lock")
            .remove(&ObjectRef::from_obj(config.as_ref()));
    }
    result.map(|(action, _)| action)
}

async fn run_phases(
    config: &BounceConfig,
    ctx: &Context,
) -> Result<(Action, Option<Problem>), Error> {
    let ns = config.namespace().ok_or(Error::NoNamespace)?;
    let name = config.name_any();

    // 0. check
    let unsupported = ctx.server.problem(&ctx.client).await?;

    // 1. resolve
    // Every Secret a worker reads, the bounce MX's certificate included: a missing one is
    // SecretMissing, and its version is part of the pods' hash.
    let refs = secrets::worker_refs(&config.spec);
    // The Ingress's TLS Secret is looked at too, to say when it is missing; the workers
    // do not read it, so it is no SecretMissing problem and no part of their hash.
    let ingress = &config.spec.webhook.ingress;
    let ingress_wanted = ingress.enabled && config.spec.enabled;
    let tls_secret = ingress.tls_secret_name.clone().filter(|_| ingress_wanted);
    let mut names = secrets::secret_names(&refs);
    names.extend(tls_secret.clone());
    let observed = secrets::observe(&ctx.client, &ns, &names).await?;
    let resolved = secrets::check(&refs, &observed);

    // 2. validate
    let invalid = validate::problems(config);
    let problem = if let Some(p) = unsupported {
        Some(Problem::UnsupportedKubernetesVersion(p))
    } else if !invalid.is_empty() {
        let texts: Vec<String> = invalid.iter().map(ToString::to_string).collect();
        Some(Problem::InvalidSpec(texts.join("; ")))
    } else if !resolved.missing.is_empty() {
        Some(Problem::SecretMissing(resolved.missing.join("; ")))
    } else {
        None
    };
    let mut obs = Observation {
        generation: config.metadata.generation,
        mailboxes: config.spec.mailboxes.len() as u32,
        problem,
        deployments: Vec::new(),
        service_monitor: ServiceMonitorState::NotRequested,
        ingress: IngressState::NotRequested,
        smtp_service: SmtpServiceState::NotRequested,
        relay_address: None,
        webhook_url: None,
        applied_secrets: None,
        enabled: config.spec.enabled,
    };
    if obs.problem.is_some() {
        let action = finish_status(config, ctx, &obs).await?;
        return Ok((action, obs.problem));
    }

    // 3. build
    // Asked even when this config wants no ServiceMonitor: one it created earlier must be
    // pruned, and only a served type can be asked about.
    let sm_crd = apply::service_monitor_served(&ctx.client).await?;
    let desired = desired::build(&desired::Inputs {
        config,
        secret_versions: &resolved.versions,
        service_monitor_crd: sm_crd,
        settings: &ctx.settings,
    });
    obs.webhook_url = Some(desired.webhook_url.clone());
    obs.service_monitor = match (config.spec.metrics.service_monitor, sm_crd) {
        (false, _) => ServiceMonitorState::NotRequested,
        (true, true) => ServiceMonitorState::Created,
        (true, false) => ServiceMonitorState::CrdMissing,
    };

    // 4. apply
    let uid = config.metadata.uid.clone().unwrap_or_default();
    let applied = match apply::apply(&ctx.client, &ns, &uid, &desired, &ctx.metrics).await {
        Ok(a) => a,
        Err(e) => {
            obs.problem = Some(Problem::ApplyFailed(e.to_string()));
            // Best effort: the error below is what drives the retry.
            if let Err(se) = finish_status(config, ctx, &obs).await {
                tracing::warn!(error = %se, "could not record ApplyFailed in the status");
            }
            return Err(e.into());
        }
    };
    if !applied.conflicts.is_empty() {
        obs.problem = Some(Problem::Conflict(format!(
            "{} already exist{} and belong{} to someone else: nothing was applied; delete or \
             rename {}, or rename this BounceConfig",
            applied.conflicts.join(", "),
            if applied.conflicts.len() == 1 {
                "s"
            } else {
                ""
            },
            if applied.conflicts.len() == 1 {
                "s"
            } else {
                ""
            },
            if applied.conflicts.len() == 1 {
                "it"
            } else {
                "them"
            },
        )));
        let action = finish_status(config, ctx, &obs).await?;
        return Ok((action, obs.problem));
    }
    if !applied.changed.is_empty() {
        publish(
            ctx,
            config,
            EventType::Normal,
            "Applied",
            "Apply",
            format!("created or updated {}", applied.changed.join(", ")),
        )
        .await;
    }
    if !applied.pruned.is_empty() {
        publish(
            ctx,
            config,
            EventType::Normal,
            "Pruned",
            "Prune",
            format!(
                "deleted {} (no longer in the spec)",
                applied.pruned.join(", ")
            ),
        )
        .await;
    }
    obs.applied_secrets = Some((resolved.versions.clone(), desired.hash.clone()));
    if ingress_wanted {
        obs.ingress = match (&tls_secret, &applied.ingress_address) {
            (Some(secret), _) if observed.get(secret).is_none_or(Option::is_none) => {
                IngressState::TlsSecretMissing {
                    secret: secret.clone(),
                    cert_manager: ingress
                        .annotations
                        .keys()
                        .any(|k| k.starts_with("cert-manager.io/")),
                }
            }
            (_, Some(address)) => IngressState::Admitted(address.clone()),
            (_, None) => IngressState::NoAddress {
                class: ingress.class_name.clone(),
            },
        };
    }
    // Only a LoadBalancer waits for an address; an MX behind a NodePort or a ClusterIP is
    // reached the way its owner routes port 25 to it.
    if let Some(smtp) = config.spec.smtp.as_ref().filter(|_| config.spec.enabled)
        && smtp.service.type_ == bounceops_api::ServiceType::LoadBalancer
    {
        let service = desired::ChildKind::SmtpService.name(&name);
        obs.smtp_service = match &applied.smtp_address {
            Some(address) => SmtpServiceState::Address {
                service,
                address: address.clone(),
            },
            None => SmtpServiceState::Pending { service },
        };
    }
    if desired.relay_replicas.is_some() {
        obs.relay_address = Some(desired::relay_service_address(config));
    }
    obs.deployments = applied
        .deployments
        .iter()
        .map(|(kind, state)| (*kind, kind.name(&name), *state))
        .collect();

    // 5. status
    Ok((finish_status(config, ctx, &obs).await?, None))
}

/// Computes and writes the status; publishes a Warning Event when a problem appears or
/// changes (not on every retry, so a lasting problem does not flood the Event list).
/// Returns when to look at the config again.
async fn finish_status(
    config: &BounceConfig,
    ctx: &Context,
    obs: &Observation,
) -> Result<Action, Error> {
    // The object may come from a watch cache that has not yet seen this operator's last
    // status write. If it is exactly the object that write was based on, the status we
    // wrote is the truth: comparing with the stale copy would rewrite the same status
    // (and repeat its Events) once per echo, and a write based on its resourceVersion
    // would only meet a conflict.
    let key = ObjectRef::from_obj(config);
    let remembered = {
        let written = ctx.written.lock().expect("written lock");
        written
            .get(&key)
            .filter(|w| config.metadata.resource_version.as_ref() == Some(&w.based_on))
            .map(|w| (w.made.clone(), w.status.clone()))
    };
    let (resource_version, prior) = match &remembered {
        Some((made, status)) => (Some(made.as_str()), Some(status)),
        None => (
            config.metadata.resource_version.as_deref(),
            config.status.as_ref(),
        ),
    };
    let new = status::compute(prior, obs, &(ctx.now)());
    let was = prior.and_then(|p| p.condition(status::DEGRADED));
    let now = new.condition(status::DEGRADED);
    if let (Some(p), Some(c)) = (&obs.problem, now)
        && was.map(|w| (&w.status, &w.reason, &w.message))
            != Some((&c.status, &c.reason, &c.message))
    {
        publish(
            ctx,
            config,
            EventType::Warning,
            p.reason(),
            "Reconcile",
            p.message().to_owned(),
        )
        .await;
    }
    let sm_was = prior
        .and_then(|p| p.condition(status::SERVICE_MONITOR_READY))
        .map(|c| c.reason.clone());
    if obs.service_monitor == ServiceMonitorState::CrdMissing
        && sm_was.as_deref() != Some("CRDNotInstalled")
    {
        publish(
            ctx,
            config,
            EventType::Warning,
            "ServiceMonitorCRDMissing",
            "Apply",
            "metrics.serviceMonitor is set but the ServiceMonitor CRD is not installed".into(),
        )
        .await;
    }
    ctx.metrics.set_conditions(
        config_key(config),
        Some(
            new.conditions
                .iter()
                .map(|c| (c.type_.clone(), c.status.as_str().to_owned()))
                .collect(),
        ),
    );
    let written = status::write_if_changed(
        &ctx.client,
        config,
        resource_version,
        prior,
        &new,
        &ctx.metrics,
    )
    .await?;
    match written {
        Written::Wrote(made) => {
            if let Some(based_on) = config.metadata.resource_version.clone() {
                ctx.written.lock().expect("written lock").insert(
                    key,
                    StatusWrite {
                        based_on,
                        made,
                        status: new,
                    },
                );
            }
        }
        Written::Unchanged => {}
        Written::Conflict => {
            tracing::debug!("the status write met a newer object; looking again");
            return Ok(Action::requeue(CONFLICT_RETRY));
        }
    }
    Ok(Action::requeue(RESYNC))
}

async fn publish(
    ctx: &Context,
    config: &BounceConfig,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let mut note = note;
    // The Events API refuses notes over 1 kB.
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    // Every Event is also a log line, so logs alone tell the story.
    match type_ {
        EventType::Warning => tracing::warn!(reason, %note, "event"),
        EventType::Normal => tracing::info!(reason, %note, "event"),
    }
    ctx.metrics.write("event");
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &config.object_ref(&())).await {
        // Events are best effort: losing one must not fail the reconcile.
        tracing::warn!(error = %e, reason, "could not publish an Event");
    }
}

/// `namespace/name`, the key of a config in metrics.
pub fn config_key(config: &BounceConfig) -> String {
    format!(
        "{}/{}",
        config.namespace().unwrap_or_default(),
        config.name_any()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX).as_secs(), 300);
    }
}
