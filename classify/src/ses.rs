//! Owns Amazon SES notifications delivered as mail (an SNS e-mail
//! subscription): the body is SES's JSON (`notificationType` / `eventType`),
//! optionally wrapped in the SNS envelope.
//!
//! It is also the one place of SES's own decisions (hard or soft, and what its
//! `bounceSubType` says), which the worker's SES and Resend webhooks use too, so that a
//! bounce gets the same type and reason whichever way SES delivers it.

use crate::mime::Mail;
use crate::reason;
use crate::{BounceType, Kind, Reason, Recipient};
use serde_json::Value;

/// `bounce.bounceSubType` (SES Developer Guide, "Amazon SES notification contents",
/// https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html#bounce-types).
/// `General` and `Undetermined` say nothing: the recipient's `diagnosticCode` decides then.
pub const SUB_TYPES: &[(&str, Reason)] = &[
    ("Undetermined", Reason::OnHold),
    ("General", Reason::OnHold),
    ("NoEmail", Reason::UserUnknown),
    // "A recent history of bouncing as an invalid address".
    ("Suppressed", Reason::UserUnknown),
    // The account's own list, which holds complaints and manual entries too.
    ("OnAccountSuppressionList", Reason::OnHold),
    ("MailboxFull", Reason::MailboxFull),
    ("MessageTooLarge", Reason::MesgTooBig),
    ("ContentRejected", Reason::ContentError),
    ("AttachmentRejected", Reason::ContentError),
];

/// Sub-types where SES itself refused to send: its `diagnosticCode` is then SES's own
/// sentence, not a server's reply, so the sub-type decides.
pub const REFUSALS: &[&str] = &["Suppressed", "OnAccountSuppressionList"];

/// Hard or soft, from `bounce.bounceType` and the recipient's `status`: `Permanent` is
/// hard, `Transient` and `Undetermined` soft, except that listmonk promotes a `Transient`
/// bounce with status 5.4.4 (no route to the domain: it never succeeds on retry) to hard.
pub fn bounce_type(bounce_type: &str, status: Option<&str>) -> BounceType {
    match bounce_type {
        "Permanent" => BounceType::Hard,
        "Transient" if status.is_some_and(|s| s.trim() == "5.4.4") => BounceType::Hard,
        _ => BounceType::Soft,
    }
}

/// The reason of one recipient, from what the server's reply decided (`from_reply`, by
/// [`reason::decide_reply`]) and the bounce's sub-type: the sub-type decides where SES
/// refused to send itself, and where the reply names no cause.
pub fn reason(sub_type: Option<&str>, from_reply: Reason) -> Reason {
    let sub_type = sub_type.map(str::trim);
    let category = sub_type.and_then(|s| {
        SUB_TYPES
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(s))
            .map(|(_, r)| *r)
    });
    let refused = sub_type.is_some_and(|s| REFUSALS.iter().any(|r| r.eq_ignore_ascii_case(s)));
    match (category, from_reply) {
        (Some(c), _) if refused => c,
        (Some(c), Reason::OnHold | Reason::Undefined) => c,
        (_, r) => r,
    }
}

/// What an SES JSON body says, if the message carries one.
pub(crate) struct Notification {
    pub(crate) kind: Kind,
    pub(crate) recipients: crate::Found,
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
    // Counted before each recipient is read (`crate::MAX_RECIPIENTS`).
    let listed = |path: &str, read: &dyn Fn(&[Value]) -> Vec<Recipient>| {
        let list = v
            .pointer(path)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let emails: Vec<&str> = list
            .iter()
            .filter_map(|r| r.get("emailAddress")?.as_str())
            .collect();
        match crate::too_many(&emails, |e| e) {
            true => Err(crate::TooMany),
            false => Ok(read(list)),
        }
    };
    let (kind, recipients) = match kind_name {
        "Bounce" => (
            Kind::Bounce,
            listed("/bounce/bouncedRecipients", &|list| bounced(&v, list)),
        ),
        "Complaint" => (
            Kind::Complaint,
            listed("/complaint/complainedRecipients", &complained),
        ),
        "Delivery" => (Kind::Delivery, Ok(Vec::new())),
        _ => (Kind::Unknown, Ok(Vec::new())),
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

/// The recipients `list` of the bounce notification `v`.
fn bounced(v: &Value, list: &[Value]) -> Vec<Recipient> {
    let kind = v
        .pointer("/bounce/bounceType")
        .and_then(Value::as_str)
        .unwrap_or("Undetermined");
    let sub_type = v.pointer("/bounce/bounceSubType").and_then(Value::as_str);
    list.iter()
        .filter_map(|r| {
            let email = r.get("emailAddress")?.as_str()?;
            let email = crate::address::first(email)?;
            let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
            let status = s("status");
            let diagnostic = s("diagnosticCode");
            let text = diagnostic.as_deref().unwrap_or("");
            let (from_reply, _) = reason::decide_reply(status.as_deref(), None, text);
            Some(Recipient {
                reason: reason(sub_type, from_reply),
                bounce_type: bounce_type(kind, status.as_deref()),
                email,
                status,
                action: s("action"),
                diagnostic,
                remote_mta: None,
            })
        })
        .collect()
}

/// The recipients `list` of a complaint notification.
fn complained(list: &[Value]) -> Vec<Recipient> {
    list.iter()
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
        let recipients = n.recipients.unwrap();
        assert_eq!(recipients[0].email, "a@example.com");
        assert_eq!(recipients[0].bounce_type, BounceType::Hard);
        assert_eq!(recipients[0].reason, crate::Reason::UserUnknown);
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
