//! Why a bounce happened (`Why`): a provider's code looked up in its table, or the remote
//! server's reply read by the classifier, and what `meta` shows of it.

pub use bounce_classify::Reason;
use serde_json::Value;

use crate::event::BounceEvent;

/// Longest diagnostic kept in a bounce's `meta`: servers sometimes quote whole transcripts.
pub const MAX_DIAGNOSTIC: usize = 1000;

/// A diagnostic as `meta` keeps it: trimmed, at most [`MAX_DIAGNOSTIC`] characters.
pub fn clip(text: &str) -> String {
    text.trim().chars().take(MAX_DIAGNOSTIC).collect()
}

/// The reason a provider's table gives `value`. Case-insensitive: providers' own examples
/// and payloads do not always agree on the case of their codes.
pub fn lookup(table: &[(&str, Reason)], value: Option<&str>) -> Option<Reason> {
    let value = value?.trim();
    table
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(value))
        .map(|(_, r)| *r)
}

/// Why one bounce happened, and the evidence `meta` shows for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Why {
    pub reason: Reason,
    /// The RFC 3463 status, as given or as found in the diagnostic.
    pub status: Option<String>,
    /// The remote server's reply, as the provider passed it on.
    pub diagnostic: Option<String>,
    /// The server that refused the message, where the provider names it.
    pub remote_mta: Option<String>,
}

impl Why {
    /// A reason that the provider's code alone decides (a complaint, the provider's own
    /// refusal to send): no remote server spoke.
    pub fn of(reason: Reason) -> Why {
        Why {
            reason,
            status: None,
            diagnostic: None,
            remote_mta: None,
        }
    }

    /// The reason from the remote server's reply (the classifier's `decide_reply`, the same
    /// that reads bounce mail) when it names a cause, else the provider's `category`.
    ///
    /// The reply first: it is what the receiving server said, and names causes that
    /// providers' categories lump together (a DMARC failure, a block list and a full
    /// mailbox are all a "hard bounce" or "General" to some). The category decides when the
    /// reply names nothing (`onhold`/`undefined`), which is also the case when there is no
    /// reply at all. Providers whose category is more reliable than the text for some
    /// values (their own suppressions) use [`Why::of`] for those.
    pub fn from_reply(
        category: Option<Reason>,
        status: Option<&str>,
        reply: Option<u16>,
        diagnostic: Option<&str>,
    ) -> Why {
        let status = status.map(str::trim).filter(|s| !s.is_empty());
        let diagnostic = diagnostic.map(str::trim).filter(|s| !s.is_empty());
        let (from_text, found) =
            bounce_classify::reason::decide_reply(status, reply, diagnostic.unwrap_or(""));
        let reason = match (from_text, category) {
            (Reason::OnHold | Reason::Undefined, Some(c)) => c,
            (r, _) => r,
        };
        Why {
            reason,
            status: found.or_else(|| status.map(str::to_owned)),
            diagnostic: diagnostic.map(clip),
            remote_mta: None,
        }
    }

    /// The server the provider tried to deliver to, for `meta.remote_mta`.
    pub fn remote_mta(mut self, host: Option<&str>) -> Why {
        self.remote_mta = host.map(clip).filter(|h| !h.is_empty());
        self
    }

