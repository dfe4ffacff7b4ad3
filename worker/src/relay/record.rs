//! The upstream's refusals as bounces: who (listmonk's headers, else the address), why (the
//! classifier's reading of the reply, as for a provider's relayed reply) and the identity
//! that makes a resend of the same message record nothing twice.

use bounce_classify::{BounceType, Reason};

use super::answer::Reply;
use super::message::Headers;
use crate::event::BounceEvent;
use crate::providers::reason::Why;

/// The `source` of the relay's bounces: what the SMTP conversation said, as the bounce MX's.
pub const SOURCE: &str = "smtp";

/// Where in the conversation the refusal came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Rcpt,
    Data,
}

/// The events of one message's refusals. `rcpts` are the sender's recipients, `refused`
/// indexes into them; `digest` stands in for a missing Message-ID (the header block's hash,
/// which a resend repeats).
pub fn events(
    headers: &Headers,
    digest: &str,
    rcpts: &[String],
    refused: &[(usize, Reply, Stage)],
) -> Vec<BounceEvent> {
    let message = match &headers.message_id {
        Some(id) => format!("<{id}>"),
        None => format!("sha256:{digest}"),
    };
    refused
        .iter()
        .filter_map(|(i, reply, stage)| {
            let rcpt = rcpts.get(*i)?.to_ascii_lowercase();
            let text = reply.text();
            let why = Why::from_reply(None, None, Some(reply.code), Some(&text));
            // A full mailbox is soft whatever the class (the classifier's rule for DSNs).
            let bounce_type = if reply.temporary() || why.reason == Reason::MailboxFull {
                BounceType::Soft
            } else {
                BounceType::Hard
            };
            let mut meta = serde_json::Map::new();
            meta.insert("recipient".into(), rcpt.clone().into());
            meta.insert("relay".into(), true.into());
            meta.insert("smtp_code".into(), reply.code.into());
            meta.insert(
                "smtp_command".into(),
                match stage {
                    Stage::Rcpt => "RCPT",
                    Stage::Data => "DATA",
                }
                .into(),
            );
            if let Some(id) = &headers.message_id {
                meta.insert(
                    "message_id".into(),
                    crate::providers::reason::clip(id).into(),
                );
            }
            let mut e = BounceEvent {
                email: Some(rcpt.clone()),
                // listmonk's header names the one recipient of its message; with several, the
                // addresses decide (as `classified::listmonk_ids`).
                subscriber_uuid: headers.subscriber.filter(|_| rcpts.len() == 1),
                campaign_uuid: headers.campaign,
                bounce_type,
                source: SOURCE.into(),
                meta: serde_json::Value::Object(meta),
                created_at: None,
                event_id: format!("relay:{message}/{rcpt}"),
                reason: None,
                evidence: None,
                request_digest: None,
            };
            why.apply(&mut e);
            Some(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn headers() -> Headers {
        Headers {
            subscriber: Some(Uuid::from_u128(1)),
            campaign: Some(Uuid::from_u128(2)),
            message_id: Some("m1@example.com".into()),
        }
    }

    #[test]
    fn a_rcpt_refusal_is_a_hard_bounce_of_the_headers_subscriber() {
        let reply = Reply::new(
            550,
            "5.1.1 <x@local.test>: Recipient address rejected: User unknown in local recipient table",
        );
        let e = events(
            &headers(),
            "d",
            &["X@Local.test".into()],
            &[(0, reply, Stage::Rcpt)],
        );
        assert_eq!(e.len(), 1);
        let e = &e[0];
        assert_eq!(e.subscriber_uuid, Some(Uuid::from_u128(1)));
        assert_eq!(e.campaign_uuid, Some(Uuid::from_u128(2)));
        assert_eq!(e.email.as_deref(), Some("x@local.test"));
        assert_eq!(e.bounce_type, BounceType::Hard);
        assert_eq!(e.reason, Some(Reason::UserUnknown));
        assert_eq!(e.source, "smtp");
        assert_eq!(e.event_id, "relay:<m1@example.com>/x@local.test");
        assert_eq!(e.meta["status"], "5.1.1");
        assert!(
            e.meta["diagnostic"]
                .as_str()
                .unwrap()
                .contains("User unknown")
        );
        assert_eq!(e.meta["smtp_command"], "RCPT");
    }

    #[test]
    fn several_recipients_go_by_address_and_full_mailboxes_are_soft() {
        let full = Reply::new(552, "5.2.2 Mailbox full");
        let rcpts = vec!["a@x.test".to_owned(), "b@x.test".to_owned()];
        let e = events(&headers(), "d", &rcpts, &[(1, full, Stage::Data)]);
        assert_eq!(e[0].subscriber_uuid, None);
        assert_eq!(e[0].email.as_deref(), Some("b@x.test"));
        assert_eq!(e[0].bounce_type, BounceType::Soft);
        let later = Reply::new(451, "4.3.0 Try again later");
        let e = events(
            &Headers::default(),
            "abc",
            &rcpts,
            &[(0, later, Stage::Rcpt)],
        );
        assert_eq!(e[0].bounce_type, BounceType::Soft);
        assert_eq!(e[0].event_id, "relay:sha256:abc/a@x.test");
    }
}
