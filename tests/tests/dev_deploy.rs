//! The local development setup (`deploy/dev/`, used by the Tiltfile): its BounceConfig is
//! one the worker accepts, with the Secrets beside it, and the migrate Job mounts every
//! Secret that config references, where the operator would.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bounce_worker::config::Settings;
use bounce_worker::secrets::SecretsDir;
use bounceops_tests::read;
use serde::Deserialize as _;
use serde_yaml::Value;

fn docs(rel: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(rel))
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bounceops-tests-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every `...SecretRef` name under `v`.
fn secret_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, x) in m {
                if k.as_str().is_some_and(|k| k.ends_with("SecretRef")) {
                    if let Some(n) = x["name"].as_str() {
                        out.insert(n.to_owned());
                    }
                } else {
                    secret_refs(x, out);
                }
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| secret_refs(x, out)),
        _ => {}
    }
}

#[test]
fn dev_bounceconfig_is_accepted_by_the_worker() {
    let all = docs("deploy/dev/bounceconfig.yaml");
    let config = all
        .iter()
        .find(|d| d["kind"].as_str() == Some("BounceConfig"))
        .expect("a BounceConfig");
    let dir = scratch("dev-config");
    // The Secrets, laid out as the operator mounts them: <dir>/<name>/<key>.
    let secrets = dir.join("secrets");
    for s in all.iter().filter(|d| d["kind"].as_str() == Some("Secret")) {
        let name = s["metadata"]["name"].as_str().unwrap();
        for (k, v) in s["stringData"].as_mapping().expect("stringData") {
            let path = secrets.join(name).join(k.as_str().unwrap());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v.as_str().unwrap()).unwrap();
        }
    }
    let file = dir.join("config.yaml");
    std::fs::write(&file, serde_yaml::to_string(config).unwrap()).unwrap();
    let settings = Settings::load(&file, &SecretsDir::new(&secrets), None)
        .unwrap_or_else(|e| panic!("the worker refuses deploy/dev/bounceconfig.yaml: {e}"));
    assert!(settings.database_url.starts_with("postgres://"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `migrate` reads the database's Secret only (`bounce_worker::config::Reads`): the Job
/// mounts that one, where the operator would, and no other.
#[test]
fn migrate_job_mounts_only_the_database_secret_where_the_operator_does() {
    let all = docs("deploy/dev/bounceconfig.yaml");
    let config = all
        .iter()
        .find(|d| d["kind"].as_str() == Some("BounceConfig"))
        .unwrap();
    let mut referenced = BTreeSet::new();
    secret_refs(&config["spec"], &mut referenced);
    let database = config["spec"]["database"]["urlSecretRef"]["name"]
        .as_str()
        .expect("the dev config names its database Secret")
        .to_owned();
    assert!(
        referenced.len() > 1,
        "the config references more than the database"
    );
    let wanted = BTreeSet::from([database]);

    let job = &docs("deploy/dev/migrate-job.yaml")[0];
    let pod = &job["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"].as_sequence().unwrap();
    let secret_volumes: BTreeSet<String> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(secret_volumes, wanted);
    for name in &wanted {
        let volume = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["secret"]["secretName"].as_str() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("the Job has no volume for Secret {name}"));
        let vname = volume["name"].as_str().unwrap();
        let mount = mounts
            .iter()
            .find(|m| m["name"].as_str() == Some(vname))
            .unwrap_or_else(|| panic!("volume {vname} is not mounted"));
        assert_eq!(
            mount["mountPath"].as_str(),
            Some(format!("/var/run/bounceops/secrets/{name}").as_str())
        );
    }
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "migrate");
    assert!(args.contains(&"--config=/etc/bounceops/config.yaml"));
    assert!(args.contains(&"--secrets-dir=/var/run/bounceops/secrets"));
    // The ConfigMap the operator renders for this BounceConfig.
    let name = config["metadata"]["name"].as_str().unwrap();
    assert!(
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v["configMap"]["name"].as_str() == Some(format!("{name}-config").as_str()))
    );
}
