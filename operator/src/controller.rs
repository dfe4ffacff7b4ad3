//! Wiring only: the watches that feed the reconcile, leader election, and shutdown.
//!
//! Watches: BounceConfigs; the children it owns (labelled `managed-by=bounce-operator`,
//! so the operator does not cache every ConfigMap in the cluster); and Secrets as
//! metadata only (never their values), each change mapped through the controller's
//! BounceConfig store to exactly the configs that reference that Secret.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bounceops_api::BounceConfig;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Client, ResourceExt};

use crate::metrics::Metrics;
use crate::reconcile::desired::Settings;
use crate::reconcile::{self, Context, secrets};

/// Where the operator looks: one namespace, or all of them.
#[derive(Clone, Debug)]
pub struct Scope(pub Option<String>);

impl Scope {
    fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        match &self.0 {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
}

/// Runs the controller until `shutdown` resolves (then finishes in-flight reconciles).
pub async fn run(
    client: Client,
    scope: Scope,
    settings: Settings,
    identity: String,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let owned = watcher::Config::default()
        .labels(&format!("app.kubernetes.io/managed-by={}", crate::MANAGER));
    let controller = Controller::new(
        scope.api::<BounceConfig>(&client),
        watcher::Config::default().any_semantic(),
    );
    let store = controller.store();
    let index = store.clone();
    // Metadata only: the operator needs a Secret's name and resourceVersion, never its data.
    let secrets_meta: Api<PartialObjectMeta<Secret>> = match &scope.0 {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: crate::MANAGER.into(),
            instance: Some(identity),
        },
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings,
        recorder,
        metrics.clone(),
    ));
    controller
        .owns(scope.api::<ConfigMap>(&client), owned.clone())
        .owns(scope.api::<Deployment>(&client), owned.clone())
        .owns(scope.api::<Service>(&client), owned.clone())
        .owns(scope.api::<Ingress>(&client), owned.clone())
        .owns(scope.api::<PodDisruptionBudget>(&client), owned)
        .watches(secrets_meta, watcher::Config::default(), move |secret| {
            secrets::configs_using(
                &index.state(),
                &secret.namespace().unwrap_or_default(),
                &secret.name_any(),
            )
        })
        // An apply of seven children echoes back as a burst of watch events; one reconcile
        // for the burst is enough.
        .with_config(
            kube::runtime::controller::Config::default().debounce(Duration::from_millis(500)),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
            // Deleted configs are never reconciled again: drop them from the gauges here.
            let keep: BTreeSet<String> = store
                .state()
                .iter()
                .map(|c| reconcile::config_key(c))
                .collect();
            metrics.retain_configs(&keep);
            ctx.retain(&keep);
            futures::future::ready(())
        })
        .await;
}