    /// Sets the event's reason and adds `reason` (the name), `status` and `diagnostic` to its
    /// `meta`, the keys the export's columns and the API's `reason` filter read.
    ///
    /// `meta.reason` is always the name, so that one key means one thing whatever the
    /// source. Where the provider's own event has a `reason` of its own (SendGrid, Brevo and
    /// SparkPost put the reply there, Mailgun a word such as `bounce`), that value moves to
    /// `provider_reason`, unless it is the reply `diagnostic` already holds. The event as the
    /// provider sent it is kept whole as the bounce's evidence. A `status` the payload
    /// already has keeps the provider's value.
    pub fn apply(self, e: &mut BounceEvent) {
        e.reason = Some(self.reason);
        let Some(meta) = e.meta.as_object_mut() else {
            return;
        };
        let name = Value::from(self.reason.as_str());
        if let Some(own) = meta.insert("reason".into(), name.clone()) {
            let repeats_diagnostic = matches!(
                (own.as_str(), self.diagnostic.as_deref()),
                (Some(own), Some(d)) if clip(own) == d
            );
            if own != name && !repeats_diagnostic {
                meta.insert("provider_reason".into(), own);
            }
        }
        for (key, value) in [
            ("status", self.status),
            ("diagnostic", self.diagnostic),
            ("remote_mta", self.remote_mta),
        ] {
            if let Some(v) = value {
                meta.entry(key).or_insert_with(|| v.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BounceType;
    use crate::providers::bounce::event;
    use crate::providers::testing;
    use serde_json::json;

    #[test]
    fn the_generic_reply_names_no_cause() {
        let why = Why::from_reply(None, None, None, Some(testing::GENERIC_REPLY));
        assert_eq!(why.reason, Reason::OnHold);
        assert_eq!(why.status.as_deref(), Some("5.0.0"));
        let why = Why::from_reply(
            Some(Reason::Blocked),
            None,
            None,
            Some(testing::GENERIC_REPLY),
        );
        assert_eq!(why.reason, Reason::Blocked);
    }

    #[test]
    fn the_reply_outranks_the_category_and_nothing_at_all_is_undefined() {
        let text = "smtp; 550 5.7.1 rejected due to example.org's DMARC policy";
        let why = Why::from_reply(Some(Reason::UserUnknown), None, None, Some(text));
        assert_eq!(why.reason, Reason::AuthFailure);
        assert_eq!(why.status.as_deref(), Some("5.7.1"));
        assert_eq!(why.diagnostic.as_deref(), Some(text));
        // A status alone is evidence; the reply code given outranks none found in the text.
        assert_eq!(
            Why::from_reply(None, Some("5.2.2"), None, None).reason,
            Reason::MailboxFull
        );
        assert_eq!(
            Why::from_reply(None, None, Some(552), Some("no room")).reason,
            Reason::MailboxFull
        );
        assert_eq!(
            Why::from_reply(None, None, None, Some("  ")).reason,
            Reason::Undefined
        );
        assert_eq!(Why::from_reply(None, None, None, None).status, None);
    }

    #[test]
    fn diagnostics_are_trimmed_to_a_thousand_characters() {
        let long = format!("  550 5.1.1 {}  ", "é".repeat(3000));
        let why = Why::from_reply(None, None, None, Some(&long));
        let kept = why.diagnostic.unwrap();
        assert_eq!(kept.chars().count(), MAX_DIAGNOSTIC);
        assert!(kept.starts_with("550 5.1.1 é"));
        assert_eq!(clip(" short \n"), "short");
    }

    #[test]
    fn meta_reason_is_the_name_and_the_providers_own_is_kept() {
        let meta = json!({"reason": "550 5.1.1 user unknown", "status": "5.1.1", "x": 1});
        let mut e = event("p", "a@x.test".into(), BounceType::Hard, meta, "1".into());
        Why {
            reason: Reason::UserUnknown,
            status: Some("5.1.1".into()),
            diagnostic: Some("550 5.1.1 user unknown".into()),
            remote_mta: None,
        }
        .apply(&mut e);
        assert_eq!(e.reason, Some(Reason::UserUnknown));
        assert_eq!(
            e.meta,
            json!({"reason": "userunknown", "status": "5.1.1", "x": 1,
                   "diagnostic": "550 5.1.1 user unknown"})
        );
        // A provider's own reason that is not the reply (Mailgun's word) is kept beside it.
        let meta = json!({"reason": "bounce"});
        let mut e = event("p", "a@x.test".into(), BounceType::Hard, meta, "3".into());
        Why::from_reply(None, None, Some(550), Some("No such mailbox")).apply(&mut e);
        assert_eq!(e.meta["reason"], "userunknown");
        assert_eq!(e.meta["provider_reason"], "bounce");
        assert_eq!(e.meta["diagnostic"], "No such mailbox");
        let mut e = event(
            "p",
            "a@x.test".into(),
            BounceType::Complaint,
            json!({}),
            "2".into(),
        );
        Why::of(Reason::Feedback).apply(&mut e);
        assert_eq!(e.meta, json!({"reason": "feedback"}));
    }
}
