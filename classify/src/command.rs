//! Owns "which SMTP command was refused": the phase of the SMTP session in
//! which the remote server gave up on a recipient, read from the words each
//! MTA uses to say so. The reason decision needs it because the same reply
//! means different things at different times: "no such user" answered to
//! RCPT TO is a mailbox that does not exist, answered after DATA it is a
//! filter that read the message (Sisimai's `filtered`); any refusal of the
//! greeting or of HELO/EHLO refuses the sending host (`blocked`); a refusal
//! of MAIL FROM refuses the sender (`rejected`).

use crate::phrases::Phrases;
use std::sync::LazyLock;

/// An SMTP session's phases, in the order a client goes through them, so
/// that the latest one a text names is the one that failed (a transcript
/// shows RCPT TO accepted before DATA was refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Command {
    /// The connection or the server's greeting (Sisimai's pseudo-command CONN).
    Connect,
    /// HELO or EHLO (and STARTTLS, AUTH: the client's introduction).
    Helo,
    /// MAIL FROM: the envelope sender.
    MailFrom,
    /// RCPT TO: the recipient.
    RcptTo,
    /// DATA, the message text and its end (`.`).
    Data,
}

/// How each MTA names the command it was answering, lower-cased (matched
/// ASCII case-insensitively). A phrase, not a bare command name, so that the
/// same letters in an address or a host name (`data.example.com`,
/// `mail-from@`) are not read as a command.
const PHRASES: &[(&str, Command)] = &[
    // Postfix, smtp(8) and lmtp(8): "(in reply to RCPT TO command)",
    // "(in reply to end of DATA command)", "(in reply to MAIL FROM command)".
    ("in reply to rcpt to", Command::RcptTo),
    ("in reply to mail from", Command::MailFrom),
    ("in reply to data command", Command::Data),
    ("in reply to end of data", Command::Data),
    ("in reply to message text", Command::Data),
    ("in reply to helo", Command::Helo),
    ("in reply to ehlo", Command::Helo),
    ("in reply to starttls", Command::Helo),
    ("in reply to initial greeting", Command::Connect),
    // Postfix, when the greeting itself refuses: "refused to talk to me".
    ("refused to talk to me", Command::Connect),
    // Exim's transports: "SMTP error from remote mail server after RCPT
    // TO:<a@b>:", "... after end of data:", "... after pipelined MAIL FROM".
    // GMX: "SMTP error from remote server after RCPT command".
    ("after rcpt", Command::RcptTo),
    ("after pipelined rcpt", Command::RcptTo),
    ("after mail from", Command::MailFrom),
    ("after pipelined mail from", Command::MailFrom),
    ("after end of data", Command::Data),
    ("after data", Command::Data),
    ("after ehlo", Command::Helo),
    ("after helo", Command::Helo),
    ("after starttls", Command::Helo),
    ("after initial connection", Command::Connect),
    // Sendmail, Courier and others quote the session: ">>> RCPT To:<a@b>"
    // then "<<< 550 ...".
    (">>> rcpt to", Command::RcptTo),
    (">>> mail from", Command::MailFrom),
    (">>> data", Command::Data),
    (">>> ehlo", Command::Helo),
    (">>> helo", Command::Helo),
    // qmail-remote (qmail-remote.c): "Connected to 192.0.2.1 but my name was
    // rejected." (HELO), "... but sender was rejected." (MAIL FROM), "... does
    // not like recipient." (RCPT TO), "... failed on DATA command.", "...
    // failed after I sent the message." (after DATA).
    ("does not like recipient", Command::RcptTo),
    ("failed after i sent the message", Command::Data),
    ("does not like sender", Command::MailFrom),
    ("but my name was rejected", Command::Helo),
    ("but sender was rejected", Command::MailFrom),
    ("failed on data command", Command::Data),
    // Microsoft Exchange and others: "... after the message was sent"; OpenSMTPD and
    // Sisimai's transcripts: "during the DATA phase".
    ("data phase", Command::Data),
    ("mail from phase", Command::MailFrom),
    ("rcpt to phase", Command::RcptTo),
];

static TABLE: LazyLock<Phrases> =
    LazyLock::new(|| Phrases::new(&PHRASES.iter().map(|(p, _)| *p).collect::<Vec<_>>()));

/// The latest SMTP phase `text` says a reply came in, if it names one.
pub fn failed_command(text: &str) -> Option<Command> {
    let latest = |text: &str| {
        TABLE
            .find_overlapping(text)
            .map(|m| PHRASES[m.pattern].1)
            .max()
    };
    // The text as it is first: most name their command on one line, and
    // most paragraphs that name none would otherwise be copied for nothing.
    // Only a text that names none is read again with its lines joined, for
    // a phrase wrapped across two ("(in reply to RCPT\n    TO command)").
    latest(text).or_else(|| match crate::phrases::one_line(text) {
        std::borrow::Cow::Owned(joined) => latest(&joined),
        std::borrow::Cow::Borrowed(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_finds_what_aho_corasick_finds() {
        let phrases: Vec<&str> = PHRASES.iter().map(|(p, _)| *p).collect();
        crate::automaton::tests::agrees_on(&phrases, &crate::automaton::tests::fixture_texts());
    }

    #[test]
    fn each_mta_wording() {
        #[rustfmt::skip]
        let rows: &[(&str, Option<Command>)] = &[
            ("host mx.example[192.0.2.1] said: 550 5.1.1 <a@b>: User unknown (in reply to RCPT TO command)", Some(Command::RcptTo)),
            ("host mx.example said: 550 Unknown user (in reply to end of DATA command)", Some(Command::Data)),
            ("SMTP error from remote mail server after RCPT TO:<a@b>: 550 no such user", Some(Command::RcptTo)),
            ("SMTP error from remote mail server after end of data: 550 rejected", Some(Command::Data)),
            ("SMTP error from remote mail server after EHLO neko.example: 550 Rejected", Some(Command::Helo)),
            ("SMTP error from remote mail server after MAIL FROM:<s@x> SIZE=1: 553 sender rejected", Some(Command::MailFrom)),
            ("... while talking to mx.example.:\n>>> RCPT To:<a@b>\n<<< 250 ok\n>>> DATA\n<<< 554 denied", Some(Command::Data)),
            ("192.0.2.1 does not like recipient.\nRemote host said: 550 No such user", Some(Command::RcptTo)),
            ("192.0.2.1 failed after I sent the message.\nRemote host said: 554 spam", Some(Command::Data)),
            ("<a@b>: host mx.example[192.0.2.1] said: 550 <a@b>: Recipient address rejected. (in reply to RCPT\n    TO command)", Some(Command::RcptTo)),
            ("550 5.1.1 <data@example.com>... User unknown", None),
            ("Mail from example.org refused", None),
            ("", None),
        ];
        for (text, want) in rows {
            assert_eq!(failed_command(text), *want, "{text:?}");
        }
    }
}
