//! The status write against a real API server (the mocked API only does what it is told):
//! whatever the new status lacks is gone afterwards, top-level and nested, also when an
//! operator before this one wrote it by merge patch, as clusters upgraded in place have it;
//! and a write computed from a stale read is a conflict that changes nothing.
//! Runs when `KUBECONFIG` is set, otherwise prints that it skipped.

use bounce_operator::metrics::Metrics;
use bounce_operator::reconcile::status::{Written, write_if_changed};
use bounceops_api::{
    BounceConfig, BounceConfigStatus, Condition, ConditionStatus, RelayStatus, WorkloadStatus,
};
use bounceops_tests::cluster::{self, TestNamespace};
use bounceops_tests::invalid_specs;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const SUITE: &str = "status write";
const NAME: &str = "news";

/// A status with every field set, nested optional ones included.
fn full() -> BounceConfigStatus {
    BounceConfigStatus {
        observed_generation: Some(1),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: ConditionStatus::True,
            reason: "AllWorkersReady".into(),
            message: "every worker is ready".into(),
            last_transition_time: "2026-01-01T00:00:00Z".into(),
            observed_generation: Some(1),
        }],
        webhook_url: Some("http://news-webhook.mail.svc/webhooks".into()),
        mailboxes: Some(1),
        webhook: Some(WorkloadStatus {
            name: "news-webhook".into(),
            desired_replicas: 2,
            ready_replicas: 2,
        }),
        mailbox: Some(WorkloadStatus {
            name: "news-mailbox".into(),
            desired_replicas: 1,
            ready_replicas: 1,
        }),
        smtp: Some(WorkloadStatus {
            name: "news-smtp".into(),
            desired_replicas: 2,
            ready_replicas: 1,
        }),
        relay: Some(RelayStatus {
            name: "news-relay".into(),
            desired_replicas: 2,
            ready_replicas: 2,
            address: "news-relay.mail.svc:2525".into(),
        }),
        observed_secrets: [("listmonk-db".to_owned(), "41".to_owned())].into(),
        config_hash: Some("0123456789abcdef".into()),
    }
}

/// `full()` without the mailbox, SMTP and relay Deployments, the webhook URL, the observed generation and
/// the condition's observed generation.
fn lean() -> BounceConfigStatus {
    let mut s = full();
    s.observed_generation = None;
    s.conditions[0].observed_generation = None;
    s.webhook_url = None;
    s.mailboxes = Some(0);
    s.mailbox = None;
    s.smtp = None;
    s.relay = None;
    s
}

/// A BounceConfig without status in a fresh namespace, or `None` when skipped.
async fn config() -> Option<(Api<BounceConfig>, TestNamespace)> {
    let client = cluster::admin(SUITE).await?;
    cluster::install_crd(&client, &cluster::bounceconfig_crd()).await;
    let ns = TestNamespace::create(&client, "status-write").await;
    let api: Api<BounceConfig> = Api::namespaced(client, &ns.name);
    let obj: BounceConfig = serde_json::from_value(json!({
        "apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig",
        "metadata": {"name": NAME}, "spec": invalid_specs::valid_spec(),
    }))
    .expect("a BounceConfig");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create the BounceConfig");
    Some((api, ns))
}

/// Writes `status` the way the operator does, based on the object as the server has it now.
async fn write(api: &Api<BounceConfig>, status: &BounceConfigStatus, metrics: &Metrics) -> Written {
    let read = api.get(NAME).await.expect("read the config");
    write_if_changed(
        &client(api),
        &read,
        read.resource_version().as_deref(),
        read.status.as_ref(),
        status,
        metrics,
    )
    .await
    .expect("the status write")
}

fn client(api: &Api<BounceConfig>) -> Client {
    api.clone().into_client()
}

async fn stored(api: &Api<BounceConfig>) -> serde_json::Value {
    serde_json::to_value(api.get_status(NAME).await.expect("read back")).expect("JSON")["status"]
        .clone()
}

#[tokio::test]
async fn fields_the_new_status_lacks_are_gone() {
    let Some((api, _ns)) = config().await else {
        return;
    };
    let metrics = Metrics::new();
    let Written::Wrote(made) = write(&api, &full(), &metrics).await else {
        panic!("the first status is written");
    };
    assert_eq!(
        Some(made),
        api.get(NAME).await.unwrap().resource_version(),
        "the resourceVersion the write made"
    );
    assert_eq!(stored(&api).await, serde_json::to_value(full()).unwrap());

    assert!(matches!(
        write(&api, &lean(), &metrics).await,
        Written::Wrote(_)
    ));
    let after = stored(&api).await;
    assert_eq!(after, serde_json::to_value(lean()).unwrap());
    for gone in ["mailbox", "smtp", "webhookUrl", "observedGeneration"] {
        assert!(after.get(gone).is_none(), "status.{gone} stayed: {after}");
    }
    assert!(
        after["conditions"][0].get("observedGeneration").is_none(),
        "the nested field stayed: {after}"
    );

    assert_eq!(write(&api, &lean(), &metrics).await, Written::Unchanged);
    assert_eq!(
        metrics.writes("status"),
        2,
        "an unchanged status is not sent"
    );
}

#[tokio::test]
async fn an_operator_upgraded_in_place_clears_what_its_merge_patch_wrote() {
    let Some((api, _ns)) = config().await else {
        return;
    };
    // What operators up to this change did: a merge patch of the status, whose fields
    // then belong to that patch's (Update) manager.
    api.patch_status(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": full() })),
    )
    .await
    .expect("the old merge patch");
    assert_eq!(stored(&api).await, serde_json::to_value(full()).unwrap());
    let before = api.get(NAME).await.unwrap();
    assert!(
        before
            .managed_fields()
            .iter()
            .any(|m| m.operation.as_deref() == Some("Update")
                && m.subresource.as_deref() == Some("status")),
        "the old write is an Update: {:?}",
        before.managed_fields()
    );

    let metrics = Metrics::new();
    assert!(matches!(
        write(&api, &lean(), &metrics).await,
        Written::Wrote(_)
    ));
    assert_eq!(stored(&api).await, serde_json::to_value(lean()).unwrap());
}

#[tokio::test]
async fn a_write_computed_from_a_stale_read_is_a_conflict_and_changes_nothing() {
    let Some((api, _ns)) = config().await else {
        return;
    };
    let metrics = Metrics::new();
    let stale = api.get(NAME).await.unwrap();
    assert!(matches!(
        write(&api, &full(), &metrics).await,
        Written::Wrote(_)
    ));

    let answer = write_if_changed(
        &client(&api),
        &stale,
        stale.resource_version().as_deref(),
        stale.status.as_ref(),
        &lean(),
        &metrics,
    )
    .await
    .expect("a conflict is no error");
    assert_eq!(answer, Written::Conflict);
    assert_eq!(stored(&api).await, serde_json::to_value(full()).unwrap());
}
