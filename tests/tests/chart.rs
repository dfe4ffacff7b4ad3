//! The Helm chart (`charts/bounceops`), through the real helm (`BOUNCEOPS_HELM`): lint,
//! render with default and full values, and check what it renders.

use std::collections::BTreeSet;

use bounceops_tests::helm::{self, CHART, FULL_VALUES, Manifests, grants};
use bounceops_tests::{markdown, read};
use serde::Deserialize as _;
use serde_yaml::Value;

const NS: &str = "bounceops-system";
const CHART_CRD: &str = "charts/bounceops/crds/bounceconfig.yaml";

fn defaults() -> Manifests {
    helm::template(NS, &[], &[])
}

fn full() -> Manifests {
    helm::template(NS, &[FULL_VALUES], &[])
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("no string at {}", path.join(".")))
}

fn operator_container(m: &Manifests) -> &Value {
    let dep = m.one("Deployment");
    let containers = dep["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

fn args(m: &Manifests) -> Vec<String> {
    operator_container(m)["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

/// The value of the operator container's environment variable `name`.
fn env(m: &Manifests, name: &str) -> Option<String> {
    operator_container(m)["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    args.iter().find_map(|a| a.strip_prefix(&prefix))
}

/// Every rule in operator/rbac.yaml, as (group, resource, verb).
fn operator_rbac_yaml() -> BTreeSet<(String, String, String)> {
    let text = read("operator/rbac.yaml");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("operator/rbac.yaml is YAML"))
        .collect();
    let g = grants(docs.iter());
    assert!(!g.is_empty(), "operator/rbac.yaml has no rules");
    g
}

fn rbac_grants(m: &Manifests) -> BTreeSet<(String, String, String)> {
    grants(m.of_kind("ClusterRole").chain(m.of_kind("Role")))
}

fn is_lease(g: &(String, String, String)) -> bool {
    g.0 == "coordination.k8s.io" && g.1 == "leases"
}

#[test]
fn helm_lint_passes_with_default_and_full_values() {
    helm::run(&["lint", "--strict", CHART]);
    helm::run(&["lint", "--strict", CHART, "--values", FULL_VALUES]);
}

#[test]
fn chart_crd_is_byte_identical_to_the_generated_crd() {
    let generated = read("crds/bounceconfig.yaml");
    let in_chart = read(CHART_CRD);
    assert!(
        generated == in_chart,
        "{CHART_CRD} differs from crds/bounceconfig.yaml; copy it: cp crds/bounceconfig.yaml {CHART_CRD}"
    );
    // And helm really ships it.
    let m = defaults();
    let crd = m.one("CustomResourceDefinition");
    let expected: Value = serde_yaml::from_str(&generated).unwrap();
    assert_eq!(
        crd, &expected,
        "rendered CRD differs from crds/bounceconfig.yaml"
    );
}

#[test]
fn chart_app_version_is_the_workspace_version() {
    // The default image tags are the appVersion; the operator's built-in default worker
    // image is tagged with the crate version. They must name the same release.
    let chart: Value = serde_yaml::from_str(&read("charts/bounceops/Chart.yaml")).unwrap();
    let cargo = read("Cargo.toml");
    let version = cargo
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.trim().strip_prefix("version = "))
        .expect("workspace.package.version")
        .trim_matches('"');
    assert_eq!(str_at(&chart, &["appVersion"]), version);
}

#[test]
fn defaults_render_one_operator_without_leader_election() {
    let m = defaults();
    assert_eq!(
        m.kinds(),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "CustomResourceDefinition",
            "Deployment",
            "Service",
            "ServiceAccount",
        ]
    );
    let dep = m.one("Deployment");
    assert_eq!(str_at(dep, &["metadata", "namespace"]), NS);
    assert_eq!(dep["spec"]["replicas"].as_i64(), Some(1));
    // No Lease: a rollout must not run two operators side by side.
    assert_eq!(str_at(dep, &["spec", "strategy", "type"]), "Recreate");
    let a = args(&m);
    assert_eq!(flag(&a, "--leader-election"), Some("false"), "{a:?}");
    assert_eq!(
        flag(&a, "--namespace"),
        None,
        "watches all namespaces: {a:?}"
    );
    assert_eq!(flag(&a, "--worker-image"), None, "{a:?}");
    assert_eq!(
        env(&m, "BOUNCEOPS_WORKER_IMAGE").as_deref(),
        Some("ghcr.io/bounceops/bounce-worker:0.1.0")
    );
    assert_eq!(
        env(&m, "BOUNCEOPS_WORKER_IMAGE_PULL_POLICY"),
        None,
        "the cluster's default pull policy"
    );
    let c = operator_container(&m);
    assert_eq!(
        str_at(c, &["image"]),
        "ghcr.io/bounceops/bounce-operator:0.1.0"
    );
    assert!(
        !rbac_grants(&m).iter().any(is_lease),
        "no Lease permission without leader election"
    );
}

#[test]
fn operator_pod_has_image_probes_port_and_a_locked_down_security_context() {
    for m in [defaults(), full()] {
        let dep = m.one("Deployment");
        let pod = &dep["spec"]["template"]["spec"];
        let c = operator_container(&m);
        assert!(!str_at(c, &["image"]).is_empty());
        assert!(!str_at(c, &["imagePullPolicy"]).is_empty());
        let ports = c["ports"].as_sequence().expect("ports");
        let http = ports
            .iter()
            .find(|p| p["name"].as_str() == Some("http"))
            .expect("a port named http");
        let port = http["containerPort"].as_i64().expect("containerPort");
        assert_eq!(
            flag(&args(&m), "--listen"),
            Some(format!("0.0.0.0:{port}").as_str()),
            "the operator listens where the port and probes point"
        );
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(
                str_at(c, &[probe, "httpGet", "path"]),
                "/healthz",
                "{probe}"
            );
            assert_eq!(str_at(c, &[probe, "httpGet", "port"]), "http", "{probe}");
        }
        // The Lease namespace and identity come from the downward API.
        let env = c["env"].as_sequence().expect("env");
        for (name, field) in [
            ("POD_NAMESPACE", "metadata.namespace"),
            ("POD_NAME", "metadata.name"),
        ] {
            let e = env
                .iter()
                .find(|e| e["name"].as_str() == Some(name))
                .unwrap_or_else(|| panic!("env {name}"));
            assert_eq!(str_at(e, &["valueFrom", "fieldRef", "fieldPath"]), field);
        }
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
        assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
        assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
        assert!(c["resources"]["requests"]["memory"].is_string());
        assert!(c["resources"]["limits"]["memory"].is_string());
        // The pod runs as the chart's ServiceAccount.
        let sa = m.one("ServiceAccount");
        assert_eq!(
            str_at(pod, &["serviceAccountName"]),
            str_at(sa, &["metadata", "name"])
        );
        // The metrics Service reaches the pod's http port.
        let svc = m.one("Service");
        let labels = dep["spec"]["template"]["metadata"]["labels"]
            .as_mapping()
            .expect("pod labels");
        for (k, v) in svc["spec"]["selector"].as_mapping().expect("selector") {
            assert_eq!(
                labels.get(k),
                Some(v),
                "Service selector {k:?} matches the pod"
            );
        }
        assert_eq!(svc["spec"]["ports"][0]["targetPort"].as_str(), Some("http"));
    }
}

#[test]
fn full_values_render_every_option() {
    let m = full();
    assert_eq!(
        m.kinds(),
        [
            "ConfigMap",
            "CustomResourceDefinition",
            "Deployment",
            "PrometheusRule",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    );
    let dep = m.one("Deployment");
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(dep["spec"]["replicas"].as_i64(), Some(2));
    assert!(
        dep["spec"]["strategy"].is_null(),
        "rolling update with a Lease"
    );
    let a = args(&m);
    assert_eq!(flag(&a, "--leader-election"), Some("true"), "{a:?}");
    assert_eq!(flag(&a, "--lease-name"), Some("bounceops-operator"));
    assert_eq!(flag(&a, "--namespace"), Some("mail"));
    assert!(a.iter().any(|x| x == "--log-json"), "{a:?}");
    assert_eq!(
        env(&m, "BOUNCEOPS_WORKER_IMAGE").as_deref(),
        Some(
            "registry.example.com/bounceops/bounce-worker@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ),
        "a digest wins over the tag"
    );
    assert_eq!(
        env(&m, "BOUNCEOPS_WORKER_IMAGE_PULL_POLICY").as_deref(),
        Some("IfNotPresent")
    );
    let c = operator_container(&m);
    assert_eq!(
        str_at(c, &["image"]),
        "registry.example.com/bounceops/bounce-operator:0.1.0-test"
    );
    assert_eq!(str_at(c, &["imagePullPolicy"]), "Always");
    assert_eq!(str_at(pod, &["nodeSelector", "kubernetes.io/os"]), "linux");
    assert_eq!(pod["tolerations"][0]["key"].as_str(), Some("dedicated"));
    assert!(pod["affinity"]["podAntiAffinity"].is_mapping());
    assert!(pod["topologySpreadConstraints"].is_sequence());
    assert_eq!(pod["securityContext"]["runAsUser"].as_i64(), Some(10001));
    assert_eq!(
        str_at(pod, &["priorityClassName"]),
        "system-cluster-critical"
    );
    assert_eq!(
        pod["imagePullSecrets"][0]["name"].as_str(),
        Some("registry-credentials")
    );

    // watchNamespace: the operator's rules live in a Role there, the Lease Role at home.
    let roles: Vec<_> = m.of_kind("Role").collect();
    let ns_of = |v: &Value| str_at(v, &["metadata", "namespace"]).to_owned();
    assert!(roles.iter().any(|r| ns_of(r) == "mail"));
    assert!(
        roles
            .iter()
            .any(|r| ns_of(r) == NS && r["rules"][0]["resources"][0].as_str() == Some("leases"))
    );

    // The ServiceMonitor scrapes the metrics Service by its labels and port name.
    let sm = m.one("ServiceMonitor");
    let svc = m.one("Service");
    let svc_labels = svc["metadata"]["labels"].as_mapping().unwrap();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(
            svc_labels.get(k),
            Some(v),
            "ServiceMonitor selects the Service"
        );
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(
        str_at(sm, &["metadata", "labels", "release"]),
        "kube-prometheus-stack"
    );
    assert_eq!(svc["spec"]["ports"][0]["port"].as_i64(), Some(9090));

    let rule = m.one("PrometheusRule");
    let alerts: BTreeSet<&str> = rule["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    for a in [
        "BounceOpsSignatureFailuresRising",
        "BounceOpsMailboxScansFailing",
        "BounceOpsDatabaseErrors",
        "BounceOpsUnmatchedRatioHigh",
        "BounceOpsConfigNotReady",
    ] {
        assert!(alerts.contains(a), "alert {a} missing: {alerts:?}");
    }

    let cm = m.one("ConfigMap");
    assert_eq!(str_at(cm, &["metadata", "namespace"]), "monitoring");
    assert_eq!(
        str_at(cm, &["metadata", "annotations", "grafana_folder"]),
        "BounceOps"
    );
}

#[test]
fn rbac_grants_exactly_what_operator_rbac_yaml_grants() {
    let wanted = operator_rbac_yaml();
    let without_lease: BTreeSet<_> = wanted.iter().filter(|g| !is_lease(g)).cloned().collect();
    // Leader election on (replicas > 1): everything, Lease included.
    let two = helm::template(NS, &[], &["replicaCount=2"]);
    assert_eq!(rbac_grants(&two), wanted);
    assert_eq!(rbac_grants(&full()), wanted);
    // Off: everything but the Lease.
    assert_eq!(rbac_grants(&defaults()), without_lease);

    // Every binding points at a rendered role and at the chart's ServiceAccount.
    for m in [defaults(), two, full()] {
        let sa = m.one("ServiceAccount");
        let sa_name = str_at(sa, &["metadata", "name"]);
        let roles: BTreeSet<(String, String)> = m
            .of_kind("ClusterRole")
            .chain(m.of_kind("Role"))
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().to_owned(),
                    str_at(r, &["metadata", "name"]).to_owned(),
                )
            })
            .collect();
        let bindings: Vec<_> = m
            .of_kind("ClusterRoleBinding")
            .chain(m.of_kind("RoleBinding"))
            .collect();
        assert_eq!(bindings.len(), roles.len(), "one binding per role");
        for b in bindings {
            let r = (
                str_at(b, &["roleRef", "kind"]).to_owned(),
                str_at(b, &["roleRef", "name"]).to_owned(),
            );
            assert!(roles.contains(&r), "binding to a missing role {r:?}");
            let subject = &b["subjects"][0];
            assert_eq!(subject["kind"].as_str(), Some("ServiceAccount"));
            assert_eq!(subject["name"].as_str(), Some(sa_name));
            assert_eq!(subject["namespace"].as_str(), Some(NS));
        }
    }
}

