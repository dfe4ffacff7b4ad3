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
            redact_desired_hash(&mut o);
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
fn memory_limits_follow_the_largest_message_a_worker_may_hold() {
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
    // 100 MiB messages: 64 + 16 x 100 MiB.
    assert_eq!(
        limit(&mailbox(100 << 20), ChildKind::MailboxDeployment),
        "1664Mi"
    );
    // The webhook workers never download mail.
    assert_eq!(
        limit(&mailbox(100 << 20), ChildKind::WebhookDeployment),
        "256Mi"
    );
    // The bounce MX holds four messages at once and classifies one: 64 + 16 x 100 MiB.
    let smtp = |extra: &str| format!("{BASE}{SMTP}{extra}");
    assert_eq!(limit(&smtp(""), ChildKind::SmtpDeployment), "256Mi");
    assert_eq!(
        limit(
            &smtp(&format!("  maxMessageBytes: {}\n", 100 << 20)),
            ChildKind::SmtpDeployment
        ),
        "1664Mi"
    );
}

/// The bounce MX on top of every other role: its Secrets beside the others', so a test can
/// see that each role mounts only its own.
const SMTP: &str = r#"
smtp:
  domains: [bounces.example.com]
  verpKeySecretRef: {name: verp-key, key: key}
  previousVerpKeySecretRef: {name: verp-key-old, key: key}
  tlsSecretName: mx-tls
  port: 2525
  replicas: 3
  service:
    type: LoadBalancer
    annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}
"#;

fn full_smtp() -> BounceConfig {
    config(&format!("{FULL}{SMTP}"))
}

#[test]
fn the_bounce_mx_gets_its_deployment_services_and_pdb_and_loses_them_with_spec_smtp() {
    let smtp = |extra: &str| format!("{BASE}webhook: {{replicas: 1}}\n{SMTP}{extra}");
    let cases: &[(String, &[ChildKind])] = &[
        (
            smtp(""),
            &[
                ConfigMap,
                WebhookDeployment,
                WebhookService,
                SmtpDeployment,
                SmtpService,
                SmtpMetricsService,
                SmtpPodDisruptionBudget,
            ],
        ),
        // One replica: nothing for a PodDisruptionBudget to keep up.
        (
            smtp("").replace("replicas: 3", "replicas: 1"),
            &[
                ConfigMap,
                WebhookDeployment,
                WebhookService,
                SmtpDeployment,
                SmtpService,
                SmtpMetricsService,
            ],
        ),
        (
            smtp("enabled: false\n"),
            &[
                ConfigMap,
                WebhookDeployment,
                WebhookService,
                SmtpDeployment,
                SmtpService,
                SmtpMetricsService,
            ],
        ),
        // spec.smtp removed: all of it is pruned.
        (
            format!("{BASE}webhook: {{replicas: 1}}\n"),
            &[ConfigMap, WebhookDeployment, WebhookService],
        ),
    ];
    for (spec, want) in cases {
        let d = build_with(&config(spec), &versions(), false);
        assert_eq!(kinds(&d), *want, "{spec}");
        let pruned: Vec<ChildKind> = d.prune.iter().map(|(k, _)| *k).collect();
        for kind in [
            SmtpDeployment,
            SmtpService,
            SmtpMetricsService,
            SmtpPodDisruptionBudget,
        ] {
            assert_ne!(
                want.contains(&kind),
                pruned.contains(&kind),
                "{kind:?} is either applied or pruned: {spec}"
            );
        }
    }
    let off = build_with(&config(&smtp("enabled: false\n")), &versions(), false);
    assert_eq!(off.smtp_replicas, Some(0));
    assert_eq!(child(&off, SmtpDeployment)["spec"]["replicas"], 0);
    let gone = build_with(&config(BASE), &versions(), false);
    assert_eq!(gone.smtp_replicas, None);
    assert!(
        gone.prune
            .iter()
            .any(|(k, name)| *k == SmtpService && name == "news-smtp")
    );
}

