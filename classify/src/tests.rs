//! End-to-end tests of [`classify`] on small hand-made messages.

use super::*;

const SUB: &str = "5c3ab9d1-1111-4a2b-9c3d-0123456789ab";
const CAMP: &str = "0f0e0d0c-2222-4b3c-8d4e-abcdefabcdef";

fn dsn(original_part: &str) -> String {
    report(
        "The original message was received and could not be delivered.\n",
        "Final-Recipient: rfc822; Kijitora@example.jp\n\
Action: failed\n\
Status: 5.1.1\n\
Diagnostic-Code: smtp; 550 5.1.1 <kijitora@example.jp>... User unknown\n",
        original_part,
    )
}

/// A multipart/report DSN: its human-readable text, its per-recipient
/// fields (blank-line separated groups) and a last part (or nothing).
fn report(text: &str, recipients: &str, last_part: &str) -> String {
    format!(
        "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>\n\
To: news@sender.example\n\
Subject: Returned mail: see transcript for details\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\n\
\n\
--BB\n\
Content-Type: text/plain\n\
\n\
{text}\
\n\
--BB\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns; mx.example.org\n\
\n\
{recipients}\
\n\
--BB\n\
{last_part}\n\
--BB--\n"
    )
}

fn original_headers() -> String {
    format!(
        "From: news@sender.example\nTo: kijitora@example.jp\nSubject: News\nX-Listmonk-Subscriber: {SUB}\nX-Listmonk-Campaign: {CAMP}\nMessage-ID: <1@sender.example>\n"
    )
}

