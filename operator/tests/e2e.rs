//! The operator against a real API server, as the chart's ServiceAccount with exactly the
//! chart's RBAC: runs when `KUBECONFIG` is set (`scripts/test.sh` starts a control plane
//! on loopback), otherwise prints that it skipped.
//!
//! One scenario, first on a cluster without the Prometheus operator's ServiceMonitor CRD
//! (most clusters), then with it: Secrets missing then present (the bounce MX's VERP key and
//! certificate among them), children and owner references, a spec change that prunes (the
//! bounce MX's children with `spec.smtp`, the relay's with `spec.relay`), a rotated Secret,
//! a deleted Secret, an invalid spec, deletion by the garbage collector. Pods never start on a node-less API server, so
//! `Ready` must say that the workers are unavailable, and no `Degraded` may appear. Where
//! the server's audit log is ours (envtest), every request the ServiceAccount made is
//! read back: none refused, and every verb the chart grants was needed.

mod in_process;

use std::collections::BTreeSet;
use std::time::Duration;

use bounce_operator::reconcile::desired::HASH_ANNOTATION;
use bounceops_api::{BounceConfig, ConditionStatus};
use bounceops_tests::cluster::{self, ChartRbac, TestNamespace, wait_until};
use in_process::with_operator;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde_json::{Value, json};

const SUITE: &str = "operator e2e";
const TIMEOUT: Duration = Duration::from_secs(90);
const NAME: &str = "newsletter";
const SM_CRD: &str = "servicemonitors.monitoring.coreos.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_end_to_end_as_the_charts_service_account() {
    let Some(admin) = cluster::admin(SUITE).await else {
        return;
    };
    cluster::install_crd(&admin, &cluster::bounceconfig_crd()).await;
    let operator_ns = TestNamespace::create(&admin, "bounceops-operator").await;
    let release = format!("e2e{}", std::process::id());
    let rbac = ChartRbac::install(&admin, &release, &operator_ns.name, &[]).await;
    let dir = std::env::temp_dir();
    let (_, operator_client) =
        cluster::service_account_identity(&admin, &operator_ns.name, &rbac.service_account, &dir)
            .await;
    let nodes = !Api::<Node>::all(admin.clone())
        .list(&ListParams::default().limit(1))
        .await
        .expect("list nodes")
        .items
        .is_empty();
    println!("{SUITE}: nodes: {nodes}");
    // The operator reads the server's release from /version as the ServiceAccount; the
    // mocked API's answers (`FakeApi::set_version`) are shaped as this one.
    let info = operator_client
        .apiserver_version()
        .await
        .expect("/version, as the operator's ServiceAccount");
    let version = bounce_operator::reconcile::server::Version::of(&info)
        .unwrap_or_else(|| panic!("the server's version is readable: {info:?}"));
    println!("{SUITE}: Kubernetes {} ({})", version, info.git_version);
    assert!(
        version >= bounce_operator::reconcile::server::MINIMUM,
        "these suites run on a supported Kubernetes ({} or newer), not {}",
        bounce_operator::reconcile::server::MINIMUM,
        info.git_version
    );

    // Without the ServiceMonitor CRD, as most clusters are; a real Prometheus operator's
    // CRD is never removed, so on such a cluster this half is skipped.
    if cluster::crd_owner_is_us(&admin, SM_CRD).await == Some(false) {
        println!(
            "{SUITE}: the cluster has its own ServiceMonitor CRD: the run without one is skipped"
        );
    } else {
        remove_service_monitor_crd(&admin).await;
        let ns = TestNamespace::create(&admin, "e2e-plain").await;
        with_operator(
            &operator_client,
            &ns.name,
            "e2e",
            scenario(&admin, &ns.name, nodes, false),
        )
        .await;
    }

    // With it: the ServiceMonitor is made, and pruned when no longer asked for.
    cluster::ensure_monitoring_crds(&admin).await;
    let ns = TestNamespace::create(&admin, "e2e-monitored").await;
    with_operator(
        &operator_client,
        &ns.name,
        "e2e",
        scenario(&admin, &ns.name, nodes, true),
    )
    .await;

    let username = format!(
        "system:serviceaccount:{}:{}",
        operator_ns.name, rbac.service_account
    );
    match cluster::audited(&username) {
        None => println!(
            "{SUITE}: no audit log to read (BOUNCEOPS_KUBE_AUDIT_LOG unset): RBAC checked only by the scenario passing"
        ),
        Some(requests) => check_rbac_use(&requests, &rbac.cluster_grants),
    }
}

