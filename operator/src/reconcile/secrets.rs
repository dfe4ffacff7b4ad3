//! Phase 1, "resolve": which Secrets a BounceConfig references, whether they (and the
//! referenced keys) exist, and their resourceVersions, which feed the pod-template hash.
//!
//! References are found generically: any object with exactly `name` and `key` under a
//! field whose name ends in `SecretRef`. A new provider with a `fooSecretRef` is mounted
//! and watched without a change here. The Secrets named otherwise that a worker reads, the
//! bounce MX's and the relay's certificates (`spec.smtp.tlsSecretName`,
//! `spec.relay.tlsSecretName`), join them as their two keys each.
//! Which role mounts which reference is decided in one place, [`refs_for_role`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::desired::Role;
use bounceops_api::{BounceConfig, BounceConfigSpec, SecretRef};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use serde_json::Value;

pub use bounceops_api::secret_refs::FoundRef;

/// Every `*SecretRef` in the spec, ordered by field path (the api crate's walk, the one
/// `validate` bounds).
pub fn collect_refs(spec: &BounceConfigSpec) -> Vec<FoundRef> {
    bounceops_api::secret_refs::collect(spec)
}

/// The keys of a `kubernetes.io/tls` Secret that the SMTP and relay workers read as
/// `<secrets-dir>/<tlsSecretName>/tls.crt` and `tls.key`.
pub const TLS_KEYS: [&str; 2] = ["tls.crt", "tls.key"];

/// The field that names the bounce MX's certificate Secret.
pub const SMTP_TLS_FIELD: &str = "spec.smtp.tlsSecretName";

/// The field that names the relay's certificate Secret.
pub const RELAY_TLS_FIELD: &str = "spec.relay.tlsSecretName";