#[test]
fn leader_election_follows_replicas_unless_forced() {
    let cases: [(&[&str], &str); 4] = [
        (&["replicaCount=1"], "false"),
        (&["replicaCount=3"], "true"),
        (&["replicaCount=1", "leaderElection.enabled=true"], "true"),
        (&["replicaCount=2", "leaderElection.enabled=false"], "false"),
    ];
    for (sets, want) in cases {
        let m = helm::template(NS, &[], sets);
        assert_eq!(flag(&args(&m), "--leader-election"), Some(want), "{sets:?}");
        let has_lease = rbac_grants(&m).iter().any(is_lease);
        assert_eq!(has_lease, want == "true", "Lease Role with {sets:?}");
    }
}

#[test]
fn values_schema_rejects_bad_values() {
    for set in [
        "logFormat=xml",
        "leaderElection.enabled=maybe",
        "image.pullPolicy=Sometimes",
        "watchNamespace=Not_A_Namespace",
        "unknownOption=1",
    ] {
        let err = helm::run_failing(&["template", "bounceops", CHART, "--set", set]);
        assert!(
            err.contains("schema") || err.contains("values don't meet"),
            "{set}: {err}"
        );
    }
}

#[test]
fn dashboard_configmap_carries_the_dashboard_for_the_grafana_sidecar() {
    let m = defaults();
    let cm = m.one("ConfigMap");
    assert_eq!(
        str_at(cm, &["metadata", "labels", "grafana_dashboard"]),
        "1"
    );
    let json = str_at(cm, &["data", "bounceops.json"]);
    let file = read("charts/bounceops/dashboards/bounceops.json");
    assert_eq!(json.trim_end(), file.trim_end());
    let dash: serde_json::Value = serde_json::from_str(json).expect("dashboard is JSON");
    assert_eq!(dash["uid"], "bounceops");
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() > 10));

    let off = helm::template(NS, &[], &["dashboards.enabled=false"]);
    assert_eq!(off.of_kind("ConfigMap").count(), 0);
}

