//! Owns non-standard bounces: the human-readable reports of qmail, Exim,
//! Postfix, Sendmail, Exchange / Office 365, Gmail, Yahoo, courier and
//! others, recognised by structure (X-Failed-Recipients, MAILER-DAEMON
//! senders, bounce subjects) and well-known phrases; and, per failed
//! recipient, the paragraph that explains the failure.

use crate::address;
use crate::embedded;
use crate::mime::Mail;
use crate::phrases::{Phrases, Search};
use crate::status;
use crate::{BounceType, Recipient};
use aho_corasick::AhoCorasick;
use std::borrow::Cow;
use std::sync::LazyLock;

static SUBJECTS_AC: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(SUBJECTS));
static BODY_PHRASES_AC: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(BODY_PHRASES));
static DECISIVE_AC: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(DECISIVE));
static FAILURE_WORDS_AC: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(FAILURE_WORDS));

/// Phrases meaning the MTA is still trying (a delay warning).
pub(crate) const STILL_TRYING: &[&str] = &[
    "will continue trying",
    "will keep trying",
    "still trying",
    "not yet been delivered",
    "has been delayed",
    "is delayed",
    "will retry",
    "no action is required on your part",
];

/// Which phrase lists have a phrase in the report text (bits).
pub(crate) const HAS_DECISIVE: u8 = 1;
pub(crate) const HAS_BODY_PHRASE: u8 = 2;
pub(crate) const HAS_FAILURE_WORD: u8 = 4;
pub(crate) const HAS_STILL_TRYING: u8 = 8;
const IS_MARKER: u8 = 16;
/// The field names `quoted_block_start` looks for at a line start.
const IS_QUOTED_FIELD: u8 = 32;
const QUOTED_FIELDS: &[&str] = &["received:", "return-path:", "message-id:"];

/// Every phrase list read from the report text plus the original-message
/// markers, in one automaton: a single pass over each text part both finds
/// where the quoted original begins and which lists occur before it.
struct Scanner {
    ac: Phrases,
    /// Per pattern, the lists it belongs to.
    lists: Vec<u8>,
}

static SCANNER: LazyLock<Scanner> = LazyLock::new(|| {
    let mut pats: Vec<&str> = Vec::new();
    let mut lists: Vec<u8> = Vec::new();
    for (list, bit) in [
        (DECISIVE, HAS_DECISIVE),
        (BODY_PHRASES, HAS_BODY_PHRASE),
        (FAILURE_WORDS, HAS_FAILURE_WORD),
        (STILL_TRYING, HAS_STILL_TRYING),
        (ORIGINAL_MARKERS, IS_MARKER),
        (QUOTED_FIELDS, IS_QUOTED_FIELD),
    ] {
        for p in list {
            match pats.iter().position(|q| q == p) {
                Some(i) => lists[i] |= bit,
                None => {
                    pats.push(p);
                    lists.push(bit);
                }
            }
        }
    }
    Scanner {
        ac: Phrases::new(&pats),
        lists,
    }
});

/// `text` as Unicode `to_lowercase` would see it for ASCII phrase matching.
/// Only two characters lower-case to ASCII letters (KELVIN SIGN to `k`, LATIN
/// CAPITAL I WITH DOT to `i` + a combining dot); without them an ASCII
/// case-insensitive match on the text itself gives the same answer, uncopied.
fn unicode_lowered(text: &str) -> Cow<'_, str> {
    // Searched as bytes (E2 84 AA, C4 B0): a `char` pattern decodes every
    // character of the text.
    if memchr::memmem::find(text.as_bytes(), "\u{212A}".as_bytes()).is_some()
        || memchr::memmem::find(text.as_bytes(), "\u{0130}".as_bytes()).is_some()
    {
        Cow::Owned(text.to_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

const SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered",
    "delivery status notification",
    "delivery failure",
    "delivery failed",
    "delivery has failed",
    "delivery notification",
    "delivery problem",
    "failure notice",
    "failure delivery",
    "failed delivery",
    "returned mail",
    "return mail",
    "returned to sender",
    "mail delivery failed",
    "mail delivery failure",
    "mail delivery system",
    "mail system error",
    "message not delivered",
    "could not be delivered",
    "could not send message",
    "nondeliverable",
    "non remis",
    "non recapitabile",
    "unzustellbar",
    "no se puede entregar",
    "rejected",
    "bounce",
    "error sending",
    "permanent error",
    "nicht zugestellt",
];

const BODY_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "could not deliver",
    "couldn't deliver",
    "could not be sent",
    "unable to deliver",
    "was not delivered",
    "wasn't delivered",
    "has not been delivered",
    "not been delivered",
    "delivery has failed",
    "delivery failed",
    "delivery to the following recipient",
    "this is a permanent error",
    "permanent fatal error",
    "the following address(es) failed",
    "the following addresses had",
    "i'm sorry to have to inform you",
    "this is the qmail-send program",
    "this is the mail system at",
    "message could not be delivered",
    "your message did not reach",
    "undeliverable",
    "undelivered mail",
    "returned mail",
    "delivery status notification",
    "mail delivery failed",
    "failed recipient",
    "user unknown",
    "unknown user",
    "no such user",
    "mailbox unavailable",
    "mailbox not found",
    "host not found",
    "not delivered to",
    "message you sent",
    "recipient address rejected",
    "deferred",
    "delayed",
    "could not be reached",
];

/// Phrases only bounce reports use: enough on their own, whoever sent them.
const DECISIVE: &[&str] = &[
    "this is the qmail-send program",
    "i'm afraid i wasn't able to deliver",
    "the following addresses had permanent",
    "the following address(es) failed",
    "could not be delivered to one or more",
    "did not reach the following recipient",
    "delivery to the following recipient",
    "delivery has failed to these recipients",
    "your message did not reach some or all",
    "this is the mail system at host",
    "i'm sorry to have to inform you that your message could not",
    "error message below:",
    "failed addresses follow",
    "your message cannot be delivered to the following",
    "message could not be delivered to the following",
    "this message was created automatically by mail delivery software",
    "a message that you sent could not be delivered",
    "unable to deliver message to the following",
];

