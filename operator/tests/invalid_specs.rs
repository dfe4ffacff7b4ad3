//! The operator against a real API server, on the rows of the shared table of invalid
//! specs (tests/src/invalid_specs.rs) that the server stores; the others never reach an
//! operator (tests/tests/apiserver_crd.rs proves the server refuses them). For each: the
//! status says Degraded=True and Ready=False with reason InvalidSpec and a message naming
//! the row's field, a Warning Event says the same, and no child exists. A config that
//! worked and turns invalid keeps its children exactly as they were.
//!
//! Also: a config whose child name is taken by an object it does not own is Degraded with
//! reason Conflict naming that object, which is left exactly as it was, and nothing of the
//! config is applied until the name is free.
//!
//! Runs when `KUBECONFIG` is set (`scripts/test.sh` starts a control plane on loopback);
//! otherwise prints that it skipped.

mod in_process;

use std::collections::BTreeSet;
use std::time::Duration;

use bounceops_api::{BounceConfig, ConditionStatus};
use bounceops_tests::cluster::{self, TestNamespace, wait_until};
use bounceops_tests::invalid_specs::{self, Invalid};
use in_process::with_operator;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde_json::{Value, json};

const SUITE: &str = "operator invalid specs";
const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_only_the_operator_can_judge_are_degraded_and_create_nothing() {
    let rows: Vec<Invalid> = invalid_specs::table()
        .into_iter()
        .filter(Invalid::reaches_the_operator)
        .collect();
    assert!(
        rows.len() >= 10,
        "only {} rows reach the operator",
        rows.len()
    );
    let Some(client) = cluster::admin(SUITE).await else {
        return;
    };
    cluster::install_crd(&client, &cluster::bounceconfig_crd()).await;
    let ns = TestNamespace::create(&client, "invalid-status").await;
    // Every Secret any row references exists: no row may be held up as SecretMissing.
    let mut secrets = BTreeSet::new();
    for spec in rows
        .iter()
        .map(|r| &r.spec)
        .chain([&invalid_specs::valid_spec()])
    {
        secret_refs(spec, &mut secrets);
    }
    put_secrets(&client, &ns.name, &secrets).await;

    with_operator(
        &client,
        &ns.name,
        "invalid-specs",
        scenario(client.clone(), ns.name.clone(), rows),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_name_taken_by_someone_else_is_a_conflict_and_left_alone() {
    let Some(client) = cluster::admin(SUITE).await else {
        return;
    };
    cluster::install_crd(&client, &cluster::bounceconfig_crd()).await;
    let ns = TestNamespace::create(&client, "conflict").await;
    let spec = invalid_specs::valid_spec();
    let mut secrets = BTreeSet::new();
    secret_refs(&spec, &mut secrets);
    put_secrets(&client, &ns.name, &secrets).await;
    // Someone's Service with the name the webhook Service of config "news" would take.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let theirs = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "news-webhook", "labels": {"team": "billing"}},
        "spec": {"selector": {"app": "billing"}, "ports": [{"name": "web", "port": 8443}]}});
    services
        .patch(
            "news-webhook",
            &PatchParams::apply("billing").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .expect("someone else's Service");
    let before = services.get("news-webhook").await.unwrap();

    let (c, n) = (client.clone(), ns.name.clone());
    with_operator(&client, &ns.name, "conflict", async move {
        let configs: Api<BounceConfig> = Api::namespaced(c.clone(), &n);
        apply(&configs, "news", spec.clone()).await;
        wait("the config is Degraded with reason Conflict", || async {
            degraded(&configs, "news").await == Some((ConditionStatus::True, "Conflict".into()))
        })
        .await;
        let status = configs.get("news").await.unwrap().status.unwrap();
        let message = &status.condition("Degraded").unwrap().message;
        assert!(message.contains("Service/news-webhook"), "{message}");
        assert!(
            events(&c, &n)
                .await
                .iter()
                .any(|e| e.reason.as_deref() == Some("Conflict")
                    && e.note
                        .as_deref()
                        .is_some_and(|m| m.contains("Service/news-webhook"))),
            "a Warning Event names the object"
        );
        let services: Api<Service> = Api::namespaced(c.clone(), &n);
        let after = services.get("news-webhook").await.unwrap();
        assert_eq!(
            after.metadata.resource_version, before.metadata.resource_version,
            "their Service was not touched"
        );
        assert!(
            child_names(&c, &n).await.is_empty(),
            "nothing of the config was applied: {:?}",
            child_names(&c, &n).await
        );

        // Once the name is free (and the config touched, as a user would re-apply it),
        // the config gets its children.
        services
            .delete("news-webhook", &Default::default())
            .await
            .unwrap();
        let mut touched = spec.clone();
        touched["webhook"]["replicas"] = json!(1);
        apply(&configs, "news", touched).await;
        wait(
            "the config gets its children once the name is free",
            || async {
                degraded(&configs, "news").await.map(|d| d.0) == Some(ConditionStatus::False)
                    && child_names(&c, &n).await.contains("news-webhook (Service)")
            },
        )
        .await;
    })
    .await;
}

async fn scenario(client: Client, ns: String, rows: Vec<Invalid>) {
    let configs: Api<BounceConfig> = Api::namespaced(client.clone(), &ns);
    // A valid config first: the operator is working, and "no child" below means
    // something.
    apply(&configs, "valid", invalid_specs::valid_spec()).await;
    wait("the valid config's workers", || async {
        degraded(&configs, "valid").await.map(|d| d.0) == Some(ConditionStatus::False)
            && child_names(&client, &ns).await.contains("valid-webhook")
    })
    .await;

    for (i, row) in rows.iter().enumerate() {
        apply(&configs, &format!("row-{i}"), row.spec.clone()).await;
    }
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let wrong = loop {
        let events = events(&client, &ns).await;
        let mut wrong = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if let Err(e) = verdict(&configs, &events, &format!("row-{i}"), row).await {
                wrong.push(format!("{}: {e}", row.case));
            }
        }
        if wrong.is_empty() || tokio::time::Instant::now() > deadline {
            break wrong;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(wrong.is_empty(), "{wrong:#?}");
    let children = child_names(&client, &ns).await;
    let made: Vec<&String> = children.iter().filter(|n| n.starts_with("row-")).collect();
    assert!(made.is_empty(), "children of invalid configs: {made:?}");
    println!(
        "{SUITE}: {} rows Degraded/InvalidSpec, no child",
        rows.len()
    );

    // The valid config turns invalid: Degraded, and its children stay as they were.
    let before = versions(&client, &ns).await;
    apply(&configs, "valid", rows[0].spec.clone()).await;
    wait("the valid config, now invalid, is Degraded", || async {
        degraded(&configs, "valid").await == Some((ConditionStatus::True, "InvalidSpec".into()))
    })
    .await;
    assert_eq!(
        versions(&client, &ns).await,
        before,
        "an invalid spec changed children"
    );
}

/// Why the config `name` is not yet as the row wants it: Degraded and Ready naming the
/// field with reason InvalidSpec, and a Warning Event saying so.
async fn verdict(
    configs: &Api<BounceConfig>,
    events: &[Event],
    name: &str,
    row: &Invalid,
) -> Result<(), String> {
    let field = format!("{}: ", row.field);
    let status = configs
        .get(name)
        .await
        .map_err(|e| e.to_string())?
        .status
        .ok_or("no status yet")?;
    for type_ in ["Degraded", "Ready"] {
        let c = status
            .condition(type_)
            .ok_or(format!("no {type_} condition"))?;
        let expected = if type_ == "Degraded" {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        if c.status != expected || c.reason != "InvalidSpec" || !c.message.contains(&field) {
            return Err(format!(
                "{type_} is {:?} {} {:?}, expected {expected:?} InvalidSpec naming {}",
                c.status, c.reason, c.message, row.field
            ));
        }
    }
    let evented = events.iter().any(|e| {
        e.type_.as_deref() == Some("Warning")
            && e.reason.as_deref() == Some("InvalidSpec")
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            && e.note.as_deref().is_some_and(|n| n.contains(&field))
    });
    if !evented {
        return Err(format!("no InvalidSpec Event naming {}", row.field));
    }
    Ok(())
}

async fn apply(configs: &Api<BounceConfig>, name: &str, spec: Value) {
    let obj = json!({"apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig",
                     "metadata": {"name": name}, "spec": spec});
    configs
        .patch(
            name,
            &PatchParams::apply(cluster::MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

async fn degraded(configs: &Api<BounceConfig>, name: &str) -> Option<(ConditionStatus, String)> {
    let c = configs.get(name).await.ok()?;
    let cond = c.status?.condition("Degraded")?.clone();
    Some((cond.status, cond.reason))
}

async fn events(client: &Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The names of the operator's children in `ns` (ConfigMaps, Deployments, Services).
async fn child_names(client: &Client, ns: &str) -> BTreeSet<String> {
    versions(client, ns)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Each child of the operator in `ns`, as `kind/name` with its resourceVersion.
async fn versions(client: &Client, ns: &str) -> BTreeSet<(String, String)> {
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/managed-by={}",
        bounce_operator::MANAGER
    ));
    let mut out = BTreeSet::new();
    let mut add = |kind: &str, meta: &kube::core::ObjectMeta| {
        out.insert((
            format!("{}{}", meta.name.clone().unwrap_or_default(), kind),
            meta.resource_version.clone().unwrap_or_default(),
        ));
    };
    for d in Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .unwrap()
    {
        add("", d.meta());
    }
    for c in Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .unwrap()
    {
        add("", c.meta());
    }
    for s in Api::<Service>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .unwrap()
    {
        add(" (Service)", s.meta());
    }
    out
}

/// Every `(name, key)` of a `*SecretRef` in `spec`.
fn secret_refs(value: &Value, out: &mut BTreeSet<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (
                    k.ends_with("SecretRef"),
                    v["name"].as_str(),
                    v["key"].as_str(),
                ) {
                    (true, Some(name), Some(key)) => {
                        out.insert((name.to_owned(), key.to_owned()));
                    }
                    _ => secret_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| secret_refs(v, out)),
        _ => {}
    }
}

async fn put_secrets(client: &Client, ns: &str, refs: &BTreeSet<(String, String)>) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let names: BTreeSet<&String> = refs.iter().map(|(n, _)| n).collect();
    for name in names {
        let data: serde_json::Map<String, Value> = refs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, key)| (key.clone(), json!("dXNlcjpwYXNzd29yZA==")))
            .collect();
        let obj =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data});
        api.patch(
            name,
            &PatchParams::apply(cluster::MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply the Secret {name}: {e}"));
    }
}

async fn wait<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until(what, TIMEOUT, check).await;
    println!("{SUITE}: {what}");
}
