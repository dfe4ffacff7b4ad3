//! Every BounceConfig the repository shows (examples/, deploy/, the docs' YAML blocks) is
//! one the worker and the operator accept: it decodes strictly and `validate` finds no
//! problem. `apiserver_crd.rs` applies the same documents to a real API server when one is
//! available; this runs everywhere, so a shown config that the one `validate` refuses is
//! caught on any machine.

use bounceops_api::decode::spec_from_yaml;
use bounceops_tests::{markdown, repo_root};
use serde::Deserialize;
use serde_yaml::Value;

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

#[test]
fn every_bounceconfig_shown_passes_validate() {
    let root = repo_root();
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for dir in ["examples", "deploy", "docs"] {
        let mut files = Vec::new();
        collect(&root.join(dir), &mut files);
        for path in files {
            let rel = path.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let yamls: Vec<String> = if rel.ends_with(".md") {
                markdown::fenced_blocks(&text)
                    .into_iter()
                    .filter(|b| b.lang == "yaml")
                    .map(|b| b.text)
                    .collect()
            } else if rel.ends_with(".yaml") || rel.ends_with(".yml") {
                vec![text]
            } else {
                continue;
            };
            for y in yamls {
                for doc in serde_yaml::Deserializer::from_str(&y) {
                    let v =
                        Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: not YAML: {e}"));
                    if v["kind"] != "BounceConfig" {
                        continue;
                    }
                    seen.push(rel.clone());
                    let spec = serde_yaml::to_string(&v["spec"]).unwrap();
                    match spec_from_yaml(&spec) {
                        Err(p) => wrong.push(format!("{rel}: {p}")),
                        Ok(s) => {
                            for p in bounceops_api::validate(&s) {
                                wrong.push(format!("{rel}: {p}"));
                            }
                        }
                    }
                }
            }
        }
    }
    for file in [
        "examples/bounceconfig.yaml",
        "examples/bounceconfig-smtp.yaml",
    ] {
        assert!(seen.iter().any(|f| f == file), "no BounceConfig in {file}");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