#[test]
fn smtp_deployment_runs_the_contracted_command_on_its_ports() {
    let d = build_with(&full_smtp(), &versions(), true);
    let dep = child(&d, SmtpDeployment);
    assert_eq!(dep["metadata"]["name"], "news-smtp");
    assert_eq!(dep["spec"]["replicas"], 3);
    assert_eq!(d.smtp_replicas, Some(3));
    // Rolling, like the webhook: two SMTP servers side by side are fine.
    assert!(dep["spec"].get("strategy").is_none());
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
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
            "smtp",
            "--smtp-listen",
            "0.0.0.0:2525"
        ])
    );
    assert_eq!(
        c["ports"],
        json!([
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "smtp", "containerPort": 2525, "protocol": "TCP"}
        ])
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["lifecycle"]["preStop"]["sleep"]["seconds"], DRAIN_SECONDS);
    // The same hardening as the other workers, the same migrate-first start.
    let web = &child(&d, WebhookDeployment)["spec"]["template"]["spec"];
    assert_eq!(
        c["securityContext"],
        web["containers"][0]["securityContext"]
    );
    assert_eq!(pod["securityContext"], web["securityContext"]);
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["initContainers"][0]["name"], "migrate");
    assert_eq!(
        pod["initContainers"][0]["args"],
        web["initContainers"][0]["args"]
    );
    assert!(pod["initContainers"][0].get("ports").is_none());
    // The webhook's default sizing.
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION],
        d.hash.as_str()
    );
    assert_eq!(
        dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
        "smtp"
    );

    // Another port, and sizing of its own.
    let spec = format!("{FULL}{SMTP}").replace("port: 2525", "port: 10025")
        + "  resources: {requests: {cpu: 100m}, limits: {memory: 128Mi}}\n";
    let d = build_with(&config(&spec), &versions(), false);
    let c = &child(&d, SmtpDeployment)["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][10], "0.0.0.0:10025");
    assert_eq!(c["ports"][1]["containerPort"], 10025);
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "100m"}, "limits": {"memory": "128Mi"}})
    );
    assert_eq!(
        child(&d, SmtpService)["spec"]["ports"][0]["targetPort"],
        "smtp",
        "the Service follows the container port by name"
    );
    // The webhook keeps its own.
    let web = &child(&d, WebhookDeployment)["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(web["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(web["ports"].as_array().unwrap().len(), 1);
}

/// Secret volumes mounted into a pod's worker container, by mount path.
fn secret_mounts(d: &Desired, kind: ChildKind) -> Vec<String> {
    let pod = &child(d, kind)["spec"]["template"]["spec"];
    let mut paths: Vec<String> = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .filter_map(|p| p.strip_prefix(&format!("{SECRETS_DIR}/")))
        .map(str::to_owned)
        .collect();
    paths.sort();
    // Every mount is of its own Secret, whole (so `tls.crt` and `tls.key` both appear).
    for v in pod["volumes"].as_array().unwrap() {
        if let Some(s) = v.get("secret") {
            assert!(s.get("items").is_none(), "{v}");
            assert!(paths.iter().any(|p| s["secretName"] == p.as_str()), "{v}");
        }
    }
    paths
}

#[test]
fn only_the_smtp_pods_mount_the_verp_keys_and_the_certificate() {
    let d = build_with(&full_smtp(), &versions(), false);
    assert_eq!(
        secret_mounts(&d, SmtpDeployment),
        ["listmonk-db", "mx-tls", "verp-key", "verp-key-old"],
        "no API credentials, provider keys or mailbox logins"
    );
    assert_eq!(
        secret_mounts(&d, WebhookDeployment),
        ["bounce-api", "listmonk-db", "sendgrid"]
    );
    assert_eq!(
        secret_mounts(&d, MailboxDeployment),
        ["listmonk-db", "mailbox"]
    );
    // The certificate lands where the worker reads it: <secrets-dir>/<tlsSecretName>/tls.crt.
    let pod = &child(&d, SmtpDeployment)["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == format!("{SECRETS_DIR}/mx-tls").as_str())
        .unwrap();
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], "mx-tls");
    // migrate reads the database only, in this role too.
    let init: Vec<&str> = pod["initContainers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        init,
        [
            "/etc/bounceops",
            "/tmp",
            &format!("{SECRETS_DIR}/listmonk-db")
        ]
    );
    // Without a certificate: the keys only.
    let plain = config(&format!("{FULL}{SMTP}").replace("  tlsSecretName: mx-tls\n", ""));
    let d = build_with(&plain, &versions(), false);
    assert_eq!(
        secret_mounts(&d, SmtpDeployment),
        ["listmonk-db", "verp-key", "verp-key-old"]
    );
}

