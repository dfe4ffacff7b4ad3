//! The operator's reading of error answers, against what a real API server answers (the
//! mocked API invents its own): a resource type the server does not serve, a missing
//! object, a conflict and a refusal. Only the first two may be taken for "not there";
//! mistaking a conflict or a refusal for absence would hide a failure.
//! Runs when `KUBECONFIG` is set, otherwise prints that it skipped.

use bounce_operator::reconcile::apply::{is_absent, service_monitor_served};
use bounceops_tests::cluster::{self, TestNamespace};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, Config};
use serde_json::json;

const SUITE: &str = "API server error answers";

#[tokio::test]
async fn only_a_missing_object_or_type_counts_as_absent() {
    let Some(admin) = cluster::admin(SUITE).await else {
        return;
    };
    let ns = TestNamespace::create(&admin, "errors").await;

    // A resource type nobody serves: a plain-text 404, which kube's is_not_found() misses.
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "nothing.bounceops.io",
        "v1",
        "Widget",
    ));
    let widgets: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns.name, &ar);
    let unserved = widgets.get("w").await.expect_err("an unserved type");
    assert!(is_absent(&unserved), "unserved type: {unserved:?}");
    assert!(
        matches!(&unserved, kube::Error::Api(s) if !s.is_not_found()),
        "kube still misreads a plain 404 (if this fails, is_absent may go): {unserved:?}"
    );
    let groups = admin
        .list_api_group_resources("nothing.bounceops.io/v1")
        .await
        .expect_err("an unserved group");
    assert!(is_absent(&groups), "unserved group: {groups:?}");
    // The same path the operator asks on every reconcile; this test never installs the
    // ServiceMonitor CRD, so only its answer shape matters: no error.
    service_monitor_served(&admin)
        .await
        .expect("discovery of monitoring.coreos.com answers true or false, never an error");

    // A missing object: a NotFound Status.
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns.name);
    let missing = cms.get("nope").await.expect_err("a missing object");
    assert!(is_absent(&missing), "{missing:?}");

    // Conflicts: creating what exists, and updating from a stale resourceVersion.
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "one"}})).unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let exists = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect_err("a second create");
    assert!(
        matches!(&exists, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{exists:?}"
    );
    assert!(!is_absent(&exists));
    let mut stale = created.clone();
    stale.data = Some([("k".to_owned(), "v".to_owned())].into());
    cms.replace("one", &PostParams::default(), &stale)
        .await
        .unwrap();
    let conflict = cms
        .replace("one", &PostParams::default(), &created)
        .await
        .expect_err("a stale update");
    assert!(
        matches!(&conflict, kube::Error::Api(s) if s.is_conflict()),
        "{conflict:?}"
    );
    assert!(!is_absent(&conflict));

    // Forbidden: an identity without any grant (impersonated by the admin).
    let mut config = Config::infer().await.expect("a config from KUBECONFIG");
    config.auth_info.impersonate = Some("bounceops-test-nobody".into());
    let nobody = Client::try_from(config).expect("a client");
    let refused = Api::<ConfigMap>::namespaced(nobody.clone(), &ns.name)
        .get("one")
        .await
        .expect_err("no grant");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.is_forbidden()),
        "{refused:?}"
    );
    assert!(!is_absent(&refused), "a refusal is not absence");
}
