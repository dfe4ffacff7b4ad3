//! From one received message and its accepted recipients to the events recorded: the
//! pure decision, apart from the network and the database.

use bounce_classify::Classification;
use uuid::Uuid;

use super::recipients::Recipient;
use crate::event::BounceEvent;
use crate::evidence::{Evidence, Kept};

/// The `source` of the events the bounce MX records.
pub const SOURCE: &str = "smtp";

pub use crate::classified::recorded;

fn meta(rcpt: &Recipient, r: &bounce_classify::Recipient) -> serde_json::Value {
    let mut meta = serde_json::Map::new();
    meta.insert("smtp_recipient".into(), rcpt.address().into());
    meta.insert("recipient".into(), r.email.clone().into());
    if matches!(rcpt, Recipient::Feedback { .. }) {
        meta.insert("feedback_loop".into(), true.into());
    }
    crate::classified::add_recipient_meta(r, &mut meta);
    serde_json::Value::Object(meta)
}

/// The events of one message. `digest` identifies the message's bytes: with the token (or
/// the reported address) it makes each event's identity, so an MTA that resends the same
/// message after a lost `250` records nothing twice.
pub fn events(
    c: &Classification,
    recipients: &[Recipient],
    digest: &str,
    kept: Option<&Kept>,
) -> Vec<BounceEvent> {
    if !recorded(c) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let event = |email: Option<String>,
                 subscriber_uuid: Option<Uuid>,
                 campaign_uuid: Option<Uuid>,
                 rcpt: &Recipient,
                 r: &bounce_classify::Recipient,
                 event_id: String| BounceEvent {
        email,
        subscriber_uuid,
        campaign_uuid,
        bounce_type: r.bounce_type,
        source: SOURCE.into(),
        meta: meta(rcpt, r),
        created_at: None,
        event_id,
        reason: Some(r.reason),
        evidence: kept.cloned().map(Evidence::Kept),
        request_digest: None,
    };
    let mut plain_seen = std::collections::HashSet::new();
    for rcpt in recipients {
        match rcpt {
            // The token decides who bounced: one event, whatever the report lists (a
            // return path is made per subscriber). The report's first recipient gives
            // the type and the reason; its address is kept in meta.
            Recipient::Verp { verp, .. } => {
                let r = &c.recipients[0];
                let id = match verp.campaign {
                    Some(campaign) => format!("{digest}/{}/{campaign}", verp.subscriber),
                    None => format!("{digest}/{}", verp.subscriber),
                };
                out.push(event(
                    Some(r.email.clone()),
                    Some(verp.subscriber),
                    verp.campaign,
                    rcpt,
                    r,
                    id,
                ));
            }
            // As a bounce mailbox does: by the addresses the report names, and listmonk's
            // headers when it names one. The same message to two plain addresses is one
            // bounce per reported address.
            Recipient::Plain { .. } | Recipient::Feedback { .. } => {
                let (campaign_uuid, subscriber_uuid) = crate::classified::listmonk_ids(c);
                for r in &c.recipients {
                    if !plain_seen.insert(r.email.clone()) {
                        continue;
                    }
                    out.push(event(
                        Some(r.email.clone()),
                        subscriber_uuid,
                        campaign_uuid,
                        rcpt,
                        r,
                        format!("{digest}/{}", r.email),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::verp::Verp;
    use bounce_classify::{BounceType, Kind, Reason};

    fn report(emails: &[&str]) -> Classification {
        Classification {
            kind: Kind::Bounce,
            recipients: emails
                .iter()
                .map(|e| bounce_classify::Recipient {
                    email: (*e).into(),
                    status: Some("5.1.1".into()),
                    action: Some("failed".into()),
                    diagnostic: None,
                    bounce_type: BounceType::Hard,
                    reason: Reason::UserUnknown,
                    remote_mta: None,
                })
                .collect(),
            subscriber_uuid: Some("6c1a6d1e-2b8e-4c3c-9a53-6a2a4f0f9e11".into()),
            campaign_uuid: None,
            too_many_recipients: false,
        }
    }

    fn verp() -> Recipient {
        Recipient::Verp {
            address: "b+x@bounces.example.com".into(),
            verp: Verp {
                subscriber: Uuid::from_u128(1),
                campaign: Some(Uuid::from_u128(2)),
            },
        }
    }

    #[test]
    fn the_token_decides_the_subscriber_and_campaign() {
        let e = events(&report(&["a@x.org", "b@x.org"]), &[verp()], "d", None);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].subscriber_uuid, Some(Uuid::from_u128(1)));
        assert_eq!(e[0].campaign_uuid, Some(Uuid::from_u128(2)));
        assert_eq!(e[0].meta["recipient"], "a@x.org");
        assert_eq!(e[0].meta["smtp_recipient"], "b+x@bounces.example.com");
        assert_eq!(e[0].source, SOURCE);
        assert_eq!(e[0].bounce_type, BounceType::Hard);
    }

    #[test]
    fn plain_addresses_match_by_reported_address_once() {
        let plain = |a: &str| Recipient::Plain { address: a.into() };
        let e = events(
            &report(&["a@x.org", "b@x.org"]),
            &[plain("p@x"), plain("q@x")],
            "d",
            None,
        );
        assert_eq!(e.len(), 2, "one per reported address, not per RCPT");
        assert!(e.iter().all(|e| e.subscriber_uuid.is_none()));
        let one = events(&report(&["a@x.org"]), &[plain("p@x")], "d", None);
        assert!(
            one[0].subscriber_uuid.is_some(),
            "listmonk's header names one"
        );
    }

    #[test]
    fn identity_follows_the_bytes_not_the_attempt() {
        let a = events(&report(&["a@x.org"]), &[verp()], "d1", None);
        let b = events(&report(&["a@x.org"]), &[verp()], "d1", None);
        let c = events(&report(&["a@x.org"]), &[verp()], "d2", None);
        assert_eq!(a[0].event_id, b[0].event_id);
        assert_ne!(a[0].event_id, c[0].event_id);
    }

    #[test]
    fn non_bounces_and_empty_reports_record_nothing() {
        let mut c = report(&[]);
        assert!(events(&c, &[verp()], "d", None).is_empty());
        c = report(&["a@x.org"]);
        c.kind = Kind::Autoreply;
        assert!(events(&c, &[verp()], "d", None).is_empty());
    }
}
