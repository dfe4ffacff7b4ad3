//! `spec.relay`: the CRD's bounds and CEL rules, and what the relay needs of the bounce MX
//! whose return paths it writes.

use super::Report;
use crate::validate::mailboxes::{MAX_MESSAGE_BYTES, MIN_MESSAGE_BYTES};
use crate::{RelaySpec, SmtpSpec};

pub(super) fn check(relay: &RelaySpec, smtp: Option<&SmtpSpec>, r: &mut Report) {
    let field = |f: &str| format!("spec.relay.{f}");
    if r.text(&field("returnPathDomain"), &relay.return_path_domain, 253) {
        match smtp {
            None => r.add(
                "spec.smtp",
                "required by spec.relay: its return paths are the bounce MX's signed VERP addresses",
            ),
            // Against a list that is itself refused, the comparison says nothing more.
            Some(smtp) if domains_valid(smtp) && !smtp.domains.contains(&relay.return_path_domain) => r.add(
                &field("returnPathDomain"),
                "must be one of spec.smtp.domains",
            ),
            Some(_) => {}
        }
    }
    let upstream = &relay.upstream;
    r.visible_text(&field("upstream.host"), &upstream.host, 253);
    r.range(&field("upstream.port"), upstream.port, 1, 65535);
    if upstream.username_secret_ref.is_some() != upstream.password_secret_ref.is_some() {
        r.add(
            &field("upstream.passwordSecretRef"),
            "usernameSecretRef and passwordSecretRef go together",
        );
    }
    r.range(&field("upstream.poolSize"), upstream.pool_size, 1, 100);
    for (name, text) in [
        ("upstream.timeout", &upstream.timeout),
        ("commandTimeout", &relay.command_timeout),
    ] {
        if r.text(&field(name), text, 64)
            && let Err(e) = crate::durations::smtp_timeout(text)
        {
            r.add(&field(name), e);
        }
    }
    r.range(&field("port"), relay.port, 1, 65535);
    r.range(&field("replicas"), relay.replicas, 0, 100);
    if relay.replicas > 0 && relay.credentials_secret_ref.is_none() {
        r.add(
            &field("credentialsSecretRef"),
            "required when replicas is above 0: the relay's Service is reachable from every pod",
        );
    }
    r.optional_text(
        &field("tlsSecretName"),
        relay.tls_secret_name.as_deref(),
        253,
    );
    if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&relay.max_message_bytes) {
        r.add(
            &field("maxMessageBytes"),
            "must be between 65536 (64 KiB) and 1073741824 (1 GiB)",
        );
    }
    r.range(&field("maxRecipients"), relay.max_recipients, 1, 1000);
    r.range(&field("maxSessions"), relay.max_sessions, 1, 10000);
    if let Some(resources) = &relay.resources {
        super::resources(&field("resources"), resources, r);
    }
}

/// Whether `spec.smtp.domains` passes its own checks.
fn domains_valid(smtp: &SmtpSpec) -> bool {
    (1..=32).contains(&smtp.domains.len())
        && smtp
            .domains
            .iter()
            .all(|d| (1..=253).contains(&d.chars().count()) && super::smtp::is_domain(d))
}
