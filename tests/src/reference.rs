//! The BounceConfig reference (`docs/reference.md`), generated from the CRD's schema
//! (`crds/bounceconfig.yaml`, itself generated from the Rust types): what `kubectl explain`
//! says, as one page. `cargo run -q -p bounceops-tests --bin docgen` rewrites the file; a
//! test fails when the committed page differs from what this function makes.

use std::fmt::Write as _;

use serde_yaml::Value;

/// Where the page lives, from the repository root.
pub const REFERENCE_PATH: &str = "docs/reference.md";
/// The CRD it is made from.
pub const CRD_PATH: &str = "crds/bounceconfig.yaml";
/// The command that regenerates it.
pub const REGENERATE: &str = "cargo run -q -p bounceops-tests --bin docgen";

/// The Markdown reference of the CRD `crd_yaml`.
pub fn reference_markdown(crd_yaml: &str) -> Result<String, String> {
    let crd: Value =
        serde_yaml::from_str(crd_yaml).map_err(|e| format!("{CRD_PATH} is not YAML: {e}"))?;
    let spec = &crd["spec"];
    let group = str_of(&spec["group"]);
    let kind = str_of(&spec["names"]["kind"]);
    let versions = spec["versions"]
        .as_sequence()
        .ok_or("the CRD has no spec.versions")?;
    let mut out = String::new();
    let _ = writeln!(out, "# {kind} reference\n");
    let _ = writeln!(
        out,
        "<!-- Generated from {CRD_PATH} by `{REGENERATE}`; do not edit by hand. -->\n"
    );
    let _ = writeln!(
        out,
        "The `{kind}` resource is the one configuration of BounceOps: the operator reconciles it \
         into workers ([operator.md](operator.md)), and the worker reads the very same YAML \
         from a file (`bounce-worker run --config`). This page is generated from the CRD's \
         schema, so it says what the API server enforces; `kubectl explain {plural}.spec` \
         says the same in a cluster.\n",
        plural = str_of(&spec["names"]["plural"]),
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| API group | `{group}` |");
    let _ = writeln!(out, "| kind | `{kind}` |");
    let _ = writeln!(out, "| scope | {} |", str_of(&spec["scope"]));
    let _ = writeln!(
        out,
        "| names | `{}`, `{}`{} |",
        str_of(&spec["names"]["singular"]),
        str_of(&spec["names"]["plural"]),
        list_of(&spec["names"]["shortNames"])
            .iter()
            .map(|s| format!(", `{s}`"))
            .collect::<String>()
    );
    let categories = list_of(&spec["names"]["categories"]);
    if !categories.is_empty() {
        let _ = writeln!(
            out,
            "| categories | {} |",
            categories
                .iter()
                .map(|c| format!("`{c}` (`kubectl get {c}`)"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    out.push('\n');

    for version in versions {
        let name = str_of(&version["name"]);
        let _ = writeln!(out, "## Version `{name}`\n");
        let mut facts = Vec::new();
        if version["served"].as_bool() == Some(true) {
            facts.push("served");
        }
        if version["storage"].as_bool() == Some(true) {
            facts.push("storage version");
        }
        if version["subresources"]["status"].is_mapping() {
            facts.push("status subresource");
        }
        if !facts.is_empty() {
            let _ = writeln!(out, "{}.\n", capitalise(&facts.join(", ")));
        }
        if let Some(cols) = version["additionalPrinterColumns"].as_sequence() {
            let _ = writeln!(out, "`kubectl get` shows:\n");
            let _ = writeln!(out, "| column | from | type | what |\n|---|---|---|---|");
            for c in cols {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {} | {} |",
                    str_of(&c["name"]),
                    str_of(&c["jsonPath"]),
                    str_of(&c["type"]),
                    cell(str_of(&c["description"]))
                );
            }
            out.push('\n');
        }
        let root = &version["schema"]["openAPIV3Schema"];
        let mut secret_ref_seen = false;
        let mut sections = Vec::new();
        for top in ["spec", "status"] {
            let node = &root["properties"][top];
            if node.is_mapping() {
                collect(top, node, &mut sections, &mut secret_ref_seen);
            }
        }
        if secret_ref_seen {
            let _ = writeln!(out, "### SecretRef\n");
            let _ = writeln!(
                out,
                "Every `...SecretRef` field is `{{name, key}}`: the key `key` of the Secret \
                 `name` in the BounceConfig's namespace. The operator mounts the Secret into \
                 the workers at `<secrets-dir>/<name>/<key>`, so a secret's value never lands \
                 in the rendered config, a ConfigMap or a log. On a laptop, \
                 `bounce-worker --secrets-dir DIR` reads the same paths.\n"
            );
            let _ = writeln!(
                out,
                "| field | type | required | what |\n|---|---|---|---|\n\
                 | `name` | string | yes | Name of the Secret, in the BounceConfig's namespace. |\n\
                 | `key` | string | yes | Key inside the Secret. |\n"
            );
        }
        for s in sections {
            out.push_str(&s);
        }
    }
    Ok(out.trim_end().to_owned() + "\n")
}

/// Renders the object at `path` as a section, then its object-valued fields, depth first.
fn collect(path: &str, node: &Value, sections: &mut Vec<String>, secret_ref: &mut bool) {
    let mut s = String::new();
    let _ = writeln!(s, "### `{path}`\n");
    if let Some(d) = node["description"].as_str() {
        let _ = writeln!(s, "{}\n", paragraph(d));
    }
    for rule in rules(node) {
        let _ = writeln!(s, "- Rule: {rule}");
    }
    if !rules(node).is_empty() {
        s.push('\n');
    }
    let Some(props) = node["properties"].as_mapping() else {
        sections.push(s);
        return;
    };
    let required = list_of(&node["required"]);
    let _ = writeln!(
        s,
        "| field | type | required | default | what |\n|---|---|---|---|---|"
    );
    let mut nested = Vec::new();
    for (k, v) in props {
        let name = str_of(k);
        let child_path = format!("{path}.{name}");
        let (ty, child) = type_of(v, &child_path, secret_ref);
        if let Some((p, n)) = child {
            nested.push((p, n));
        }
        let mut what = v["description"].as_str().map(paragraph).unwrap_or_default();
        for c in constraints(v) {
            // Descriptions sometimes say it already ("At least 1024.").
            if what.contains(&c) {
                continue;
            }
            if !what.is_empty() {
                what.push(' ');
            }
            what.push_str(&c);
        }
        let _ = writeln!(
            s,
            "| `{name}` | {ty} | {} | {} | {} |",
            if required.iter().any(|r| r == name) {
                "yes"
            } else {
                ""
            },
            default_of(v),
            cell(&what)
        );
    }
    s.push('\n');
    sections.push(s);
    for (p, n) in nested {
        collect(&p, n, sections, secret_ref);
    }
}

/// The type column of a field, and the object to document in its own section, if any.
fn type_of<'a>(
    v: &'a Value,
    path: &str,
    secret_ref: &mut bool,
) -> (String, Option<(String, &'a Value)>) {
    if is_secret_ref(v) {
        *secret_ref = true;
        return ("SecretRef".into(), None);
    }
    let ty = str_of(&v["type"]);
    match ty {
        "object" if v["properties"].is_mapping() => {
            (format!("object (`{path}`)"), Some((path.to_owned(), v)))
        }
        "object" => match v["additionalProperties"].as_mapping() {
            Some(_) => {
                let (inner, child) =
                    type_of(&v["additionalProperties"], &format!("{path}.*"), secret_ref);
                (format!("map of {inner}"), child)
            }
            None => ("object".into(), None),
        },
        "array" => {
            let items = &v["items"];
            if items.is_mapping() {
                let (inner, child) = type_of(items, &format!("{path}[]"), secret_ref);
                (format!("list of {inner}"), child)
            } else {
                ("list".into(), None)
            }
        }
        "" if v["x-kubernetes-int-or-string"].as_bool() == Some(true) => {
            ("integer or string".into(), None)
        }
        "" => ("any".into(), None),
        other => match v["format"].as_str() {
            Some(f) => (format!("{other} ({f})"), None),
            None => (other.to_owned(), None),
        },
    }
}

fn is_secret_ref(v: &Value) -> bool {
    let Some(props) = v["properties"].as_mapping() else {
        return false;
    };
    let mut keys: Vec<&str> = props.keys().map(str_of).collect();
    keys.sort_unstable();
    keys == ["key", "name"]
}

/// Enum, range, length, list and CEL constraints, as sentences.
fn constraints(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(values) = v["enum"].as_sequence() {
        let values: Vec<String> = values.iter().map(|x| format!("`{}`", scalar(x))).collect();
        out.push(format!("One of {}.", values.join(", ")));
    }
    match (number(&v["minimum"]), number(&v["maximum"])) {
        (Some(lo), Some(hi)) => out.push(format!("From {lo} to {hi}.")),
        (Some(lo), None) => out.push(format!("At least {lo}.")),
        (None, Some(hi)) => out.push(format!("At most {hi}.")),
        (None, None) => {}
    }
    match (number(&v["minLength"]), number(&v["maxLength"])) {
        (Some(lo), Some(hi)) => out.push(format!("{lo} to {hi} characters.")),
        (Some(lo), None) => out.push(format!("At least {lo} characters.")),
        (None, Some(hi)) => out.push(format!("At most {hi} characters.")),
        (None, None) => {}
    }
    if let Some(p) = v["pattern"].as_str() {
        out.push(format!("Matches `{p}`."));
    }
    if let Some(n) = number(&v["maxItems"]) {
        out.push(format!("At most {n} items."));
    }
    let keys = list_of(&v["x-kubernetes-list-map-keys"]);
    if !keys.is_empty() {
        out.push(format!(
            "Items are unique by {}.",
            keys.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Object-level rules are listed under the object's own heading.
    if !v["properties"].is_mapping() && !v["items"]["properties"].is_mapping() {
        for r in rules(v) {
            out.push(format!("Rule: {r}."));
        }
    }
    out
}

/// CEL rules (`x-kubernetes-validations`) as "message (`rule`)".
fn rules(v: &Value) -> Vec<String> {
    v["x-kubernetes-validations"]
        .as_sequence()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let rule = str_of(&r["rule"]);
                    match r["message"].as_str() {
                        Some(m) => format!("{} (`{rule}`)", m.trim_end_matches('.')),
                        None => format!("`{rule}`"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn default_of(v: &Value) -> String {
    match &v["default"] {
        Value::Null => String::new(),
        // An object documented in its own section: each field there shows its default.
        Value::Mapping(_) if v["properties"].is_mapping() => "per field".into(),
        d @ (Value::Mapping(_) | Value::Sequence(_)) => {
            let json = serde_json::to_string(d).unwrap_or_default();
            format!("`{}`", cell(&json))
        }
        Value::String(s) if s.is_empty() => "`\"\"`".into(),
        d => format!("`{}`", scalar(d)),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(&Value::Number(n.clone())).unwrap_or_default(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Numbers as a person writes them: `65535`, not `65535.0`.
fn number(v: &Value) -> Option<String> {
    let n = v.as_f64()?;
    Some(if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    })
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn list_of(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| str_of(x).to_owned()).collect())
        .unwrap_or_default()
}

/// A description as one paragraph (schema descriptions keep the source's line breaks).
fn paragraph(d: &str) -> String {
    d.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text safe inside a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: example.io
  names: {kind: Thing, plural: things, singular: thing, shortNames: [th]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        properties:
          spec:
            description: The spec.
            properties:
              port: {type: integer, format: uint16, minimum: 1.0, maximum: 65535.0, description: "A port | with a bar."}
              mode: {type: string, enum: [a, b], default: a}
              ref:
                properties: {name: {type: string}, key: {type: string}}
                type: object
              inner:
                type: object
                description: Inner.
                x-kubernetes-validations: [{rule: "self.x > 0", message: "x must be positive"}]
                properties: {x: {type: integer}}
            required: [port]
            type: object
"#;

    #[test]
    fn renders_fields_types_constraints_and_nested_objects() {
        let md = reference_markdown(CRD).unwrap();
        assert!(md.contains("### `spec`"), "{md}");
        assert!(
            md.contains(
                "| `port` | integer (uint16) | yes |  | A port \\| with a bar. From 1 to 65535. |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| `mode` | string |  | `a` | One of `a`, `b`. |"),
            "{md}"
        );
        assert!(md.contains("| `ref` | SecretRef |"), "{md}");
        assert!(md.contains("### SecretRef"), "{md}");
        assert!(md.contains("### `spec.inner`"), "{md}");
        assert!(
            md.contains("- Rule: x must be positive (`self.x > 0`)"),
            "{md}"
        );
        assert!(md.ends_with("|\n"), "{md}");
    }
}
