//! End-to-end against a real cluster: runs when `KUBECONFIG` is set, otherwise prints
//! that it skipped and passes. It must also pass against a bare API server (no nodes, no
//! controller-manager): pod readiness is asserted only where nodes exist, and deletion
//! by the garbage collector only where a controller-manager runs.
//!
//! What it does: installs `crds/`, runs the operator (in-process, watching one fresh
//! namespace), applies a BounceConfig before its Secrets (Degraded: SecretMissing), adds
//! the Secrets, waits for the children and conditions, changes the spec (replicas, a
//! mailbox removed, a Secret rotated), checks convergence, deletes and checks cleanup.

use std::sync::Arc;
use std::time::Duration;

use bounce_operator::controller::{self, Scope};
use bounce_operator::metrics::Metrics;
use bounce_operator::reconcile::desired::{HASH_ANNOTATION, Settings};
use bounceops_api::{BounceConfig, ConditionStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
const NAME: &str = "newsletter";

#[tokio::test]
async fn operator_end_to_end() {
    if std::env::var_os("KUBECONFIG").is_none() {
        println!(
            "e2e skipped: KUBECONFIG is not set (point it at a cluster or a bare API server to run it)"
        );
        return;
    }
    let client = Client::try_default()
        .await
        .expect("a client from KUBECONFIG");
    let ns = format!("bounceops-e2e-{}", std::process::id());
    install_crd(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("create the test namespace");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(controller::run(
        client.clone(),
        Scope(Some(ns.clone())),
        Settings::default(),
        "e2e".into(),
        Arc::new(Metrics::new()),
        async move {
            let _ = stop_rx.await;
        },
    ));

    let result = tokio::spawn(scenario(client.clone(), ns.clone())).await;

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), operator).await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenario(client: Client, ns: String) {
    let configs: Api<BounceConfig> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    let nodes = !Api::<Node>::all(client.clone())
        .list(&ListParams::default().limit(1))
        .await
        .map(|l| l.items.is_empty())
        .unwrap_or(true);
    let gc = Api::<Lease>::namespaced(client.clone(), "kube-system")
        .get_opt("kube-controller-manager")
        .await
        .ok()
        .flatten()
        .is_some();
    println!("e2e: namespace {ns}, nodes: {nodes}, garbage collector: {gc}");

    // 1. The config arrives before its Secrets: Degraded, no children.
    let spec = json!({
        "database": {"urlSecretRef": {"name": "listmonk-db", "key": "url"}},
        "api": {"credentialsSecretRef": {"name": "bounce-api", "key": "credentials"}},
        "mailboxes": [{"name": "bounces", "protocol": "pop3", "host": "pop.example.com", "port": 995,
                       "usernameSecretRef": {"name": "mailbox", "key": "username"},
                       "passwordSecretRef": {"name": "mailbox", "key": "password"}}],
        "webhook": {"replicas": 2, "ingress": {"enabled": true, "host": "bounces.example.com"}},
    });
    apply_config(&configs, spec.clone()).await;
    wait("Degraded=True SecretMissing", || async {
        condition(&configs, "Degraded").await
            == Some((ConditionStatus::True, "SecretMissing".into()))
    })
    .await;
    assert!(
        deployments
            .get_opt(&format!("{NAME}-webhook"))
            .await
            .unwrap()
            .is_none()
    );

    // 2. Secrets appear: the Secret watch re-queues the config; children converge.
    put_secret(
        &secrets,
        "listmonk-db",
        json!({"url": "postgres://u:p@db/listmonk"}),
    )
    .await;
    put_secret(&secrets, "bounce-api", json!({"credentials": "demo:token"})).await;
    put_secret(
        &secrets,
        "mailbox",
        json!({"username": "bounces", "password": "hunter2"}),
    )
    .await;
    wait("Degraded=False", || async {
        condition(&configs, "Degraded").await.map(|c| c.0) == Some(ConditionStatus::False)
    })
    .await;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get(&format!("{NAME}-config"))
        .await
        .unwrap();
    let text = &cm.data.unwrap()["config.yaml"];
    assert!(
        !text.contains("hunter2") && !text.contains("postgres://"),
        "no secret value in the ConfigMap"
    );
    let owner_uid = configs.get(NAME).await.unwrap().meta().uid.clone().unwrap();
    for (kind, owners) in [
        (
            "webhook Deployment",
            deployments
                .get(&format!("{NAME}-webhook"))
                .await
                .unwrap()
                .metadata
                .owner_references,
        ),
        (
            "mailbox Deployment",
            deployments
                .get(&format!("{NAME}-mailbox"))
                .await
                .unwrap()
                .metadata
                .owner_references,
        ),
        (
            "Service",
            Api::<Service>::namespaced(client.clone(), &ns)
                .get(&format!("{NAME}-webhook"))
                .await
                .unwrap()
                .metadata
                .owner_references,
        ),
        (
            "Ingress",
            Api::<Ingress>::namespaced(client.clone(), &ns)
                .get(&format!("{NAME}-webhook"))
                .await
                .unwrap()
                .metadata
                .owner_references,
        ),
        (
            "PodDisruptionBudget",
            pdbs.get(&format!("{NAME}-webhook"))
                .await
                .unwrap()
                .metadata
                .owner_references,
        ),
    ] {
        assert!(
            owners
                .unwrap_or_default()
                .iter()
                .any(|o| o.uid == owner_uid && o.controller == Some(true)),
            "{kind} is owned by the BounceConfig"
        );
    }
    let status = configs.get(NAME).await.unwrap().status.unwrap();
    assert_eq!(
        status.webhook_url.as_deref(),
        Some("http://bounces.example.com/webhooks")
    );
    if nodes {
        wait("Ready=True", || async {
            condition(&configs, "Ready").await.map(|c| c.0) == Some(ConditionStatus::True)
        })
        .await;
    }

    // 3. Spec change: one replica, no mailbox -> PDB and mailbox Deployment pruned.
    let hash_before = pod_hash(&deployments).await;
    let mut smaller = spec.clone();
    smaller["webhook"]["replicas"] = json!(1);
    smaller["mailboxes"] = json!([]);
    apply_config(&configs, smaller).await;
    wait("mailbox Deployment and PDB pruned, replicas 1", || async {
        deployments
            .get_opt(&format!("{NAME}-mailbox"))
            .await
            .unwrap()
            .is_none()
            && pdbs
                .get_opt(&format!("{NAME}-webhook"))
                .await
                .unwrap()
                .is_none()
            && deployments
                .get(&format!("{NAME}-webhook"))
                .await
                .unwrap()
                .spec
                .unwrap()
                .replicas
                == Some(1)
    })
    .await;
    wait("status observes the new generation", || async {
        let c = configs.get(NAME).await.unwrap();
        c.status.and_then(|s| s.observed_generation) == c.metadata.generation
    })
    .await;

    // 4. A rotated Secret rolls the pods (the template hash changes).
    let hash_mid = pod_hash(&deployments).await;
    assert_ne!(
        hash_before, hash_mid,
        "the mailbox Secret is no longer mounted"
    );
    put_secret(
        &secrets,
        "listmonk-db",
        json!({"url": "postgres://u:rotated@db/listmonk"}),
    )
    .await;
    wait("pod template hash follows the rotated Secret", || async {
        pod_hash(&deployments).await != hash_mid
    })
    .await;

    // 5. Delete: everything the config owned goes (where a garbage collector runs).
    configs
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    if gc {
        wait("children garbage-collected", || async {
            deployments
                .get_opt(&format!("{NAME}-webhook"))
                .await
                .unwrap()
                .is_none()
                && Api::<ConfigMap>::namespaced(client.clone(), &ns)
                    .get_opt(&format!("{NAME}-config"))
                    .await
                    .unwrap()
                    .is_none()
        })
        .await;
    } else {
        println!(
            "e2e: no controller-manager, so no garbage collector: cleanup rests on the owner references checked above"
        );
    }
}

async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(include_str!("../../crds/bounceconfig.yaml"))
            .expect("crds/bounceconfig.yaml parses");
    crds.patch(
        "bounceconfigs.bounceops.io",
        &PatchParams::apply("bounceops-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("install the CRD");
    wait("CRD established", || async {
        crds.get("bounceconfigs.bounceops.io")
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    })
    .await;
}

async fn apply_config(api: &Api<BounceConfig>, spec: serde_json::Value) {
    let obj = json!({"apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig",
                     "metadata": {"name": NAME}, "spec": spec});
    api.patch(
        NAME,
        &PatchParams::apply("bounceops-e2e").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply the BounceConfig");
}

async fn put_secret(api: &Api<Secret>, name: &str, values: serde_json::Value) {
    // `data` rather than `stringData`: server-side apply tracks `data`, so a rotation by
    // the same field manager replaces the value cleanly.
    let data = values
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                k8s_openapi::ByteString(v.as_str().unwrap().as_bytes().to_vec()),
            )
        })
        .collect();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let mut obj = serde_json::to_value(&secret).unwrap();
    obj["apiVersion"] = json!("v1");
    obj["kind"] = json!("Secret");
    api.patch(
        name,
        &PatchParams::apply("bounceops-e2e").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply a Secret");
}

async fn condition(api: &Api<BounceConfig>, type_: &str) -> Option<(ConditionStatus, String)> {
    let c = api.get(NAME).await.ok()?;
    let s = c.status?;
    let cond = s.condition(type_)?;
    Some((cond.status, cond.reason.clone()))
}

async fn pod_hash(api: &Api<Deployment>) -> Option<String> {
    api.get(&format!("{NAME}-webhook"))
        .await
        .ok()?
        .spec?
        .template
        .metadata?
        .annotations?
        .get(HASH_ANNOTATION)
        .cloned()
}

async fn wait<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if check().await {
            println!("e2e: {what}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