/// With a MAILER-DAEMON / postmaster sender, any of these words is enough.
const FAILURE_WORDS: &[&str] = &[
    "fail",
    "error",
    "unknown",
    "reject",
    "undeliver",
    "not deliver",
    "returned",
    "refused",
    "denied",
    "unable",
    "could not",
    "couldn't",
    "invalid",
    "blocked",
    "expired",
    "quota",
];

/// Introductions of the list of failed recipients; addresses after them
/// are the failures, addresses before them are usually the sender's.
const LIST_INTROS: &[&str] = &[
    "following recipient",
    "following address",
    "following destination",
    "failed addresses",
    "addresses had permanent",
    "following e-mail address",
    "following email address",
    "delivery to the following",
    "could not be delivered to",
    "wasn't able to deliver your message to",
    "failed recipient",
];

/// Markers after which the report quotes the original message; addresses
/// past them belong to the original, not to the failure.
const ORIGINAL_MARKERS: &[&str] = &[
    "original message",
    "below this line is a copy of the message",
    "this is a copy of the message",
    "copy of the original message",
    "message headers follow",
    "returned message",
    "unsent message below",
    "header of the original message",
    "headers of the original message",
    "text of the message",
    "original message follows",
    "your message reads",
    "message text follows",
    "original mail follows",
    "the message you sent",
    "content-type: message/rfc822",
];

/// How sure the message is a bounce report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Evidence {
    None,
    /// A system sender or bounce subject with failure words: a bounce unless
    /// the message also says it is an auto-reply.
    Likely,
    /// X-Failed-Recipients, a delivery-status report type, or a phrase only
    /// bounce reports use.
    Certain,
}

/// Weighs the signs that the message is a bounce report.
pub(crate) fn bounce_evidence(mail: &Mail) -> Evidence {
    if mail.headers.has("x-failed-recipients")
        || mail.report_type.as_deref() == Some("delivery-status")
    {
        return Evidence::Certain;
    }
    let text = report_text(mail);
    // The lists found while the report text was built answer for
    // `to_lowercase().contains(p)` unless a character lower-cases to ASCII.
    let (decisive, body_hit, failure_in_body) = match unicode_lowered(text) {
        Cow::Borrowed(_) => {
            let g = report_lists(mail);
            (
                g & HAS_DECISIVE != 0,
                g & HAS_BODY_PHRASE != 0,
                g & HAS_FAILURE_WORD != 0,
            )
        }
        Cow::Owned(body) => (
            DECISIVE_AC.is_match(&body),
            BODY_PHRASES_AC.is_match(&body),
            FAILURE_WORDS_AC.is_match(&body),
        ),
    };
    if decisive {
        return Evidence::Certain;
    }
    let subject = unicode_lowered(&mail.subject);
    let subject_hit = SUBJECTS_AC.is_match(&subject);
    // Return-Path <> alone is no sign: RFC 3834 asks auto-responders to use
    // the null sender too.
    let system_sender = ["from", "sender"].iter().any(|h| {
        mail.headers.get(h).is_some_and(|v| {
            let lower = v.to_ascii_lowercase();
            lower.contains("mailer-daemon")
                || lower.contains("mail delivery")
                || lower.contains("postmaster")
                || lower.contains("post_master")
                || lower.contains("mail administrator")
                || lower.contains("mailer_daemon")
                || address::find_all(v)
                    .iter()
                    .any(|(_, a)| address::is_system(a))
        })
    });
    let failure_word = failure_in_body || FAILURE_WORDS_AC.is_match(&subject);
    if (system_sender && (failure_word || body_hit)) || (subject_hit && body_hit) {
        Evidence::Likely
    } else {
        Evidence::None
    }
}

/// The report's own words: text parts of depth 0, cut where the quoted
/// original begins. Built once per message and kept in `mail.report`.
pub(crate) fn report_text(mail: &Mail) -> &str {
    &mail.report.get_or_init(|| build_report_text(mail)).0
}

/// The phrase lists (`HAS_*` bits) occurring in `report_text`, ASCII
/// case-insensitively.
pub(crate) fn report_lists(mail: &Mail) -> u8 {
    mail.report.get_or_init(|| build_report_text(mail)).1
}

fn build_report_text(mail: &Mail) -> (String, u8) {
    let mut out = String::new();
    let mut lists = 0;
    for leaf in mail.report_texts() {
        if !leaf.ctype.starts_with("text/") || leaf.ctype == "text/rfc822-headers" {
            continue;
        }
        let text = leaf.text();
        let (cut, found) = scan_text(text);
        out.push_str(&text[..cut]);
        out.push('\n');
        lists |= found;
    }
    (out, lists)
}

fn cut_original(text: &str) -> &str {
    &text[..scan_text(text).0]
}

/// Where the quoted original begins in `text`, and which phrase lists occur
/// before that point. No phrase holds a newline and the cut is always at a
/// line start, so a phrase is in the kept text exactly when it ends by the cut.
fn scan_text(text: &str) -> (usize, u8) {
    let mut cut = text.len();
    let mut found: Vec<(usize, u8)> = Vec::new();
    // Only lines holding a marker can be the cut; the automaton reports
    // every occurrence (overlapping, in order of end), so every such line is
    // seen, and only those lines are lower-cased and examined.
    let mut checked_line = usize::MAX;
    for m in SCANNER.ac.find_overlapping(text) {
        let lists = SCANNER.lists[m.pattern];
        if lists & !IS_MARKER != 0 {
            found.push((m.end, lists & !IS_MARKER));
        }
        if lists & IS_MARKER == 0 {
            continue;
        }
        let line_start = memchr::memrchr(b'\n', &text.as_bytes()[..m.start]).map_or(0, |i| i + 1);
        if line_start == checked_line {
            continue;
        }
        checked_line = line_start;
        let line_end = memchr::memchr(b'\n', &text.as_bytes()[m.start..])
            .map_or(text.len(), |i| m.start + i + 1);
        let line = text[line_start..line_end].to_ascii_lowercase();
        let line = line.as_str();
        // Only lines that look like a separator or a heading, not prose that
        // merely mentions "the original message".
        let t = line
            .trim()
            .trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        let heading = line.contains("--")
            || line.contains("==")
            || line.contains("__")
            || ORIGINAL_MARKERS.iter().any(|m| t.starts_with(m))
            || (t.ends_with(':') && t.len() < 80);
        if heading {
            cut = line_start;
            break;
        }
    }
    // Also stop at a quoted header block (the original pasted inline).
    // (Only worth a look when one of its field names occurs before the cut.)
    let quoted_field = found
        .iter()
        .any(|(end, l)| l & IS_QUOTED_FIELD != 0 && *end <= cut);
    if quoted_field && let Some(pos) = quoted_block_start(&text[..cut]) {
        cut = cut.min(pos);
    }
    let lists = found
        .iter()
        .filter(|(end, _)| *end <= cut)
        .fold(0, |acc, (_, l)| acc | l)
        & !IS_QUOTED_FIELD;
    (cut, lists)
}

