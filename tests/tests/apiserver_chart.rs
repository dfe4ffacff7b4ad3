//! The Helm chart on a real API server: `helm install` with default and with full values,
//! `helm upgrade` with changed values, `helm uninstall`; the CRD comes from the chart and
//! the NOTES render. Every object must be accepted without a warning. (The node-less API
//! server of `scripts/envtest.sh` runs no pods: that the operator pod runs is the
//! one-node-cluster suite's business.)
//! Runs when `KUBECONFIG` is set, otherwise prints that it skipped.

use std::time::Duration;

use bounceops_tests::cluster::{self, TestNamespace, wait_until};
use bounceops_tests::helm::{self, CHART, FULL_VALUES};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::json;

const SUITE: &str = "helm on the API server";

/// Runs helm on the cluster; returns its stdout. Its stderr carries the server's warnings
/// (client-go's `warnings.go` lines): there must be none.
fn helm_without_warnings(args: &[&str]) -> String {
    let (out, err) = helm::on_cluster(args);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("arning")).collect();
    assert!(
        warnings.is_empty(),
        "helm {} drew warnings:\n{}",
        args[0],
        warnings.join("\n")
    );
    out
}

fn args_of(d: &Deployment) -> Vec<String> {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .args
        .clone()
        .unwrap_or_default()
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall_with_default_values() {
    let Some(admin) = cluster::admin(SUITE).await else {
        return;
    };
    let ns = TestNamespace::create(&admin, "helm-default").await;
    let release = format!("bo{}", std::process::id());
    let out = helm_without_warnings(&["install", &release, CHART, "--namespace", &ns.name]);
    assert!(
        out.contains(&format!("bounce-operator runs in namespace {}", ns.name))
            && out.contains("watches BounceConfigs in every namespace")
            && out.contains("kind: BounceConfig"),
        "NOTES did not render:\n{out}"
    );

    // The CRD came with the chart (or was already there, as Helm leaves CRDs).
    let crd = Api::<CustomResourceDefinition>::all(admin.clone())
        .get("bounceconfigs.bounceops.io")
        .await
        .expect("the chart's CRD is installed");
    assert!(
        crd.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    let operator = find_one(&deployments, &release).await;
    let sa = operator
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .service_account_name
        .clone()
        .unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns.name)
        .get(&sa)
        .await
        .expect("the operator's ServiceAccount exists");
    assert_eq!(operator.spec.as_ref().unwrap().replicas, Some(1));
    assert!(args_of(&operator).contains(&"--leader-election=false".to_owned()));
    let cluster_role = Api::<ClusterRole>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|r| r.name_any().starts_with(&release))
        .expect("the chart's ClusterRole");

    // Upgrade with changed values: two replicas turn leader election on.
    helm_without_warnings(&[
        "upgrade",
        &release,
        CHART,
        "--namespace",
        &ns.name,
        "--set",
        "replicaCount=2",
        "--set",
        "logLevel=debug",
    ]);
    let operator = find_one(&deployments, &release).await;
    assert_eq!(operator.spec.as_ref().unwrap().replicas, Some(2));
    let args = args_of(&operator);
    assert!(
        args.contains(&"--leader-election=true".to_owned()),
        "{args:?}"
    );

    // Uninstall: everything of the release goes, the CRD stays (Helm never deletes CRDs).
    helm_without_warnings(&["uninstall", &release, "--namespace", &ns.name, "--wait"]);
    wait_until(
        "the release's objects are gone",
        Duration::from_secs(60),
        || async {
            deployments
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .is_empty()
                && Api::<ClusterRole>::all(admin.clone())
                    .get_opt(&cluster_role.name_any())
                    .await
                    .unwrap()
                    .is_none()
        },
    )
    .await;
    assert!(cluster::has_crd(&admin, "bounceconfigs.bounceops.io").await);
}

#[tokio::test]
async fn helm_install_with_full_values() {
    let Some(admin) = cluster::admin(SUITE).await else {
        return;
    };
    // Every option set: ServiceMonitor and PrometheusRule (stand-in CRDs unless the
    // cluster has the Prometheus operator's), a dashboard in `monitoring`, watching `mail`.
    cluster::ensure_monitoring_crds(&admin).await;
    for name in ["monitoring", "mail"] {
        ensure_namespace(&admin, name).await;
    }
    let ns = TestNamespace::create(&admin, "helm-full").await;
    let out = helm_without_warnings(&[
        "install",
        "bounceops",
        CHART,
        "--namespace",
        &ns.name,
        "--values",
        FULL_VALUES,
    ]);
    let uninstall = helm::Release::new(None, "bounceops", &ns.name);
    assert!(
        out.contains("watches BounceConfigs in namespace mail only"),
        "NOTES:\n{out}"
    );
    let operator = Api::<Deployment>::namespaced(admin.clone(), &ns.name)
        .get("bounceops-operator")
        .await
        .expect("fullnameOverride names the Deployment");
    assert_eq!(operator.spec.as_ref().unwrap().replicas, Some(2));
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        let ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "monitoring.coreos.com",
            "v1",
            kind,
        ));
        let list = Api::<DynamicObject>::namespaced_with(admin.clone(), &ns.name, &ar)
            .list(&Default::default())
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1, "one {kind}");
    }
    let dashboards = Api::<ConfigMap>::namespaced(admin.clone(), "monitoring")
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        dashboards
            .items
            .iter()
            .any(|c| c.labels().get("grafana_dashboard").map(String::as_str) == Some("1")),
        "the dashboard ConfigMap is in the monitoring namespace"
    );
    drop(uninstall);
}

async fn ensure_namespace(admin: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    match Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

async fn find_one(deployments: &Api<Deployment>, release: &str) -> Deployment {
    let all = deployments.list(&Default::default()).await.unwrap().items;
    let mine: Vec<_> = all
        .into_iter()
        .filter(|d| d.name_any().starts_with(release))
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one operator Deployment of release {release}"
    );
    mine.into_iter().next().unwrap()
}
