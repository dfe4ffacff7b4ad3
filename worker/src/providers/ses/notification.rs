//! SES's bounce and complaint notifications (`notificationType`, or `eventType` of event
//! publishing) into events, one per recipient.

use serde_json::Value;

use super::NAME;
use crate::event::{BounceEvent, BounceType};
use crate::providers::Rejection;
use crate::providers::bounce::{complete, event};
use crate::providers::listmonk::{campaign_in, subscriber_in};
use crate::providers::payload::{recipient, time};
use crate::providers::reason::{Reason, Why};

/// SES's `bounceSubType` table and hard/soft rule live in the classifier, shared with SES's
/// bounce mail ([`bounce_classify::ses`]).
pub use bounce_classify::ses::SUB_TYPES;

/// SES's notification (or event-publishing record) into one event per recipient. Types
/// other than Bounce and Complaint (Delivery, Send, Open, ...) give no event.
pub fn events(message_id: &str, message: Value) -> Result<Vec<BounceEvent>, Rejection> {
    let kind = message
        .get("notificationType")
        .or_else(|| message.get("eventType"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Rejection::Malformed("Message has neither notificationType nor eventType".into())
        })?;
    let mail = message.get("mail");
    let headers = mail
        .filter(|m| m.get("headersTruncated") != Some(&Value::Bool(true)))
        .and_then(|m| m.get("headers"));
    let campaign = campaign_in(headers);
    let subscriber = subscriber_in(headers);
    let mut found: Vec<(String, BounceType, Option<&Value>, Why)> = Vec::new();
    match kind {
        "Bounce" => {
            let bounce = message.get("bounce");
            let bounce_type = bounce
                .and_then(|b| b.get("bounceType"))
                .and_then(Value::as_str)
                .unwrap_or("Undetermined");
            let sub_type = bounce
                .and_then(|b| b.get("bounceSubType"))
                .and_then(Value::as_str);
            for r in list(bounce, "bouncedRecipients") {
                let Some(email) = recipient(r.get("emailAddress").and_then(Value::as_str)) else {
                    continue;
                };
                let status = r.get("status").and_then(Value::as_str).unwrap_or("");
                let t = bounce_classify::ses::bounce_type(bounce_type, Some(status));
                let diagnostic = r.get("diagnosticCode").and_then(Value::as_str);
                // SES names the receiving server by address only, for the whole bounce.
                let remote = bounce
                    .and_then(|b| b.get("remoteMtaIp"))
                    .and_then(Value::as_str);
                let mut why =
                    Why::from_reply(None, Some(status), None, diagnostic).remote_mta(remote);
                why.reason = bounce_classify::ses::reason(sub_type, why.reason);
                found.push((email, t, bounce.and_then(|b| b.get("timestamp")), why));
            }
        }
        "Complaint" => {
            let complaint = message.get("complaint");
            for r in list(complaint, "complainedRecipients") {
                if let Some(email) = recipient(r.get("emailAddress").and_then(Value::as_str)) {
                    found.push((
                        email,
                        BounceType::Complaint,
                        complaint.and_then(|c| c.get("timestamp")),
                        Why::of(Reason::Feedback),
                    ));
                }
            }
        }
        _ => return Ok(Vec::new()),
    }
    let one_recipient = found.len() == 1;
    // The timestamps borrow from `message`, which the last event then takes as its meta.
    let found: Vec<(String, BounceType, _, Why)> = found
        .into_iter()
        .map(|(email, t, at, why)| (email, t, time(at), why))
        .collect();
    let mut message = Some(message);
    let last = found.len().saturating_sub(1);
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(i, (email, t, created_at, why))| {
            // Each recipient is its own bounce; a retry repeats MessageId and recipient.
            let id = if one_recipient {
                message_id.to_owned()
            } else {
                format!("{message_id}:{email}")
            };
            let meta = if i == last {
                message.take().unwrap_or_default()
            } else {
                message.clone().unwrap_or_default()
            };
            let e = event(NAME, email, t, meta, id);
            complete(
                e,
                (campaign, if one_recipient { subscriber } else { None }),
                created_at,
                why,
            )
        })
        .collect())
}