#[test]
fn the_smtp_service_publishes_port_25_only_and_metrics_stay_inside() {
    let d = build_with(&full_smtp(), &versions(), true);
    let svc = child(&d, SmtpService);
    assert_eq!(svc["metadata"]["name"], "news-smtp");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    let annotations = svc["metadata"]["annotations"].as_object().unwrap();
    assert_eq!(
        annotations["service.beta.kubernetes.io/aws-load-balancer-type"],
        "nlb"
    );
    assert_eq!(annotations.len(), 2, "the spec's and the operator's own");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "smtp", "port": 25, "targetPort": "smtp", "protocol": "TCP"}]),
        "nothing of the worker's HTTP faces the internet"
    );
    let sel = &child(&d, SmtpDeployment)["spec"]["selector"]["matchLabels"];
    assert_eq!(&svc["spec"]["selector"], sel);
    assert_eq!(
        sel["app.kubernetes.io/component"], "smtp",
        "the webhook pods are not behind it"
    );

    let metrics = child(&d, SmtpMetricsService);
    assert_eq!(metrics["metadata"]["name"], "news-smtp-metrics");
    assert_eq!(metrics["spec"]["clusterIP"], "None");
    assert_eq!(&metrics["spec"]["selector"], sel);
    assert_eq!(metrics["spec"]["ports"][0]["name"], "http");
    assert_eq!(metrics["spec"]["ports"][0]["port"], HTTP_PORT);
    // The ServiceMonitor scrapes the metrics Service's `http` port; the SMTP Service has
    // no port of that name, so it adds no target.
    let sm = child(&d, ServiceMonitor);
    let want = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    let labels = metrics["metadata"]["labels"].as_object().unwrap();
    assert!(want.iter().all(|(k, v)| labels.get(k) == Some(v)));
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");

    // ClusterIP by default, without annotations.
    let plain = config(
        &format!("{FULL}{SMTP}")
            .replace("    type: LoadBalancer\n", "")
            .replace(
                "    annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}\n",
                "",
            ),
    );
    let svc = child(&build_with(&plain, &versions(), false), SmtpService).clone();
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(
        svc["metadata"]["annotations"].as_object().unwrap().len(),
        1,
        "only the operator's own: {}",
        svc["metadata"]
    );
    for t in ["NodePort", "ClusterIP"] {
        let c = config(&format!("{FULL}{SMTP}").replace("LoadBalancer", t));
        assert_eq!(
            child(&build_with(&c, &versions(), false), SmtpService)["spec"]["type"],
            t
        );
    }

    let pdb = child(&d, SmtpPodDisruptionBudget);
    assert_eq!(pdb["metadata"]["name"], "news-smtp");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], sel);
    // The webhook's PDB still keeps the webhook pods only.
    assert_eq!(
        child(&d, PodDisruptionBudget)["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        "webhook"
    );
}

#[test]
fn a_rotated_verp_key_or_certificate_rolls_the_pods_and_smtp_scaling_does_not() {
    let cfg = full_smtp();
    let mut v = versions();
    v.extend([
        ("verp-key".to_owned(), "20".to_owned()),
        ("verp-key-old".to_owned(), "21".to_owned()),
        ("mx-tls".to_owned(), "22".to_owned()),
    ]);
    let a = build_with(&cfg, &v, false);
    for secret in ["verp-key", "verp-key-old", "mx-tls"] {
        let mut rotated = v.clone();
        rotated.insert(secret.into(), "99".into());
        let b = build_with(&cfg, &rotated, false);
        assert_ne!(a.hash, b.hash, "{secret}");
        assert_eq!(
            child(&b, SmtpDeployment)["spec"]["template"]["metadata"]["annotations"]
                [HASH_ANNOTATION],
            b.hash.as_str()
        );
    }
    let scaled = config(&format!("{FULL}{SMTP}").replace("replicas: 3", "replicas: 5"));
    assert_eq!(a.hash, build_with(&scaled, &v, false).hash);
    let moved = config(&format!("{FULL}{SMTP}").replace("port: 2525", "port: 2526"));
    assert_ne!(
        a.hash,
        build_with(&moved, &v, false).hash,
        "the worker reads its config"
    );
}