fn quoted_block_start(text: &str) -> Option<usize> {
    let mut offset = 0;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start_matches(['>', ' ', '\t']);
        if starts_with_ci(t, "received:")
            || starts_with_ci(t, "return-path:")
            || starts_with_ci(t, "message-id:")
        {
            let next_is_header = lines[i + 1..].iter().take(4).any(|l| {
                let n = l.trim_start_matches(['>', ' ', '\t']);
                [
                    "from:",
                    "to:",
                    "date:",
                    "subject:",
                    "received:",
                    "message-id:",
                    "by ",
                ]
                .iter()
                .any(|p| starts_with_ci(n, p))
            });
            if next_is_header {
                return Some(offset);
            }
        }
        offset += line.len();
    }
    None
}

/// Every failed recipient of a plain-text bounce, each with the diagnostic
/// paragraph and any status / reply code found near it; or `TooMany` of them.
pub(crate) fn recipients(mail: &Mail, delayed: bool) -> crate::Found {
    let mut text = Cow::Borrowed(report_text(mail));
    let mut emails = address::Distinct::default();
    for v in mail.headers.all("x-failed-recipients") {
        for (_, a) in address::find_all(v) {
            emails.push(a);
        }
    }
    let mut emails = emails.into_vec();
    if emails.is_empty() {
        emails = strong_candidates(&text);
    }
    if emails.is_empty() {
        // Only the loose search needs the senders to leave out.
        let excluded = excluded_addresses(mail);
        emails = loose_candidates(&text, &excluded);
        if emails.is_empty() {
            bounce_of_bounce(mail, &excluded, &mut emails, &mut text);
        }
    }
    if emails.is_empty() {
        emails = embedded::original_recipients(mail)
            .into_iter()
            .filter(|a| !address::is_system(a))
            .collect();
    }
    if crate::too_many(&emails, String::as_str) {
        return Err(crate::TooMany);
    }
    let single = emails.len() == 1;
    let mentions = Mentions::new(&text, &emails);
    let whole = Default::default();
    Ok((0..emails.len())
        .map(|i| describe(i, &mentions, single, delayed, &whole))
        .collect())
}

/// Addresses beyond which a report is searched for all of them at once ([`Mentions`]).
pub(crate) const MANY_ADDRESSES: usize = 16;

/// The failed recipients' addresses in the report text: where each is first named, its
/// paragraph, the lines that name it, and the others named near it. A few are looked up
/// one by one. Many (more than [`MANY_ADDRESSES`]) are found in one pass over the text,
/// with one automaton for all of them: looking each one up in the whole text, and every
/// other one in each one's paragraph, took time in the square of their number (a 2.4 MB
/// report naming 30,000 addresses kept a core busy for more than two minutes: BENCHMARKS.md,
/// "Fuzzing the classifier"), while building that automaton for a report of one or two
/// would cost a third of the classifier's time.
///
/// An address listed twice (a DSN's records can repeat one) is two entries: each finds the
/// other in [`Mentions::next_other`], which only lists of distinct addresses ask.
pub(crate) struct Mentions<'a> {
    text: &'a str,
    emails: &'a [String],
    index: Option<Index>,
    /// The status and reply code read from the lines that name an address, by the set of
    /// those lines: thousands of addresses on one long line read it once.
    codes: std::cell::RefCell<std::collections::HashMap<Vec<usize>, Codes>>,
}

/// A status and a reply code, either possibly missing.
type Codes = (Option<String>, Option<u16>);

struct Index {
    /// The addresses, ASCII letters in either case (as [`find_ci`]).
    search: AhoCorasick,
    /// Per address, where it starts in the text, in order.
    starts: Vec<Vec<usize>>,
    lines: Lines,
}

impl Index {
    /// The numbers of the lines that name the `i`th address, in order, each once.
    fn line_numbers(&self, i: usize) -> Vec<usize> {
        let mut numbers: Vec<usize> = self.starts[i]
            .iter()
            .map(|&s| self.lines.number(s))
            .collect();
        numbers.dedup();
        numbers
    }
}

/// A text's lines: where its line breaks are, and where each line's words start (after
/// the spaces and brackets `paragraph_at` trims), found once for a line that names many
/// addresses.
struct Lines {
    breaks: Vec<usize>,
    len: usize,
    words: std::cell::RefCell<std::collections::HashMap<usize, usize>>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        Lines {
            breaks: memchr::memchr_iter(b'\n', text.as_bytes()).collect(),
            len: text.len(),
            words: Default::default(),
        }
    }

    /// The number of the line that holds byte `pos`.
    fn number(&self, pos: usize) -> usize {
        self.breaks.partition_point(|&b| b < pos)
    }

    /// Where line `n` starts, and where it ends (its line break, or the text's end).
    fn bounds(&self, n: usize) -> (usize, usize) {
        let start = n.checked_sub(1).map_or(0, |k| self.breaks[k] + 1);
        (start, self.breaks.get(n).copied().unwrap_or(self.len))
    }

    /// How many lines `str::lines` gives: none after a final line break.
    fn count(&self) -> usize {
        self.breaks.len() + usize::from(self.breaks.last().is_none_or(|&b| b + 1 < self.len))
    }
}

