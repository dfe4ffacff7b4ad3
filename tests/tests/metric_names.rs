//! Every metric the Grafana dashboard and the alert rules query is one the code exports.
//!
//! The exported names are read from the source (see `bounceops_tests::metrics`): each
//! metric is registered with its full name as a string literal. This covers the operator
//! and the worker metrics that need a failure to appear; `scrape.rs` checks the worker's
//! real `/metrics` as well.

use std::collections::BTreeSet;

use bounceops_tests::helm::{self, FULL_VALUES};
use bounceops_tests::metrics::{exported, family, names_in_code, names_in_promql};
use bounceops_tests::read;
use serde_json::Value as Json;

/// Every PromQL expression of the dashboard: panel targets and templating queries.
fn dashboard_exprs() -> Vec<String> {
    let dash: Json = serde_json::from_str(&read("charts/bounceops/dashboards/bounceops.json"))
        .expect("dashboard is JSON");
    let mut out = Vec::new();
    fn walk(v: &Json, out: &mut Vec<String>) {
        match v {
            Json::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr" | "definition", Json::String(s)) => out.push(s.clone()),
                        ("query", Json::String(s)) if s.contains("bounceops_") => {
                            out.push(s.clone())
                        }
                        _ => walk(x, out),
                    }
                }
            }
            Json::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&dash, &mut out);
    out
}

/// Every alert expression of the PrometheusRule, rendered with all options on.
fn alert_exprs() -> Vec<(String, String)> {
    let m = helm::template("bounceops-system", &[FULL_VALUES], &[]);
    let rule = m.one("PrometheusRule");
    rule["spec"]["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .map(|r| {
            (
                r["alert"].as_str().expect("alert").to_owned(),
                r["expr"].as_str().expect("expr").to_owned(),
            )
        })
        .collect()
}

#[test]
fn code_exports_the_documented_metrics() {
    let code = names_in_code();
    for name in [
        "bounceops_events_total",
        "bounceops_actions_total",
        "bounceops_unmatched_total",
        "bounceops_dead_letters_total",
        "bounceops_http_requests_total",
        "bounceops_http_request_duration_seconds",
        "bounceops_db_errors_total",
        "bounceops_ingest_batch_events",
        "bounceops_operator_reconciles_total",
        // The bounce MX's: the operator's dashboard panels and alert rules query them.
        "bounceops_smtp_sessions_total",
        "bounceops_smtp_sessions_active",
        "bounceops_smtp_messages_total",
        "bounceops_smtp_data_duration_seconds",
        // The sending relay's: its dashboard row and alert query them.
        "bounceops_relay_messages_total",
        "bounceops_relay_recipients_total",
        "bounceops_relay_upstream_duration_seconds",
        "bounceops_relay_upstream_errors_total",
    ] {
        assert!(
            code.contains_key(name),
            "{name} not found in the code: {code:?}"
        );
    }
}

#[test]
fn dashboard_queries_use_only_exported_metrics() {
    let code = names_in_code();
    let exprs = dashboard_exprs();
    assert!(exprs.len() > 20, "dashboard has {} queries", exprs.len());
    let mut used = BTreeSet::new();
    let mut unknown = Vec::new();
    for e in &exprs {
        for n in names_in_promql(e) {
            if exported(&n, &code) {
                used.insert(family(&n, &code));
            } else {
                unknown.push(n);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the code does not export: {unknown:?}"
    );
    // What the issue asks the dashboard to show.
    for needed in [
        "bounceops_events_total",
        "bounceops_actions_total",
        "bounceops_provider_requests_total",
        "bounceops_provider_signature_failures_total",
        "bounceops_http_request_duration_seconds",
        "bounceops_mailbox_scans_total",
        "bounceops_mailbox_scan_duration_seconds",
        "bounceops_operator_reconciles_total",
        "bounceops_smtp_sessions_total",
        "bounceops_smtp_sessions_active",
        "bounceops_smtp_messages_total",
        "bounceops_smtp_data_duration_seconds",
        // The sending relay's: its dashboard row and alert query them.
        "bounceops_relay_messages_total",
        "bounceops_relay_recipients_total",
        "bounceops_relay_upstream_duration_seconds",
        "bounceops_relay_upstream_errors_total",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
    let unused: Vec<_> = code.keys().filter(|n| !used.contains(*n)).collect();
    if !unused.is_empty() {
        eprintln!("note: metrics without a dashboard panel yet: {unused:?}");
    }
}

#[test]
fn alert_rules_use_only_exported_metrics() {
    let code = names_in_code();
    let alerts = alert_exprs();
    assert!(alerts.len() >= 5, "{alerts:?}");
    for (alert, expr) in &alerts {
        let names = names_in_promql(expr);
        assert!(!names.is_empty(), "{alert} queries no bounceops metric");
        for n in names {
            assert!(
                exported(&n, &code),
                "alert {alert} queries {n}, which the code does not export"
            );
        }
    }
}