#[test]
fn every_smtp_and_relay_child_is_owned_labelled_and_named_after_the_config() {
    let d = build_with(&full_relay(), &versions(), true);
    assert_eq!(d.apply.len(), ChildKind::ALL.len());
    for c in &d.apply {
        let m = &c.object["metadata"];
        assert_eq!(m["name"], c.name.as_str());
        assert_eq!(m["ownerReferences"][0]["uid"], "uid-1", "{:?}", c.kind);
        assert_eq!(m["ownerReferences"][0]["controller"], true);
        assert_eq!(
            m["labels"]["app.kubernetes.io/managed-by"],
            "bounce-operator"
        );
    }
}

#[test]
fn smtp_snapshot() {
    let d = build_with(&full_smtp(), &versions(), true);
    let objects: Vec<Value> = d
        .apply
        .iter()
        .filter(|c| {
            matches!(
                c.kind,
                SmtpDeployment | SmtpService | SmtpMetricsService | SmtpPodDisruptionBudget
            )
        })
        .map(|c| {
            let mut o = c.object.clone();
            if let Some(h) =
                o.pointer_mut("/spec/template/metadata/annotations/bounceops.io~1config-hash")
            {
                *h = json!("<hash>");
            }
            redact_desired_hash(&mut o);
            o
        })
        .collect();
    insta::assert_yaml_snapshot!(objects);
}

/// The desired-object hash follows every byte of the object (the rendered config too), so
/// snapshots show only that it is there.
fn redact_desired_hash(o: &mut Value) {
    let h = o
        .pointer_mut("/metadata/annotations/bounceops.io~1desired-hash")
        .expect("every child carries its desired hash");
    *h = json!("<hash>");
}