impl<'a> Mentions<'a> {
    pub(crate) fn new(text: &'a str, emails: &'a [String]) -> Mentions<'a> {
        if emails.len() > MANY_ADDRESSES {
            Mentions::indexed(text, emails)
        } else {
            Mentions {
                text,
                emails,
                index: None,
                codes: Default::default(),
            }
        }
    }

    /// With the index whatever the count. Should aho-corasick refuse the list (its limits
    /// are far beyond any text the worker accepts), each address is looked up one by one.
    fn indexed(text: &'a str, emails: &'a [String]) -> Mentions<'a> {
        let index = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(emails)
            .ok()
            .map(|search| {
                let mut starts = vec![Vec::new(); emails.len()];
                for m in search.find_overlapping_iter(text) {
                    starts[m.pattern().as_usize()].push(m.start());
                }
                Index {
                    search,
                    starts,
                    lines: Lines::new(text),
                }
            });
        Mentions {
            text,
            emails,
            index,
            codes: Default::default(),
        }
    }

    /// Whether the text names the `i`th address.
    fn names(&self, i: usize) -> bool {
        match &self.index {
            Some(x) => !x.starts[i].is_empty(),
            None => find_ci(self.text, &self.emails[i]).is_some(),
        }
    }

    /// The paragraph about the `i`th address ([`paragraph_of`]).
    fn paragraph(&self, i: usize) -> Option<&'a str> {
        let (text, email) = (self.text, &self.emails[i]);
        Some(match &self.index {
            Some(x) => paragraph_at(text, Some(&x.lines), email, *x.starts[i].first()?),
            None => paragraph_at(text, None, email, find_ci(text, email)?),
        })
    }

    /// The status the human-readable part gives for the `i`th address, used when a
    /// DSN's Status field is only the generic `x.0.0`.
    pub(crate) fn status_near(&self, i: usize) -> Option<String> {
        status_in(self.paragraph(i)?, &self.emails[i])
    }

    /// [`command_near`] for the `i`th address.
    pub(crate) fn command_near(&self, i: usize) -> Option<crate::command::Command> {
        crate::command::failed_command(self.paragraph(i)?)
    }

    /// Where the first address other than the `i`th starts in `s` (`s` in lower case; the
    /// addresses distinct).
    fn next_other(&self, i: usize, s: &str) -> Option<usize> {
        match &self.index {
            Some(x) => x
                .search
                .find_overlapping_iter(s)
                .filter(|m| m.pattern().as_usize() != i)
                .map(|m| m.start())
                .min(),
            None => self
                .emails
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .filter_map(|(_, o)| s.find(o.as_str()))
                .min(),
        }
    }

    /// The lines that hold the `i`th address, each with the line after
    /// ([`lines_mentioning`]).
    fn lines_mentioning(&self, i: usize) -> String {
        let Some(x) = &self.index else {
            return lines_mentioning(self.text, &self.emails[i]);
        };
        let line = |n: usize| {
            let (start, end) = x.lines.bounds(n);
            let line = &self.text[start..end];
            // `str::lines` drops a `\r` before a line break, not one that ends the text.
            if end < x.lines.len {
                line.strip_suffix('\r').unwrap_or(line)
            } else {
                line
            }
        };
        let count = x.lines.count();
        let mut out = String::new();
        for n in x.line_numbers(i) {
            for k in [n, n + 1].into_iter().filter(|&k| k < count) {
                out.push_str(line(k));
                out.push('\n');
            }
        }
        out
    }

    /// The status and reply code of the lines that name the `i`th address
    /// ([`Mentions::lines_mentioning`]).
    fn codes_in_lines(&self, i: usize) -> Codes {
        let read = || {
            let lines = self.lines_mentioning(i);
            (status::find_status(&lines), status::find_reply_code(&lines))
        };
        let Some(x) = &self.index else {
            return read();
        };
        let key = x.line_numbers(i);
        if let Some(codes) = self.codes.borrow().get(&key) {
            return codes.clone();
        }
        let codes = read();
        self.codes.borrow_mut().insert(key, codes.clone());
        codes
    }
}

/// The report's own sender and recipients and the original's senders:
/// never a failed recipient in a loose search.
fn excluded_addresses(mail: &Mail) -> Vec<String> {
    let mut excluded: Vec<String> = Vec::new();
    for h in [
        "from",
        "to",
        "sender",
        "return-path",
        "reply-to",
        "delivered-to",
        "cc",
    ] {
        for v in mail.headers.all(h) {
            excluded.extend(address::find_all(v).into_iter().map(|(_, a)| a));
        }
    }
    excluded.extend(embedded::original_senders(mail));
    excluded
}

/// A bounce of a bounce (a gateway returning a report it could not
/// forward): the failure is described inside the embedded message. Fills
/// `emails` and points `text` at the inner report when that finds any.
fn bounce_of_bounce<'a>(
    mail: &'a Mail,
    excluded: &[String],
    emails: &mut Vec<String>,
    text: &mut Cow<'a, str>,
) {
    let inner: String = mail
        .leaves
        .iter()
        .filter(|l| l.depth == 1 && l.ctype.starts_with("text/"))
        .map(|l| format!("{}\n", cut_original(l.text())))
        .collect();
    let mut inner_excluded = excluded.to_vec();
    if let Some(first) = mail.embedded.first() {
        for h in ["from", "to", "sender", "return-path", "reply-to"] {
            for v in first.all(h) {
                inner_excluded.extend(address::find_all(v).into_iter().map(|(_, a)| a));
            }
        }
    }
    if DECISIVE_AC.is_match(&inner) {
        *emails = strong_candidates(&inner);
        if emails.is_empty() {
            *emails = loose_candidates(&inner, &inner_excluded);
        }
        if !emails.is_empty() {
            *text = Cow::Owned(inner);
        }
    }
}

