//! The API permissions the operator's code uses, in one list: `operator/rbac.yaml` must
//! grant exactly these (a test compares them), and each child kind must be covered.

use crate::reconcile::desired::ChildKind;

/// The verbs of a child kind the operator owns: watched (`owns()`), applied and pruned.
const OWNED: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// (API group, resource, verbs) as RBAC names them.
pub const PERMISSIONS: &[(&str, &str, &[&str])] = &[
    // controller.rs: the main watch (list, watch; never a get); status.rs: replace_status.
    ("bounceops.io", "bounceconfigs", &["list", "watch"]),
    ("bounceops.io", "bounceconfigs/status", &["update"]),
    // secrets.rs: get; controller.rs: metadata watch.
    ("", "secrets", &["get", "list", "watch"]),
    // apply.rs: get, apply (patch; create when new), delete; controller.rs: owns() watch.
    // The ConfigMap is wanted by every spec, so it is never pruned: no delete.
    (
        "",
        "configmaps",
        &["get", "list", "watch", "create", "patch"],
    ),
    ("", "services", OWNED),
    ("apps", "deployments", OWNED),
    ("networking.k8s.io", "ingresses", OWNED),
    ("policy", "poddisruptionbudgets", OWNED),
    (
        "monitoring.coreos.com",
        "servicemonitors",
        &["get", "create", "patch", "delete"],
    ),
    // kube's events::Recorder: create, then patch for a series.
    ("events.k8s.io", "events", &["create", "patch"]),
    // kube-lease-manager: get, create the Lease, patch it (apply and strategic).
    ("coordination.k8s.io", "leases", &["get", "create", "patch"]),
];

/// Verbs every child kind needs: read, apply, prune.
pub const CHILD_VERBS: &[&str] = &["get", "create", "patch", "delete"];

/// The permissions of one child kind, if listed.
pub fn for_child(kind: ChildKind) -> Option<&'static [&'static str]> {
    let ar = kind.api_resource();
    PERMISSIONS
        .iter()
        .find(|(g, r, _)| *g == ar.group && *r == ar.plural)
        .map(|(_, _, v)| *v)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    type Grant = (String, String, String);

    fn granted() -> BTreeSet<Grant> {
        let text = include_str!("../rbac.yaml");
        let mut out = BTreeSet::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v = serde_yaml::Value::deserialize(doc).unwrap();
            let Some(rules) = v.get("rules").and_then(|r| r.as_sequence()) else {
                continue;
            };
            for rule in rules {
                let list = |k: &str| -> Vec<String> {
                    rule[k]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_owned())
                        .collect()
                };
                for g in list("apiGroups") {
                    for r in list("resources") {
                        for verb in list("verbs") {
                            out.insert((g.clone(), r.clone(), verb));
                        }
                    }
                }
            }
        }
        out
    }

    use serde::Deserialize;

    #[test]
    fn rbac_yaml_grants_exactly_what_the_code_uses() {
        let used: BTreeSet<Grant> = PERMISSIONS
            .iter()
            .flat_map(|(g, r, verbs)| {
                verbs
                    .iter()
                    .map(move |v| (g.to_string(), r.to_string(), v.to_string()))
            })
            .collect();
        let granted = granted();
        let missing: Vec<_> = used.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&used).collect();
        assert!(missing.is_empty(), "rbac.yaml lacks {missing:?}");
        assert!(
            extra.is_empty(),
            "rbac.yaml grants more than the code uses: {extra:?}"
        );
    }

    #[test]
    fn every_child_kind_can_be_read_applied_and_pruned() {
        for kind in ChildKind::ALL {
            let verbs = for_child(kind).unwrap_or_else(|| panic!("{kind:?} has no permissions"));
            for v in CHILD_VERBS {
                if kind == ChildKind::ConfigMap && *v == "delete" {
                    continue; // every spec wants it; the garbage collector removes it
                }
                assert!(verbs.contains(v), "{kind:?} lacks {v}");
            }
        }
    }
}
