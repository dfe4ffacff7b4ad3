//! docs/relay.md's "Running it in Kubernetes" against the operator, so the page cannot go
//! stale: the YAML it shows for listmonk's Deployment and for the listmonk chart's values is
//! valid against the Pod schema, strictly (a field the schema lacks, or one in the wrong
//! place, is lost in a round trip through k8s-openapi's types, and the comparison fails);
//! its sidecar and volumes are exactly what the operator renders for the BounceConfig shown
//! (the image aside); `bounce-operator relay-sidecar` prints them. On a real API server
//! (`KUBECONFIG`), the documented objects are applied with a server-side dry run, as
//! `kubectl apply --dry-run=server` would.

use std::process::Command;

use bounce_operator::reconcile::desired::{
    RELAY_CONTAINER, SIDECAR_VOLUME_PREFIX, Settings, sidecar_container, sidecar_volumes,
};
use bounceops_api::BounceConfig;
use bounceops_api::decode::spec_from_yaml;
use bounceops_tests::cluster::{self, TestNamespace};
use bounceops_tests::{markdown, repo_root};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Volume;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const SECTION: &str = "## Running it in Kubernetes";
const SUITE: &str = "relay docs";

/// The YAML documents of the section, in order.
fn documents() -> Vec<Value> {
    let page = std::fs::read_to_string(repo_root().join("docs/relay.md")).expect("docs/relay.md");
    let section = markdown::section(&page, SECTION).expect("the section in docs/relay.md");
    markdown::fenced_blocks(section)
        .into_iter()
        .filter(|b| b.lang == "yaml")
        .map(|b| {
            serde_yaml::from_str(&b.text).unwrap_or_else(|e| panic!("not YAML: {e}\n{}", b.text))
        })
        .collect()
}

fn find(docs: &[Value], what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let mut found = docs.iter().filter(|d| pick(d));
    let doc = found
        .next()
        .unwrap_or_else(|| panic!("no {what} in the section"))
        .clone();
    assert!(found.next().is_none(), "more than one {what}");
    doc
}

/// The BounceConfig whose relay runs only as listmonk's sidecar.
fn sidecar_config(docs: &[Value]) -> (Value, BounceConfig) {
    let doc = find(docs, "sidecar-only BounceConfig", |d| {
        d["kind"] == "BounceConfig" && d["spec"]["relay"]["replicas"] == 0
    });
    let spec = spec_from_yaml(&serde_yaml::to_string(&doc).unwrap())
        .unwrap_or_else(|p| panic!("the documented BounceConfig decodes: {p}"));
    let mut cfg = BounceConfig::new(doc["metadata"]["name"].as_str().unwrap(), spec);
    cfg.metadata.namespace = doc["metadata"]["namespace"].as_str().map(str::to_owned);
    (doc, cfg)
}

fn listmonk_deployment(docs: &[Value]) -> Value {
    find(docs, "listmonk Deployment", |d| d["kind"] == "Deployment")
}

fn chart_values(docs: &[Value]) -> Value {
    find(docs, "chart values", |d| d.get("extraVolumes").is_some())
}

/// `value` read as a `T` and written back: whatever `T` has no place for is gone.
fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Value {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("does not fit the schema: {e}\n{value:#}"));
    serde_json::to_value(typed).unwrap()
}

fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

fn the_sidecar(deployment: &Value) -> Value {
    pod_spec(deployment)["initContainers"]
        .as_array()
        .expect("initContainers")
        .iter()
        .find(|c| c["name"] == RELAY_CONTAINER)
        .expect("the relay among the init containers")
        .clone()
}

/// The operator's settings with the image the docs show, which only the version differs in.
fn settings_of(sidecar: &Value) -> Settings {
    let image = sidecar["image"].as_str().expect("an image").to_owned();
    assert!(
        image.starts_with("ghcr.io/bounceops/bounce-worker:"),
        "{image}"
    );
    Settings {
        worker_image: image,
        worker_image_pull_policy: None,
    }
}