/// Every address of the report text that is not the sender's or a mail
/// system's, preferring those after the list introduction.
fn loose_candidates(text: &str, excluded: &[String]) -> Vec<String> {
    // The earliest start of any introduction: a leftmost-first search.
    static LIST_INTROS_AC: LazyLock<Search> = LazyLock::new(|| Search::leftmost_first(LIST_INTROS));
    let list_start = LIST_INTROS_AC.find(text).map_or(0, |m| m.start());
    let found = address::find_all(text);
    let excluded: std::collections::HashSet<&str> = excluded.iter().map(String::as_str).collect();
    let lines = Lines::new(text);
    // Where the last line looked at starts, and where its words start.
    let mut line = (usize::MAX, 0);
    for pass_start in [list_start, 0] {
        let mut emails = address::Distinct::default();
        for (pos, a) in found.iter().cloned() {
            if pos >= pass_start
                && !on_id_line(text, &lines, &mut line, pos)
                && !address::is_system(&a)
                && !excluded.contains(a.as_str())
            {
                emails.push(a);
            }
        }
        if !emails.is_empty() {
            return emails.into_vec();
        }
    }
    Vec::new()
}

/// Message-IDs look like addresses; the header names around them say otherwise.
/// `line`: the start of the line last looked at and where its words start after any `>`,
/// spaces and tabs (many addresses on one line skip its indentation once).
fn on_id_line(text: &str, lines: &Lines, line: &mut (usize, usize), pos: usize) -> bool {
    let (line_start, _) = lines.bounds(lines.number(pos));
    if line.0 != line_start {
        let indent = text.as_bytes()[line_start..]
            .iter()
            .take_while(|b| matches!(b, b'>' | b' ' | b'\t'))
            .count();
        *line = (line_start, line_start + indent);
    }
    let words = line.1.min(pos);
    let line = &text[words..pos];
    ["message-id:", "references:", "in-reply-to:", "content-id:"]
        .iter()
        .any(|h| starts_with_ci(line, h))
}

/// Addresses in positions only a failed recipient takes: qmail's
/// `<address>:` paragraph opener and "Recipient address:" lines. These are
/// trusted even when the address is also the report's To (a sender
/// bouncing to itself).
fn strong_candidates(text: &str) -> Vec<String> {
    let mut out = address::Distinct::default();
    for line in text.lines() {
        let t = line.trim();
        // `<a@b>:` (qmail), `"a@b":` (GMX), `a@b:` -- an address opening a
        // paragraph about itself.
        let bare = t.trim_end_matches(':').trim_matches(['<', '>', '"', '\'']);
        let opener = t.ends_with(':') && !bare.contains(char::is_whitespace) && bare.contains('@');
        let labelled = starts_with_ci(t, "recipient address:") || starts_with_ci(t, "rcpt to:");
        let qmail = opener;
        if qmail || labelled {
            for (_, a) in address::find_all(t) {
                if !address::is_system(&a) {
                    out.push(a);
                }
            }
        }
    }
    out.into_vec()
}

/// What the `i`th address's paragraph says of it. `whole` keeps, by status and reply code,
/// the type and reason of addresses judged by the whole text (the text does not name them,
/// or their paragraph was cut to nothing): alike for each, and read once.
fn describe(
    i: usize,
    mentions: &Mentions,
    single: bool,
    delayed: bool,
    whole: &std::cell::RefCell<std::collections::HashMap<Codes, (BounceType, crate::Reason)>>,
) -> Recipient {
    let text = mentions.text;
    let email = mentions.emails[i].clone();
    let mut paragraph = mentions.paragraph(i).unwrap_or_default().to_string();
    // Codes after the address belong to it; codes before it may belong to
    // the previous recipient of an Exim-style list, and whatever follows the
    // next recipient's address belongs to that one.
    let lower = paragraph.to_ascii_lowercase();
    let at = lower.find(&email).unwrap_or(0);
    let next = mentions.next_other(i, &lower[at..]).map(|s| at + s);
    if let Some(next) = next {
        let cut = lower[..next]
            .rfind('\n')
            .filter(|&c| c > at)
            .unwrap_or(next);
        paragraph.truncate(cut);
    }
    let mut at = at.min(paragraph.len());
    let lower = paragraph.to_ascii_lowercase();
    if mentions.next_other(i, &lower[..at]).is_some() {
        let line_start = lower[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
        paragraph.drain(..line_start);
        at -= line_start;
    }
    let (before, after) = paragraph.split_at(at);
    let mut status = status::find_status(after).or_else(|| status::find_status(before));
    let mut reply = status::find_reply_code(after).or_else(|| status::find_reply_code(before));
    if status.is_none() && reply.is_none() {
        // The paragraph names the address only; other lines about the same
        // address (a Sendmail transcript) or, for a lone recipient, the
        // whole report carry the code.
        (status, reply) = mentions.codes_in_lines(i);
        if single && status.is_none() && reply.is_none() {
            status = status::find_status(text);
            reply = diagnostic_reply(text);
        }
    }
    let context = if paragraph.trim().is_empty() {
        text
    } else {
        &paragraph
    };
    let judge = || {
        let bounce_type = status::bounce_type(status.as_deref(), reply, context, delayed);
        let bounce_type =
            if bounce_type == BounceType::Soft || !status::is_mailbox_full(None, &paragraph) {
                bounce_type
            } else {
                BounceType::Soft
            };
        // When the paragraph is empty the context already is the whole report.
        let report = (single && !std::ptr::eq(context, text)).then_some(text);
        let reason = crate::reason::decide_with_report(
            status.as_deref(),
            reply,
            context,
            delayed,
            None,
            || report,
            // The paragraph about this recipient, where MTAs name the refused
            // command, is the context already.
            || None,
        );
        (bounce_type, reason)
    };
    // With no paragraph, the verdict depends on the codes alone.
    let (bounce_type, reason) = if paragraph.trim().is_empty() {
        let codes = (status.clone(), reply);
        let known = whole.borrow().get(&codes).copied();
        known.unwrap_or_else(|| {
            let verdict = judge();
            whole.borrow_mut().insert(codes, verdict);
            verdict
        })
    } else {
        judge()
    };
    let diagnostic = squash(&paragraph);
    Recipient {
        email,
        status,
        action: None,
        diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
        bounce_type,
        reason,
        remote_mta: None,
    }
}

/// The SMTP command the human-readable part says `email`'s refusal answered
/// (Postfix writes "(in reply to RCPT TO command)" there, not in the DSN).
pub(crate) fn command_near(text: &str, email: &str) -> Option<crate::command::Command> {
    crate::command::failed_command(paragraph_of(text, email)?)
}

/// [`command_near`] for a DSN: read from `report_text` when something has
/// built it already, else from the first text part of the report that names
/// `email`, without building it (copying every text part and looking for
/// where the quoted original begins costs more than the paragraph's search,
/// and a DSN with a specific status seldom needs the report text otherwise).
/// Mostly both find the same paragraph (it comes before any quoted original),
/// not always: [`CommandsInReport`] reads the same texts.
pub(crate) fn command_in_report(mail: &Mail, email: &str) -> Option<crate::command::Command> {
    if let Some((text, _)) = mail.report.get() {
        return command_near(text, email);
    }
    mail.report_texts()
        .filter(|leaf| leaf.ctype.starts_with("text/") && leaf.ctype != "text/rfc822-headers")
        .map(|leaf| leaf.text())
        .find(|text| find_ci(text, email).is_some())
        .and_then(|text| command_near(text, email))
}

/// [`command_in_report`] for each of a DSN's addresses: for many (more than
/// [`MANY_ADDRESSES`]), the same texts read, each searched for all of the
/// addresses at once.
pub(crate) struct CommandsInReport<'a> {
    mail: &'a Mail,
    emails: &'a [String],
    report: std::cell::OnceCell<Mentions<'a>>,
    parts: std::cell::OnceCell<Vec<Mentions<'a>>>,
}

