//! The shared table of invalid specs (tests/src/invalid_specs.rs) against the one
//! judgement of a spec: decoding (for what the types cannot hold), then `validate`. Each
//! row must be refused with exactly one problem, on the row's field, in words that
//! docs/validation.md quotes. And every CEL rule of the CRD has a row.

use bounceops_api::decode::spec_from_yaml;
use bounceops_api::{BounceConfig, Problem, validate};
use bounceops_tests::{invalid_specs, read};
use kube::CustomResourceExt;
use serde_json::Value;

/// What the worker and the operator make of a spec, as one list.
fn problems_of(spec: &Value) -> (Vec<Problem>, bool) {
    match spec_from_yaml(&serde_yaml::to_string(spec).unwrap()) {
        Err(p) => (vec![p], false),
        Ok(s) => (validate(&s), true),
    }
}

#[test]
fn the_starting_spec_is_valid() {
    assert_eq!(problems_of(&invalid_specs::valid_spec()).0, []);
}

#[test]
fn every_row_is_refused_on_its_field_in_documented_words() {
    let table = invalid_specs::table();
    assert!(table.len() >= 25, "the table has {} rows", table.len());
    let docs = read("docs/validation.md");
    let mut wrong = Vec::new();
    for row in &table {
        let (problems, decoded) = problems_of(&row.spec);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        if fields != [row.field] {
            wrong.push(format!(
                "{}: expected one problem on {}, got {problems:?}",
                row.case, row.field
            ));
            continue;
        }
        // serde's own words on what does not decode are not ours to document; a parser's
        // detail after a colon (a regular expression's error) varies with the value.
        let words = problems[0].message.split(": ").next().unwrap_or_default();
        if decoded && !docs.contains(words) {
            wrong.push(format!(
                "{}: docs/validation.md does not quote {words:?}",
                row.case
            ));
        }
        let generic = row.field.replace("[0]", "[i]").replace("[1]", "[i]");
        if !docs.contains(&format!("`{generic}`")) {
            wrong.push(format!(
                "{}: docs/validation.md does not name the field `{generic}`",
                row.case
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn every_cel_rule_of_the_crd_has_a_row() {
    let crd = serde_json::to_value(BounceConfig::crd()).unwrap();
    let mut messages = Vec::new();
    cel_messages(&crd["spec"]["versions"][0]["schema"], &mut messages);
    assert!(messages.len() >= 10, "{messages:?}");
    let table = invalid_specs::table();
    let missing: Vec<&String> = messages
        .iter()
        .filter(|m| {
            !table
                .iter()
                .filter_map(|row| row.server.as_ref())
                .any(|s| m.starts_with(s.message))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "CEL rules without a row in tests/src/invalid_specs.rs: {missing:#?}"
    );
}

fn cel_messages(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "x-kubernetes-validations" {
                    out.extend(
                        v.as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|r| r["message"].as_str().map(str::to_owned)),
                    );
                } else {
                    cel_messages(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| cel_messages(v, out)),
        _ => {}
    }
}