/// `data` in base64, in lines of 76 characters, as mailers write it.
pub(crate) fn base64(data: &[u8]) -> String {
    // Test-only encoder: keeps the crate free of a base64 dependency that
    // the library itself does not need (mail-parser decodes).
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_dsn_result(c: &Classification) {
    assert_eq!(c.kind, Kind::Bounce);
    assert_eq!(c.recipients.len(), 1);
    let r = &c.recipients[0];
    assert_eq!(r.email, "kijitora@example.jp");
    assert_eq!(r.status.as_deref(), Some("5.1.1"));
    assert_eq!(r.action.as_deref(), Some("failed"));
    assert_eq!(r.bounce_type, BounceType::Hard);
    assert_eq!(r.reason, Reason::UserUnknown);
    assert_eq!(c.subscriber_uuid.as_deref(), Some(SUB));
    assert_eq!(c.campaign_uuid.as_deref(), Some(CAMP));
}

#[test]
fn dsn_with_base64_embedded_original() {
    let part = format!(
        "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n{}\n",
        base64(format!("{}\nHello\n", original_headers()).as_bytes())
    );
    assert_dsn_result(&classify(dsn(&part).as_bytes()));
}

#[test]
fn dsn_with_quoted_printable_embedded_original() {
    // Soft line breaks inside the header lines: only a decoder joins them.
    let qp = original_headers()
        .replace("X-Listmonk-Subscriber: ", "X-Listmonk-Subscri=\nber: ")
        .replace(CAMP, &format!("{}=\n{}", &CAMP[..10], &CAMP[10..]));
    let part = format!(
        "Content-Type: message/rfc822\nContent-Transfer-Encoding: quoted-printable\n\n{qp}\nHello=3D\n"
    );
    assert_dsn_result(&classify(dsn(&part).as_bytes()));
}

#[test]
fn dsn_with_text_rfc822_headers() {
    let part = format!(
        "Content-Type: text/rfc822-headers\n\n{}",
        original_headers()
    );
    assert_dsn_result(&classify(dsn(&part).as_bytes()));
}

#[test]
fn dsn_with_message_global() {
    let part = format!(
        "Content-Type: message/global\n\n{}\nHallo Wörld\n",
        original_headers()
    );
    assert_dsn_result(&classify(dsn(&part).as_bytes()));
}

#[test]
fn arf_report_is_a_complaint() {
    let raw = format!(
        "From: feedback@isp.example\nTo: abuse@sender.example\nSubject: Abuse report\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nA complaint.\n--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: isp/1\nVersion: 1\n\n--b\nContent-Type: message/rfc822\n\n{}\nhello\n--b--\n",
        original_headers()
    );
    let c = classify(raw.as_bytes());
    assert_eq!(c.kind, Kind::Complaint);
    assert_eq!(c.recipients.len(), 1);
    assert_eq!(c.recipients[0].email, "kijitora@example.jp");
    assert_eq!(c.recipients[0].bounce_type, BounceType::Complaint);
    assert_eq!(c.recipients[0].reason, Reason::Feedback);
    assert_eq!(c.subscriber_uuid.as_deref(), Some(SUB));
    assert_eq!(c.campaign_uuid.as_deref(), Some(CAMP));
}

#[test]
fn auto_reply_is_not_a_bounce() {
    let raw = b"From: kijitora@example.net\nTo: news@sender.example\nAuto-Submitted: auto-replied\nSubject: Away until May 5\n\nI am away.\n";
    let c = classify(raw);
    assert_eq!(c.kind, Kind::Autoreply);
    assert!(c.recipients.is_empty());
}

#[test]
fn auto_reply_with_null_sender_and_failure_words_is_not_a_bounce() {
    let raw = b"Return-Path: <>\nFrom: Kijitora <kijitora@example.net>\nSubject: Out of Office: unable to answer\nPrecedence: auto_reply\n\nI am unable to read mail until Monday; messages will not be delivered to my deputy.\n";
    let c = classify(raw);
    assert_eq!(c.kind, Kind::Autoreply);
}

#[test]
fn human_reply_is_unknown() {
    let raw = b"From: Kijitora <kijitora@example.net>\nTo: news@sender.example\nSubject: Re: Weekly news\n\nThanks, but the link gives an error.\n";
    let c = classify(raw);
    assert_eq!(c.kind, Kind::Unknown);
    assert!(c.recipients.is_empty());
}

#[test]
fn delivered_dsn_is_not_a_bounce() {
    let raw = b"From: MAILER-DAEMON@mx.example.org\nSubject: Successful Mail Delivery Report\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\nDelivered.\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; a@example.jp\nAction: delivered\nStatus: 2.0.0\n\nFinal-Recipient: rfc822; b@example.jp\nAction: relayed\nStatus: 2.0.0\n--b--\n";
    let c = classify(raw);
    assert_eq!(c.kind, Kind::Delivery);
    assert!(c.recipients.is_empty());
}

#[test]
fn garbage_and_empty_input() {
    assert_eq!(classify(b"").kind, Kind::Unknown);
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let c = classify(&garbage);
    assert!(c.recipients.is_empty() || c.kind == Kind::Bounce);
    for cut in [1, 10, 100, 300, 700] {
        let raw = dsn("Content-Type: message/rfc822\n\nTo: x@y.org\n");
        let _ = classify(&raw.as_bytes()[..cut.min(raw.len())]);
    }
    let _ = classify(b"Content-Type: multipart/report; boundary=\"\n\n--\n--\n");
    let _ = classify(&[0xff, 0xfe, b'\r', b'\r', 0, b':', b'\n']);
}

#[test]
fn cr_only_line_endings() {
    let part = format!(
        "Content-Type: text/rfc822-headers\n\n{}",
        original_headers()
    );
    let raw = dsn(&part).replace('\n', "\r");
    assert_dsn_result(&classify(raw.as_bytes()));
    let crlf = dsn(&part).replace('\n', "\r\n");
    assert_dsn_result(&classify(crlf.as_bytes()));
}

#[test]
fn serializes_as_the_parse_json_contract() {
    let part = format!(
        "Content-Type: text/rfc822-headers\n\n{}",
        original_headers()
    );
    let v = serde_json::to_value(classify(dsn(&part).as_bytes())).unwrap();
    assert_eq!(v["kind"], "bounce");
    assert_eq!(v["recipients"][0]["type"], "hard");
    assert_eq!(v["recipients"][0]["email"], "kijitora@example.jp");
    assert_eq!(v["recipients"][0]["reason"], "userunknown");
    assert_eq!(v["subscriber_uuid"], SUB);
}

#[test]
fn newline_normalization_copies_only_when_needed() {
    assert!(matches!(normalize_newlines(b"a\nb\n"), Cow::Borrowed(_)));
    assert_eq!(
        &*normalize_newlines(b"a\r\nb\rc\r\n\r\nd\r"),
        b"a\nb\nc\n\nd\n"
    );
}

/// A plain-text bounce whose human-readable part is `body_part` (one MIME part).
fn plain_bounce(body_part: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\n\
To: news@sender.example\n\
Subject: Undelivered Mail Returned to Sender\n\
MIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"MM\"\n\
\n\
--MM\n\
{body_part}\n\
--MM--\n"
    )
}