impl<'a> CommandsInReport<'a> {
    pub(crate) fn new(mail: &'a Mail, emails: &'a [String]) -> CommandsInReport<'a> {
        CommandsInReport {
            mail,
            emails,
            report: Default::default(),
            parts: Default::default(),
        }
    }

    /// The command refused for the `i`th address.
    pub(crate) fn command(&self, i: usize) -> Option<crate::command::Command> {
        let (mail, emails) = (self.mail, self.emails);
        if emails.len() <= MANY_ADDRESSES {
            return command_in_report(mail, &emails[i]);
        }
        if let Some((text, _)) = mail.report.get() {
            return self
                .report
                .get_or_init(|| Mentions::indexed(text, emails))
                .command_near(i);
        }
        self.parts
            .get_or_init(|| {
                mail.report_texts()
                    .filter(|leaf| {
                        leaf.ctype.starts_with("text/") && leaf.ctype != "text/rfc822-headers"
                    })
                    .map(|leaf| Mentions::indexed(leaf.text(), emails))
                    .collect()
            })
            .iter()
            .find(|part| part.names(i))
            .and_then(|part| part.command_near(i))
    }
}

/// The status `paragraph` gives for `email`: after the address, else before it.
fn status_in(paragraph: &str, email: &str) -> Option<String> {
    let at = paragraph.to_ascii_lowercase().find(email).unwrap_or(0);
    let (before, after) = paragraph.split_at(at);
    status::find_status(after).or_else(|| status::find_status(before))
}

/// A reply code taken from the whole report only where it opens an SMTP
/// response line, so dates and sizes are not mistaken for one.
fn diagnostic_reply(text: &str) -> Option<u16> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches(['<', '>', '#', ' ']);
            let l = find_ci(l, "said:")
                .map(|i| &l[i + 5..])
                .or_else(|| find_ci(l, "smtp error").map(|_| l))
                .unwrap_or(l);
            status::find_reply_code(l.get(..l.len().min(12))?)
        })
        .next()
}

/// The paragraph (blank-line delimited, at most a few lines) holding the
/// first mention of `email`, plus the following paragraph when the mention
/// stands alone on its line (Exim and Sendmail indent the reason below).
fn paragraph_of<'a>(text: &'a str, email: &str) -> Option<&'a str> {
    Some(paragraph_at(text, None, email, find_ci(text, email)?))
}

/// [`paragraph_of`], the first mention of `email` being at `pos`.
fn paragraph_at<'a>(text: &'a str, lines: Option<&Lines>, email: &str, pos: usize) -> &'a str {
    // Every step below is case-blind, so the text is searched in place.
    // The paragraph is cut to 400 bytes before the mention and 800 after, so
    // the blank lines are looked for only that far (a byte more, for one that
    // straddles the edge): past it, whatever is found is cut away, and a
    // report of thousands of recipients on one page takes time in their
    // number, not its square.
    let bytes = text.as_bytes();
    let back = pos.saturating_sub(401);
    let horizon = (pos + 802).min(text.len());
    let blank = |from: usize| {
        memchr::memmem::find(&bytes[from.min(horizon)..horizon], b"\n\n").map(|i| from + i)
    };
    let start = memchr::memmem::rfind(&bytes[back..pos], b"\n\n").map_or(0, |i| back + i + 2);
    let mut end = blank(pos).unwrap_or(text.len());
    // The mention's line, and where its words start, from `lines` when given.
    let (line_start, line_end) = match lines {
        Some(lines) => lines.bounds(lines.number(pos)),
        None => (
            memchr::memrchr(b'\n', &bytes[..pos]).map_or(0, |i| i + 1),
            memchr::memchr(b'\n', &bytes[pos..]).map_or(text.len(), |i| pos + i),
        ),
    };
    const AROUND: [char; 6] = ['<', '>', ':', ' ', '"', '\''];
    let line = &text[line_start..line_end];
    let words_at = || line_start + line.len() - line.trim_start().trim_start_matches(AROUND).len();
    let words = match lines {
        Some(lines) => *lines
            .words
            .borrow_mut()
            .entry(line_start)
            .or_insert_with(words_at),
        None => words_at(),
    };
    // The address alone on its line: its words start with it (a cheap test first, since
    // a line can name thousands), and are nothing else.
    let alone = words == pos && line.trim().trim_matches(AROUND).eq_ignore_ascii_case(email);
    if alone && end == line_end && end < text.len() {
        let skip = bytes[end..horizon.max(end)]
            .iter()
            .take_while(|&&b| b == b'\n')
            .count();
        end = blank(end + skip).unwrap_or(text.len());
    }
    let start = start.max(pos.saturating_sub(400));
    let end = end.min(pos + 800).min(text.len());
    let start = floor_char(text, start);
    let end = floor_char(text, end);
    &text[start..end]
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The lines of `text` that hold `email`, each with the line after.
fn lines_mentioning(text: &str, email: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if contains_ci(l, email) {
            out.push_str(l);
            out.push('\n');
            if let Some(next) = lines.get(i + 1) {
                out.push_str(next);
                out.push('\n');
            }
        }
    }
    out
}

