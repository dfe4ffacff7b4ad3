//! `spec.smtp`: the CRD's bounds, and what the bounce MX needs of its addresses and timeouts.

use super::Report;
use crate::SmtpSpec;
use crate::smtp::MAX_VERP_PREFIX;
use crate::validate::mailboxes::{MAX_MESSAGE_BYTES, MIN_MESSAGE_BYTES};

pub(super) fn check(smtp: &SmtpSpec, r: &mut Report) {
    let field = |f: &str| format!("spec.smtp.{f}");
    if smtp.domains.is_empty() {
        r.add(&field("domains"), "at least one bounce domain");
    } else if smtp.domains.len() > 32 {
        r.add(&field("domains"), "at most 32 domains");
    }
    for (i, domain) in smtp.domains.iter().enumerate() {
        let here = format!("{}[{i}]", field("domains"));
        if r.text(&here, domain, 253) && !is_domain(domain) {
            r.add(&here, "not a domain name such as bounces.example.com");
        }
    }
    if smtp.verp_prefix.is_empty() {
        r.add(&field("verpPrefix"), "must not be empty");
    } else if smtp.verp_prefix.chars().count() > MAX_VERP_PREFIX {
        r.add(
            &field("verpPrefix"),
            format!("at most {MAX_VERP_PREFIX} characters"),
        );
    } else if !smtp.verp_prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
        r.add(&field("verpPrefix"), "letters and digits only");
    }
    for (name, list) in [
        ("addresses", &smtp.addresses),
        ("feedbackAddresses", &smtp.feedback_addresses),
    ] {
        if list.len() > 32 {
            r.add(&field(name), "at most 32 addresses");
        }
        for (i, address) in list.iter().enumerate() {
            let here = format!("{}[{i}]", field(name));
            if address.chars().count() < 3 {
                r.add(&here, "at least 3 characters");
            } else if r.text(&here, address, 254) && !is_address(address) {
                r.add(&here, "not an address such as bounces@example.com");
            }
        }
    }
    if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&smtp.max_message_bytes) {
        r.add(
            &field("maxMessageBytes"),
            "must be between 65536 (64 KiB) and 1073741824 (1 GiB)",
        );
    }
    r.range(&field("maxRecipients"), smtp.max_recipients, 1, 1000);
    r.range(&field("maxSessions"), smtp.max_sessions, 1, 10000);
    r.range(&field("maxErrors"), smtp.max_errors, 1, 100);
    for (name, text) in [
        ("commandTimeout", &smtp.command_timeout),
        ("dataTimeout", &smtp.data_timeout),
    ] {
        if r.text(&field(name), text, 64)
            && let Err(e) = crate::durations::smtp_timeout(text)
        {
            r.add(&field(name), e);
        }
    }
    r.range(&field("port"), smtp.port, 1, 65535);
    r.range(&field("replicas"), smtp.replicas, 0, 100);
    r.optional_text(
        &field("tlsSecretName"),
        smtp.tls_secret_name.as_deref(),
        253,
    );
    super::annotations(&field("service.annotations"), &smtp.service.annotations, r);
    if let Some(resources) = &smtp.resources {
        super::resources(&field("resources"), resources, r);
    }
}

/// A DNS name of letters, digits and hyphens, with at least one dot: what an MX record can
/// be published for. Checked here so that a typo is a status condition, not mail refused.
pub(super) fn is_domain(domain: &str) -> bool {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    domain.contains('.')
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `local@domain` with a plain local part (no quoting, no spaces): the addresses senders
/// write as return paths.
fn is_address(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            (1..=64).contains(&local.len())
                && local
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '@' && c != '"')
                && is_domain(domain)
        }
        None => false,
    }
}
