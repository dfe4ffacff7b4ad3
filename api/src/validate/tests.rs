use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;
use crate::BounceConfig;
use crate::decode::spec_from_yaml;

/// A valid spec that sets every field, so that every bound of the schema has a value to
/// break. A new bounded field must be added here (the walk below fails until it is).
fn full() -> Value {
    let r = |name: &str| json!({"name": name, "key": "k"});
    json!({
        "enabled": true,
        "database": {"urlSecretRef": r("db"), "schema": "listmonk", "maxConnections": 16},
        "rules": {"soft": {"count": 2, "action": "none"}, "hard": {"count": 1, "action": "blocklist"},
                  "complaint": {"count": 1, "action": "blocklist"}, "window": "720h",
                  "recordAfterThreshold": false,
                  "reasons": {"blocked": {"type": "ignore"}, "mailboxfull": {"type": "soft"}}},
        "api": {"credentialsSecretRef": r("api")},
        "providers": {
            "generic": {"enabled": true},
            "ses": {"enabled": true, "topicArns": ["arn:aws:sns:eu-west-1:123456789012:bounces"],
                    "certUrlPattern": "https://sns\\.eu-west-1\\.amazonaws\\.com/[^/]+\\.pem",
                    "toleranceSeconds": 3900},
            "sendgrid": {"enabled": true, "publicKeySecretRef": r("sendgrid"), "toleranceSeconds": 600},
            "postmark": {"enabled": true, "credentialsSecretRef": r("postmark")},
            "forwardemail": {"enabled": true, "keySecretRef": r("forwardemail")},
            "mailgun": {"enabled": true, "signingKeySecretRef": r("mailgun"), "toleranceSeconds": 300},
            "lettermint": {"enabled": true, "signingKeySecretRef": r("lettermint")},
            "azure": {"enabled": true, "sharedSecretRef": r("azure"), "secretHeader": "X-Webhook-Secret"},
            "resend": {"enabled": true, "signingSecretRef": r("resend")},
            "brevo": {"enabled": true, "tokenSecretRef": r("brevo"), "credentialsSecretRef": r("brevo")},
            "mailjet": {"enabled": true, "tokenSecretRef": r("mailjet"), "credentialsSecretRef": r("mailjet")},
            "sparkpost": {"enabled": true, "tokenSecretRef": r("sparkpost"), "credentialsSecretRef": r("sparkpost")},
        },
        "mailboxes": [{"name": "bounces", "protocol": "imap", "host": "imap.example.com", "port": 993,
                       "tls": "tls", "tlsSkipVerify": false, "auth": "userpass",
                       "usernameSecretRef": r("mailbox"), "passwordSecretRef": r("mailbox"),
                       "folder": "INBOX", "moveTo": "Processed", "scanInterval": "15m",
                       "maxMessagesPerScan": 1000, "maxMessageBytes": 10485760}],
        "webhook": {"replicas": 2, "maxBodyBytes": 1048576,
                    "ingress": {"enabled": true, "host": "bounces.example.com", "className": "nginx",
                                "tlsSecretName": "bounces-tls",
                                "annotations": {"team": "mail"}},
                    "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "256Mi"}}},
        "smtp": {"domains": ["bounces.example.com"], "verpPrefix": "b",
                 "verpKeySecretRef": r("verp"), "previousVerpKeySecretRef": r("verp-old"),
                 "addresses": ["bounces@example.com"], "feedbackAddresses": ["fbl@example.com"],
                 "maxMessageBytes": 10485760, "maxRecipients": 100, "maxSessions": 100,
                 "maxErrors": 10, "commandTimeout": "5m", "dataTimeout": "10m", "port": 2525,
                 "replicas": 2, "tlsSecretName": "mx-tls",
                 "service": {"type": "LoadBalancer", "annotations": {"team": "mail"}},
                 "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "256Mi"}}},
        "relay": {"returnPathDomain": "bounces.example.com",
                  "upstream": {"host": "smtp.example.com", "port": 587, "tls": "starttls",
                               "caSecretRef": r("upstream-ca"), "usernameSecretRef": r("upstream"),
                               "passwordSecretRef": r("upstream"), "poolSize": 4, "timeout": "30s"},
                  "port": 2525, "replicas": 1, "credentialsSecretRef": r("relay"),
                  "tlsSecretName": "relay-tls", "recordTemporaryFailures": true,
                  "maxMessageBytes": 10485760, "maxRecipients": 100, "maxSessions": 100,
                  "commandTimeout": "5m",
                  "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "128Mi"}}},
        "metrics": {"serviceMonitor": true},
        "evidence": {"keepDays": 30, "maxBytes": 1048576},
        "retention": {"unmatchedDays": 90, "ignoredDays": 30, "deadLetterDays": 30},
        "image": "ghcr.io/bounceops/bounce-worker:0.1.0",
    })
}

/// What the worker makes of a spec: decoding, then `validate`.
fn problems_of(spec: &Value) -> Vec<Problem> {
    match spec_from_yaml(&serde_yaml::to_string(spec).unwrap()) {
        Err(p) => vec![p],
        Ok(s) => validate(&s),
    }
}

#[test]
fn the_full_spec_is_valid() {
    assert_eq!(problems_of(&full()), []);
}

/// One way to break one bound of the schema.
struct Breach {
    /// The field path, as `validate` names fields.
    field: String,
    /// Where it sits in `full()`.
    pointer: String,
    bound: String,
    value: Value,
    /// True for an exact value at the bound, which must be accepted.
    allowed: bool,
}

/// Every bound of the CRD's spec schema (the one the API server enforces), each broken
/// once just past it, and each number also met exactly.
fn breaches() -> Vec<Breach> {
    let crd = serde_json::to_value(BounceConfig::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut out = Vec::new();
    walk(schema, "spec", "", &full(), &mut out);
    out
}

fn walk(node: &Value, field: &str, pointer: &str, full: &Value, out: &mut Vec<Breach>) {
    let here = full.pointer(pointer).unwrap_or_else(|| {
        panic!("full() has no value at {field}: set one, so that its bounds are tested")
    });
    let mut add = |bound: &str, value: Value, allowed: bool| {
        out.push(Breach {
            field: field.to_owned(),
            pointer: pointer.to_owned(),
            bound: bound.to_owned(),
            value,
            allowed,
        })
    };
    if let Some(n) = node["maxLength"].as_u64() {
        add("maxLength", json!("a".repeat(n as usize + 1)), false);
    }
    if node["minLength"].as_u64() == Some(1) {
        add("minLength", json!(""), false);
    }
    if let Some(min) = node["minimum"].as_f64() {
        add("minimum", json!(min as i64 - 1), false);
        add("minimum", json!(min as i64), true);
    }
    if let Some(max) = node["maximum"].as_f64() {
        add("maximum", json!(max as i64 + 1), false);
        add("maximum", json!(max as i64), true);
    }
    if node["enum"].is_array() {
        add("enum", json!("bogus"), false);
    }
    if let Some(n) = node["maxItems"].as_u64() {
        let item = here[0].clone();
        add("maxItems", Value::Array(vec![item; n as usize + 1]), false);
    }
    if let Some(n) = node["maxProperties"].as_u64() {
        let value = here.as_object().unwrap().values().next().unwrap().clone();
        let map = (0..=n).map(|i| (format!("k{i}"), value.clone())).collect();
        add("maxProperties", Value::Object(map), false);
    }
    if let Some(props) = node["properties"].as_object() {
        for (k, sub) in props {
            walk(
                sub,
                &format!("{field}.{k}"),
                &format!("{pointer}/{k}"),
                full,
                out,
            );
        }
    }
    if node["items"].is_object() {
        walk(
            &node["items"],
            &format!("{field}[0]"),
            &format!("{pointer}/0"),
            full,
            out,
        );
    }
    if node["additionalProperties"].is_object() {
        let key = here.as_object().unwrap().keys().next().unwrap().clone();
        // An entry of a map of objects is named as decoding and the API server name it
        // (`reasons.blocked.type`); of a map of strings, whose keys hold dots and slashes
        // (`example.com/gpu`), as `requests[key]`.
        let entry = if node["additionalProperties"]["type"] == "object" {
            format!("{field}.{key}")
        } else {
            format!("{field}[{key}]")
        };
        walk(
            &node["additionalProperties"],
            &entry,
            &format!("{pointer}/{key}"),
            full,
            out,
        );
    }
}

#[test]
fn every_bound_of_the_crd_is_checked_here_with_the_same_limit() {
    let breaches = breaches();
    assert!(breaches.len() > 100, "only {} bounds found", breaches.len());
    let mut wrong = Vec::new();
    for b in &breaches {
        let mut spec = full();
        *spec.pointer_mut(&b.pointer).unwrap() = b.value.clone();
        let found = problems_of(&spec);
        let here: Vec<&Problem> = found.iter().filter(|p| p.field == b.field).collect();
        let ok = match (b.allowed, b.bound.as_str()) {
            (true, _) => here.is_empty(),
            // Copies of one item break other rules too (two mailboxes with one name).
            (false, "maxItems") => !here.is_empty(),
            (false, _) => !here.is_empty() && here.len() == found.len(),
        };
        if !ok {
            wrong.push(format!(
                "{} {} = {}: expected {}, got {found:?}",
                b.field,
                b.bound,
                b.value.to_string().chars().take(40).collect::<String>(),
                if b.allowed {
                    "no problem there"
                } else {
                    "a problem there only"
                },
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

fn with(patch: &str) -> Vec<String> {
    let mut spec = full();
    let patch: Value = serde_yaml::from_str(patch).unwrap();
    merge(&mut spec, patch);
    problems_of(&spec).iter().map(Problem::to_string).collect()
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

#[test]
fn move_to_is_an_ascii_imap_folder_other_than_the_scanned_one() {
    let m = |s: &str| {
        format!(
            "mailboxes: [{{name: b, protocol: imap, host: h, port: 993, usernameSecretRef: {{name: m, key: u}}, passwordSecretRef: {{name: m, key: p}}, {s}}}]"
        )
    };
    assert_eq!(with(&m("moveTo: Processed")), Vec::<String>::new());
    // Names other than INBOX are case-sensitive: another folder.
    assert_eq!(
        with(&m("folder: Bounces, moveTo: bounces")),
        Vec::<String>::new()
    );
    let field = "spec.mailboxes[0].moveTo";
    for (s, message) in [
        (
            "folder: Bounces, moveTo: Bounces",
            "must differ from folder",
        ),
        ("moveTo: inbox", "must differ from folder"),
        ("moveTo: ' '", "must not be blank"),
        ("moveTo: Erledigt-ä", "only ASCII folder names"),
        ("moveTo: \"a\\r\\nb\"", "only ASCII folder names"),
        ("protocol: pop3, moveTo: Processed", "only IMAP mailboxes"),
    ] {
        let p = with(&m(s));
        assert!(
            p.len() == 1 && p[0].starts_with(&format!("{field}: {message}")),
            "{s}: {p:?}"
        );
    }
}

#[test]
fn one_problem_per_field_the_first_rule_it_breaks() {
    // Too long, and not a duration either: the length is what to fix first.
    assert_eq!(
        with(&format!("rules: {{window: '{}'}}", "1".repeat(65))),
        ["spec.rules.window: at most 64 characters"]
    );
    assert_eq!(
        with(
            "mailboxes: [{name: b, protocol: imap, host: h, port: 993, usernameSecretRef: {name: m, key: u}, passwordSecretRef: {name: m, key: p}}, {name: b, protocol: pop3, host: ' ', port: 0, usernameSecretRef: {name: m, key: u}, passwordSecretRef: {name: m, key: p}}]"
        ),
        [
            "spec.mailboxes[1].name: another mailbox has the same name",
            "spec.mailboxes[1].host: must not be blank",
            "spec.mailboxes[1].port: must be between 1 and 65535",
        ]
    );
}

#[test]
fn provider_values_are_usable_by_the_worker() {
    assert_eq!(
        with("providers: {ses: {certUrlPattern: 'https://(sns'}}"),
        ["spec.providers.ses.certUrlPattern: not a regular expression: error: unclosed group"]
    );
    assert_eq!(
        with("providers: {azure: {secretHeader: 'X Secret'}}"),
        ["spec.providers.azure.secretHeader: not an HTTP header name such as X-Webhook-Secret"]
    );
    // Checked while disabled too: enabling a provider later must not reveal a mistake.
    assert_eq!(
        with("providers: {ses: {enabled: false, topicArns: [bounces]}}"),
        ["spec.providers.ses.topicArns[0]: not an ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"]
    );
}

#[test]
fn reason_rules_take_only_known_reasons() {
    assert_eq!(
        with(
            "rules: {reasons: {requireptr: {type: ignore}, filtered: {type: hard}, expired: {type: complaint}}}"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        with("rules: {reasons: {blacklisted: {type: ignore}, Blocked: {type: ignore}}}"),
        [
            "spec.rules.reasons.Blocked: not a reason listed in docs/reasons.md",
            "spec.rules.reasons.blacklisted: not a reason listed in docs/reasons.md",
        ]
    );
    assert_eq!(
        with("rules: {reasons: {blocked: {type: drop}}}")[0]
            .split(": ")
            .next(),
        Some("spec.rules.reasons.blocked.type")
    );
}

#[test]
fn a_problem_reads_as_its_field_then_its_message() {
    let p = Problem::new("spec.rules.window", "must be longer than zero");
    assert_eq!(p.to_string(), "spec.rules.window: must be longer than zero");
}

#[test]
fn the_bounce_mx_takes_domains_addresses_and_timeouts_it_can_use() {
    assert_eq!(with("smtp: {dataTimeout: 30s}"), Vec::<String>::new());
    assert_eq!(
        with(
            "{smtp: {domains: [bounces.example.com.]}, relay: {returnPathDomain: bounces.example.com.}}"
        ),
        Vec::<String>::new()
    );
    for (patch, field, message) in [
        ("smtp: {domains: []}", "spec.smtp.domains", "at least one"),
        (
            "smtp: {domains: [localhost]}",
            "spec.smtp.domains[0]",
            "not a domain name",
        ),
        (
            "smtp: {domains: ['bounces .example.com']}",
            "spec.smtp.domains[0]",
            "not a domain name",
        ),
        (
            "smtp: {addresses: [bounces.example.com]}",
            "spec.smtp.addresses[0]",
            "not an address",
        ),
        (
            "smtp: {feedbackAddresses: ['a b@example.com']}",
            "spec.smtp.feedbackAddresses[0]",
            "not an address",
        ),
        (
            "smtp: {verpPrefix: bnce}",
            "spec.smtp.verpPrefix",
            "at most 3 characters",
        ),
        (
            "smtp: {verpPrefix: 'b.'}",
            "spec.smtp.verpPrefix",
            "letters and digits only",
        ),
        (
            "smtp: {commandTimeout: 500ms}",
            "spec.smtp.commandTimeout",
            "between 1s and 1h",
        ),
        (
            "smtp: {dataTimeout: 2h}",
            "spec.smtp.dataTimeout",
            "between 1s and 1h",
        ),
        (
            "smtp: {dataTimeout: soon}",
            "spec.smtp.dataTimeout",
            "not a duration",
        ),
    ] {
        let p = with(patch);
        assert!(
            p.len() == 1 && p[0].starts_with(&format!("{field}: ")) && p[0].contains(message),
            "{patch}: {p:?}"
        );
    }
}

#[test]
fn the_relay_writes_return_paths_of_the_bounce_mx_and_asks_for_a_login_behind_a_service() {
    assert_eq!(
        with("relay: {replicas: 0, credentialsSecretRef: null}"),
        Vec::<String>::new()
    );
    for (patch, field, message) in [
        (
            "relay: {returnPathDomain: mail.example.com}",
            "spec.relay.returnPathDomain",
            "one of spec.smtp.domains",
        ),
        ("smtp: null", "spec.smtp", "required by spec.relay"),
        (
            "relay: {credentialsSecretRef: null}",
            "spec.relay.credentialsSecretRef",
            "required when replicas is above 0",
        ),
        (
            "relay: {upstream: {usernameSecretRef: null}}",
            "spec.relay.upstream.passwordSecretRef",
            "go together",
        ),
        (
            "relay: {upstream: {timeout: 0s}}",
            "spec.relay.upstream.timeout",
            "between 1s and 1h",
        ),
        (
            "relay: {upstream: {host: '  '}}",
            "spec.relay.upstream.host",
            "must not be blank",
        ),
    ] {
        let p = with(patch);
        assert!(
            p.len() == 1 && p[0].starts_with(&format!("{field}: ")) && p[0].contains(message),
            "{patch}: {p:?}"
        );
    }
}

#[test]
fn every_required_secret_is_a_field_of_its_provider() {
    for (provider, refs) in crate::providers::REQUIRED_SECRETS {
        let without = with(&format!(
            "providers: {{{provider}: {{enabled: true, {}}}}}",
            refs.iter()
                .map(|r| format!("{r}: null"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        assert_eq!(
            without.len(),
            1,
            "{provider} without its secret: {without:?}"
        );
        for r in refs.iter() {
            let others: Vec<String> = refs
                .iter()
                .filter(|o| *o != r)
                .map(|o| format!(", {o}: null"))
                .collect();
            let with_one = with(&format!(
                "providers: {{{provider}: {{enabled: true, {r}: {{name: s, key: k}}{}}}}}",
                others.concat()
            ));
            assert_eq!(with_one, Vec::<String>::new(), "{provider} with {r}");
        }
    }
}
