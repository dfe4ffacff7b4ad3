//! Owns Amazon SES notifications delivered as mail (an SNS e-mail
//! subscription): the body is SES's JSON (`notificationType` / `eventType`),
//! optionally wrapped in the SNS envelope.

use crate::mime::Mail;
use crate::{BounceType, Kind, Recipient};
use crate::{reason, status};
use serde_json::Value;

/// What an SES JSON body says, if the message carries one.
pub(crate) struct Notification {
    pub(crate) kind: Kind,
    pub(crate) recipients: Vec<Recipient>,
    pub(crate) campaign: Option<String>,
    pub(crate) subscriber: Option<String>,
}

pub(crate) fn parse(mail: &Mail) -> Option<Notification> {
    // SNS mails its notifications as text/plain; an HTML part (a mailer's
    // report, whose style sheet has braces and `Content-Type"`) is never one
    // and is not rendered to find out.
    mail.report_texts()
        .filter(|l| l.ctype != "text/html" && may_hold_json(l))
        .find_map(|l| from_text(l.text()))
}

/// `from_text` needs a `{` with `Type"` after it. Both are ASCII, so the raw
/// bytes of a binary part answer without making its text.
fn may_hold_json(leaf: &crate::mime::Leaf) -> bool {
    let bytes = match leaf.text_or_bytes() {
        Ok(text) => text.as_bytes(),
        Err(raw) => raw,
    };
    memchr::memchr(b'{', bytes)
        .is_some_and(|i| memchr::memmem::find(&bytes[i..], b"Type\"").is_some())
}

fn from_text(text: &str) -> Option<Notification> {
    let start = text.find('{')?;
    let body = &text[start..];
    if !body.contains("Type\"") {
        return None;
    }
    // SNS wraps long JSON lines when it mails them; try the text as sent,
    // then with the wraps undone.
    let mut v = [
        body.to_string(),
        body.replace("\n ", ""),
        body.replace('\n', ""),
    ]
    .iter()
    .find_map(|candidate| first_json_value(candidate))?;
    // SNS envelope: the SES object is a JSON string inside "Message".
    if let Some(inner) = v.get("Message").and_then(Value::as_str) {
        v = serde_json::from_str(inner).ok()?;
    }
    let kind_name = v
        .get("notificationType")
        .or_else(|| v.get("eventType"))
        .and_then(Value::as_str)?;
    let (kind, recipients) = match kind_name {
        "Bounce" => (Kind::Bounce, bounced(&v)),
        "Complaint" => (Kind::Complaint, complained(&v)),
        "Delivery" => (Kind::Delivery, Vec::new()),
        _ => (Kind::Unknown, Vec::new()),
    };
    let header = |name: &str| -> Option<String> {
        v.pointer("/mail/headers")?
            .as_array()?
            .iter()
            .find(|h| {
                h.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })?
            .get("value")?
            .as_str()
            .map(|s| s.trim().to_ascii_lowercase())
    };
    Some(Notification {
        kind,
        recipients,
        campaign: header("X-Listmonk-Campaign"),
        subscriber: header("X-Listmonk-Subscriber"),
    })
}

/// The first JSON value of `text`, ignoring whatever follows it (SNS appends
/// an unsubscribe footer).
fn first_json_value(text: &str) -> Option<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .next()?
        .ok()
        .filter(Value::is_object)
}

fn bounced(v: &Value) -> Vec<Recipient> {
    let permanent = v.pointer("/bounce/bounceType").and_then(Value::as_str) == Some("Permanent");
    let list = v
        .pointer("/bounce/bouncedRecipients")
        .and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|r| {
            let email = r.get("emailAddress")?.as_str()?;
            let email = crate::address::first(email)?;
            let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
            let status = s("status");
            // listmonk promotes a Transient bounce with 5.4.4 (no route to
            // the domain) to hard; follow it so both agree.
            let hard = permanent || status.as_deref() == Some("5.4.4");
            let diagnostic = s("diagnosticCode");
            let text = diagnostic.as_deref().unwrap_or("");
            let reason = reason::decide(status.as_deref(), status::find_reply_code(text), text);
            Some(Recipient {
                reason,
                email,
                status,
                action: s("action"),
                diagnostic,
                remote_mta: None,
                bounce_type: if hard {
                    BounceType::Hard
                } else {
                    BounceType::Soft
                },
            })
        })
        .collect()
}

fn complained(v: &Value) -> Vec<Recipient> {
    let list = v
        .pointer("/complaint/complainedRecipients")
        .and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|r| crate::address::first(r.get("emailAddress")?.as_str()?))
        .map(Recipient::complaint)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ses_bounce_json() {
        let body = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"a@example.com","status":"5.1.1","action":"failed","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]},"mail":{"headers":[{"name":"X-Listmonk-Campaign","value":"0f0e0d0c-2222-4b3c-8d4e-abcdefabcdef"}]}}"#;
        let n = from_text(body).unwrap();
        assert_eq!(n.kind, Kind::Bounce);
        assert_eq!(n.recipients[0].email, "a@example.com");
        assert_eq!(n.recipients[0].bounce_type, BounceType::Hard);
        assert_eq!(n.recipients[0].reason, crate::Reason::UserUnknown);
        assert_eq!(
            n.campaign.as_deref(),
            Some("0f0e0d0c-2222-4b3c-8d4e-abcdefabcdef")
        );
    }

    #[test]
    fn not_json() {
        assert!(from_text("hello {world}").is_none());
    }
}
