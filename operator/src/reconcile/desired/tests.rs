//! The build phase for every shape of spec: which children, and what is in them.

use std::collections::BTreeMap;

use bounceops_api::BounceConfig;
use serde_json::{Value, json};

use super::*;

const BASE: &str = "database: {urlSecretRef: {name: db, key: url}}\napi: {credentialsSecretRef: {name: api, key: credentials}}\n";

const FULL: &str = r#"
enabled: true
database: {urlSecretRef: {name: listmonk-db, key: url}, schema: listmonk}
rules:
  soft: {count: 2, action: none}
  window: 720h
  reasons: {blocked: {type: ignore}, mailboxfull: {type: soft}}
api: {credentialsSecretRef: {name: bounce-api, key: credentials}}
providers:
  sendgrid: {enabled: true, publicKeySecretRef: {name: sendgrid, key: public-key}}
mailboxes:
  - {name: bounces, protocol: pop3, host: pop.example.com, port: 995, usernameSecretRef: {name: mailbox, key: username}, passwordSecretRef: {name: mailbox, key: password}}
webhook:
  replicas: 2
  ingress: {enabled: true, host: bounces.example.com, className: nginx, tlsSecretName: bounces-tls}
metrics: {serviceMonitor: true}
"#;

fn config(spec: &str) -> BounceConfig {
    let mut c = BounceConfig::new("news", serde_yaml::from_str(spec).unwrap());
    c.metadata.namespace = Some("mail".into());
    c.metadata.uid = Some("uid-1".into());
    c
}

fn versions() -> BTreeMap<String, String> {
    BTreeMap::from([("api".into(), "11".into()), ("db".into(), "10".into())])
}

fn build_with(cfg: &BounceConfig, versions: &BTreeMap<String, String>, sm_crd: bool) -> Desired {
    build(&Inputs {
        config: cfg,
        secret_versions: versions,
        service_monitor_crd: sm_crd,
        settings: &Settings {
            worker_image: "registry.test/bounce-worker:1".into(),
            worker_image_pull_policy: None,
        },
    })
}

fn kinds(d: &Desired) -> Vec<ChildKind> {
    d.apply.iter().map(|c| c.kind).collect()
}

fn child(d: &Desired, kind: ChildKind) -> &Value {
    &d.apply
        .iter()
        .find(|c| c.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?}"))
        .object
}

use ChildKind::*;

#[test]
fn each_shape_of_spec_gets_exactly_its_children() {
    let cases: &[(&str, bool, &[ChildKind])] = &[
        (
            "",
            false,
            &[
                ConfigMap,
                WebhookDeployment,
                WebhookService,
                PodDisruptionBudget,
            ],
        ),
        (
            "webhook: {replicas: 1}",
            false,
            &[ConfigMap, WebhookDeployment, WebhookService],
        ),
        (
            "webhook: {replicas: 0}",
            false,
            &[ConfigMap, WebhookDeployment, WebhookService],
        ),
        (
            "enabled: false",
            false,
            &[ConfigMap, WebhookDeployment, WebhookService],
        ),
        (
            "mailboxes: [{name: a, protocol: imap, host: h, port: 993, usernameSecretRef: {name: m, key: u}, passwordSecretRef: {name: m, key: p}}]",
            false,
            &[
                ConfigMap,
                WebhookDeployment,
                WebhookService,
                MailboxDeployment,
                MailboxService,
                PodDisruptionBudget,
            ],
        ),
        (
            "webhook: {replicas: 1, ingress: {enabled: true, host: b.example.com}}",
            false,
            &[ConfigMap, WebhookDeployment, WebhookService, Ingress],
        ),
        (
            "webhook: {replicas: 1, ingress: {enabled: false, host: b.example.com}}",
            false,
            &[ConfigMap, WebhookDeployment, WebhookService],
        ),
        (
            "webhook: {replicas: 1}\nmetrics: {serviceMonitor: true}",
            true,
            &[ConfigMap, WebhookDeployment, WebhookService, ServiceMonitor],
        ),
        (
            "webhook: {replicas: 1}\nmetrics: {serviceMonitor: true}",
            false,
            &[ConfigMap, WebhookDeployment, WebhookService],
        ),
        (
            "webhook: {replicas: 1}\nmetrics: {serviceMonitor: false}",
            true,
            &[ConfigMap, WebhookDeployment, WebhookService],
        ),
    ];
    for (extra, sm, want) in cases {
        let d = build_with(&config(&format!("{BASE}{extra}")), &versions(), *sm);
        assert_eq!(kinds(&d), *want, "spec extra: {extra:?}");
        // What is not applied is pruned: together they cover every kind exactly once,
        // but for a ServiceMonitor where the cluster serves none (nothing to prune, and
        // asking for one is a 404 for the whole type).
        let mut all: Vec<ChildKind> = kinds(&d)
            .into_iter()
            .chain(d.prune.iter().map(|(k, _)| *k))
            .collect();
        all.sort();
        let expected: Vec<ChildKind> = ChildKind::ALL
            .into_iter()
            .filter(|k| *sm || *k != ServiceMonitor)
            .collect();
        assert_eq!(all, expected, "spec extra: {extra:?}");
    }
}