fn scenario(
    admin: &Client,
    ns: &str,
    nodes: bool,
    monitored: bool,
) -> impl Future<Output = ()> + Send + 'static {
    let (client, ns) = (admin.clone(), ns.to_owned());
    async move {
        let configs: Api<BounceConfig> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
        let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
        let monitors: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &bounce_operator::reconcile::desired::service_monitor_resource(),
        );

        // 1. The config arrives before its Secrets: Degraded, an Event, no children.
        let spec = json!({
            "database": {"urlSecretRef": {"name": "listmonk-db", "key": "url"}},
            "api": {"credentialsSecretRef": {"name": "bounce-api", "key": "credentials"}},
            "mailboxes": [{"name": "bounces", "protocol": "pop3", "host": "pop.example.com", "port": 995,
                           "usernameSecretRef": {"name": "mailbox", "key": "username"},
                           "passwordSecretRef": {"name": "mailbox", "key": "password"}}],
            "webhook": {"replicas": 2, "ingress": {"enabled": true, "host": "bounces.example.com"}},
            "smtp": {"domains": ["bounces.example.com"],
                     "verpKeySecretRef": {"name": "verp-key", "key": "key"},
                     "tlsSecretName": "mx-tls", "service": {"type": "LoadBalancer"}},
            "relay": {"returnPathDomain": "bounces.example.com",
                      "upstream": {"host": "smtp.example.com",
                                   "usernameSecretRef": {"name": "smtp-upstream", "key": "username"},
                                   "passwordSecretRef": {"name": "smtp-upstream", "key": "password"}},
                      "credentialsSecretRef": {"name": "relay-logins", "key": "logins"},
                      "replicas": 2},
            "metrics": {"serviceMonitor": monitored},
        });
        apply_config(&configs, spec.clone()).await;
        wait("Degraded=True SecretMissing", || async {
            condition(&configs, "Degraded").await
                == Some((ConditionStatus::True, "SecretMissing".into()))
        })
        .await;
        wait("a SecretMissing Event", || async {
            has_event(&client, &ns, "SecretMissing").await
        })
        .await;
        assert!(
            deployments
                .get_opt(&format!("{NAME}-webhook"))
                .await
                .unwrap()
                .is_none(),
            "no workers before their Secrets exist"
        );

        // 2. The Secrets appear: the Secret watch re-queues the config; children converge.
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
        put_secret(
            &secrets,
            "verp-key",
            json!({"key": "0123456789abcdef0123456789abcdef"}),
        )
        .await;
        put_secret(
            &secrets,
            "smtp-upstream",
            json!({"username": "listmonk", "password": "upstream-secret"}),
        )
        .await;
        put_secret(
            &secrets,
            "relay-logins",
            json!({"logins": "listmonk:relay-secret"}),
        )
        .await;
        wait(
            "Degraded=True SecretMissing for the MX's certificate",
            || async {
                let c = configs.get(NAME).await.unwrap();
                c.status
                    .and_then(|s| s.condition("Degraded").cloned())
                    .is_some_and(|d| {
                        d.reason == "SecretMissing"
                            && d.message.contains("spec.smtp.tlsSecretName")
                            && !d.message.contains("verp-key")
                    })
            },
        )
        .await;
        put_tls_secret(&secrets, "mx-tls").await;
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
        let owned = |owners: Option<
            Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
        >| {
            owners
                .unwrap_or_default()
                .iter()
                .any(|o| o.uid == owner_uid && o.controller == Some(true))
        };
        let webhook = format!("{NAME}-webhook");
        assert!(
            owned(
                deployments
                    .get(&webhook)
                    .await
                    .unwrap()
                    .metadata
                    .owner_references
            ),
            "webhook Deployment owned"
        );
        assert!(
            owned(
                deployments
                    .get(&format!("{NAME}-mailbox"))
                    .await
                    .unwrap()
                    .metadata
                    .owner_references
            ),
            "mailbox Deployment owned"
        );
        assert!(
            owned(
                Api::<Service>::namespaced(client.clone(), &ns)
                    .get(&webhook)
                    .await
                    .unwrap()
                    .metadata
                    .owner_references
            ),
            "Service owned"
        );
        assert!(
            owned(
                ingresses
                    .get(&webhook)
                    .await
                    .unwrap()
                    .metadata
                    .owner_references
            ),
            "Ingress owned"
        );
        assert!(
            owned(pdbs.get(&webhook).await.unwrap().metadata.owner_references),
            "PodDisruptionBudget owned"
        );
        // The bounce MX: its Deployment, its LoadBalancer on port 25, its metrics Service
        // and its PodDisruptionBudget (two replicas by default), all owned.
        let smtp = format!("{NAME}-smtp");
        let services = Api::<Service>::namespaced(client.clone(), &ns);
        let mx = services.get(&smtp).await.unwrap();
        assert!(
            owned(mx.metadata.owner_references.clone()),
            "SMTP Service owned"
        );
        let mx_spec = mx.spec.unwrap();
        assert_eq!(mx_spec.type_.as_deref(), Some("LoadBalancer"));
        let ports = mx_spec.ports.unwrap();
        assert_eq!(ports.len(), 1, "port 25 only: {ports:?}");
        assert_eq!(ports[0].port, 25);
        assert!(
            ports[0].node_port.is_some(),
            "the server allocated a node port"
        );
        assert!(
            owned(
                services
                    .get(&format!("{smtp}-metrics"))
                    .await
                    .unwrap()
                    .metadata
                    .owner_references
            ),
            "SMTP metrics Service owned"
        );
        let mx_pods = deployments.get(&smtp).await.unwrap();
        assert!(
            owned(mx_pods.metadata.owner_references.clone()),
            "SMTP Deployment owned"
        );
        let args = mx_pods.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert_eq!(
            args[args.len() - 4..],
            ["--role", "smtp", "--smtp-listen", "0.0.0.0:2525"]
        );
        assert!(
            owned(pdbs.get(&smtp).await.unwrap().metadata.owner_references),
            "SMTP PodDisruptionBudget owned"
        );
        // No load-balancer controller on a test control plane: the condition says so (on a
        // cluster with one, it names the address).
        wait("SMTPServiceReady reported", || async {
            matches!(
                condition(&configs, "SMTPServiceReady").await,
                Some((ConditionStatus::False, r)) if r == "LoadBalancerPending"
            ) || matches!(
                condition(&configs, "SMTPServiceReady").await,
                Some((ConditionStatus::True, r)) if r == "AddressAssigned"
            )
        })
        .await;
        // The sending relay: its Deployment, its ClusterIP Service on 2525 and its
        // PodDisruptionBudget (two replicas), owned; its address in the status.
        let relay = format!("{NAME}-relay");
        let relay_pods = deployments.get(&relay).await.unwrap();
        assert!(
            owned(relay_pods.metadata.owner_references.clone()),
            "relay Deployment owned"
        );
        let args = relay_pods.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert_eq!(
            args[args.len() - 4..],
            ["--role", "relay", "--relay-listen", "0.0.0.0:2525"]
        );
        let relay_service = services.get(&relay).await.unwrap();
        assert!(
            owned(relay_service.metadata.owner_references.clone()),
            "relay Service owned"
        );
        let relay_spec = relay_service.spec.unwrap();
        assert_eq!(relay_spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(relay_spec.ports.unwrap()[0].port, 2525);
        assert!(
            owned(pdbs.get(&relay).await.unwrap().metadata.owner_references),
            "relay PodDisruptionBudget owned"
        );
        wait("RelayReady reported", || async {
            matches!(
                condition(&configs, "RelayReady").await,
                Some((ConditionStatus::False, r)) if r == "NoReplicaReady"
            ) || matches!(
                condition(&configs, "RelayReady").await,
                Some((ConditionStatus::True, r)) if r == "Serving"
            )
        })
        .await;
        let status = configs.get(NAME).await.unwrap().status.unwrap();
        assert_eq!(
            status.relay.map(|r| r.address),
            Some(format!("{relay}.{ns}.svc:2525"))
        );
        let observed = status.observed_secrets;
        assert!(
            observed.contains_key("verp-key")
                && observed.contains_key("mx-tls")
                && observed.contains_key("smtp-upstream")
                && observed.contains_key("relay-logins"),
            "{observed:?}"
        );
        if monitored {
            wait("ServiceMonitor created", || async {
                monitors.get_opt(&webhook).await.unwrap().is_some()
            })
            .await;
            assert_eq!(
                condition(&configs, "ServiceMonitorReady").await,
                Some((ConditionStatus::True, "Created".into()))
            );
        } else {
            assert_eq!(condition(&configs, "ServiceMonitorReady").await, None);
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
        } else {
            // Pods cannot run without nodes: Ready waits on the workers, and says so.
            wait("Ready=False WorkersUnavailable", || async {
                condition(&configs, "Ready").await
                    == Some((ConditionStatus::False, "WorkersUnavailable".into()))
            })
            .await;
        }

        // 3. Spec change: one replica, no mailbox, no bounce MX, no relay, no Ingress, no
        // ServiceMonitor: pruned.
        let hash_before = pod_hash(&deployments).await;
        let mut smaller = spec.clone();
        smaller["webhook"] = json!({"replicas": 1});
        smaller["mailboxes"] = json!([]);
        smaller.as_object_mut().unwrap().remove("smtp");
        smaller.as_object_mut().unwrap().remove("relay");
        smaller["metrics"] = json!({"serviceMonitor": false});
        apply_config(&configs, smaller.clone()).await;
        wait(
            "mailbox, SMTP and relay Deployments, their Services and PDBs, Ingress and ServiceMonitor pruned; replicas 1",
            || async {
                deployments
                    .get_opt(&format!("{NAME}-mailbox"))
                    .await
                    .unwrap()
                    .is_none()
                    && deployments.get_opt(&smtp).await.unwrap().is_none()
                    && services.get_opt(&smtp).await.unwrap().is_none()
                    && services
                        .get_opt(&format!("{smtp}-metrics"))
                        .await
                        .unwrap()
                        .is_none()
                    && pdbs.get_opt(&smtp).await.unwrap().is_none()
                    && deployments.get_opt(&relay).await.unwrap().is_none()
                    && services.get_opt(&relay).await.unwrap().is_none()
                    && pdbs.get_opt(&relay).await.unwrap().is_none()
                    && pdbs.get_opt(&webhook).await.unwrap().is_none()
                    && ingresses.get_opt(&webhook).await.unwrap().is_none()
                    && (!monitored || monitors.get_opt(&webhook).await.unwrap().is_none())
                    && deployments
                        .get(&webhook)
                        .await
                        .unwrap()
                        .spec
                        .unwrap()
                        .replicas
                        == Some(1)
            },
        )
        .await;
        wait("status observes the new generation", || async {
            let c = configs.get(NAME).await.unwrap();
            c.status.and_then(|s| s.observed_generation) == c.metadata.generation
        })
        .await;
        assert_ne!(
            condition(&configs, "Degraded").await.map(|c| c.0),
            Some(ConditionStatus::True)
        );

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

        // 5. A deleted Secret: Degraded SecretMissing again, with an Event; workers stay.
        secrets
            .delete("bounce-api", &DeleteParams::default())
            .await
            .unwrap();
        wait(
            "Degraded=True SecretMissing after the Secret is deleted",
            || async {
                condition(&configs, "Degraded").await
                    == Some((ConditionStatus::True, "SecretMissing".into()))
            },
        )
        .await;
        assert!(deployments.get_opt(&webhook).await.unwrap().is_some());
        put_secret(&secrets, "bounce-api", json!({"credentials": "demo:token"})).await;
        wait("Degraded=False once the Secret is back", || async {
            condition(&configs, "Degraded").await.map(|c| c.0) == Some(ConditionStatus::False)
        })
        .await;

        // 6. A spec the schema accepts but the operator cannot use: InvalidSpec.
        let mut invalid = smaller.clone();
        invalid["rules"] = json!({"window": "a fortnight"});
        apply_config(&configs, invalid).await;
        wait("Degraded=True InvalidSpec", || async {
            condition(&configs, "Degraded").await
                == Some((ConditionStatus::True, "InvalidSpec".into()))
        })
        .await;
        wait("an InvalidSpec Event", || async {
            has_event(&client, &ns, "InvalidSpec").await
        })
        .await;
        apply_config(&configs, smaller).await;
        wait("Degraded=False once the spec is fixed", || async {
            condition(&configs, "Degraded").await.map(|c| c.0) == Some(ConditionStatus::False)
        })
        .await;

        // 7. Delete: the garbage collector removes what the config owned.
        configs
            .delete(NAME, &DeleteParams::default())
            .await
            .unwrap();
        wait("children garbage-collected", || async {
            deployments.get_opt(&webhook).await.unwrap().is_none()
                && Api::<ConfigMap>::namespaced(client.clone(), &ns)
                    .get_opt(&format!("{NAME}-config"))
                    .await
                    .unwrap()
                    .is_none()
        })
        .await;
    }
}

