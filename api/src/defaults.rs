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
/// One letter: the VERP token takes all but four of a local part's 64 octets.
pub fn verp_prefix() -> String {
    "b".to_owned()
}
/// RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients.
pub fn smtp_max_recipients() -> u32 {
    100
}
/// Far above what the MTAs that return a campaign's bounces open at once, far below what
/// the pod's memory limit must hold (each session reads DATA with a bounded buffer).
pub fn smtp_max_sessions() -> u32 {
    100
}
pub fn smtp_max_errors() -> u32 {
    10
}
/// RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for each command.
pub fn smtp_command_timeout() -> String {
    "5m".to_owned()
}
/// RFC 5321 §4.5.3.2.6 waits 10 minutes for the end of DATA.
pub fn smtp_data_timeout() -> String {
    "10m".to_owned()
}
/// An unprivileged port in the pod; the Service maps port 25 to it.
pub fn smtp_port() -> u16 {
    2525
}
/// listmonk's usual SMTP port in its examples, unprivileged in the pod.
pub fn relay_port() -> u16 {
    2525
}
/// One relay behind its Service; 0 when listmonk takes the sidecar.
pub fn relay_replicas() -> i32 {
    1
}
/// The submission port (RFC 6409), where senders' SMTP servers expect them.
pub fn relay_upstream_port() -> u16 {
    587
}
/// Submission servers offer STARTTLS on 587 (RFC 8314 prefers implicit TLS on 465, which
/// `tls` selects).
pub fn relay_upstream_tls() -> crate::TlsMode {
    crate::TlsMode::Starttls
}
/// listmonk's own default SMTP pool size (max_conns 10) would hold more than a relay needs:
/// the relay keeps its upstream connections busy with several senders' messages.
pub fn relay_pool_size() -> u32 {
    4
}
/// Long enough for a slow upstream's answer to DATA, short enough that listmonk's send does
/// not hang on a dead one (listmonk's own SMTP timeout is 5s by default, idle 15s).
pub fn relay_upstream_timeout() -> String {
    "30s".to_owned()
}