/// Every Secret a worker reads: the `*SecretRef`s, and the bounce MX's and the relay's
/// certificate Secrets as one reference per key, so a missing Secret or key is reported
/// like any other and its resourceVersion feeds the hash (a renewed certificate rolls the
/// pods). Ordered by field.
pub fn worker_refs(spec: &BounceConfigSpec) -> Vec<FoundRef> {
    let mut out = collect_refs(spec);
    let certificates = [
        (
            SMTP_TLS_FIELD,
            spec.smtp.as_ref().and_then(|s| s.tls_secret_name.as_ref()),
        ),
        (
            RELAY_TLS_FIELD,
            spec.relay.as_ref().and_then(|r| r.tls_secret_name.as_ref()),
        ),
    ];
    for (field, name) in certificates {
        if let Some(name) = name {
            out.extend(TLS_KEYS.map(|key| FoundRef {
                field: field.to_owned(),
                secret: SecretRef {
                    name: name.clone(),
                    key: key.to_owned(),
                },
            }));
        }
    }
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

/// The references a worker of one role reads, so its pods mount only those Secrets:
///
/// | role | mounts |
/// |---|---|
/// | webhook | the database, the API credentials, the enabled providers' keys |
/// | mailbox | the database, its mailboxes' logins |
/// | smtp | the database, the VERP keys, the STARTTLS certificate |
/// | relay | the database, the current VERP key, its upstream's login and CA, its senders' logins, its certificate |
///
/// Each role's worker reads no others (`bounce_worker::config::Reads`). The choice is made
/// on the spec's top-level field, each field given to its roles by name: a reference in a
/// field not listed here is mounted by no role, so a new field is never handed to a pod
/// by accident (its test fails instead).
pub fn refs_for_role(spec: &BounceConfigSpec, role: Role) -> Vec<FoundRef> {
    let value = serde_json::to_value(spec).expect("BounceConfigSpec serializes to JSON");
    worker_refs(spec)
        .into_iter()
        .filter(|r| {
            let mut path = r.field.split('.').skip(1);
            let Some(top) = path.next() else {
                return false;
            };
            // `mailboxes[0]` is the mailboxes field.
            let top = top.split('[').next().unwrap_or(top);
            match (top, role) {
                ("database", _) => true,
                ("api", Role::Webhook) => true,
                ("providers", Role::Webhook) => path
                    .next()
                    .is_some_and(|p| value["providers"][p]["enabled"] == Value::Bool(true)),
                ("mailboxes", Role::Mailbox) => true,
                ("smtp", Role::Smtp) => true,
                // The relay signs return paths with the current key only; the previous
                // one is for the MX, which still accepts the return paths it signed.
                ("smtp", Role::Relay) => path.next() == Some("verpKeySecretRef"),
                ("relay", Role::Relay) => true,
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
            worker_refs(&c.spec)
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

    /// A database, the API and one mailbox: four references to three Secrets.
    const DB_API_MAILBOX: &str = "database: {urlSecretRef: {name: db, key: url}}\n\
         api: {credentialsSecretRef: {name: api, key: credentials}}\n\
         mailboxes:\n\
         - {name: a, protocol: pop3, host: h, port: 995, usernameSecretRef: {name: mb, key: user}, passwordSecretRef: {name: mb, key: pass}}\n";

    #[test]
    fn finds_every_secret_ref_with_its_path() {
        let s = spec(DB_API_MAILBOX);
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

    const ALL_ROLES: &str = "database: {urlSecretRef: {name: db, key: url}}\n\
         api: {credentialsSecretRef: {name: api, key: credentials}}\n\
         providers:\n\
         \x20 sendgrid: {enabled: true, publicKeySecretRef: {name: sg, key: public-key}}\n\
         \x20 postmark: {enabled: false, credentialsSecretRef: {name: pm, key: credentials}}\n\
         mailboxes:\n\
         - {name: a, protocol: pop3, host: h, port: 995, usernameSecretRef: {name: mb, key: user}, passwordSecretRef: {name: mb, key: pass}}\n\
         smtp:\n\
         \x20 domains: [bounces.example.com]\n\
         \x20 verpKeySecretRef: {name: verp, key: key}\n\
         \x20 previousVerpKeySecretRef: {name: verp-old, key: key}\n\
         \x20 tlsSecretName: mx-tls\n\
         relay:\n\
         \x20 returnPathDomain: bounces.example.com\n\
         \x20 upstream: {host: smtp.example.com, caSecretRef: {name: up-ca, key: ca.crt}, usernameSecretRef: {name: up, key: user}, passwordSecretRef: {name: up, key: pass}}\n\
         \x20 credentialsSecretRef: {name: relay-logins, key: logins}\n\
         \x20 tlsSecretName: relay-tls\n";

    #[test]
    fn each_role_gets_only_the_references_it_reads() {
        let s = spec(ALL_ROLES);
        let names = |role| {
            secret_names(&refs_for_role(&s, role))
                .into_iter()
                .collect::<Vec<_>>()
        };
        // A disabled provider's key is read by nobody. The VERP keys and the MX's
        // certificate only by the SMTP workers, which read no API credentials, no
        // provider key and no mailbox password. The relay's upstream login, CA, senders'
        // logins and certificate only by the relay, which signs with the current VERP key
        // and has no use for the previous one or the MX's certificate.
        assert_eq!(names(Role::Webhook), ["api", "db", "sg"]);
        assert_eq!(names(Role::Mailbox), ["db", "mb"]);
        assert_eq!(names(Role::Smtp), ["db", "mx-tls", "verp", "verp-old"]);
        assert_eq!(
            names(Role::Relay),
            ["db", "relay-logins", "relay-tls", "up", "up-ca", "verp"]
        );
    }

    #[test]
    fn every_reference_is_read_by_some_role_or_is_a_disabled_provider() {
        // A new `*SecretRef` field that no role takes would never be mounted: its worker
        // would fail to start on a missing file. This keeps the role table complete.
        let s = spec(ALL_ROLES);
        let taken: BTreeSet<String> = Role::ALL
            .iter()
            .flat_map(|role| refs_for_role(&s, *role))
            .map(|r| r.field)
            .collect();
        let all: BTreeSet<String> = worker_refs(&s).into_iter().map(|r| r.field).collect();
        let untaken: Vec<&String> = all.difference(&taken).collect();
        assert_eq!(untaken, ["spec.providers.postmark.credentialsSecretRef"]);
    }

    #[test]
    fn the_mx_certificate_is_checked_as_its_two_keys() {
        let s = spec(ALL_ROLES);
        let tls: Vec<(String, String)> = worker_refs(&s)
            .into_iter()
            .filter(|r| r.field == SMTP_TLS_FIELD)
            .map(|r| (r.secret.name, r.secret.key))
            .collect();
        assert_eq!(
            tls,
            [
                ("mx-tls".to_owned(), "tls.crt".to_owned()),
                ("mx-tls".to_owned(), "tls.key".to_owned())
            ]
        );
        let seen = |keys: &[&str]| {
            Some(ObservedSecret {
                resource_version: "5".into(),
                keys: keys.iter().map(|k| k.to_string()).collect(),
            })
        };
        let mut observed: BTreeMap<String, Option<ObservedSecret>> = secret_names(&worker_refs(&s))
            .into_iter()
            .map(|n| {
                (
                    n,
                    seen(&[
                        "url",
                        "credentials",
                        "public-key",
                        "user",
                        "pass",
                        "key",
                        "ca.crt",
                        "logins",
                        "tls.crt",
                        "tls.key",
                    ]),
                )
            })
            .collect();
        observed.insert("mx-tls".into(), None);
        let r = check(&worker_refs(&s), &observed);
        assert_eq!(
            r.missing,
            ["Secret \"mx-tls\" (referenced by spec.smtp.tlsSecretName) does not exist"]
        );
        observed.insert("mx-tls".into(), seen(&["tls.crt"]));
        let r = check(&worker_refs(&s), &observed);
        assert_eq!(
            r.missing,
            ["Secret \"mx-tls\" has no key \"tls.key\" (referenced by spec.smtp.tlsSecretName)"]
        );
        assert_eq!(r.versions.get("mx-tls").map(String::as_str), Some("5"));
        // The relay's certificate is looked for the same way, under its own field.
        observed.insert("mx-tls".into(), seen(&["tls.crt", "tls.key"]));
        observed.insert("relay-tls".into(), seen(&["tls.key"]));
        let r = check(&worker_refs(&s), &observed);
        assert_eq!(
            r.missing,
            [
                "Secret \"relay-tls\" has no key \"tls.crt\" (referenced by spec.relay.tlsSecretName)"
            ]
        );
        // Without a certificate there is nothing to look for.
        let mut plain = s.clone();
        plain.smtp.as_mut().unwrap().tls_secret_name = None;
        assert!(
            worker_refs(&plain)
                .iter()
                .all(|r| r.field != SMTP_TLS_FIELD)
        );
    }

    #[test]
    fn check_reports_missing_secrets_once_and_missing_keys() {
        let s = spec(DB_API_MAILBOX);
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
        // The bounce MX's VERP keys and certificate are the config's Secrets too.
        let mut mx = BounceConfig::new("mx", spec(ALL_ROLES));
        mx.metadata.namespace = Some("mail".into());
        let configs = vec![Arc::new(mx)];
        for secret in ["verp", "verp-old", "mx-tls"] {
            assert_eq!(configs_using(&configs, "mail", secret).len(), 1, "{secret}");
        }
    }
}
