//! `spec.providers`: an enabled provider needs the secret that authenticates it (the CRD's
//! CEL rules), the schema's bounds, and values the worker must be able to use.

use super::Report;
use crate::ProvidersSpec;

pub(super) fn check(p: &ProvidersSpec, r: &mut Report) {
    let field = |f: &str| format!("spec.providers.{f}");
    // One secret each: without it a forged request could not be told from a real one.
    let spec = serde_json::to_value(p).expect("ProvidersSpec serializes to JSON");
    for (provider, refs) in crate::providers::REQUIRED_SECRETS {
        let section = &spec[provider];
        if section["enabled"] != true || refs.iter().any(|r| !section[r].is_null()) {
            continue;
        }
        match refs {
            [one] => r.add(
                &field(&format!("{provider}.{one}")),
                crate::providers::SECRET_REQUIRED,
            ),
            _ => r.add(
                &field(provider),
                crate::providers::secret_required_of_either(refs),
            ),
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
