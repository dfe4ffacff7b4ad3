//! Phase 2, "validate": what the CRD schema cannot catch (or that a client may have
//! bypassed) and what would make the workers fail at start. A problem here becomes the
//! Degraded condition with reason InvalidSpec, and no child is changed.

use std::collections::BTreeSet;

use bounceops_api::{BounceConfig, MailboxAuth};
use kube::ResourceExt;

/// The longest BounceConfig name whose children's names (`<name>-webhook`, a Service
/// name, so a DNS label of at most 63 characters) stay valid.
pub const MAX_NAME_LEN: usize = 63 - "-mailbox".len();

/// Every problem found, each naming the field; empty when the spec is usable.
pub fn problems(config: &BounceConfig) -> Vec<String> {
    let spec = &config.spec;
    let mut out = Vec::new();
    let name = config.name_any();
    if name.len() > MAX_NAME_LEN {
        out.push(format!(
            "metadata.name: at most {MAX_NAME_LEN} characters, so the children's names stay valid DNS labels"
        ));
    }
    if spec.database.url_secret_ref.is_none() {
        out.push(
            "spec.database.urlSecretRef: required in a cluster (DATABASE_URL is for local runs)"
                .into(),
        );
    }
    if spec.api.is_none() {
        out.push(
            "spec.api.credentialsSecretRef: required: the bounce API and the generic webhook need credentials"
                .into(),
        );
    }
    if spec.database.max_connections < 2 {
        out.push("spec.database.maxConnections: must be at least 2".into());
    }
    for (field, rule) in [
        ("soft", spec.rules.soft),
        ("hard", spec.rules.hard),
        ("complaint", spec.rules.complaint),
    ] {
        if !(1..=1000).contains(&rule.count) {
            out.push(format!(
                "spec.rules.{field}.count: {} is not in 1..1000",
                rule.count
            ));
        }
    }
    if let Some(w) = &spec.rules.window {
        match humantime::parse_duration(w) {
            Ok(d) if !d.is_zero() => {}
            _ => out.push(format!(
                "spec.rules.window: {w:?} is not a duration such as 720h or 30d"
            )),
        }
    }
    let mut seen = BTreeSet::new();
    for (i, m) in spec.mailboxes.iter().enumerate() {
        if !seen.insert(m.name.as_str()) {
            out.push(format!(
                "spec.mailboxes[{i}].name: {:?} is used twice",
                m.name
            ));
        }
        if m.port == 0 {
            out.push(format!("spec.mailboxes[{i}].port: must be 1..65535"));
        }
        if m.auth == MailboxAuth::Userpass
            && (m.username_secret_ref.is_none() || m.password_secret_ref.is_none())
        {
            out.push(format!(
                "spec.mailboxes[{i}]: auth userpass needs usernameSecretRef and passwordSecretRef"
            ));
        }
    }
    if spec.webhook.replicas < 0 {
        out.push("spec.webhook.replicas: must not be negative".into());
    }
    if spec.webhook.max_body_bytes < 1024 {
        out.push("spec.webhook.maxBodyBytes: must be at least 1024".into());
    }
    let ingress = &spec.webhook.ingress;
    if ingress.enabled && ingress.host.as_deref().is_none_or(str::is_empty) {
        out.push("spec.webhook.ingress.host: an enabled ingress needs a host".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> BounceConfig {
        BounceConfig::new("news", serde_yaml::from_str(yaml).unwrap())
    }

    const OK: &str = "database: {urlSecretRef: {name: db, key: url}}\napi: {credentialsSecretRef: {name: api, key: c}}\n";

    #[test]
    fn a_complete_spec_has_no_problems() {
        assert!(problems(&config(OK)).is_empty());
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            (
                "api: {credentialsSecretRef: {name: a, key: c}}\ndatabase: {}",
                "spec.database.urlSecretRef",
            ),
            (
                "database: {urlSecretRef: {name: db, key: url}}",
                "spec.api.credentialsSecretRef",
            ),
            (
                &format!("{OK}rules: {{soft: {{count: 0, action: none}}}}"),
                "spec.rules.soft.count",
            ),
            (
                &format!("{OK}rules: {{hard: {{count: 1001, action: none}}}}"),
                "spec.rules.hard.count",
            ),
            (&format!("{OK}rules: {{window: soon}}"), "spec.rules.window"),
            (&format!("{OK}rules: {{window: 0s}}"), "spec.rules.window"),
            (
                "api: {credentialsSecretRef: {name: a, key: c}}\ndatabase: {urlSecretRef: {name: d, key: u}, maxConnections: 1}",
                "spec.database.maxConnections",
            ),
            (
                &format!(
                    "{OK}mailboxes: [{{name: a, protocol: imap, host: h, port: 993, auth: none}}, {{name: a, protocol: imap, host: h, port: 993, auth: none}}]"
                ),
                "spec.mailboxes[1].name",
            ),
            (
                &format!(
                    "{OK}mailboxes: [{{name: a, protocol: imap, host: h, port: 0, auth: none}}]"
                ),
                "spec.mailboxes[0].port",
            ),
            (
                &format!(
                    "{OK}mailboxes: [{{name: a, protocol: imap, host: h, port: 993, usernameSecretRef: {{name: m, key: u}}}}]"
                ),
                "spec.mailboxes[0]: auth userpass",
            ),
            (
                &format!("{OK}webhook: {{replicas: -1}}"),
                "spec.webhook.replicas",
            ),
            (
                &format!("{OK}webhook: {{maxBodyBytes: 10}}"),
                "spec.webhook.maxBodyBytes",
            ),
            (
                &format!("{OK}webhook: {{ingress: {{enabled: true}}}}"),
                "spec.webhook.ingress.host",
            ),
        ];
        for (yaml, field) in cases {
            let p = problems(&config(yaml));
            assert!(
                p.len() == 1 && p[0].starts_with(field),
                "{yaml}: expected one problem on {field}, got {p:?}"
            );
        }
    }

    #[test]
    fn long_names_are_refused() {
        let mut c = config(OK);
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN + 1));
        assert_eq!(problems(&c).len(), 1);
        c.metadata.name = Some("x".repeat(MAX_NAME_LEN));
        assert!(problems(&c).is_empty());
    }
}