/// The failed recipients of a bounce whose report is a `multipart/alternative` of
/// `plain` and `html` (asserting that it is classified as a bounce).
fn alternative_bounce_recipients(plain: &str, html: &str) -> Vec<String> {
    let c = classify(
        plain_bounce(&format!(
            "Content-Type: multipart/alternative; boundary=\"AA\"\n\n--AA\n\
Content-Type: text/plain\n\n{plain}\n--AA\nContent-Type: text/html\n\n{html}\n--AA--"
        ))
        .as_bytes(),
    );
    assert_eq!(c.kind, Kind::Bounce);
    c.recipients.into_iter().map(|r| r.email).collect()
}

#[test]
fn only_the_plain_text_alternative_is_read() {
    // The two alternatives disagree on purpose: the HTML one names a second address
    // that the plain one does not. Alternatives say the same thing, so one is read.
    let emails = alternative_bounce_recipients(
        "This message could not be delivered to the following recipient:\n\n\
<kijitora@example.jp>: user unknown",
        "<p>This message could not be delivered to the following recipients:</p>\n\
<p>&lt;kijitora@example.jp&gt;: user unknown</p><p>&lt;mikeneko@example.jp&gt;: user unknown</p>",
    );
    assert_eq!(emails, ["kijitora@example.jp"]);
}

#[test]
fn an_html_only_report_is_rendered_and_read() {
    let c = classify(
        plain_bounce(
            "Content-Type: text/html\n\
\n\
<html><body><p>This message could not be delivered to the following recipient:</p>\n\
<p>&lt;kijitora@example.jp&gt;: <b>user unknown</b></p></body></html>",
        )
        .as_bytes(),
    );
    assert_eq!(c.kind, Kind::Bounce);
    assert_eq!(c.recipients.len(), 1);
    assert_eq!(c.recipients[0].email, "kijitora@example.jp");
    assert_eq!(c.recipients[0].bounce_type, BounceType::Hard);
}

#[test]
fn listmonk_headers_quoted_in_html_are_found() {
    let c = classify(
        plain_bounce(&format!(
            "Content-Type: text/html\n\
\n\
<p>Delivery to the following recipient failed permanently:</p>\n\
<p>kijitora@example.jp</p><pre>X-Listmonk-Subscriber: {SUB}<br>\n\
X-Listmonk-Campaign: <i>{CAMP}</i></pre>"
        ))
        .as_bytes(),
    );
    assert_eq!(c.subscriber_uuid.as_deref(), Some(SUB));
    assert_eq!(c.campaign_uuid.as_deref(), Some(CAMP));
}

#[test]
fn a_plain_stub_does_not_hide_the_html_report() {
    let emails = alternative_bounce_recipients(
        "This message is best viewed in HTML. Questions: postmaster@mx.example.org",
        "<p>This message could not be delivered to the following recipient:</p>\n\
<p>&lt;kijitora@example.jp&gt;: user unknown</p>",
    );
    assert_eq!(emails, ["kijitora@example.jp"]);
}

