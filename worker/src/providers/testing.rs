//! What the providers' tests share.

use serde_json::Value;

use super::reason::Reason;
use crate::event::BounceEvent;

/// A reply that names no cause (`onhold` to the classifier), so that a provider's
/// table decides: the rows of each table are tested with it.
pub const GENERIC_REPLY: &str = "550 5.0.0 Message rejected";

/// What each SES `bounceSubType` gives under [`GENERIC_REPLY`]: SES's notifications and
/// Resend's events (which pass SES's on) are both tested with these rows.
pub const SES_SUB_TYPE_ROWS: &[(&str, Reason)] = &[
    ("Undetermined", Reason::OnHold),
    ("General", Reason::OnHold),
    ("NoEmail", Reason::UserUnknown),
    ("Suppressed", Reason::UserUnknown),
    ("OnAccountSuppressionList", Reason::OnHold),
    ("MailboxFull", Reason::MailboxFull),
    ("MessageTooLarge", Reason::MesgTooBig),
    ("ContentRejected", Reason::ContentError),
    ("AttachmentRejected", Reason::ContentError),
];

// The integration tests' own copy would be a twin; `#[path]` cannot reach it from here
// (the module's directory does not exist), `include!` can.
include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/common/fixture_text.rs"
));

/// A fixture of the webhook tests (`tests/fixtures/providers`), placeholders replaced.
pub fn fixture(name: &str, vars: &[(&str, &str)]) -> Value {
    let text = fixture_text(name, vars);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The placeholders of the fixtures of a batch: an event id, four recipients, a campaign.
pub const BATCH_VARS: &[(&str, &str)] = &[
    ("ID", "ev"),
    ("EMAIL1", "a@example.net"),
    ("EMAIL2", "b@example.net"),
    ("EMAIL3", "c@example.net"),
    ("EMAIL4", "d@example.net"),
    ("CAMPAIGN", "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"),
];

/// The events of a fixture that is an array of provider events ([`BATCH_VARS`] in its
/// placeholders), each mapped by `event_of`.
pub fn fixture_events(name: &str, event_of: fn(Value) -> Option<BounceEvent>) -> Vec<BounceEvent> {
    let Value::Array(items) = fixture(name, BATCH_VARS) else {
        panic!("{name}: an array");
    };
    items.into_iter().filter_map(event_of).collect()
}

/// The reason of each event, in order.
pub fn reasons(events: &[BounceEvent]) -> Vec<Reason> {
    events.iter().map(|e| e.reason.unwrap()).collect()
}