#[test]
fn every_documented_bounceconfig_is_one_the_operator_runs() {
    let docs = documents();
    let configs: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "BounceConfig")
        .collect();
    assert_eq!(configs.len(), 2, "the sidecar's and the Deployment's");
    for doc in configs {
        let spec =
            spec_from_yaml(&serde_yaml::to_string(doc).unwrap()).unwrap_or_else(|p| panic!("{p}"));
        let mut cfg = BounceConfig::new(doc["metadata"]["name"].as_str().unwrap(), spec);
        cfg.metadata.namespace = doc["metadata"]["namespace"].as_str().map(str::to_owned);
        let problems = bounce_operator::reconcile::validate::problems(&cfg);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(cfg.spec.relay.is_some());
    }
}

#[test]
fn the_documented_yaml_fits_the_pod_schema_strictly() {
    let docs = documents();
    let deployment = listmonk_deployment(&docs);
    assert_eq!(
        round_trip::<Deployment>(&deployment),
        deployment,
        "a field of the documented Deployment is unknown or misplaced"
    );
    let values = chart_values(&docs);
    assert_eq!(
        round_trip::<Vec<Volume>>(&values["extraVolumes"]),
        values["extraVolumes"]
    );
    // The comparison is what catches a mistake: a field out of place is dropped, be it
    // unknown or one that belongs elsewhere.
    for (pointer, field) in [
        ("/spec/template/spec/initContainers/0", "probe"),
        (
            "/spec/template/spec/initContainers/0/startupProbe",
            "restartPolicy",
        ),
        ("/spec/template/spec", "volumeMounts"),
    ] {
        let mut wrong = deployment.clone();
        wrong.pointer_mut(pointer).unwrap()[field] = "misplaced".into();
        assert_ne!(round_trip::<Deployment>(&wrong), wrong, "{pointer}/{field}");
    }
}

#[test]
fn the_documented_sidecar_is_what_the_operator_renders() {
    let docs = documents();
    let (_, cfg) = sidecar_config(&docs);
    let deployment = listmonk_deployment(&docs);
    let sidecar = the_sidecar(&deployment);
    let settings = settings_of(&sidecar);
    assert_eq!(
        sidecar,
        serde_json::to_value(sidecar_container(&cfg, &settings)).unwrap(),
        "docs/relay.md's sidecar differs from `bounce-operator relay-sidecar`'s: paste its output"
    );
    assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar");

    // The pod's volumes: listmonk's own (none in this minimal one) and the relay's.
    let volumes = pod_spec(&deployment)["volumes"].clone();
    let relay_volumes = serde_json::to_value(sidecar_volumes(&cfg)).unwrap();
    assert_eq!(volumes, relay_volumes);
    let values = chart_values(&docs);
    assert_eq!(values["extraVolumes"], relay_volumes, "the chart's values");

    // listmonk's container sees none of the relay's volumes, and shares no port with it.
    let listmonk = &pod_spec(&deployment)["containers"][0];
    for m in listmonk["volumeMounts"].as_array().into_iter().flatten() {
        assert!(
            !m["name"]
                .as_str()
                .unwrap()
                .starts_with(SIDECAR_VOLUME_PREFIX),
            "{m}"
        );
    }
    for p in listmonk["ports"].as_array().unwrap() {
        for q in sidecar["ports"].as_array().unwrap() {
            assert_ne!(p["name"], q["name"]);
            assert_ne!(p["containerPort"], q["containerPort"]);
        }
    }
    // The relay listens where listmonk's SMTP settings point, on loopback only.
    let args: Vec<&str> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--relay-listen", "127.0.0.1:2525"])
    );
    assert_eq!(
        deployment["metadata"]["namespace"],
        cfg.metadata.namespace.as_deref().unwrap(),
        "listmonk runs in the BounceConfig's namespace"
    );
}

fn relay_sidecar(config: &std::path::Path, image: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bounce-operator"))
        .args(["relay-sidecar", "--config"])
        .arg(config)
        .args(["--worker-image", image])
        .env_remove("BOUNCEOPS_WORKER_IMAGE")
        .env_remove("BOUNCEOPS_WORKER_IMAGE_PULL_POLICY")
        .output()
        .expect("run bounce-operator relay-sidecar")
}