/// A multipart/report whose delivery-status part holds `groups` (the
/// per-recipient field groups) and whose original carries listmonk's headers.
fn alias_dsn(groups: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.com\nTo: bounces@sender.example\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\nThe mail system\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.com\n\n{groups}\n--b\nContent-Type: text/rfc822-headers\n\nFrom: news@sender.example\nTo: emma@example.com\nX-Listmonk-Subscriber: {SUB}\nX-Listmonk-Campaign: {CAMP}\n\n--b--\n"
    )
}

const EMMA_UNKNOWN: &str = "Final-Recipient: rfc822; emma.watts@backend.example.com\nOriginal-Recipient: rfc822;emma@example.com\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 <emma.watts@backend.example.com>: User unknown\n";
const EMMA_FULL: &str = "Final-Recipient: rfc822; emma@archive.example.net\nOriginal-Recipient: rfc822;emma@example.com\nAction: delayed\nStatus: 4.2.2\nDiagnostic-Code: smtp; 452 4.2.2 Mailbox full\n";
const EMMA_DELIVERED: &str = "Final-Recipient: rfc822; emma@archive.example.net\nOriginal-Recipient: rfc822;emma@example.com\nAction: delivered\nStatus: 2.0.0\n";

#[test]
fn an_alias_bounce_names_the_address_that_was_mailed() {
    let c = classify(alias_dsn(EMMA_UNKNOWN).as_bytes());
    assert_eq!(c.kind, Kind::Bounce);
    let emails: Vec<&str> = c.recipients.iter().map(|r| r.email.as_str()).collect();
    assert_eq!(emails, ["emma@example.com"]);
    assert_eq!(c.recipients[0].bounce_type, BounceType::Hard);
    assert_eq!(c.recipients[0].reason, Reason::UserUnknown);
    // The JSON contract is unchanged: no field for the rewritten address.
    let v = serde_json::to_value(&c).unwrap();
    let keys: Vec<&str> = v["recipients"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["action", "diagnostic", "email", "reason", "status", "type"]
    );
}

#[test]
fn an_alias_expanded_into_several_failures_is_reported_once_by_its_worst() {
    // Whichever order the MTA lists them in, the hard failure wins over the delay.
    for groups in [
        format!("{EMMA_FULL}\n{EMMA_UNKNOWN}"),
        format!("{EMMA_UNKNOWN}\n{EMMA_FULL}"),
    ] {
        let c = classify(alias_dsn(&groups).as_bytes());
        assert_eq!(c.recipients.len(), 1, "{groups}");
        let r = &c.recipients[0];
        assert_eq!(r.email, "emma@example.com");
        assert_eq!(r.status.as_deref(), Some("5.1.1"), "{groups}");
        assert_eq!(r.action.as_deref(), Some("failed"), "{groups}");
        assert_eq!(r.bounce_type, BounceType::Hard, "{groups}");
        assert_eq!(r.reason, Reason::UserUnknown, "{groups}");
        assert!(r.diagnostic.as_deref().unwrap().contains("User unknown"));
        // One recipient: the worker may trust the subscriber header.
        assert_eq!(c.subscriber_uuid.as_deref(), Some(SUB));
    }
    // Two delays: still one recipient, soft.
    let second_delay = EMMA_FULL.replace("archive.example.net", "spare.example.org");
    let c = classify(alias_dsn(&format!("{EMMA_FULL}\n{second_delay}")).as_bytes());
    assert_eq!(c.recipients.len(), 1);
    assert_eq!(c.recipients[0].bounce_type, BounceType::Soft);
    assert_eq!(c.recipients[0].action.as_deref(), Some("delayed"));
}

