//! Phase 1, "resolve": which Secrets a BounceConfig references, whether they (and the
//! referenced keys) exist, and their resourceVersions, which feed the pod-template hash.
//!
//! References are found generically: any object with exactly `name` and `key` under a
//! field whose name ends in `SecretRef`. A new provider with a `fooSecretRef` is mounted
//! and watched without a change here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bounceops_api::{BounceConfig, BounceConfigSpec, SecretRef};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use serde_json::Value;

/// One reference found in the spec, with the JSON path that holds it (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundRef {
    pub field: String,
    pub secret: SecretRef,
}

/// Every `*SecretRef` in the spec, ordered by field path.
pub fn collect_refs(spec: &BounceConfigSpec) -> Vec<FoundRef> {
    let mut out = Vec::new();
    // The spec always serializes; a failure would be a bug in the api types.
    let value = serde_json::to_value(spec).expect("BounceConfigSpec serializes to JSON");
    walk(&value, "spec", &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn walk(value: &Value, path: &str, out: &mut Vec<FoundRef>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                if k.ends_with("SecretRef")
                    && let Some(secret) = as_secret_ref(v)
                {
                    out.push(FoundRef {
                        field: here,
                        secret,
                    });
                    continue;
                }
                walk(v, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn as_secret_ref(v: &Value) -> Option<SecretRef> {
    let map = v.as_object()?;
    if map.len() != 2 {
        return None;
    }
    Some(SecretRef {
        name: map.get("name")?.as_str()?.to_owned(),
        key: map.get("key")?.as_str()?.to_owned(),
    })
}

/// The references a worker of one role reads (`mailbox`: the scanner, else the webhook
/// pods), so its pods mount only those Secrets: the webhook pods the database, the API
/// credentials and the enabled providers' keys; the scanner the database and its mailboxes'
/// logins. Each role's worker reads no others (`bounce_worker::config::Reads`).
pub fn refs_for_role(spec: &BounceConfigSpec, mailbox: bool) -> Vec<FoundRef> {
    let value = serde_json::to_value(spec).expect("BounceConfigSpec serializes to JSON");
    collect_refs(spec)
        .into_iter()
        .filter(|r| {
            let mut path = r.field.split('.').skip(1);
            match (path.next(), mailbox) {
                (Some("database"), _) => true,
                (Some(field), true) => field.starts_with("mailboxes["),
                (Some("api"), false) => true,
                (Some("providers"), false) => path
                    .next()
                    .is_some_and(|p| value["providers"][p]["enabled"] == Value::Bool(true)),
                _ => false,
            }
        })
        .collect()
}

/// Names of the Secrets the spec references, each once, sorted.
pub fn secret_names(refs: &[FoundRef]) -> BTreeSet<String> {
    refs.iter().map(|r| r.secret.name.clone()).collect()
}

/// What a Secret looked like when the reconcile read it; only names, never values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedSecret {
    pub resource_version: String,
    pub keys: BTreeSet<String>,
}

/// Result of the resolve phase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Secret name -> resourceVersion, for every referenced Secret that exists.
    pub versions: BTreeMap<String, String>,
    /// Human-readable problems: missing Secrets and missing keys.
    pub missing: Vec<String>,
}

/// Pure: checks the references against what was observed.
pub fn check(refs: &[FoundRef], observed: &BTreeMap<String, Option<ObservedSecret>>) -> Resolved {
    let mut out = Resolved::default();
    let mut reported = BTreeSet::new();
    for r in refs {
        match observed.get(&r.secret.name).and_then(Option::as_ref) {
            None => {
                if reported.insert(r.secret.name.clone()) {
                    out.missing.push(format!(
                        "Secret {:?} (referenced by {}) does not exist",
                        r.secret.name, r.field
                    ));
                }
            }
            Some(s) => {
                out.versions
                    .insert(r.secret.name.clone(), s.resource_version.clone());
                if !s.keys.contains(&r.secret.key) {
                    out.missing.push(format!(
                        "Secret {:?} has no key {:?} (referenced by {})",
                        r.secret.name, r.secret.key, r.field
                    ));
                }
            }
        }
    }
    out
}

/// Reads each referenced Secret once. Values are dropped right away: only key names and
/// the resourceVersion leave this function.
pub async fn observe(
    client: &Client,
    namespace: &str,
    names: &BTreeSet<String>,
) -> Result<BTreeMap<String, Option<ObservedSecret>>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut out = BTreeMap::new();
    for name in names {
        let seen = api.get_opt(name).await?.map(|s| {
            let mut keys: BTreeSet<String> = s.data.unwrap_or_default().into_keys().collect();
            keys.extend(s.string_data.unwrap_or_default().into_keys());
            ObservedSecret {
                resource_version: s.metadata.resource_version.unwrap_or_default(),
                keys,
            }
        });
        out.insert(name.clone(), seen);
    }
    Ok(out)
}

/// The configs a Secret change must re-queue: those in the Secret's namespace that
/// reference it. Runs over the controller's reflector store, so no API call is made.
pub fn configs_using(
    configs: &[Arc<BounceConfig>],
    namespace: &str,
    secret: &str,
) -> Vec<ObjectRef<BounceConfig>> {
    configs
        .iter()
        .filter(|c| c.namespace().as_deref() == Some(namespace))
        .filter(|c| {
            collect_refs(&c.spec)
                .iter()
                .any(|r| r.secret.name == secret)
                // The Ingress's TLS Secret, whose arrival (cert-manager) the status reports.
                || c.spec.webhook.ingress.tls_secret_name.as_deref() == Some(secret)
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> BounceConfigSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn finds_every_secret_ref_with_its_path() {
        let s = spec(
            "database: {urlSecretRef: {name: db, key: url}}\n\
             api: {credentialsSecretRef: {name: api, key: credentials}}\n\
             mailboxes:\n\
             - {name: a, protocol: pop3, host: h, port: 995, usernameSecretRef: {name: mb, key: user}, passwordSecretRef: {name: mb, key: pass}}\n",
        );
        let refs = collect_refs(&s);
        let fields: Vec<_> = refs.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.api.credentialsSecretRef",
                "spec.database.urlSecretRef",
                "spec.mailboxes[0].passwordSecretRef",
                "spec.mailboxes[0].usernameSecretRef",
            ]
        );
        assert_eq!(
            secret_names(&refs).into_iter().collect::<Vec<_>>(),
            ["api", "db", "mb"]
        );
    }

    #[test]
    fn each_role_gets_only_the_references_it_reads() {
        let s = spec(
            "database: {urlSecretRef: {name: db, key: url}}\n\
             api: {credentialsSecretRef: {name: api, key: credentials}}\n\
             providers:\n\
             \x20 sendgrid: {enabled: true, publicKeySecretRef: {name: sg, key: public-key}}\n\
             \x20 postmark: {enabled: false, credentialsSecretRef: {name: pm, key: credentials}}\n\
             mailboxes:\n\
             - {name: a, protocol: pop3, host: h, port: 995, usernameSecretRef: {name: mb, key: user}, passwordSecretRef: {name: mb, key: pass}}\n",
        );
        let names = |mailbox| {
            secret_names(&refs_for_role(&s, mailbox))
                .into_iter()
                .collect::<Vec<_>>()
        };
        // A disabled provider's key is read by nobody.
        assert_eq!(names(false), ["api", "db", "sg"]);
        assert_eq!(names(true), ["db", "mb"]);
    }

    #[test]
    fn walker_picks_up_refs_in_fields_it_has_never_heard_of() {
        // A provider added later: only the naming convention matters.
        let v = serde_json::json!({"providers": {"newmail": {"enabled": true,
            "signingKeySecretRef": {"name": "nm", "key": "k"},
            "notARef": {"name": "x", "key": "y"},
            "extraSecretRef": {"name": "x", "key": "y", "optional": true}}}});
        let mut out = Vec::new();
        walk(&v, "spec", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].field, "spec.providers.newmail.signingKeySecretRef");
        assert_eq!(out[0].secret.name, "nm");
    }

    #[test]
    fn check_reports_missing_secrets_once_and_missing_keys() {
        let s = spec(
            "database: {urlSecretRef: {name: db, key: url}}\n\
             api: {credentialsSecretRef: {name: api, key: credentials}}\n\
             mailboxes:\n\
             - {name: a, protocol: pop3, host: h, port: 995, usernameSecretRef: {name: mb, key: user}, passwordSecretRef: {name: mb, key: pass}}\n",
        );
        let refs = collect_refs(&s);
        let observed = BTreeMap::from([
            (
                "db".to_owned(),
                Some(ObservedSecret {
                    resource_version: "7".into(),
                    keys: ["url".to_owned()].into(),
                }),
            ),
            (
                "api".to_owned(),
                Some(ObservedSecret {
                    resource_version: "9".into(),
                    keys: ["other".to_owned()].into(),
                }),
            ),
            ("mb".to_owned(), None),
        ]);
        let r = check(&refs, &observed);
        assert_eq!(
            r.versions,
            BTreeMap::from([("api".into(), "9".into()), ("db".into(), "7".into())])
        );
        assert_eq!(r.missing.len(), 2, "{:?}", r.missing);
        assert!(r.missing[0].contains("no key \"credentials\""));
        assert!(r.missing[1].contains("\"mb\""));
    }

    #[test]
    fn a_secret_requeues_only_the_configs_that_use_it() {
        let mk = |ns: &str, name: &str, secret: &str| {
            let mut c = BounceConfig::new(
                name,
                spec(&format!(
                    "database: {{urlSecretRef: {{name: {secret}, key: url}}}}"
                )),
            );
            c.metadata.namespace = Some(ns.into());
            Arc::new(c)
        };
        let configs = vec![
            mk("mail", "a", "db"),
            mk("mail", "b", "other"),
            mk("other-ns", "c", "db"),
        ];
        let hits = configs_using(&configs, "mail", "db");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].name, "a");
        assert!(configs_using(&configs, "mail", "unused").is_empty());
    }
}
