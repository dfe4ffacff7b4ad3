//! Every Secret reference of a spec, wherever it sits: any object of `name` and `key`
//! under a field whose name ends in `SecretRef`. The one walk of them: `validate` bounds
//! each, and the operator mounts and watches each (a new provider's `fooSecretRef` is
//! bounded, mounted and watched without a change anywhere).

use serde_json::Value;

use crate::{BounceConfigSpec, SecretRef};

/// One reference found in the spec, with the path of the field that holds it, e.g.
/// `spec.providers.sendgrid.publicKeySecretRef` (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundRef {
    pub field: String,
    pub secret: SecretRef,
}

/// Every `*SecretRef` in the spec, ordered by field path.
pub fn collect(spec: &BounceConfigSpec) -> Vec<FoundRef> {
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

/// A `SecretRef` serializes to exactly its two strings.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_in_fields_it_has_never_heard_of_are_found_by_their_name() {
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
}
