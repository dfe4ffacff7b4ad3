//! `spec.mailboxes`: the CRD's bounds and CEL rules, and what IMAP and the scheduler need.

use super::Report;
use crate::{MailboxProtocol, MailboxSpec};

/// The CRD's `maxItems`: one scanner task and one set of metrics per mailbox.
pub const MAX_MAILBOXES: usize = 32;

/// The bounds of `maxMessageBytes`: below 64 KiB real bounces (a DSN quoting its original)
/// would be refused; above 1 GiB the pod's memory limit, not this setting, would decide
/// what happens.
pub const MIN_MESSAGE_BYTES: u64 = 64 << 10;
pub const MAX_MESSAGE_BYTES: u64 = 1 << 30;

pub(super) fn check(mailboxes: &[MailboxSpec], r: &mut Report) {
    if mailboxes.len() > MAX_MAILBOXES {
        r.add(
            "spec.mailboxes",
            format!("at most {MAX_MAILBOXES} mailboxes"),
        );
    }
    for (i, m) in mailboxes.iter().enumerate() {
        let field = |f: &str| format!("spec.mailboxes[{i}].{f}");
        // The name labels metrics and is the key of the list: two mailboxes with one name
        // would share both.
        if r.visible_text(&field("name"), &m.name, 63)
            && mailboxes[..i].iter().any(|o| o.name == m.name)
        {
            r.add(&field("name"), "another mailbox has the same name");
        }
        r.visible_text(&field("host"), &m.host, 253);
        r.range(&field("port"), m.port, 1, 65535);
        r.text(&field("folder"), &m.folder, 255);
        if let Some(target) = &m.move_to {
            move_to(m, target, &field("moveTo"), r);
        }
        if r.text(&field("scanInterval"), &m.scan_interval, 64)
            && let Err(e) = crate::durations::scan_interval(&m.scan_interval)
        {
            r.add(&field("scanInterval"), e);
        }
        r.at_least(&field("maxMessagesPerScan"), m.max_messages_per_scan, 1);
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&m.max_message_bytes) {
            r.add(
                &field("maxMessageBytes"),
                "must be between 65536 (64 KiB) and 1073741824 (1 GiB)",
            );
        }
    }
}

fn move_to(m: &MailboxSpec, target: &str, field: &str, r: &mut Report) {
    if m.protocol != MailboxProtocol::Imap {
        r.add(
            field,
            "only IMAP mailboxes can move messages (POP3 has no folders)",
        );
        return;
    }
    if !r.visible_text(field, target, 255) {
        return;
    }
    // IMAP names other than INBOX travel as modified UTF-7, which the worker does not
    // implement: a non-ASCII name would reach the server as raw UTF-8. A line break would
    // end the command early.
    if !target.is_ascii() || target.contains(['\r', '\n']) {
        r.add(field, "only ASCII folder names without line breaks");
        return;
    }
    // INBOX is case-insensitive (RFC 3501 5.1); every other name is not.
    let inbox = |f: &str| f.eq_ignore_ascii_case("INBOX");
    if target == m.folder || (inbox(target) && inbox(&m.folder)) {
        r.add(
            field,
            "must differ from folder (INBOX in any letter case is one folder)",
        );
    }
}
