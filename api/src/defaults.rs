//! Default values of the resource's fields, named so that serde and the docs agree.

use crate::{Action, Rule};

pub fn yes() -> bool {
    true
}
pub fn soft_rule() -> Rule {
    Rule {
        count: 2,
        action: Action::None,
    }
}
pub fn hard_rule() -> Rule {
    Rule {
        count: 1,
        action: Action::Blocklist,
    }
}
pub fn complaint_rule() -> Rule {
    Rule {
        count: 1,
        action: Action::Blocklist,
    }
}
pub fn max_connections() -> u32 {
    16
}
pub fn replicas() -> i32 {
    2
}
pub fn max_body_bytes() -> u64 {
    1 << 20
}
pub fn inbox() -> String {
    "INBOX".to_owned()
}
pub fn scan_interval() -> String {
    "15m".to_owned()
}
pub fn max_messages_per_scan() -> u32 {
    1000
}
/// 10 MiB: far above any real bounce (a DSN with its original rarely reaches 1 MiB),
/// far below what a mailbox pod's memory limit must hold.
pub fn max_message_bytes() -> u64 {
    10 << 20
}
/// A month: long enough to look into a blocklisting reported by a subscriber weeks later.
pub fn evidence_keep_days() -> u32 {
    30
}
/// 1 MiB: a whole DSN with its original's headers, and the first part of a large one.
pub fn evidence_max_bytes() -> u64 {
    1 << 20
}
/// A quarter: an unmatched bounce points at a setup mistake (a wrong database, subscribers
/// deleted before their bounces came back), often noticed weeks later.
pub fn unmatched_days() -> u32 {
    90
}
/// A month, as the evidence: an ignored bounce is the record of a sender-side incident,
/// looked into while it lasts.
pub fn ignored_days() -> u32 {
    30
}
/// A month too: long enough to find and fix what the database refused, then replay it.
pub fn dead_letter_days() -> u32 {
    30
}
