//! The chart's alerts behave as their unit tests say. `promtool test rules` runs
//! `charts/bounceops/tests/alerts.test.yaml` against the PrometheusRule that `helm template`
//! renders with the default values, so the tests see the thresholds, `for:` durations, labels
//! and annotations a user gets. Every rendered alert must have a case where it fires and one
//! where it stays quiet: a new alert without tests fails here.
//!
//! promtool comes from `BOUNCEOPS_PROMTOOL`, else `PATH`; without it the tests fail (they
//! never skip) and say how to install it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use bounceops_tests::helm;
use bounceops_tests::read;
use serde_yaml::Value;

/// The unit tests, from the repository root.
const ALERT_TESTS: &str = "charts/bounceops/tests/alerts.test.yaml";
/// What the unit tests' `rule_files` names: the rendered rules, next to the test file.
const RULES_FILE: &str = "rules.yaml";

fn promtool() -> PathBuf {
    if let Some(path) = std::env::var_os("BOUNCEOPS_PROMTOOL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "BOUNCEOPS_PROMTOOL={} is not a file",
            path.display()
        );
        return path;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("promtool"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "promtool not found: set BOUNCEOPS_PROMTOOL or put promtool on PATH. On Debian \
                 it comes with the package `prometheus` (`apt-get install --no-install-recommends \
                 prometheus`); `bash scripts/test.sh` installs it and sets BOUNCEOPS_PROMTOOL"
            )
        })
}

/// The PrometheusRule's `spec` as rendered with the default values: `{groups: [...]}`, which
/// is also the format of a Prometheus rule file.
fn rendered_rules() -> Value {
    // The rule is off by default; everything else stays as a user gets it.
    let manifests = helm::template("bounceops-system", &[], &["prometheusRule.enabled=true"]);
    let spec = manifests.one("PrometheusRule")["spec"].clone();
    assert!(
        spec["groups"].as_sequence().is_some_and(|g| !g.is_empty()),
        "the PrometheusRule has no groups: {spec:?}"
    );
    spec
}

fn alert_names(rules: &Value) -> BTreeSet<String> {
    rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().into_iter().flatten())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

/// Alert names of the test file's `alert_rule_test` cases: (expected to fire at least once,
/// expected to be quiet at least once).
fn cases(tests: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for group in tests["tests"].as_sequence().into_iter().flatten() {
        for case in group["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"]
                .as_str()
                .unwrap_or_else(|| panic!("{ALERT_TESTS}: a case without alertname: {case:?}"))
                .to_owned();
            // promtool reads a missing exp_alerts as "no alert" too.
            if case["exp_alerts"]
                .as_sequence()
                .is_some_and(|a| !a.is_empty())
            {
                fires.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    (fires, quiet)
}

fn alert_tests() -> Value {
    serde_yaml::from_str(&read(ALERT_TESTS))
        .unwrap_or_else(|e| panic!("{ALERT_TESTS} is not YAML: {e}"))
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_case() {
    let alerts = alert_names(&rendered_rules());
    assert!(!alerts.is_empty(), "the PrometheusRule renders no alerts");
    let (fires, quiet) = cases(&alert_tests());

    let untested: Vec<String> = alerts
        .iter()
        .filter_map(|a| {
            let missing: Vec<&str> = [
                (!fires.contains(a)).then_some("no case where it fires"),
                (!quiet.contains(a)).then_some("no case where it stays quiet (empty exp_alerts)"),
            ]
            .into_iter()
            .flatten()
            .collect();
            (!missing.is_empty()).then(|| format!("{a}: {}", missing.join(", ")))
        })
        .collect();
    assert!(
        untested.is_empty(),
        "alerts of the chart without unit tests in {ALERT_TESTS}:\n{}",
        untested.join("\n")
    );

    // promtool passes a case that expects no alert of a name no rule has, so a misspelt or
    // removed alert would leave quiet cases that prove nothing.
    let unknown: Vec<&String> = fires
        .union(&quiet)
        .filter(|n| !alerts.contains(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "{ALERT_TESTS} tests alerts the chart does not render: {unknown:?} (rendered: {alerts:?})"
    );
}

#[test]
fn promtool_unit_tests_pass() {
    let promtool = promtool();
    let tests = alert_tests();
    // Any other rule file would be tested instead of (or besides) what the chart renders.
    assert_eq!(
        tests["rule_files"],
        Value::Sequence(vec![RULES_FILE.into()]),
        "{ALERT_TESTS}: rule_files must be [{RULES_FILE}], the rendered rules"
    );
    let rules = serde_yaml::to_string(&rendered_rules()).expect("rules serialise");

    let dir = std::env::temp_dir().join(format!("bounceops-alert-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the temp dir");
    std::fs::write(dir.join(RULES_FILE), rules).expect("write the rules");
    std::fs::write(dir.join("alerts.test.yaml"), read(ALERT_TESTS)).expect("write the tests");

    let out = Command::new(&promtool)
        .args(["test", "rules", "alerts.test.yaml"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    // Kept on failure, so promtool can be rerun on exactly these files.
    assert!(
        out.status.success(),
        "promtool test rules failed ({}); files kept in {}:\n{}{}",
        out.status,
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