/// Every request the operator's ServiceAccount made was allowed, and every verb the chart's
/// ClusterRole grants was used (a verb never used is a privilege to remove).
fn check_rbac_use(requests: &[cluster::Audited], granted: &BTreeSet<(String, String, String)>) {
    assert!(
        !requests.is_empty(),
        "the audit log has no request of the operator"
    );
    let refused: Vec<_> = requests.iter().filter(|r| r.code == 403).collect();
    assert!(
        refused.is_empty(),
        "requests the chart's RBAC refused: {refused:#?}"
    );
    let mut used: BTreeSet<(String, String, String)> = requests
        .iter()
        .map(|r| (r.group.clone(), r.resource.clone(), r.verb.clone()))
        .collect();
    // Server-side apply of a new object is a `patch` that the server also authorizes as
    // `create`; the audit log records only the patch (answered 201).
    for r in requests
        .iter()
        .filter(|r| r.verb == "patch" && r.code == 201)
    {
        used.insert((r.group.clone(), r.resource.clone(), "create".into()));
    }
    let unused: Vec<_> = granted
        .iter()
        .filter(|g| g.1 != "leases" && !used.contains(*g))
        .collect();
    println!(
        "{SUITE}: the operator used {} (group, resource, verb) grants",
        used.len()
    );
    assert!(
        unused.is_empty(),
        "the chart grants what the operator never used (remove it from operator/rbac.yaml and the chart): {unused:#?}"
    );
}

