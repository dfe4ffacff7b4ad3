//! Running the real `helm` on the chart, and reading what it renders.

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize as _;
use serde_yaml::Value;

use crate::repo_root;

/// The chart, from the repository root.
pub const CHART: &str = "charts/bounceops";
/// The values file that sets every option.
pub const FULL_VALUES: &str = "charts/bounceops/ci/full-values.yaml";

/// The helm binary named by `BOUNCEOPS_HELM`. The chart tests never skip: without helm
/// they fail and say how to get it.
pub fn helm() -> PathBuf {
    let Some(path) = std::env::var_os("BOUNCEOPS_HELM").filter(|p| !p.is_empty()) else {
        panic!(
            "BOUNCEOPS_HELM is not set: the chart tests need a helm v4 binary. \
             Run them through `bash scripts/test.sh` (it installs helm and sets it), or \
             `BOUNCEOPS_HELM=\"$(bash scripts/ensure-helm.sh)\" cargo nextest run -p bounceops-tests`"
        )
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "BOUNCEOPS_HELM={} is not a file; `bash scripts/ensure-helm.sh` prints a working path",
        path.display()
    );
    path
}

/// Runs helm in the repository root, with no user state: helm must not read or write the
/// caller's repositories, cache or cluster.
fn output(args: &[&str]) -> std::process::Output {
    command(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"))
}

fn command(args: &[&str]) -> Command {
    let state = std::env::temp_dir().join("bounceops-helm");
    let mut cmd = Command::new(helm());
    cmd.args(args)
        .current_dir(repo_root())
        .env("HELM_CACHE_HOME", state.join("cache"))
        .env("HELM_CONFIG_HOME", state.join("config"))
        .env("HELM_DATA_HOME", state.join("data"));
    cmd
}

/// Runs helm against the cluster `KUBECONFIG` names (install, upgrade, uninstall);
/// returns (stdout, stderr), panics with both on failure.
pub fn on_cluster(args: &[&str]) -> (String, String) {
    on(None, args)
}

/// [`on_cluster`] against the cluster of `kubeconfig` when given.
pub fn on(kubeconfig: Option<&std::path::Path>, args: &[&str]) -> (String, String) {
    let mut cmd = command(args);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "helm {} failed ({}):\n{stderr}\n{stdout}",
        args.join(" "),
        out.status
    );
    (stdout, stderr)
}

/// Runs helm; returns stdout, panics with stderr on failure.
pub fn run(args: &[&str]) -> String {
    let out = output(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "helm {} failed ({}):\n{stderr}\n{stdout}",
        args.join(" "),
        out.status
    );
    stdout
}

/// An installed release, uninstalled (`--wait`) when dropped, so a failed assertion
/// leaves no cluster-scoped objects behind. `kubeconfig`: the cluster's, when it is not
/// `KUBECONFIG`'s.
pub struct Release {
    kubeconfig: Option<PathBuf>,
    name: String,
    namespace: String,
    uninstalled: bool,
}

impl Release {
    pub fn new(kubeconfig: Option<&std::path::Path>, name: &str, namespace: &str) -> Release {
        Release {
            kubeconfig: kubeconfig.map(ToOwned::to_owned),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uninstalled: false,
        }
    }

    /// `helm uninstall --wait`, failing the test if helm fails.
    pub fn uninstall(mut self) {
        self.uninstalled = true;
        self.run_uninstall();
    }

    fn run_uninstall(&self) {
        on(
            self.kubeconfig.as_deref(),
            &[
                "uninstall",
                &self.name,
                "--namespace",
                &self.namespace,
                "--wait",
            ],
        );
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if !self.uninstalled {
            let _ = std::panic::catch_unwind(|| self.run_uninstall());
        }
    }
}

/// Runs helm expecting failure; returns stderr.
pub fn run_failing(args: &[&str]) -> String {
    let out = output(args);
    assert!(
        !out.status.success(),
        "helm {} succeeded but should have failed",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `helm template` of the chart into `namespace`, with these values files and `--set`s;
/// `--include-crds` so the CRD is among the manifests.
pub fn template(namespace: &str, values: &[&str], sets: &[&str]) -> Manifests {
    template_release("bounceops", namespace, values, sets)
}

/// `helm template` as [`template`] does, under the release name `release`.
pub fn template_release(
    release: &str,
    namespace: &str,
    values: &[&str],
    sets: &[&str],
) -> Manifests {
    let mut args = vec![
        "template",
        release,
        CHART,
        "--namespace",
        namespace,
        "--include-crds",
    ];
    for v in values {
        args.extend(["--values", v]);
    }
    for s in sets {
        args.extend(["--set", s]);
    }
    Manifests::parse(&run(&args))
}

/// Rendered manifests, one YAML document each.
pub struct Manifests(pub Vec<Value>);

impl Manifests {
    pub fn parse(text: &str) -> Manifests {
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("helm rendered invalid YAML: {e}\n{text}"));
            if !v.is_null() {
                docs.push(v);
            }
        }
        Manifests(docs)
    }

    pub fn of_kind(&self, kind: &str) -> impl Iterator<Item = &Value> + '_ {
        let kind = kind.to_owned();
        self.0
            .iter()
            .filter(move |d| d["kind"].as_str() == Some(kind.as_str()))
    }

    /// The one manifest of `kind`; panics if there are none or several.
    pub fn one(&self, kind: &str) -> &Value {
        let all: Vec<_> = self.of_kind(kind).collect();
        assert_eq!(all.len(), 1, "expected one {kind}, rendered {}", all.len());
        all[0]
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .0
            .iter()
            .map(|d| d["kind"].as_str().unwrap_or("?").to_owned())
            .collect();
        k.sort();
        k
    }
}

/// (apiGroup, resource, verb) triples granted by the `rules` of RBAC objects.
pub fn grants<'a>(
    objects: impl Iterator<Item = &'a Value>,
) -> std::collections::BTreeSet<(String, String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for o in objects {
        let Some(rules) = o["rules"].as_sequence() else {
            continue;
        };
        for rule in rules {
            let list = |k: &str| -> Vec<String> {
                rule[k]
                    .as_sequence()
                    .map(|s| {
                        s.iter()
                            .filter_map(|x| x.as_str())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for g in list("apiGroups") {
                for r in list("resources") {
                    for v in list("verbs") {
                        out.insert((g.clone(), r.clone(), v));
                    }
                }
            }
        }
    }
    out
}