#[test]
fn notes_tell_the_next_step() {
    let out = helm::run(&[
        "install",
        "bounceops",
        CHART,
        "--dry-run=client",
        "--namespace",
        NS,
    ]);
    assert!(out.contains("NOTES:"), "{out}");
    assert!(out.contains("kind: BounceConfig"), "{out}");
    assert!(out.contains("status.webhookUrl"), "{out}");
}

/// The oldest Kubernetes supported is the one k8s-openapi is compiled for (its `v1_*`
/// feature in the workspace manifest; the operator's `reconcile::server::MINIMUM` follows
/// it). The chart refuses older clusters with that number, and the pages a user reads
/// first say the same.
#[test]
fn the_minimum_kubernetes_is_the_compiled_one_everywhere() {
    let cargo = read("Cargo.toml");
    let feature = cargo
        .lines()
        .find(|l| l.trim_start().starts_with("k8s-openapi"))
        .and_then(|l| l.split('"').find(|w| w.starts_with("v1_")))
        .expect("a v1_* feature on k8s-openapi in Cargo.toml");
    let minor: u32 = feature["v1_".len()..].parse().expect("v1_NN");
    let minimum = format!("1.{minor}");

    let chart: Value = serde_yaml::from_str(&read("charts/bounceops/Chart.yaml")).unwrap();
    assert_eq!(str_at(&chart, &["kubeVersion"]), format!(">={minimum}.0-0"));
    let older = format!("1.{}.9", minor - 1);
    let refused = helm::run_failing(&["template", "bounceops", CHART, "--kube-version", &older]);
    assert!(
        refused.contains("kubeVersion") || refused.contains("incompatible"),
        "helm names the version requirement: {refused}"
    );
    helm::run(&[
        "template",
        "bounceops",
        CHART,
        "--kube-version",
        &format!("{minimum}.0"),
    ]);

    let said = format!("Kubernetes {minimum} or newer");
    for page in ["README.md", "docs/install.md"] {
        assert!(read(page).contains(&said), "{page} says \"{said}\"");
    }
}