#[test]
fn an_alias_delivered_elsewhere_does_not_bounce_the_address_that_was_mailed() {
    // emma@example.com reached one of its two destinations: the other one's
    // failure is reported under its own address, never against emma's.
    for groups in [
        format!("{EMMA_UNKNOWN}\n{EMMA_DELIVERED}"),
        format!("{EMMA_DELIVERED}\n{EMMA_UNKNOWN}"),
    ] {
        let c = classify(alias_dsn(&groups).as_bytes());
        assert_eq!(c.kind, Kind::Bounce);
        let emails: Vec<&str> = c.recipients.iter().map(|r| r.email.as_str()).collect();
        assert_eq!(emails, ["emma.watts@backend.example.com"], "{groups}");
        assert_eq!(c.recipients[0].status.as_deref(), Some("5.1.1"));
    }
    // A delivered recipient with another original address changes nothing.
    let other = "Final-Recipient: rfc822; ben@example.com\nAction: delivered\nStatus: 2.0.0\n";
    let c = classify(alias_dsn(&format!("{EMMA_UNKNOWN}\n{other}")).as_bytes());
    let emails: Vec<&str> = c.recipients.iter().map(|r| r.email.as_str()).collect();
    assert_eq!(emails, ["emma@example.com"]);
}

#[test]
fn the_remote_mta_of_each_recipient_is_kept() {
    let groups = "Final-Recipient: rfc822; ann@example.com\nAction: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx1.example.com\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\n\nFinal-Recipient: rfc822; bob@example.com\nAction: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 5.2.2 Mailbox full\n";
    let c = classify(alias_dsn(groups).as_bytes());
    let mtas: Vec<_> = c
        .recipients
        .iter()
        .map(|r| (r.email.as_str(), r.remote_mta.as_deref()))
        .collect();
    assert_eq!(
        mtas,
        [
            ("ann@example.com", Some("mx1.example.com")),
            ("bob@example.com", None)
        ]
    );
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["recipients"][0]["remote_mta"], "mx1.example.com");
    assert!(v["recipients"][1].get("remote_mta").is_none());
}

/// Postfix names the refused command in the human-readable part only: with
/// two recipients, each one's own paragraph says whether RCPT TO or the
/// message after DATA was refused, and the same words get two reasons.
#[test]
fn the_refused_command_is_read_from_each_recipients_paragraph() {
    let raw = report(
        "<mikeneko@example.jp>: host mx.example.jp[192.0.2.1] said: 550 5.2.1\n\
    <mikeneko@example.jp>... User Unknown (in reply to RCPT TO command)\n\
\n\
<sabineko@example.jp>: host mx.example.jp[192.0.2.1] said: 550 5.2.1\n\
    <sabineko@example.jp>... User Unknown (in reply to end of DATA command)\n",
        "Final-Recipient: rfc822; mikeneko@example.jp\n\
Action: failed\n\
Status: 5.2.1\n\
Diagnostic-Code: smtp; 550 5.2.1 <mikeneko@example.jp>... User Unknown\n\
\n\
Final-Recipient: rfc822; sabineko@example.jp\n\
Action: failed\n\
Status: 5.2.1\n\
Diagnostic-Code: smtp; 550 5.2.1 <sabineko@example.jp>... User Unknown\n",
        "",
    );
    let c = classify(raw.as_bytes());
    let reasons: Vec<(&str, Reason)> = c
        .recipients
        .iter()
        .map(|r| (r.email.as_str(), r.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("mikeneko@example.jp", Reason::UserUnknown),
            ("sabineko@example.jp", Reason::Filtered)
        ]
    );
}