#[test]
fn every_child_is_owned_labelled_and_named_after_the_config() {
    let d = build_with(&config(FULL), &versions(), true);
    assert_eq!(d.apply.len(), 8);
    for c in &d.apply {
        let m = &c.object["metadata"];
        assert_eq!(m["name"], c.name.as_str());
        assert!(c.name.starts_with("news-"));
        assert_eq!(m["namespace"], "mail");
        assert_eq!(
            m["ownerReferences"],
            json!([{"apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig", "name": "news",
                    "uid": "uid-1", "controller": true, "blockOwnerDeletion": true}]),
            "{:?}",
            c.kind
        );
        for l in ["name", "instance", "component", "part-of", "managed-by"] {
            assert!(
                m["labels"][format!("app.kubernetes.io/{l}")].is_string(),
                "{:?} lacks {l}",
                c.kind
            );
        }
        assert_eq!(
            m["labels"]["app.kubernetes.io/managed-by"],
            "bounce-operator"
        );
        assert!(c.object["apiVersion"].is_string() && c.object["kind"].is_string());
    }
}

#[test]
fn config_map_is_the_resource_and_holds_no_secret_value() {
    let cfg = config(FULL);
    let d = build_with(&cfg, &versions(), false);
    let yaml = child(&d, ConfigMap)["data"]["config.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    let back: BounceConfig = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back.spec, cfg.spec, "the worker reads the very same spec");
    assert_eq!(
        back.spec.rules.reasons.len(),
        2,
        "rules by reason pass through"
    );
    assert_eq!(back.metadata.name.as_deref(), Some("news"));
    assert!(yaml.contains("urlSecretRef"));
    assert!(
        !yaml.contains("uid-1"),
        "only name and namespace of the metadata"
    );
}

#[test]
fn webhook_deployment_runs_the_worker_safely() {
    let d = build_with(&config(FULL), &versions(), false);
    let dep = child(&d, WebhookDeployment);
    assert_eq!(dep["spec"]["replicas"], 2);
    assert!(dep["spec"].get("strategy").is_none());
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.test/bounce-worker:1");
    assert_eq!(
        c["args"],
        json!([
            "run",
            "--config",
            "/etc/bounceops/config.yaml",
            "--secrets-dir",
            "/var/run/bounceops/secrets",
            "--listen",
            "0.0.0.0:8080",
            "--role",
            "webhook"
        ])
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    // Serves on while kube-proxy learns that a deleted pod left the endpoints.
    assert_eq!(c["lifecycle"]["preStop"]["sleep"]["seconds"], DRAIN_SECONDS);
    assert!(pod["initContainers"][0].get("lifecycle").is_none());
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["automountServiceAccountToken"], false);
    let hash = &dep["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION];
    assert_eq!(hash.as_str(), Some(d.hash.as_str()));
    // Selector labels match the pod labels and the Service's selector.
    let sel = &dep["spec"]["selector"]["matchLabels"];
    for (k, v) in sel.as_object().unwrap() {
        assert_eq!(&dep["spec"]["template"]["metadata"]["labels"][k], v);
    }
    assert_eq!(&child(&d, WebhookService)["spec"]["selector"], sel);
}

#[test]
fn image_and_webhook_resources_come_from_the_spec_when_given() {
    let spec = format!("{FULL}image: registry.test/custom:2\n").replace(
        "webhook:\n",
        "webhook:\n  resources: {requests: {cpu: 200m}, limits: {memory: 512Mi}}\n",
    );
    let d = build_with(&config(&spec), &versions(), false);
    let web = &child(&d, WebhookDeployment)["spec"]["template"]["spec"];
    assert_eq!(web["containers"][0]["image"], "registry.test/custom:2");
    assert_eq!(web["initContainers"][0]["image"], "registry.test/custom:2");
    assert_eq!(
        web["containers"][0]["resources"],
        json!({"requests": {"cpu": "200m"}, "limits": {"memory": "512Mi"}})
    );
    // The mailbox scanner keeps the defaults: the webhook's sizing is not its own.
    let mailbox = &child(&d, MailboxDeployment)["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(mailbox["image"], "registry.test/custom:2");
    assert_eq!(mailbox["resources"]["limits"]["memory"], "256Mi");
}

#[test]
fn each_role_mounts_only_the_secrets_it_reads_once_at_its_name() {
    let d = build_with(&config(FULL), &versions(), false);
    // The webhook pods never see the mailbox logins; the scanner never sees the API
    // credentials or a provider's key.
    for (kind, secrets) in [
        (
            WebhookDeployment,
            ["bounce-api", "listmonk-db", "sendgrid"].as_slice(),
        ),
        (MailboxDeployment, ["listmonk-db", "mailbox"].as_slice()),
    ] {
        let pod = &child(&d, kind)["spec"]["template"]["spec"];
        let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
        let secret_mounts: BTreeMap<String, String> = mounts
            .iter()
            .filter(|m| m["mountPath"].as_str().unwrap().starts_with(SECRETS_DIR))
            .map(|m| {
                (
                    m["mountPath"].as_str().unwrap().to_owned(),
                    m["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want: Vec<String> = secrets
            .iter()
            .map(|s| format!("{SECRETS_DIR}/{s}"))
            .collect();
        assert_eq!(
            secret_mounts.keys().cloned().collect::<Vec<_>>(),
            want,
            "{kind:?}"
        );
        for (path, vol) in &secret_mounts {
            let v = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == vol.as_str())
                .unwrap();
            assert_eq!(v["secret"]["secretName"].as_str(), path.rsplit('/').next());
            assert!(vol.len() <= 63);
        }
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == "/etc/bounceops" && m["readOnly"] == true)
        );
        // The migrate init container reads the config and the database URL, nothing else.
        let init = &pod["initContainers"][0];
        assert_eq!(init["name"], "migrate");
        let paths: Vec<&str> = init["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/etc/bounceops",
                "/tmp",
                &format!("{SECRETS_DIR}/listmonk-db")
            ],
            "{kind:?}"
        );
    }
}

#[test]
fn mailbox_deployment_is_one_recreated_scanner() {
    let d = build_with(&config(FULL), &versions(), false);
    let dep = child(&d, MailboxDeployment);
    assert_eq!(dep["spec"]["replicas"], 1);
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    let args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    assert_eq!(args[args.len() - 2..], [json!("--role"), json!("mailbox")]);
    // No Service sends it traffic: nothing to keep serving while terminating.
    assert!(
        dep["spec"]["template"]["spec"]["containers"][0]
            .get("lifecycle")
            .is_none()
    );
    assert_eq!(d.mailbox_replicas, Some(1));

    let off = build_with(
        &config(&format!("{FULL}\nenabled: false").replace("enabled: true\n", "")),
        &versions(),
        false,
    );
    assert_eq!(child(&off, MailboxDeployment)["spec"]["replicas"], 0);
    assert_eq!(child(&off, WebhookDeployment)["spec"]["replicas"], 0);
}

#[test]
fn ingress_pdb_and_service_monitor_point_at_the_webhook_service() {
    let d = build_with(&config(FULL), &versions(), true);
    let ing = child(&d, Ingress);
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(ing["spec"]["rules"][0]["host"], "bounces.example.com");
    let path = &ing["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["path"], "/webhooks");
    assert_eq!(path["backend"]["service"]["name"], "news-webhook");
    assert_eq!(
        ing["spec"]["tls"],
        json!([{"hosts": ["bounces.example.com"], "secretName": "bounces-tls"}])
    );
    assert_eq!(d.webhook_url, "https://bounces.example.com/webhooks");

    assert_eq!(child(&d, PodDisruptionBudget)["spec"]["minAvailable"], 1);
    let sm = child(&d, ServiceMonitor);
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
    let sel = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    for svc in [WebhookService, MailboxService] {
        let labels = child(&d, svc)["metadata"]["labels"].as_object().unwrap();
        assert!(
            sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "ServiceMonitor selects {svc:?}"
        );
        assert_eq!(child(&d, svc)["spec"]["ports"][0]["name"], "http");
    }
    assert_eq!(child(&d, MailboxService)["spec"]["clusterIP"], "None");
    assert_eq!(
        child(&d, MailboxService)["spec"]["selector"],
        child(&d, MailboxDeployment)["spec"]["selector"]["matchLabels"]
    );

    let plain = build_with(&config(BASE), &versions(), false);
    assert_eq!(plain.webhook_url, "http://news-webhook.mail.svc/webhooks");
}

#[test]
fn hash_follows_config_and_secret_versions_but_not_scaling() {
    let cfg = config(BASE);
    let a = build_with(&cfg, &versions(), false);
    assert_eq!(
        a,
        build_with(&cfg, &versions(), false),
        "the build is deterministic"
    );

    let mut rotated = versions();
    rotated.insert("db".into(), "99".into());
    assert_ne!(
        a.hash,
        build_with(&cfg, &rotated, false).hash,
        "a rotated Secret rolls the pods"
    );

    let changed = config(&format!("{BASE}rules: {{window: 24h}}"));
    assert_ne!(
        a.hash,
        build_with(&changed, &versions(), false).hash,
        "a config change rolls the pods"
    );

    let scaled = config(&format!("{BASE}webhook: {{replicas: 5}}"));
    assert_eq!(
        a.hash,
        build_with(&scaled, &versions(), false).hash,
        "scaling alone rolls nothing"
    );
}

#[test]
fn full_example_snapshot() {
    let d = build_with(&config(FULL), &versions(), true);
    // The rendered config and its hash follow the api types, which other features grow;
    // their content is tested above, so the snapshot pins only the operator's own shapes.
    let objects: Vec<Value> = d
        .apply
        .iter()
        .map(|c| {
            let mut o = c.object.clone();
            if let Some(data) = o.pointer_mut("/data/config.yaml") {
                *data = json!("<rendered config>");
            }
            if let Some(h) =
                o.pointer_mut("/spec/template/metadata/annotations/bounceops.io~1config-hash")
            {
                *h = json!("<hash>");
            }
            o
        })
        .collect();
    insta::assert_yaml_snapshot!(objects);
}

#[test]
fn worker_pull_policy_reaches_every_worker_container() {
    let cfg = config(FULL);
    let built = build(&Inputs {
        config: &cfg,
        secret_versions: &versions(),
        service_monitor_crd: false,
        settings: &Settings {
            worker_image: "localhost/bounceops/bounce-worker:dev".into(),
            worker_image_pull_policy: Some("Never".into()),
        },
    });
    let mut seen = 0;
    for child in &built.apply {
        let spec = &child.object["spec"]["template"]["spec"];
        for list in ["containers", "initContainers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                assert_eq!(
                    c["imagePullPolicy"], "Never",
                    "{} {}",
                    child.name, c["name"]
                );
                seen += 1;
            }
        }
    }
    assert!(
        seen >= 4,
        "webhook and mailbox pods, worker and migrate containers: {seen}"
    );
}

#[test]
fn scanner_memory_limit_follows_the_largest_message_it_may_download() {
    let limit = |spec: &str, kind: ChildKind| {
        let d = build_with(&config(spec), &versions(), false);
        child(&d, kind)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
            ["memory"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mailbox = |bytes: u64| {
        format!(
            "{BASE}mailboxes: [{{name: a, protocol: imap, host: h, port: 993, usernameSecretRef: {{name: m, key: u}}, passwordSecretRef: {{name: m, key: p}}, maxMessageBytes: {bytes}}}]\n"
        )
    };
    // The default 10 MiB fits the default limit.
    assert_eq!(
        limit(&mailbox(10 << 20), ChildKind::MailboxDeployment),
        "256Mi"
    );
    // 100 MiB messages: 64 + 8 x 100 MiB.
    assert_eq!(
        limit(&mailbox(100 << 20), ChildKind::MailboxDeployment),
        "864Mi"
    );
    // The webhook workers never download mail.
    assert_eq!(
        limit(&mailbox(100 << 20), ChildKind::WebhookDeployment),
        "256Mi"
    );
}
