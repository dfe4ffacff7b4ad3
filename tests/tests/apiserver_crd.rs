//! The CRD and every BounceConfig the repository shows, on a real API server: the CRD is
//! accepted and Established without a warning, every example is accepted without a
//! warning, and every invalid spec of the table is refused with the words the docs promise
//! (or, for the rows only the operator and the worker can judge, stored).
//! This is where the server's CEL cost estimator and CEL rules really run.
//!
//! Runs when `KUBECONFIG` is set (scripts/test.sh starts a control plane); else skips.

use bounceops_tests::cluster::{self, TestNamespace};
use bounceops_tests::{invalid_specs, markdown};
use bounceops_tests::{read, repo_root};
use serde::Deserialize as _;
use serde_json::{Value, json};

const SUITE: &str = "apiserver CRD suite";

/// Creates the object as `kubectl apply` creates a new one (a POST with
/// `fieldValidation=Strict`, so unknown fields are refused), with `dryRun=All`: the
/// server validates (schema, CEL, admission) and stores nothing.
async fn try_apply(client: &kube::Client, ns: &str, object: &Value) -> cluster::Answer {
    cluster::request(
        client,
        "POST",
        &format!(
            "/apis/bounceops.io/v1alpha1/namespaces/{ns}/bounceconfigs?fieldManager={}&dryRun=All&fieldValidation=Strict",
            cluster::MANAGER
        ),
        "application/json",
        object,
    )
    .await
}

fn config(name: &str, ns: &str, spec: Value) -> Value {
    json!({"apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

/// Every BounceConfig document in examples/, deploy/ and the docs' YAML blocks, with
/// where it came from.
fn shown_configs() -> Vec<(String, Value)> {
    let root = repo_root();
    let mut out = Vec::new();
    for dir in ["examples", "deploy", "docs"] {
        let mut files = Vec::new();
        collect(&root.join(dir), &mut files);
        for path in files {
            let rel = path.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let yamls: Vec<String> = if rel.ends_with(".md") {
                fenced_yaml(&text)
            } else if rel.ends_with(".yaml") || rel.ends_with(".yml") {
                vec![text]
            } else {
                continue;
            };
            for y in yamls {
                for doc in serde_yaml::Deserializer::from_str(&y) {
                    let v =
                        Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: not YAML: {e}"));
                    if v["kind"] == "BounceConfig" {
                        out.push((rel.clone(), v));
                    }
                }
            }
        }
    }
    out
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
    out.sort();
}

/// The bodies of the ```yaml blocks of a Markdown text.
fn fenced_yaml(text: &str) -> Vec<String> {
    markdown::fenced_blocks(text)
        .into_iter()
        .filter(|b| b.lang == "yaml")
        .map(|b| b.text)
        .collect()
}

#[tokio::test]
async fn the_crd_is_established_without_warnings() {
    let Some(client) = cluster::admin(SUITE).await else {
        return;
    };
    let warnings = cluster::install_crd(&client, &cluster::bounceconfig_crd()).await;
    assert!(warnings.is_empty(), "the CRD drew warnings: {warnings:#?}");
}

#[tokio::test]
async fn every_bounceconfig_the_repository_shows_is_accepted_without_warnings() {
    let Some(client) = cluster::admin(SUITE).await else {
        return;
    };
    cluster::install_crd(&client, &cluster::bounceconfig_crd()).await;
    let ns = TestNamespace::create(&client, "examples").await;
    let shown = shown_configs();
    for file in [
        "examples/bounceconfig.yaml",
        "examples/bounceconfig-mailbox.yaml",
        "examples/bounceconfig-providers.yaml",
        "examples/bounceconfig-smtp.yaml",
        "deploy/dev/bounceconfig.yaml",
        "docs/install.md",
    ] {
        assert!(
            shown.iter().any(|(f, _)| f == file),
            "no BounceConfig found in {file}"
        );
    }
    let mut failures = Vec::new();
    for (file, mut obj) in shown {
        obj["metadata"]["namespace"] = json!(ns.name);
        let answer = try_apply(&client, &ns.name, &obj).await;
        if answer.status >= 300 || !answer.warnings.is_empty() {
            failures.push(format!(
                "{file}: {} {} {:?}",
                answer.status,
                answer.message(),
                answer.warnings
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn invalid_bounceconfigs_are_refused_with_the_documented_message() {
    let table = invalid_specs::table();
    assert!(table.len() >= 25, "the table has {} rows", table.len());
    let docs = read("docs/validation.md");
    let undocumented: Vec<_> = table
        .iter()
        .filter_map(|row| Some((row.case, row.server.as_ref()?.message)))
        .filter(|(_, message)| !docs.contains(message))
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/validation.md does not quote these refusals: {undocumented:#?}"
    );
    let Some(client) = cluster::admin(SUITE).await else {
        return;
    };
    cluster::install_crd(&client, &cluster::bounceconfig_crd()).await;
    let ns = TestNamespace::create(&client, "invalid").await;

    let valid = try_apply(
        &client,
        &ns.name,
        &config("valid", &ns.name, invalid_specs::valid_spec()),
    )
    .await;
    assert!(
        valid.status < 300 && valid.warnings.is_empty(),
        "the table's starting spec must be valid: {} {} {:?}",
        valid.status,
        valid.message(),
        valid.warnings
    );

    let mut wrong = Vec::new();
    for row in table {
        let answer = try_apply(&client, &ns.name, &config("invalid", &ns.name, row.spec)).await;
        let message = answer.message();
        println!("{}: {} {message}", row.case, answer.status);
        let Some(server) = row.server else {
            // Only the operator and the worker can tell: the server must store it, or the
            // operator suite would wait for a config that never arrives.
            if answer.status >= 300 {
                wrong.push(format!(
                    "{}: the table says the server stores it, got {} {message}",
                    row.case, answer.status
                ));
            }
            continue;
        };
        let names_field = message.contains(&format!("{}:", server.field))
            || message.contains(&format!("{}\"", server.field))
            || message.contains(&format!(".{}", server.field.trim_start_matches("spec")));
        // 422 Invalid for what the schema and CEL refuse; 400 for an unknown field, which
        // strict decoding refuses before validation.
        let refused = answer.status == 422 || answer.status == 400;
        if !refused || !server.said_in(message) || !names_field {
            wrong.push(format!(
                "{}: expected 422 naming {} with {:?}, got {} {message}",
                row.case, server.field, server.message, answer.status
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
