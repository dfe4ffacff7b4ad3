//! What a classified bounce mail gives, the same whether it came from a bounce mailbox or to
//! the bounce MX: whether it is recorded at all, listmonk's ids from its headers, and the
//! keys each recipient's event carries in `meta`.

use bounce_classify::{Classification, Kind, Recipient};
use uuid::Uuid;

/// Whether a classified message is recorded: a bounce or a complaint that names its
/// recipients. Anything else (auto-replies, delivery reports, a report naming nobody) is
/// never guessed at.
pub fn recorded(c: &Classification) -> bool {
    matches!(c.kind, Kind::Bounce | Kind::Complaint) && !c.recipients.is_empty()
}

/// The campaign and the subscriber that listmonk's headers in the returned original name.
/// listmonk sends one message per subscriber, so its subscriber header identifies the one
/// recipient of the original; a report naming several recipients (an alias that expanded)
/// says nothing about which of them the header meant, so then there is no subscriber and
/// the addresses decide.
pub fn listmonk_ids(c: &Classification) -> (Option<Uuid>, Option<Uuid>) {
    let uuid = |v: &Option<String>| v.as_deref().and_then(|u| Uuid::parse_str(u).ok());
    let subscriber = match c.recipients.as_slice() {
        [_] => uuid(&c.subscriber_uuid),
        _ => None,
    };
    (uuid(&c.campaign_uuid), subscriber)
}

/// Adds the recipient's `reason` and, where the report gives them, its `status`, `action`,
/// `diagnostic` and `remote_mta` (clipped) to `meta`: the keys the export's columns and the
/// API's `reason` filter read.
pub fn add_recipient_meta(r: &Recipient, meta: &mut serde_json::Map<String, serde_json::Value>) {
    meta.insert("reason".into(), r.reason.as_str().into());
    for (key, value) in [
        ("status", &r.status),
        ("action", &r.action),
        ("diagnostic", &r.diagnostic),
        ("remote_mta", &r.remote_mta),
    ] {
        if let Some(v) = value {
            meta.insert(key.into(), crate::providers::reason::clip(v).into());
        }
    }
}
