//! The bounds of every Secret reference, wherever it sits in the spec.
//!
//! Found the way the operator finds the Secrets to mount: any object of `name` and `key`
//! under a field whose name ends in `SecretRef`. A new provider's reference is bounded
//! without a change here, as the CRD bounds it through the shared `SecretRef` type.

use serde_json::Value;

use super::Report;
use crate::BounceConfigSpec;

pub(super) fn check(spec: &BounceConfigSpec, r: &mut Report) {
    // The spec always serializes; a failure would be a bug in the api types.
    let value = serde_json::to_value(spec).expect("BounceConfigSpec serializes to JSON");
    walk(&value, "spec", r);
}

fn walk(value: &Value, path: &str, r: &mut Report) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                if k.ends_with("SecretRef") {
                    for part in ["name", "key"] {
                        if let Some(text) = v.get(part).and_then(Value::as_str) {
                            r.text(&format!("{here}.{part}"), text, 253);
                        }
                    }
                } else {
                    walk(v, &here, r);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{path}[{i}]"), r);
            }
        }
        _ => {}
    }
}
