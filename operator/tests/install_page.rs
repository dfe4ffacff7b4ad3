//! docs/install.md's "Your first BounceConfig", walked command by command as the page
//! gives them (read from the Markdown, so the page cannot drift from what is tested),
//! against the mocked API: the Secrets, the `kubectl apply` of the YAML shown, the wait for
//! Ready, and the checks. A command the walk does not know fails it, so a step added to the
//! page must be added here. The database side of the page (the role's rights) is walked
//! on a real Postgres by `worker/tests/least_privilege.rs`; the offline `helm install` by
//! `tests/tests/chart.rs`. On a real cluster the cluster suite runs this same section's
//! shell blocks as written, with kubectl and curl, port-forward included
//! (`tests/tests/cluster_user_path/install_page.rs`).

mod common;

use std::sync::Arc;

use bounce_operator::metrics::Metrics;
use bounce_operator::reconcile::desired::Settings;
use bounce_operator::reconcile::{self, Context};
use bounceops_api::ConditionStatus;
use bounceops_tests::markdown;
use common::FakeApi;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::Value;

/// The fenced blocks of one `## ` section of docs/install.md, in order.
fn blocks(section: &str) -> Vec<markdown::Block> {
    let page = bounceops_tests::read("docs/install.md");
    let text = markdown::section(&page, &format!("## {section}"))
        .unwrap_or_else(|| panic!("install.md has no section {section:?}"));
    markdown::fenced_blocks(text)
}

/// Shell lines with `\` continuations joined and comments dropped.
fn commands(sh: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sh.lines() {
        let line = line.split(" #").next().unwrap_or(line).trim_end();
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    out.push(current.trim().to_owned());
                }
                current.clear();
            }
        }
    }
    out
}

fn flag<'a>(words: &'a [&str], name: &str) -> Option<&'a str> {
    words.iter().enumerate().find_map(|(i, w)| {
        w.strip_prefix(&format!("{name}="))
            .or_else(|| (*w == name).then(|| words.get(i + 1).copied()).flatten())
    })
}

fn context(client: kube::Client) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: bounce_operator::MANAGER.into(),
            instance: None,
        },
    );
    Arc::new(Context::new(
        client,
        Settings {
            worker_image: "localhost/bounceops/bounce-worker:0.1.0".into(),
            worker_image_pull_policy: Some("Never".into()),
        },
        recorder,
        Arc::new(Metrics::new()),
    ))
}