fn squash(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(500) {
        Some((i, _)) => joined[..i].to_string(),
        None => joined,
    }
}

/// `s.to_ascii_lowercase().contains(needle)` for a lower-case ASCII
/// `needle`, without the copy.
pub(crate) fn contains_ci(s: &str, needle: &str) -> bool {
    find_ci(s, needle).is_some()
}

/// `s.to_ascii_lowercase().find(needle)` for a lower-case ASCII `needle`,
/// without the copy (ASCII lower-casing keeps every byte offset).
pub(crate) fn find_ci(s: &str, needle: &str) -> Option<usize> {
    let n = needle.as_bytes();
    let Some(&first) = n.first() else {
        return Some(0);
    };
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let hay = s.as_bytes();
    memchr::memchr2_iter(lo, up, hay)
        .find(|&i| hay.len() - i >= n.len() && hay[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// `s.to_ascii_lowercase().starts_with(prefix)` for a lower-case ASCII
/// `prefix`, without the copy.
pub(crate) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `paragraph_of` as it was before its searches were bounded: every
    /// blank line and line break looked for through the whole text (the
    /// reference for `paragraph_at`).
    fn paragraph_unbounded<'a>(text: &'a str, email: &str) -> Option<&'a str> {
        let pos = find_ci(text, email)?;
        let start = text[..pos].rfind("\n\n").map(|i| i + 2).unwrap_or(0);
        let mut end = text[pos..]
            .find("\n\n")
            .map(|i| pos + i)
            .unwrap_or(text.len());
        let line_start = text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = text[pos..]
            .find('\n')
            .map(|i| pos + i)
            .unwrap_or(text.len());
        let alone = text[line_start..line_end]
            .trim()
            .trim_matches(['<', '>', ':', ' ', '"', '\''])
            .eq_ignore_ascii_case(email);
        if alone && end == line_end && end < text.len() {
            let rest = &text[end..];
            let next = end + rest.len() - rest.trim_start_matches('\n').len();
            end = text[next..]
                .find("\n\n")
                .map(|i| next + i)
                .unwrap_or(text.len());
        }
        let start = floor_char(text, start.max(pos.saturating_sub(400)));
        let end = floor_char(text, end.min(pos + 800).min(text.len()));
        Some(&text[start..end])
    }

    /// Texts where the bounded searches meet their edges: blank lines just
    /// inside and outside 400 bytes before and 800 after the mention, an
    /// address alone on its line with the next paragraph near the edge, long
    /// lines, runs of line breaks, CRLF, multi-byte characters at the cuts.
    fn edge_texts() -> Vec<String> {
        let mut texts = Vec::new();
        for before in [0, 1, 398, 399, 400, 401, 402, 403, 1000] {
            // The first form's blank line comes 33 bytes + `after` past the
            // mention: 764-770 put it on either side of the 800-byte edge.
            for after in [
                0, 1, 764, 765, 766, 767, 768, 769, 770, 798, 799, 800, 801, 802, 2000,
            ] {
                let pad = |n: usize, c: &str| c.repeat(n);
                texts.push(format!(
                    "intro\n\n{}<a@example.com>: 550 5.1.1 unknown{}\n\nnext b@example.org 4.2.2",
                    pad(before, "x"),
                    pad(after, "y")
                ));
                texts.push(format!(
                    "{}\n\n a@example.com \n{}\n\n\n\n{}5.2.2 full\n\nb@example.org",
                    pad(before, "ü"),
                    pad(after / 2, "\n"),
                    pad(after, "é")
                ));
                texts.push(format!(
                    "{}a@example.com{}\r\n\r\nb@example.org said 550\r\n",
                    pad(before, " "),
                    pad(after, " ")
                ));
            }
        }
        // A `\r` that ends the text, with no line break after it.
        texts.push("x\n\na@example.com 550\r".to_string());
        texts.push("a@example.com\r\nb@example.org 4.2.2\r".to_string());
        texts
    }

    #[test]
    fn a_paragraph_is_what_the_unbounded_search_finds() {
        let mut texts = crate::automaton::tests::fixture_texts();
        texts.extend(edge_texts());
        let mut checked = 0;
        for text in &texts {
            // Each once, as `recipients` gives them.
            let mut distinct = address::Distinct::default();
            for (_, a) in address::find_all(text) {
                distinct.push(a);
            }
            let emails = distinct.into_vec();
            // One by one and with the index, whatever the count.
            let few = Mentions {
                text,
                emails: &emails,
                index: None,
                codes: Default::default(),
            };
            let many = Mentions::indexed(text, &emails);
            assert!(many.index.is_some());
            for (i, email) in emails.iter().enumerate() {
                let expected = paragraph_unbounded(text, email);
                assert_eq!(paragraph_of(text, email), expected, "{email} in {text:?}");
                let lines = lines_mentioning(text, email);
                for m in [&few, &many] {
                    assert_eq!(m.paragraph(i), expected, "{email} in {text:?}");
                    assert_eq!(m.lines_mentioning(i), lines, "{email} in {text:?}");
                    if let Some(p) = expected {
                        let lower = p.to_ascii_lowercase();
                        for cut in [0, lower.len() / 2, lower.len()] {
                            let cut = floor_char(&lower, cut);
                            let reference = emails
                                .iter()
                                .filter(|o| *o != email)
                                .filter_map(|o| lower[cut..].find(o.as_str()))
                                .min();
                            assert_eq!(
                                m.next_other(i, &lower[cut..]),
                                reference,
                                "{email} in {p:?}"
                            );
                        }
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 500, "only {checked} addresses checked");
    }

    /// A report of thousands of recipients (a hostile one, or a list
    /// server's), each with its own paragraph and code, one page without a
    /// blank line: every recipient is described by its own line, as a short
    /// report's would be. (Before the searches were bounded and shared, this
    /// took time in the square of the count: 30,000 took over two minutes.)
    #[test]
    fn as_many_recipients_as_allowed_each_get_their_own_line() {
        let n = crate::MAX_RECIPIENTS;
        let text: String = (0..n)
            .map(|i| {
                let code = if i % 2 == 0 {
                    "550 5.1.1 user unknown"
                } else {
                    "452 4.2.2 mailbox full"
                };
                format!("<user{i}@example.com>: host mx.example.com said: {code}\n")
            })
            .collect();
        let raw = format!(
            "From: MAILER-DAEMON@mx.example.net\nTo: news@example.org\nSubject: Undelivered Mail Returned to Sender\n\nThis is the mail system.\n\n{text}"
        );
        let c = crate::classify(raw.as_bytes());
        assert_eq!(c.recipients.len(), n);
        for (i, r) in c.recipients.iter().enumerate() {
            assert_eq!(r.email, format!("user{i}@example.com"));
            let (status, bounce_type) = if i % 2 == 0 {
                ("5.1.1", BounceType::Hard)
            } else {
                ("4.2.2", BounceType::Soft)
            };
            assert_eq!(
                (r.status.as_deref(), r.bounce_type),
                (Some(status), bounce_type),
                "{r:?}"
            );
        }
    }

    #[test]
    fn the_lists_find_what_aho_corasick_finds() {
        let texts = crate::automaton::tests::fixture_texts();
        let scanned: Vec<&str> = [
            DECISIVE,
            BODY_PHRASES,
            FAILURE_WORDS,
            STILL_TRYING,
            ORIGINAL_MARKERS,
            QUOTED_FIELDS,
        ]
        .concat();
        crate::automaton::tests::agrees_on(&scanned, &texts);
        crate::automaton::tests::agrees_on(SUBJECTS, &texts);
    }

    #[test]
    fn qmail() {
        let raw = b"From: MAILER-DAEMON@mx.example.org\nTo: news@sender.example\nSubject: failure notice\n\nHi. This is the qmail-send program at mx.example.org.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<kijitora@example.jp>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 <kijitora@example.jp>... User Unknown\nGiving up on 192.0.2.1.\n\n--- Below this line is a copy of the message.\n\nFrom: news@sender.example\nTo: kijitora@example.jp\n";
        let m = Mail::parse(raw);
        assert_eq!(bounce_evidence(&m), Evidence::Certain);
        let r = recipients(&m, false).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].email, "kijitora@example.jp");
        assert_eq!(r[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(r[0].bounce_type, BounceType::Hard);
        assert_eq!(r[0].reason, crate::Reason::UserUnknown);
    }

    #[test]
    fn exim_with_x_failed_recipients() {
        let raw = b"From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nX-Failed-Recipients: a@example.net\nSubject: Mail delivery failed: returning message to sender\n\nThis message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a temporary error. The following address(es) deferred:\n\n  a@example.net\n    host mx.example.net [192.0.2.2]: 452 4.2.2 Mailbox full\n";
        let m = Mail::parse(raw);
        assert_eq!(bounce_evidence(&m), Evidence::Certain);
        let r = recipients(&m, false).unwrap();
        assert_eq!(r[0].email, "a@example.net");
        assert_eq!(r[0].status.as_deref(), Some("4.2.2"));
        assert_eq!(r[0].bounce_type, BounceType::Soft);
        assert_eq!(r[0].reason, crate::Reason::MailboxFull);
    }

    #[test]
    fn ordinary_mail_is_not_a_bounce() {
        let m =
            Mail::parse(b"From: friend@example.org\nSubject: lunch?\n\nAre you free tomorrow?\n");
        assert_eq!(bounce_evidence(&m), Evidence::None);
    }

    #[test]
    fn case_blind_helpers_match_lowercased_search() {
        for (hay, needle) in [
            ("Recipient Address: A@B.org", "recipient address:"),
            ("x KIJITORA@example.JP y", "kijitora@example.jp"),
            ("no match here", "rcpt to:"),
            ("", "a"),
            ("ÄäKelvin \u{212A} sign", "kelvin"),
        ] {
            let lower = hay.to_ascii_lowercase();
            assert_eq!(find_ci(hay, needle), lower.find(needle), "{hay}");
            assert_eq!(contains_ci(hay, needle), lower.contains(needle));
            assert_eq!(starts_with_ci(hay, needle), lower.starts_with(needle));
        }
    }

    #[test]
    fn one_pass_scan_finds_lists_before_the_cut_only() {
        let text = "Delivery has failed to these recipients\nwill retry later\n\n----- Original message -----\nthis is the qmail-send program\n";
        let (cut, lists) = scan_text(text);
        assert_eq!(&text[cut..cut + 5], "-----");
        assert!(lists & HAS_DECISIVE != 0 && lists & HAS_STILL_TRYING != 0);
        // The qmail phrase sits in the quoted original, past the cut.
        let (_, lists) =
            scan_text("hello\n----- Original message -----\nthis is the qmail-send program\n");
        assert_eq!(lists & HAS_DECISIVE, 0);
    }
}