async fn remove_service_monitor_crd(admin: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let _ = crds.delete(SM_CRD, &DeleteParams::default()).await;
    wait("the ServiceMonitor type is no longer served", || async {
        crds.get_opt(SM_CRD).await.unwrap().is_none()
            && !bounce_operator::reconcile::apply::service_monitor_served(admin)
                .await
                .expect("discovery answers")
    })
    .await;
}

async fn apply_config(api: &Api<BounceConfig>, spec: Value) {
    let obj = json!({"apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig",
                     "metadata": {"name": NAME}, "spec": spec});
    api.patch(
        NAME,
        &PatchParams::apply(cluster::MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply the BounceConfig");
}

async fn put_secret(api: &Api<Secret>, name: &str, values: Value) {
    // `data` rather than `stringData`: server-side apply tracks `data`, so a rotation by
    // the same field manager replaces the value cleanly.
    let data: serde_json::Map<String, Value> = values
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = k8s_openapi::ByteString(v.as_str().unwrap().as_bytes().to_vec());
            (k.clone(), serde_json::to_value(bytes).unwrap())
        })
        .collect();
    let obj =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data});
    api.patch(
        name,
        &PatchParams::apply(cluster::MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply a Secret");
}

/// A `kubernetes.io/tls` Secret (the server refuses one without both keys; it does not
/// parse them, and the operator only mounts them).
async fn put_tls_secret(api: &Api<Secret>, name: &str) {
    let data = |text: &str| serde_json::to_value(k8s_openapi::ByteString(text.into())).unwrap();
    let obj = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name},
        "data": {"tls.crt": data("not parsed by the operator"), "tls.key": data("nor this")}});
    api.patch(
        name,
        &PatchParams::apply(cluster::MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply a TLS Secret");
}

async fn condition(api: &Api<BounceConfig>, type_: &str) -> Option<(ConditionStatus, String)> {
    let c = api.get(NAME).await.ok()?;
    let cond = c.status?.condition(type_)?.clone();
    Some((cond.status, cond.reason))
}

async fn has_event(client: &Client, ns: &str, reason: &str) -> bool {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items.iter().any(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(NAME)
            })
        })
        .unwrap_or(false)
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

async fn wait<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until(what, TIMEOUT, check).await;
    println!("{SUITE}: {what}");
}