#[tokio::test]
async fn the_first_bounceconfig_as_the_install_page_gives_it() {
    let (client, fake) = FakeApi::start();
    let ctx = context(client);
    let mut last_yaml: Option<Value> = None;
    let mut applied: Option<(String, String)> = None;
    let mut walked = Vec::new();
    let mut cluster_only = Vec::new();

    for markdown::Block { lang, text } in blocks("Your first BounceConfig") {
        if lang == "yaml" {
            last_yaml = Some(serde_yaml::from_str(&text).expect("the page's YAML parses"));
            continue;
        }
        assert_eq!(lang, "sh", "a block of an unknown kind: {lang}");
        for command in commands(&text) {
            let command = command.trim_end_matches(" &").to_owned();
            let words: Vec<&str> = command.split_whitespace().collect();
            let ns = flag(&words, "-n");
            match words.as_slice() {
                ["kubectl", "create", "namespace", _] => {}
                ["kubectl", "-n", _, "create", "secret", "generic", name, ..] => {
                    let keys: Vec<&str> = words
                        .iter()
                        .filter_map(|w| w.strip_prefix("--from-literal="))
                        .map(|kv| kv.split('=').next().unwrap())
                        .collect();
                    assert!(!keys.is_empty(), "{command}");
                    fake.put_secret(ns.unwrap(), name, &keys);
                }
                ["kubectl", "apply", "-f", "newsletter.yaml"] => {
                    let obj = last_yaml.take().expect("a YAML block before the apply");
                    assert_eq!(obj["kind"], "BounceConfig");
                    let (name, namespace) = (
                        obj["metadata"]["name"].as_str().unwrap().to_owned(),
                        obj["metadata"]["namespace"].as_str().unwrap().to_owned(),
                    );
                    fake.put_config(
                        &namespace,
                        &name,
                        &serde_yaml::to_string(&obj["spec"]).unwrap(),
                    );
                    applied = Some((namespace, name));
                }
                ["kubectl", "-n", _, "wait", target, ..] => {
                    let (ns, name) = applied.clone().expect("wait after the apply");
                    assert_eq!(*target, format!("bcfg/{name}"));
                    assert_eq!(flag(&words, "--for"), Some("condition=Ready"));
                    reconcile::reconcile(Arc::new(fake.config(&ns, &name)), ctx.clone())
                        .await
                        .expect("reconcile");
                    let status = fake.config(&ns, &name).status.expect("status");
                    let ready = status.condition("Ready").expect("Ready");
                    assert_eq!(
                        ready.status,
                        ConditionStatus::True,
                        "the page's config becomes Ready: {ready:?}"
                    );
                    // The mock has no ingress controller and no cert-manager, as the page
                    // warns: the status says so instead of pretending.
                    let ingress = status.condition("IngressReady").expect("IngressReady");
                    assert_eq!(
                        (&ingress.status, ingress.reason.as_str()),
                        (&ConditionStatus::False, "TLSSecretMissing")
                    );
                }
                ["kubectl", "-n", _, "get", "bcfg"]
                | ["kubectl", "-n", _, "describe", "bcfg", _] => {
                    let (ns, name) = applied.clone().expect("after the apply");
                    assert!(fake.config(&ns, &name).status.is_some());
                }
                ["kubectl", "-n", _, "get", kinds, "-l", selector] => {
                    let (ns, name) = applied.clone().expect("after the apply");
                    assert_eq!(*selector, format!("app.kubernetes.io/instance={name}"));
                    for (kind, path) in [
                        ("deploy", "apis/apps/v1"),
                        ("svc", "api/v1"),
                        ("ingress", "apis/networking.k8s.io/v1"),
                    ] {
                        assert!(kinds.split(',').any(|k| k == kind), "{command}");
                        let plural = match kind {
                            "deploy" => "deployments",
                            "svc" => "services",
                            _ => "ingresses",
                        };
                        let found = fake.paths_under(&format!("/{path}/namespaces/{ns}/{plural}/"));
                        assert!(
                            found.iter().any(|p| fake.get(p).unwrap()["metadata"]["labels"]
                                ["app.kubernetes.io/instance"]
                                == name.as_str()),
                            "{kind} of {name}: {found:?}"
                        );
                    }
                }
                // Through the Service of a running cluster: the cluster suite does these.
                ["kubectl", "-n", _, "port-forward", ..] | ["curl", ..] => {
                    cluster_only.push(command.clone());
                    continue;
                }
                _ => panic!("docs/install.md has a command this walk does not know: {command}"),
            }
            walked.push(command);
        }
    }
    assert!(walked.len() >= 7, "walked: {walked:#?}");
    assert!(
        walked.iter().any(|c| c.starts_with("kubectl apply")),
        "the page applies its BounceConfig"
    );
    assert!(
        cluster_only
            .iter()
            .any(|c| c.contains("port-forward svc/newsletter-webhook")),
        "the page reaches the workers in the cluster: {cluster_only:#?}"
    );

    // What the page says of the pods: every worker pod migrates first, in an init container
    // that mounts the config and the database's Secret only.
    let (ns, name) = applied.unwrap();
    let deployment = fake
        .get(&common::deployment_path(&ns, &format!("{name}-webhook")))
        .unwrap();
    let init = &deployment["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "migrate");
    let secret_mounts: Vec<&str> = init["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .filter(|p| p.starts_with("/var/run/bounceops/secrets/"))
        .collect();
    assert_eq!(secret_mounts, ["/var/run/bounceops/secrets/listmonk-db"]);
}