#[test]
fn the_desired_hash_changes_with_every_change_removals_included() {
    let hash = |spec: &str, kind: ChildKind| {
        let d = build_with(&config(spec), &versions(), true);
        child(&d, kind)["metadata"]["annotations"][DESIRED_HASH_ANNOTATION]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let with = format!("{FULL}{SMTP}");
    let without = with.replace(
        "    annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}\n",
        "",
    );
    assert_ne!(with, without);
    assert_ne!(hash(&with, SmtpService), hash(&without, SmtpService));
    // Same spec, same hash: a steady state applies nothing.
    assert_eq!(hash(&with, SmtpService), hash(&with, SmtpService));
    // Only the child that changed: the Deployment is untouched by a Service annotation...
    // except through the config every worker reads, which changed too.
    assert_eq!(hash(&with, WebhookService), hash(&without, WebhookService));
    assert_ne!(
        hash(&with, WebhookDeployment),
        hash(&without, WebhookDeployment)
    );
    // The hash covers the object without itself: stamping again changes nothing.
    let d = build_with(&config(&with), &versions(), true);
    for c in &d.apply {
        let mut again = c.object.clone();
        let before = again["metadata"]["annotations"][DESIRED_HASH_ANNOTATION].clone();
        again["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(DESIRED_HASH_ANNOTATION);
        if again["metadata"]["annotations"]
            .as_object()
            .unwrap()
            .is_empty()
        {
            again["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations");
        }
        let digest = Sha256::digest(again.to_string().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(before, hex.as_str(), "{:?}", c.kind);
    }
}

/// The relay beside every other role, with each of its Secrets: a test can see that each
/// role mounts only its own.
const RELAY: &str = r#"
relay:
  returnPathDomain: bounces.example.com
  upstream:
    host: smtp.example.com
    caSecretRef: {name: upstream-ca, key: ca.crt}
    usernameSecretRef: {name: upstream-login, key: username}
    passwordSecretRef: {name: upstream-login, key: password}
  credentialsSecretRef: {name: relay-logins, key: logins}
  tlsSecretName: relay-tls
  replicas: 2
"#;

fn full_relay() -> BounceConfig {
    config(&format!("{FULL}{SMTP}{RELAY}"))
}

const RELAY_CHILDREN: [ChildKind; 3] = [RelayDeployment, RelayService, RelayPodDisruptionBudget];

#[test]
fn the_relay_gets_its_deployment_service_and_pdb_only_with_replicas() {
    let with = |replicas: &str, extra: &str| {
        let spec = format!("{BASE}webhook: {{replicas: 1}}\n{SMTP}{RELAY}{extra}")
            .replace("  replicas: 2\n", &format!("  replicas: {replicas}\n"))
            .replace("replicas: 3", "replicas: 1");
        build_with(&config(&spec), &versions(), false)
    };
    let relay_kinds = |d: &Desired| -> Vec<ChildKind> {
        kinds(d)
            .into_iter()
            .filter(|k| RELAY_CHILDREN.contains(k))
            .collect()
    };
    let cases: &[(&str, &str, &[ChildKind], Option<i32>)] = &[
        ("2", "", &RELAY_CHILDREN, Some(2)),
        // One replica: nothing for a PodDisruptionBudget to keep up.
        ("1", "", &[RelayDeployment, RelayService], Some(1)),
        // The sidecar form only: no Deployment, no Service.
        ("0", "", &[], None),
        // Disabled: scaled to zero, kept.
        (
            "2",
            "enabled: false\n",
            &[RelayDeployment, RelayService],
            Some(0),
        ),
    ];
    for (replicas, extra, want, want_replicas) in cases {
        let d = with(replicas, extra);
        assert_eq!(relay_kinds(&d), *want, "replicas {replicas} {extra}");
        assert_eq!(
            d.relay_replicas, *want_replicas,
            "replicas {replicas} {extra}"
        );
        let pruned: Vec<ChildKind> = d.prune.iter().map(|(k, _)| *k).collect();
        for kind in RELAY_CHILDREN {
            assert_ne!(
                want.contains(&kind),
                pruned.contains(&kind),
                "{kind:?} is either applied or pruned: replicas {replicas} {extra}"
            );
        }
    }
    assert_eq!(
        child(&with("2", "enabled: false\n"), RelayDeployment)["spec"]["replicas"],
        0
    );
    // spec.relay removed: all of it is pruned, by name.
    let gone = build_with(&full_smtp(), &versions(), false);
    assert_eq!(gone.relay_replicas, None);
    for kind in RELAY_CHILDREN {
        assert!(
            gone.prune.contains(&(kind, "news-relay".to_owned())),
            "{kind:?}: {:?}",
            gone.prune
        );
    }
}

#[test]
fn the_relay_deployment_runs_the_contracted_command_with_only_its_secrets() {
    let d = build_with(&full_relay(), &versions(), true);
    let dep = child(&d, RelayDeployment);
    assert_eq!(dep["metadata"]["name"], "news-relay");
    assert_eq!(dep["spec"]["replicas"], 2);
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
            "relay",
            "--relay-listen",
            "0.0.0.0:2525"
        ])
    );
    assert_eq!(
        c["ports"],
        json!([
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "submission", "containerPort": 2525, "protocol": "TCP"}
        ])
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["lifecycle"]["preStop"]["sleep"]["seconds"], DRAIN_SECONDS);
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}})
    );
    let web = &child(&d, WebhookDeployment)["spec"]["template"]["spec"];
    assert_eq!(
        c["securityContext"],
        web["containers"][0]["securityContext"]
    );
    assert_eq!(pod["securityContext"], web["securityContext"]);
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["initContainers"][0]["name"], "migrate");
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION],
        d.hash.as_str()
    );
    assert_eq!(
        dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
        "relay"
    );

    // Its Secrets: the database, the current VERP key (not the previous one, not the MX's
    // certificate), the upstream's login and CA, its senders' logins, its certificate.
    assert_eq!(
        secret_mounts(&d, RelayDeployment),
        [
            "listmonk-db",
            "relay-logins",
            "relay-tls",
            "upstream-ca",
            "upstream-login",
            "verp-key"
        ]
    );
    // And nobody else gets the upstream's login or the senders' logins.
    for kind in [WebhookDeployment, MailboxDeployment, SmtpDeployment] {
        let mounted = secret_mounts(&d, kind);
        for relay_only in ["relay-logins", "relay-tls", "upstream-ca", "upstream-login"] {
            assert!(
                !mounted.iter().any(|m| m == relay_only),
                "{kind:?} mounts {relay_only}"
            );
        }
    }
    assert_eq!(
        secret_mounts(&d, SmtpDeployment),
        ["listmonk-db", "mx-tls", "verp-key", "verp-key-old"]
    );

    // Another port and sizing of its own.
    let spec = format!("{FULL}{SMTP}{RELAY}").replace(
        "  replicas: 2\n",
        "  replicas: 2\n  port: 10587\n  resources: {limits: {memory: 64Mi}}\n",
    );
    let d = build_with(&config(&spec), &versions(), false);
    let c = &child(&d, RelayDeployment)["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][10], "0.0.0.0:10587");
    assert_eq!(c["ports"][1]["containerPort"], 10587);
    assert_eq!(c["resources"], json!({"limits": {"memory": "64Mi"}}));
    // The Service keeps its port 2525 and follows the container port by name.
    let svc = child(&d, RelayService);
    assert_eq!(svc["spec"]["ports"][0]["port"], 2525);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "submission");
}