/// docs/install.md's offline install, as written: `helm install` with the names
/// `scripts/images.sh` gives its images and `pullPolicy: Never`. Rendered with the same
/// flags, the operator and the workers it starts name exactly those images, with the tag
/// images.sh uses (the workspace version), so no node tries to pull anything.
#[test]
fn the_offline_install_names_the_images_that_images_sh_builds() {
    let page = read("docs/install.md");
    let section = markdown::section(&page, "### Offline images (no registry)")
        .expect("install.md has the offline section");
    let block = markdown::fenced_blocks(section)
        .into_iter()
        .find(|b| b.lang == "sh")
        .expect("a sh block");
    let joined = block.text.replace("\\\n", " ");
    let install = joined
        .lines()
        .find(|l| l.trim_start().starts_with("helm install"))
        .expect("a helm install line");
    let words: Vec<&str> = install.split_whitespace().collect();
    assert_eq!(&words[..4], ["helm", "install", "bounceops", CHART]);
    let mut args = vec!["template", "bounceops", CHART];
    args.extend(words[4..].iter().filter(|w| **w != "--create-namespace"));
    let m = Manifests::parse(&helm::run(&args));

    let script = read("scripts/images.sh");
    assert!(
        script.contains("tag=\"${IMAGE_TAG:-$workspace_version}\""),
        "images.sh tags with the workspace version"
    );
    let version = env!("CARGO_PKG_VERSION");
    let operator = operator_container(&m);
    assert_eq!(
        str_at(operator, &["image"]),
        format!("localhost/bounceops/bounce-operator:{version}")
    );
    assert_eq!(str_at(operator, &["imagePullPolicy"]), "Never");
    assert_eq!(
        env(&m, "BOUNCEOPS_WORKER_IMAGE").as_deref(),
        Some(format!("localhost/bounceops/bounce-worker:{version}").as_str())
    );
    assert_eq!(
        env(&m, "BOUNCEOPS_WORKER_IMAGE_PULL_POLICY").as_deref(),
        Some("Never")
    );
}
