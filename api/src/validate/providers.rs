//! `spec.providers`: an enabled provider needs the secret that authenticates it (the CRD's
//! CEL rules), the schema's bounds, and values the worker must be able to use.

use super::Report;
use crate::ProvidersSpec;

pub(super) fn check(p: &ProvidersSpec, r: &mut Report) {
    let field = |f: &str| format!("spec.providers.{f}");
    // One secret each: without it a forged request could not be told from a real one.
    for (enabled, present, name) in [
        (
            p.sendgrid.enabled,
            p.sendgrid.public_key_secret_ref.is_some(),
            "sendgrid.publicKeySecretRef",
        ),
        (
            p.postmark.enabled,
            p.postmark.credentials_secret_ref.is_some(),
            "postmark.credentialsSecretRef",
        ),
        (
            p.forwardemail.enabled,
            p.forwardemail.key_secret_ref.is_some(),
            "forwardemail.keySecretRef",
        ),
        (
            p.mailgun.enabled,
            p.mailgun.signing_key_secret_ref.is_some(),
            "mailgun.signingKeySecretRef",
        ),
        (
            p.lettermint.enabled,
            p.lettermint.signing_key_secret_ref.is_some(),
            "lettermint.signingKeySecretRef",
        ),
        (
            p.azure.enabled,
            p.azure.shared_secret_ref.is_some(),
            "azure.sharedSecretRef",
        ),
        (
            p.resend.enabled,
            p.resend.signing_secret_ref.is_some(),
            "resend.signingSecretRef",
        ),
    ] {
        if enabled && !present {
            r.add(&field(name), "required when the provider is enabled");
        }
    }
    for (name, t) in [
        ("brevo", &p.brevo),
        ("mailjet", &p.mailjet),
        ("sparkpost", &p.sparkpost),
    ] {
        if t.enabled && t.token_secret_ref.is_none() && t.credentials_secret_ref.is_none() {
            r.add(
                &field(name),
                "tokenSecretRef or credentialsSecretRef is required when the provider is enabled",
            );
        }
    }
    r.range(
        &field("sendgrid.toleranceSeconds"),
        p.sendgrid.tolerance_seconds,
        1,
        86400,
    );
    r.range(
        &field("mailgun.toleranceSeconds"),
        p.mailgun.tolerance_seconds,
        1,
        86400,
    );
    r.range(
        &field("ses.toleranceSeconds"),
        p.ses.tolerance_seconds,
        1,
        86400,
    );

    // The values below are checked whether or not the provider is enabled: enabling it
    // later must not reveal a mistake made now.
    let ses = &p.ses;
    if ses.topic_arns.len() > 64 {
        r.add(&field("ses.topicArns"), "at most 64 topics");
    }
    for (i, arn) in ses.topic_arns.iter().enumerate() {
        let f = field(&format!("ses.topicArns[{i}]"));
        if r.text(&f, arn, 256) && !arn.starts_with("arn:") {
            r.add(&f, "not an ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)");
        }
    }
    if let Some(pattern) = &ses.cert_url_pattern
        && r.text(&field("ses.certUrlPattern"), pattern, 1024)
        && let Err(e) = crate::providers::cert_url_regex(pattern)
    {
        // The parser's last line says what is wrong; the lines before quote the pattern.
        let detail = e.to_string();
        let detail = detail.lines().last().unwrap_or_default().trim().to_owned();
        r.add(
            &field("ses.certUrlPattern"),
            format!("not a regular expression: {detail}"),
        );
    }
    let header = &p.azure.secret_header;
    if r.text(&field("azure.secretHeader"), header, 256) && !is_header_name(header) {
        r.add(
            &field("azure.secretHeader"),
            "not an HTTP header name such as X-Webhook-Secret",
        );
    }
}

/// An HTTP field name is a `token` (RFC 9110 5.1): what any HTTP library accepts.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