/// A DSN whose records give only `5.0.0` takes each recipient's code from
/// its paragraph of the report, and the refused command from there too,
/// whether the recipients are few (looked up one by one) or many (the report
/// searched for all of them at once, `plaintext::MANY_ADDRESSES`): the same answers
/// either way, and as in a report of that recipient alone.
#[test]
fn generic_statuses_are_read_from_the_report_for_few_and_many_recipients() {
    // Even recipients: a specific code in the paragraph. Odd ones: none, and
    // the command (MAIL FROM or RCPT TO) decides the reason.
    let paragraph = |i: usize| match i % 4 {
        0 | 2 => format!(
            "<user{i}@example.jp>: host mx.example.jp said: 550 5.1.1 no such user here\n\n"
        ),
        1 => format!(
            "<user{i}@example.jp>: host mx.example.jp said: 550 Access denied (in reply to MAIL FROM command)\n\n"
        ),
        _ => format!(
            "<user{i}@example.jp>: host mx.example.jp said: 550 Access denied (in reply to RCPT TO command)\n\n"
        ),
    };
    let record = |i: usize| {
        format!("Final-Recipient: rfc822; user{i}@example.jp\nAction: failed\nStatus: 5.0.0\n\n")
    };
    for n in [4, plaintext::MANY_ADDRESSES + 1, 200] {
        let text: String = (0..n).map(paragraph).collect();
        let records: String = (0..n).map(record).collect();
        let c = classify(report(&text, &records, "").as_bytes());
        assert_eq!(c.recipients.len(), n, "{n} recipients");
        for (i, r) in c.recipients.iter().enumerate() {
            assert_eq!(r.email, format!("user{i}@example.jp"));
            let status = if i.is_multiple_of(2) {
                "5.1.1"
            } else {
                "5.0.0"
            };
            assert_eq!(r.status.as_deref(), Some(status), "{n} recipients: {r:?}");
            let alone = classify(report(&paragraph(i), &record(i), "").as_bytes());
            assert_eq!(
                r.reason, alone.recipients[0].reason,
                "{n} recipients: {r:?}"
            );
        }
        assert_ne!(
            c.recipients[1].reason, c.recipients[3].reason,
            "the refused command decides"
        );
    }
}