#[test]
fn relay_sidecar_prints_the_documented_patch_and_refuses_what_it_cannot_render() {
    let docs = documents();
    let (doc, _) = sidecar_config(&docs);
    let deployment = listmonk_deployment(&docs);
    let image = the_sidecar(&deployment)["image"]
        .as_str()
        .unwrap()
        .to_owned();
    // Each test runs in its own process (nextest): the pid keeps the file its own.
    let file = std::env::temp_dir().join(format!("relay-docs-{}.yaml", std::process::id()));
    std::fs::write(&file, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let out = relay_sidecar(&file, &image);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patch: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let pod = pod_spec(&deployment);
    assert_eq!(
        patch,
        serde_json::json!({"spec": {"template": {"spec": {
            "initContainers": pod["initContainers"],
            "volumes": pod["volumes"],
        }}}})
    );

    // From standard input, as `kubectl get -o yaml` gives it (with metadata and status the
    // server adds): the same patch.
    let mut stored = doc.clone();
    stored["metadata"]["uid"] = "0b7c7d7e-0000-4000-8000-000000000001".into();
    stored["metadata"]["resourceVersion"] = "41".into();
    stored["status"] = serde_json::json!({"observedGeneration": 1});
    let mut piped = Command::new(env!("CARGO_BIN_EXE_bounce-operator"))
        .args(["relay-sidecar", "--config", "-", "--worker-image", &image])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = piped.stdin.take().unwrap();
        stdin
            .write_all(serde_yaml::to_string(&stored).unwrap().as_bytes())
            .unwrap();
    }
    let piped = piped.wait_with_output().unwrap();
    assert!(piped.status.success());
    assert_eq!(piped.stdout, out.stdout);

    // No relay, or a BounceConfig the operator would refuse: an error that says why.
    let mut without = doc.clone();
    without["spec"].as_object_mut().unwrap().remove("relay");
    let mut invalid = doc.clone();
    invalid["spec"]["relay"]["returnPathDomain"] = "elsewhere.example.com".into();
    let mut unnamed = doc.clone();
    unnamed["metadata"].as_object_mut().unwrap().remove("name");
    for (what, bad, says) in [
        ("no relay", without, "spec.relay"),
        ("invalid", invalid, "spec.relay.returnPathDomain"),
        ("unnamed", unnamed, "metadata.name"),
    ] {
        std::fs::write(&file, serde_yaml::to_string(&bad).unwrap()).unwrap();
        let out = relay_sidecar(&file, &image);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}");
        assert!(out.stdout.is_empty(), "{what}");
        assert!(stderr.contains(says), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
    let _ = std::fs::remove_file(&file);
}

/// `kubectl apply --dry-run=server` of the documented BounceConfig and Deployment: the API
/// server's own schema (native sidecars included) and field validation.
#[tokio::test]
async fn the_documented_yaml_is_accepted_by_the_api_server() {
    let Some(client) = cluster::admin(SUITE).await else {
        return;
    };
    cluster::install_crd(&client, &cluster::bounceconfig_crd()).await;
    let ns = TestNamespace::create(&client, "relay-docs").await;
    let docs = documents();
    let (mut config, _) = sidecar_config(&docs);
    let mut deployment = listmonk_deployment(&docs);
    config["metadata"]["namespace"] = ns.name.clone().into();
    deployment["metadata"]["namespace"] = ns.name.clone().into();
    for (path, object) in [
        (
            format!(
                "/apis/bounceops.io/v1alpha1/namespaces/{}/bounceconfigs/{}",
                ns.name,
                config["metadata"]["name"].as_str().unwrap()
            ),
            &config,
        ),
        (
            format!(
                "/apis/apps/v1/namespaces/{}/deployments/{}",
                ns.name,
                deployment["metadata"]["name"].as_str().unwrap()
            ),
            &deployment,
        ),
    ] {
        let answer = cluster::apply(&client, &path, object, true).await;
        assert!(
            (200..300).contains(&answer.status),
            "{path}: {} {}",
            answer.status,
            answer.message()
        );
        assert!(answer.warnings.is_empty(), "{path}: {:?}", answer.warnings);
        let kept = &answer.body["spec"]["template"]["spec"]["initContainers"];
        if path.contains("/deployments/") {
            assert_eq!(
                kept[0]["restartPolicy"], "Always",
                "the server kept the sidecar's restartPolicy: {kept}"
            );
        }
    }
}
