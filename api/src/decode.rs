//! Reading a BounceConfig YAML file strictly, as the worker does at start-up: the whole
//! object (`kubectl apply`'s, or the ConfigMap the operator writes) or just its `spec`.
//!
//! Decoding refuses what the types cannot hold (a missing required field, a value of the
//! wrong type, an enum value that does not exist) and fields the types do not have; the
//! API server's schema refuses the same before a cluster ever stores them. What decodes is
//! then [`validate`](crate::validate)d.

use serde::de::DeserializeOwned;

use crate::{BounceConfig, BounceConfigSpec, Problem};

/// The spec of a BounceConfig document, or the first thing that stops it from decoding,
/// named by its field path (`spec.mailboxes[0].protocol`).
pub fn spec_from_yaml(text: &str) -> Result<BounceConfigSpec, Problem> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| Problem::new("(document)", e.to_string()))?;
    let is_object = value.get("apiVersion").is_some() || value.get("kind").is_some();
    let mut unknown = Vec::new();
    let spec = if is_object {
        let text_of = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        if text_of("apiVersion").as_deref() != Some("bounceops.io/v1alpha1")
            || text_of("kind").as_deref() != Some("BounceConfig")
        {
            return Err(Problem::new(
                "apiVersion/kind",
                "expected apiVersion bounceops.io/v1alpha1 and kind BounceConfig",
            ));
        }
        strict::<BounceConfig>(value, "", &mut unknown)?.spec
    } else {
        strict(value, "spec", &mut unknown)?
    };
    // metadata and status belong to Kubernetes; anything else unknown is a mistake: a typo
    // such as `recordAfterTreshold` would otherwise be ignored, and the user would get a
    // default they did not ask for.
    unknown.retain(|path| {
        !["metadata", "status", "apiVersion", "kind"]
            .iter()
            .any(|k| path.starts_with(k))
    });
    match unknown.first() {
        Some(path) => Err(Problem::new(
            join(if is_object { "" } else { "spec" }, path),
            "unknown field",
        )),
        None => Ok(spec),
    }
}

/// Decodes `value`, noting the path of every field the type ignores; `root` prefixes the
/// paths of errors.
fn strict<T: DeserializeOwned>(
    value: serde_yaml::Value,
    root: &str,
    unknown: &mut Vec<String>,
) -> Result<T, Problem> {
    let mut note = |path: serde_ignored::Path| unknown.push(dotted(&path));
    let ignored = serde_ignored::Deserializer::new(value, &mut note);
    serde_path_to_error::deserialize(ignored).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde names a missing field in its message and points at the object that lacks
        // it; the field itself is what the user must add, so the path names it.
        let field = match missing_field(&message) {
            Some(name) => join(&join(root, &path), name),
            None => join(root, &path),
        };
        Problem::new(field, message)
    })
}

/// serde_ignored's path as the rest of BounceOps writes paths: `mailboxes[0].bogus` (its
/// own Display gives `mailboxes.0.bogus`, with a `?` for every `Option` on the way).
fn dotted(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", dotted(parent)),
        Path::Map { parent, key } => join(&dotted(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => dotted(parent),
    }
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// `a` then `b` as one dotted path; serde_path_to_error writes the root as `.`.
fn join(a: &str, b: &str) -> String {
    let b = b.trim_start_matches('.');
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a.to_owned(),
        (true, false) => b.to_owned(),
        (false, false) if b.starts_with('[') => format!("{a}{b}"),
        (false, false) => format!("{a}.{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECT: &str = "apiVersion: bounceops.io/v1alpha1\nkind: BounceConfig\nmetadata: {name: x}\nspec:\n  database: {urlSecretRef: {name: db, key: url}}\n";

    fn field_of(text: &str) -> String {
        spec_from_yaml(text).unwrap_err().field
    }

    #[test]
    fn the_object_and_its_bare_spec_decode_alike() {
        let object = spec_from_yaml(OBJECT).unwrap();
        let bare = spec_from_yaml("database: {urlSecretRef: {name: db, key: url}}").unwrap();
        assert_eq!(object, bare);
    }

    #[test]
    fn refusals_name_the_field_in_both_forms() {
        let cases = [
            (
                "  rules: {recordAfterTreshold: true}\n",
                "spec.rules.recordAfterTreshold",
            ),
            (
                "  api: {credentialsSecretRef: {name: a, key: c}, bogus: 1}\n",
                "spec.api.bogus",
            ),
            (
                "  mailboxes: [{name: b, protocol: pop3, host: h, port: 1, bogus: 1, usernameSecretRef: {name: m, key: u}, passwordSecretRef: {name: m, key: p}}]\n",
                "spec.mailboxes[0].bogus",
            ),
            (
                "  rules: {hard: {count: many, action: none}}\n",
                "spec.rules.hard.count",
            ),
            (
                "  mailboxes: [{name: b, protocol: smtp, host: h, port: 1}]\n",
                "spec.mailboxes[0].protocol",
            ),
            (
                "  mailboxes: [{name: b, protocol: pop3, host: h, port: 1, auth: none}]\n",
                "spec.mailboxes[0].auth",
            ),
            (
                "  mailboxes: [{name: b, protocol: pop3, host: h, port: 1, usernameSecretRef: {name: m, key: u}}]\n",
                "spec.mailboxes[0].passwordSecretRef",
            ),
        ];
        for (extra, field) in cases {
            assert_eq!(field_of(&format!("{OBJECT}{extra}")), field, "{extra}");
            let bare = format!(
                "database: {{urlSecretRef: {{name: db, key: url}}}}\n{}",
                &extra[2..]
            );
            assert_eq!(field_of(&bare), field, "bare: {extra}");
        }
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let e = spec_from_yaml("apiVersion: bounceops.io/v1alpha1\nkind: BounceConfig\nspec: {}\n")
            .unwrap_err();
        assert_eq!(e.field, "spec.database", "{e}");
        assert_eq!(field_of("rules: {}\n"), "spec.database");
    }

    #[test]
    fn metadata_and_status_are_kubernetes_business() {
        let text = format!("{OBJECT}status: {{anything: 1}}\n")
            .replace("{name: x}", "{name: x, labels: {a: b}}");
        assert!(spec_from_yaml(&text).is_ok());
    }

    #[test]
    fn another_kind_is_refused() {
        let e =
            spec_from_yaml(&OBJECT.replace("kind: BounceConfig", "kind: Deployment")).unwrap_err();
        assert_eq!(e.field, "apiVersion/kind");
    }
}