/// A report that names no recipient, returning an original addressed to
/// as many as a report may name, some twice: each is reported once, in the
/// order the original names them.
#[test]
fn an_original_to_the_most_allowed_gives_each_once_in_order() {
    let n = MAX_RECIPIENTS;
    let to: Vec<String> = (0..n)
        .chain(0..n / 10)
        .map(|i| format!("t{i}@example.com"))
        .collect();
    let raw = plain_bounce(&format!(
        "Content-Type: text/plain\n\
\n\
Your message could not be delivered. Permanent failure.\n\
--MM\n\
Content-Type: message/rfc822\n\
\n\
From: news@sender.example\n\
To: {}\n\
Subject: hi\n\
\n\
body",
        to.join(", ")
    ));
    let c = classify(raw.as_bytes());
    let emails: Vec<&str> = c.recipients.iter().map(|r| r.email.as_str()).collect();
    assert_eq!(
        emails,
        to[..n].iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// A DSN of many records, each with a specific status: the refused command is
/// read from the first text part that names the address, as for few records
/// (the report text, cut where a quoted original begins, is not built for it).
#[test]
fn the_refused_command_is_read_from_the_same_text_for_few_and_many_records() {
    let reasons = |n: usize| -> Vec<Reason> {
        let records: String = (0..n)
            .map(|i| {
                format!(
                    "Final-Recipient: rfc822; r{i}@example.com\nAction: failed\nStatus: 5.7.1\n\
Diagnostic-Code: smtp; 550 5.7.1 no\n\n"
                )
            })
            .collect();
        let text = "Delivery failed.\n\n------ Original message ------\n\
r1@example.com (in reply to MAIL FROM command)\n";
        classify(report(text, &records, "").as_bytes())
            .recipients
            .iter()
            .map(|r| r.reason)
            .collect()
    };
    let few = reasons(plaintext::MANY_ADDRESSES);
    let many = reasons(plaintext::MANY_ADDRESSES + 1);
    assert_eq!(many[..few.len()], few[..]);
    assert_ne!(
        few[1], few[2],
        "the command in the text decides r1's reason"
    );
}

/// Each way a report names its recipients, naming `n` distinct addresses (the
/// first of them twice, where a report may repeat one).
fn reports_naming(n: usize) -> Vec<(&'static str, String)> {
    let address = |i: usize| format!("user{i}@example.jp");
    let all = || (0..n).chain([0]).map(address);
    let records: String = all()
        .map(|a| format!("Final-Recipient: rfc822; {a}\nAction: failed\nStatus: 5.1.1\n\n"))
        .collect();
    let lines: String = all()
        .map(|a| format!("<{a}>: host mx.example.jp said: 550 5.1.1 user unknown\n"))
        .collect();
    let failed = all().collect::<Vec<_>>().join(", ");
    let removal: String = all().map(|a| format!("Removal-Recipient: {a}\n")).collect();
    let html: String = all()
        .map(|a| format!("{a}: host mx.example.jp said: 550 5.1.1 user unknown<br>\n"))
        .collect();
    let ses = format!(
        r#"{{"notificationType":"Bounce","bounce":{{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{}]}},"mail":{{"headers":[]}}}}"#,
        all()
            .map(|a| format!(r#"{{"emailAddress":"{a}","status":"5.1.1"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    vec![
        ("a DSN", report("Delivery failed.\n", &records, "")),
        (
            "a plain-text report",
            plain_bounce(&format!(
                "Content-Type: text/plain\n\nThis is the mail system.\n\n{lines}"
            )),
        ),
        (
            "an HTML alternative, the plain one naming nobody",
            plain_bounce(&format!(
                "Content-Type: multipart/alternative; boundary=\"AA\"\n\n--AA\n\
Content-Type: text/plain\n\nDelivery failed.\n--AA\nContent-Type: text/html\n\n\
<html><body><p>This is the mail system.</p><p>{html}</p></body></html>\n--AA--"
            )),
        ),
        (
            "X-Failed-Recipients",
            format!(
                "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nX-Failed-Recipients: {failed}\n\
Subject: Mail delivery failed: returning message to sender\n\n\
A message that you sent could not be delivered to one or more of its recipients.\n"
            ),
        ),
        (
            "a returned original",
            plain_bounce(&format!(
                "Content-Type: text/plain\n\nYour message could not be delivered. Permanent failure.\n\
--MM\nContent-Type: message/rfc822\n\nFrom: news@sender.example\nTo: {failed}\nSubject: hi\n\nbody"
            )),
        ),
        (
            "a feedback report",
            format!(
                "From: feedback@isp.example\nTo: abuse@sender.example\nSubject: Abuse report\nMIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\n\
A complaint.\n--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nVersion: 1\n{removal}\n--b--\n"
            ),
        ),
        (
            "an SES notification",
            format!(
                "From: no-reply@sns.amazonaws.com\nTo: bounces@example.com\nSubject: AWS Notification Message\n\
Content-Type: text/plain\n\n{ses}\n"
            ),
        ),
    ]
}

/// Up to `MAX_RECIPIENTS` every recipient is given, whichever way the report
/// names them; one more and none is, and the classification says why.
#[test]
fn a_report_naming_more_than_the_limit_gives_no_recipient() {
    for ((how, at_limit), (_, over)) in reports_naming(MAX_RECIPIENTS)
        .into_iter()
        .zip(reports_naming(MAX_RECIPIENTS + 1))
    {
        let c = classify(at_limit.as_bytes());
        let given: std::collections::HashSet<&str> =
            c.recipients.iter().map(|r| r.email.as_str()).collect();
        assert_eq!(given.len(), MAX_RECIPIENTS, "{how}");
        assert!(!c.too_many_recipients, "{how}");
        let c = classify(over.as_bytes());
        assert!(
            matches!(c.kind, Kind::Bounce | Kind::Complaint),
            "{how}: {:?}",
            c.kind
        );
        assert!(c.recipients.is_empty(), "{how}");
        assert!(c.too_many_recipients, "{how}");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["too_many_recipients"], true, "{how}");
    }
    let ordinary = serde_json::to_value(classify(dsn("").as_bytes())).unwrap();
    assert!(
        ordinary.get("too_many_recipients").is_none(),
        "the flag is left out of every other classification"
    );
}