fn list<'a>(parent: Option<&'a Value>, key: &str) -> impl Iterator<Item = &'a Value> {
    parent
        .and_then(|p| p.get(key))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::providers::testing::{GENERIC_REPLY, SES_SUB_TYPE_ROWS, fixture};

    fn bounce(sub_type: &str, status: &str, diagnostic: &str) -> Value {
        json!({
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Transient", "bounceSubType": sub_type,
                "timestamp": "2026-01-02T03:04:05.000Z",
                "bouncedRecipients": [{"emailAddress": "a@example.com", "action": "failed",
                    "status": status, "diagnosticCode": format!("smtp; {diagnostic}")}]},
            "mail": {"messageId": "m", "headersTruncated": false, "headers": []}
        })
    }

    /// SES delivers the same notification as a webhook or as mail (an SNS e-mail
    /// subscription read from a bounce mailbox): both ways give one type and one reason.
    #[test]
    fn by_mail_and_by_webhook_alike() {
        for (kind, sub_type, status, diagnostic) in [
            ("Permanent", "General", "5.1.1", "550 5.1.1 user unknown"),
            ("Transient", "General", "5.4.4", "550 5.4.4 unable to route"),
            (
                "Undetermined",
                "Undetermined",
                "5.4.4",
                "550 5.4.4 unable to route",
            ),
            ("Transient", "MailboxFull", "4.2.2", GENERIC_REPLY),
            (
                "Permanent",
                "Suppressed",
                "5.1.1",
                "Amazon SES did not send",
            ),
            ("Transient", "General", "4.0.0", GENERIC_REPLY),
        ] {
            let mut notification = bounce(sub_type, status, diagnostic);
            notification["bounce"]["bounceType"] = kind.into();
            let by_webhook = &events("m", notification.clone()).unwrap()[0];
            let mail = format!(
                "From: no-reply@sns.amazonaws.com\r\nTo: bounces@example.com\r\n\
                 Subject: AWS Notification Message\r\nContent-Type: text/plain\r\n\r\n{notification}\r\n"
            );
            let by_mail = bounce_classify::classify(mail.as_bytes());
            let r = &by_mail.recipients[0];
            assert_eq!(
                (r.bounce_type, r.reason),
                (by_webhook.bounce_type, by_webhook.reason.unwrap()),
                "{kind} {sub_type} {status}"
            );
        }
    }

    #[test]
    fn sub_types_row_by_row() {
        let rows = SES_SUB_TYPE_ROWS;
        assert_eq!(
            rows.len(),
            SUB_TYPES.len(),
            "a row of SUB_TYPES is untested"
        );
        for &(sub_type, want) in rows {
            let e = &events("m", bounce(sub_type, "5.0.0", GENERIC_REPLY)).unwrap()[0];
            assert_eq!(e.reason, Some(want), "{sub_type}");
            assert_eq!(e.meta["reason"], want.as_str(), "{sub_type}");
        }
    }

    #[test]
    fn the_reply_outranks_the_sub_type_except_on_ses_suppressions() {
        let dmarc = "550 5.7.1 rejected due to example.org's DMARC policy";
        let e = &events("m", bounce("NoEmail", "5.7.1", dmarc)).unwrap()[0];
        assert_eq!(e.reason, Some(Reason::AuthFailure));
        // SES's own sentence under a 5.1.1 does not make the account's list "userunknown".
        let ses = "Amazon SES did not send the message to this address because it is on the suppression list for your account.";
        let e = &events("m", bounce("OnAccountSuppressionList", "5.1.1", ses)).unwrap()[0];
        assert_eq!(e.reason, Some(Reason::OnHold));
        assert_eq!(e.meta["status"], "5.1.1");
    }

    #[test]
    fn full_notifications_carry_reason_status_and_diagnostic() {
        let campaign = "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f";
        let vars = [
            ("EMAIL1", "a@example.net"),
            ("EMAIL2", "b@example.net"),
            ("CAMPAIGN", campaign),
        ];
        let events = events("m-1", fixture("ses-bounce.json", &vars)).unwrap();
        assert_eq!(events.len(), 2);
        for e in &events {
            assert_eq!(e.reason, Some(Reason::UserUnknown));
            assert_eq!(e.meta["reason"], "userunknown");
            assert_eq!(e.meta["status"], "5.1.1");
            assert_eq!(e.meta["diagnostic"], "smtp; 550 5.1.1 user unknown");
            assert_eq!(e.meta["remote_mta"], "192.0.2.25");
            // The notification is still all there.
            assert_eq!(e.meta["bounce"]["bounceSubType"], "General");
            assert_eq!(e.meta["mail"]["messageId"], "0100017f-mail-message-id");
        }
        let complaint = events_of_complaint(&vars);
        assert_eq!(complaint.reason, Some(Reason::Feedback));
        assert_eq!(complaint.meta["reason"], "feedback");
        assert!(complaint.meta.get("status").is_none());
        assert_eq!(
            complaint.meta["complaint"]["complaintFeedbackType"],
            "abuse"
        );
    }

    fn events_of_complaint(vars: &[(&str, &str)]) -> BounceEvent {
        events("m-2", fixture("ses-complaint-event.json", vars))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn bounce_with_several_recipients_and_campaign() {
        let campaign = "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f";
        let msg = json!({
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Transient", "timestamp": "2026-01-02T03:04:05.000Z",
                "bouncedRecipients": [
                    {"emailAddress": "A@example.com", "status": "5.4.4"},
                    {"emailAddress": "b@example.com", "status": "4.2.2"}]},
            "mail": {"headersTruncated": false,
                     "headers": [{"name": "X-Listmonk-Campaign", "value": campaign}]}
        });
        let events = events("m-1", msg).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].bounce_type, BounceType::Hard);
        assert_eq!(events[1].bounce_type, BounceType::Soft);
        assert_eq!(events[0].event_id, "m-1:a@example.com");
        assert_eq!(events[1].campaign_uuid.unwrap().to_string(), campaign);
        assert!(events[0].created_at.is_some());
    }

    #[test]
    fn truncated_headers_are_not_trusted_and_deliveries_ignored() {
        let msg = json!({"eventType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": "c@example.com"}]},
            "mail": {"headersTruncated": true,
                     "headers": [{"name": "X-Listmonk-Campaign", "value": "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"}]}});
        let e = events("m-2", msg).unwrap();
        assert_eq!(e[0].bounce_type, BounceType::Complaint);
        assert_eq!(e[0].campaign_uuid, None);
        assert_eq!(e[0].event_id, "m-2");
        assert!(
            events("m-3", json!({"notificationType": "Delivery"}))
                .unwrap()
                .is_empty()
        );
        assert!(events("m-4", json!({"bounce": {}})).is_err());
    }
}