#[test]
fn the_relay_service_is_cluster_internal_and_scraped_like_the_others() {
    let d = build_with(&full_relay(), &versions(), true);
    let svc = child(&d, RelayService);
    assert_eq!(svc["metadata"]["name"], "news-relay");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(
        svc["spec"]["ports"],
        json!([
            {"name": "submission", "port": 2525, "targetPort": "submission", "protocol": "TCP"},
            {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
        ])
    );
    let sel = &child(&d, RelayDeployment)["spec"]["selector"]["matchLabels"];
    assert_eq!(&svc["spec"]["selector"], sel);
    assert_eq!(sel["app.kubernetes.io/component"], "relay");
    let sm = child(&d, ServiceMonitor);
    let want = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    let labels = svc["metadata"]["labels"].as_object().unwrap();
    assert!(want.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let pdb = child(&d, RelayPodDisruptionBudget);
    assert_eq!(pdb["metadata"]["name"], "news-relay");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], sel);
    assert_eq!(
        relay_service_address(&full_relay()),
        "news-relay.mail.svc:2525"
    );
}

#[test]
fn relay_scaling_rolls_nothing_and_its_secrets_roll_the_pods() {
    let mut v = versions();
    v.insert("upstream-login".into(), "30".into());
    let a = build_with(&full_relay(), &v, false);
    let scaled =
        config(&format!("{FULL}{SMTP}{RELAY}").replace("  replicas: 2\n", "  replicas: 4\n"));
    assert_eq!(a.hash, build_with(&scaled, &v, false).hash);
    // Down to the sidecar form only: the other workers do not roll either.
    let sidecar =
        config(&format!("{FULL}{SMTP}{RELAY}").replace("  replicas: 2\n", "  replicas: 0\n"));
    assert_eq!(a.hash, build_with(&sidecar, &v, false).hash);
    let mut rotated = v.clone();
    rotated.insert("upstream-login".into(), "31".into());
    let b = build_with(&full_relay(), &rotated, false);
    assert_ne!(a.hash, b.hash);
    assert_eq!(
        child(&b, RelayDeployment)["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION],
        b.hash.as_str()
    );
}

#[test]
fn the_sidecar_is_the_relay_container_on_loopback_with_its_own_volumes() {
    let cfg = full_relay();
    let settings = Settings {
        worker_image: "registry.test/bounce-worker:1".into(),
        worker_image_pull_policy: None,
    };
    let d = build_with(&cfg, &versions(), false);
    let dep_pod = &child(&d, RelayDeployment)["spec"]["template"]["spec"];
    let deployed = &dep_pod["containers"][0];
    let sidecar = serde_json::to_value(sidecar_container(&cfg, &settings)).unwrap();
    assert_eq!(sidecar["name"], RELAY_CONTAINER);
    assert_eq!(sidecar["restartPolicy"], "Always");
    let args: Vec<&str> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "run",
            "--config",
            "/etc/bounceops/config.yaml",
            "--secrets-dir",
            "/var/run/bounceops/secrets",
            "--listen",
            "0.0.0.0:9125",
            "--role",
            "relay",
            "--relay-listen",
            "127.0.0.1:2525"
        ]
    );
    // Only the ops port, named apart from listmonk's `http` and numbered off its 9000:
    // the relay itself listens on loopback, for listmonk only.
    assert_eq!(
        sidecar["ports"],
        json!([{"name": "relay-metrics", "containerPort": 9125, "protocol": "TCP"}])
    );
    assert_ne!(RELAY_SIDECAR_OPS_PORT, 9000);
    assert_eq!(sidecar["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(sidecar["startupProbe"]["httpGet"]["port"], "relay-metrics");
    assert_eq!(sidecar["livenessProbe"]["httpGet"]["port"], "relay-metrics");
    assert!(
        sidecar.get("readinessProbe").is_none(),
        "listmonk's readiness is its own"
    );
    assert!(sidecar.get("lifecycle").is_none());
    // The same image, sizing and hardening as the Deployment's, and the pod-level parts
    // it cannot count on in listmonk's pod set on the container.
    for same in ["image", "resources"] {
        assert_eq!(sidecar[same], deployed[same], "{same}");
    }
    let sc = sidecar["securityContext"].as_object().unwrap();
    for (k, v) in deployed["securityContext"].as_object().unwrap() {
        assert_eq!(&sc[k], v, "{k}");
    }
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["runAsGroup"], 65532);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");

    // The Deployment's mounts, at the same paths, from volumes named apart from listmonk's.
    let paths = |mounts: &Value| -> Vec<String> {
        mounts
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        paths(&sidecar["volumeMounts"]),
        paths(&deployed["volumeMounts"])
    );
    let volumes = serde_json::to_value(sidecar_volumes(&cfg)).unwrap();
    let volumes = volumes.as_array().unwrap();
    assert_eq!(volumes.len(), dep_pod["volumes"].as_array().unwrap().len());
    for m in sidecar["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        assert!(name.starts_with(SIDECAR_VOLUME_PREFIX), "{name}");
        assert!(name.len() <= 63, "{name}");
        let v = volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"));
        if let Some(secret) = v.get("secret") {
            // listmonk's pod has no fsGroup of ours: readable by the relay's user.
            assert_eq!(secret["defaultMode"], 0o444);
            assert_eq!(
                m["mountPath"].as_str().unwrap(),
                format!("{SECRETS_DIR}/{}", secret["secretName"].as_str().unwrap())
            );
        }
    }
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == "news-config"),
        "the ConfigMap the operator renders"
    );

    // The patch for listmonk's Deployment is exactly these two.
    let patch = sidecar_patch(&cfg, &settings);
    assert_eq!(
        patch["spec"]["template"]["spec"]["initContainers"],
        json!([sidecar])
    );
    assert_eq!(
        patch["spec"]["template"]["spec"]["volumes"],
        Value::Array(volumes.clone())
    );
    assert_eq!(
        patch["spec"]["template"]["spec"].as_object().unwrap().len(),
        2
    );
    // spec.image wins, as in the Deployment.
    let custom = config(&format!(
        "{FULL}{SMTP}{RELAY}image: registry.test/custom:2\n"
    ));
    assert_eq!(
        sidecar_container(&custom, &settings).image.as_deref(),
        Some("registry.test/custom:2")
    );
}

#[test]
fn relay_snapshot() {
    let d = build_with(&full_relay(), &versions(), true);
    let mut objects: Vec<Value> = d
        .apply
        .iter()
        .filter(|c| RELAY_CHILDREN.contains(&c.kind))
        .map(|c| {
            let mut o = c.object.clone();
            if let Some(h) =
                o.pointer_mut("/spec/template/metadata/annotations/bounceops.io~1config-hash")
            {
                *h = json!("<hash>");
            }
            redact_desired_hash(&mut o);
            o
        })
        .collect();
    objects.push(sidecar_patch(
        &full_relay(),
        &Settings {
            worker_image: "registry.test/bounce-worker:1".into(),
            worker_image_pull_policy: None,
        },
    ));
    insta::assert_yaml_snapshot!(objects);
}
