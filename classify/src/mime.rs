//! Owns the MIME view of a message: turns mail-parser's tree into the flat
//! list of decoded leaves and embedded header blocks that the detectors read,
//! and the plain `Name: value` field-block parser shared by DSN, ARF and
//! embedded-header handling.

use crate::unread_html::{Cuts, Decoded, Later};
use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders, PartType};
use std::sync::LazyLock;

/// mail-parser set up to parse only what the detectors read through it: the
/// MIME headers that shape and decode the body, and the Subject. Every other
/// field is read from `headers_raw()` (raw bytes, unaffected), so fully
/// parsing Received, address and date fields (a third of the parse time) is
/// skipped.
static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .with_mime_headers()
        .header_text(HeaderName::Subject)
        .default_header_ignore()
});

/// Header fields in order, names lower-cased, values unfolded and trimmed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields(pub(crate) Vec<(String, String)>);

impl Fields {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// One non-multipart body part, decoded to text.
#[derive(Debug)]
pub(crate) struct Leaf {
    /// `type/subtype`, lower-cased; `text/plain` when the part declares none.
    pub(crate) ctype: String,
    /// 0 for parts of the report itself, 1+ for parts inside an embedded message.
    pub(crate) depth: usize,
    body: Body,
    /// The text of a binary or HTML body, made when a detector first asks:
    /// most binary parts (attachments, images, delivery-status) and most HTML
    /// parts (embedded newsletters) are never read as text.
    made: std::cell::OnceCell<String>,
}

#[derive(Debug)]
enum Body {
    Text(String),
    Binary(Vec<u8>),
    Html(String),
    /// An HTML body mail-parser was not asked to decode (`unread_html`).
    Later(Box<Later>),
}

impl Leaf {
    pub(crate) fn new(ctype: String, depth: usize, text: String) -> Leaf {
        Leaf {
            ctype,
            depth,
            body: Body::Text(text),
            made: std::cell::OnceCell::new(),
        }
    }

    fn binary(ctype: String, depth: usize, raw: Vec<u8>) -> Leaf {
        Leaf {
            ctype,
            depth,
            body: Body::Binary(raw),
            made: std::cell::OnceCell::new(),
        }
    }

    fn html(ctype: String, depth: usize, html: String) -> Leaf {
        Leaf {
            ctype,
            depth,
            body: Body::Html(html),
            made: std::cell::OnceCell::new(),
        }
    }

    fn later(ctype: String, depth: usize, later: Later) -> Leaf {
        Leaf {
            ctype,
            depth,
            body: Body::Later(Box::new(later)),
            made: std::cell::OnceCell::new(),
        }
    }

    /// The part as text: invalid UTF-8 replaced, HTML rendered as text.
    pub(crate) fn text(&self) -> &str {
        match &self.body {
            Body::Text(text) => text,
            Body::Binary(raw) => self
                .made
                .get_or_init(|| String::from_utf8_lossy(raw).into_owned()),
            Body::Html(html) => self.rendered(html),
            Body::Later(later) => match later.decoded() {
                Decoded::Html(html) => self.rendered(html),
                Decoded::Text(text) => text,
            },
        }
    }

    fn rendered(&self, html: &str) -> &str {
        self.made
            .get_or_init(|| mail_parser::decoders::html::html_to_text(html))
    }

    /// The text if already made, else the raw bytes of a binary part. An
    /// ASCII pattern matches both alike: lossy conversion only turns invalid
    /// bytes into U+FFFD. (HTML has to be rendered to be searched.)
    pub(crate) fn text_or_bytes(&self) -> Result<&str, &[u8]> {
        match &self.body {
            Body::Binary(raw) if self.made.get().is_none() => Err(raw),
            _ => Ok(self.text()),
        }
    }

    /// The body as a detector could come to read it, and what it is.
    #[cfg(test)]
    pub(crate) fn source(&self) -> String {
        match &self.body {
            Body::Text(text) => format!("text: {text}"),
            Body::Binary(raw) => format!("binary: {}", String::from_utf8_lossy(raw)),
            Body::Html(html) => format!("html: {html}"),
            Body::Later(later) => match later.decoded() {
                Decoded::Html(html) => format!("html: {html}"),
                Decoded::Text(text) => format!("text: {text}"),
            },
        }
    }

    /// Whether the part's text holds `word` (ASCII letters, in any case),
    /// without making the text where that can be helped: a binary part's
    /// bytes tell (lossy conversion only turns invalid bytes into U+FFFD),
    /// and an HTML part not rendered yet answers by its source. Rendering
    /// removes markup and decodes entities, so the word could only appear
    /// through markup or an entity inside it, which no mailer writes; and
    /// rendering is the classifier's costliest step on large HTML. A search
    /// that needs the word (listmonk's header names) asks this first: a
    /// regular expression that ignores case finds no literal to skip to.
    pub(crate) fn may_contain(&self, word: &crate::phrases::Search) -> bool {
        if let Some(made) = self.made.get() {
            return word.is_match(made);
        }
        match &self.body {
            Body::Text(text) => word.is_match(text),
            Body::Binary(raw) => word.is_match_bytes(raw),
            Body::Html(html) => word.is_match(html),
            // Its bytes as they came mostly tell, without decoding.
            Body::Later(later) => {
                !later.certainly_lacks(word)
                    && match later.decoded() {
                        Decoded::Html(text) | Decoded::Text(text) => word.is_match(text),
                    }
            }
        }
    }
}

/// Everything the detectors need from one raw message.
#[derive(Debug, Default)]
pub(crate) struct Mail {
    pub(crate) headers: Fields,
    /// Decoded (RFC 2047) subject of the report itself.
    pub(crate) subject: String,
    /// `report-type` of a top-level `multipart/report`, lower-cased.
    pub(crate) report_type: Option<String>,
    pub(crate) leaves: Vec<Leaf>,
    /// Header blocks of embedded originals (message/rfc822, message/global,
    /// text/rfc822-headers), outermost first.
    pub(crate) embedded: Vec<Fields>,
    /// `plaintext::report_text`, built on first use: several detectors read it.
    /// With the phrase lists it holds (`plaintext::report_lists`).
    pub(crate) report: std::cell::OnceCell<(String, u8)>,
    /// Header blocks quoted in the report's text parts
    /// (`embedded::originals`), found on first use.
    pub(crate) quoted: std::cell::OnceCell<Vec<Fields>>,
    /// Read every part of a `multipart/alternative`, not only its text/plain one.
    all_alternatives: bool,
    /// Whether an alternative was left unread (see `walk`).
    pub(crate) skipped_alternative: bool,
}

/// Nesting beyond this is not a real bounce; stop instead of recursing forever.
const MAX_DEPTH: usize = 8;

impl Mail {
    /// The message with only the text/plain part of each `multipart/alternative`.
    #[cfg(test)]
    pub(crate) fn parse(raw: &[u8]) -> Mail {
        Mail::parse_with(raw, false)
    }

    /// The message; with `all_alternatives`, with every part of each
    /// `multipart/alternative`, else with only its text/plain part (the
    /// first look). The second look is for when the plain parts told
    /// nothing (a stub beside an HTML report).
    pub(crate) fn parse_with(as_came: &[u8], all_alternatives: bool) -> Mail {
        // The unread fields left out; a message that is then no message to
        // mail-parser is none with them either (the bytes from the first
        // field kept on are the same), and is read as it came.
        let trimmed = crate::unread::without_unread_fields(as_came);
        let raw = trimmed.as_deref().unwrap_or(as_came);
        // And the HTML bodies, where mail-parser agrees on where they were.
        if let Some(cuts) = Cuts::find(raw)
            && let Some(mail) = Mail::read(cuts.lean(), all_alternatives, Some(&cuts))
        {
            return mail;
        }
        Mail::read(raw, all_alternatives, None).unwrap_or_else(|| Mail::one_text(as_came))
    }

    /// `parse_with` with every body decoded by mail-parser as it parses:
    /// what leaving the HTML bodies out must not change.
    #[cfg(test)]
    pub(crate) fn parse_decoded(as_came: &[u8], all_alternatives: bool) -> Mail {
        let trimmed = crate::unread::without_unread_fields(as_came);
        let raw = trimmed.as_deref().unwrap_or(as_came);
        Mail::read(raw, all_alternatives, None).unwrap_or_else(|| Mail::one_text(as_came))
    }

    /// The message as mail-parser reads `raw`; `None` when `raw` has HTML
    /// bodies left out (`cuts`) and mail-parser does not confirm them, or
    /// when it finds no header block.
    fn read(raw: &[u8], all_alternatives: bool, cuts: Option<&Cuts<'_>>) -> Option<Mail> {
        let mut mail = Mail {
            all_alternatives,
            ..Mail::default()
        };
        let mut msg = PARSER.parse(raw)?;
        if let Some(cuts) = cuts
            && !cuts.confirmed_by(&msg)
        {
            return None;
        }
        mail.headers = raw_fields(&msg);
        mail.subject = msg.subject().unwrap_or_default().to_string();
        mail.walk(&mut msg, 0, 0, &mut 0, cuts);
        if mail.leaves.is_empty() {
            // Read from the body's bytes, which the cuts would have changed.
            if cuts.is_some() {
                return None;
            }
            // A multipart whose boundary never occurs (truncated or
            // mislabelled report): the body is still the report.
            let parsed = &msg.raw_message;
            let start = (msg.root_part().raw_body_offset() as usize).min(parsed.len());
            let text = String::from_utf8_lossy(&parsed[start..]).into_owned();
            mail.leaves.push(Leaf::new("text/plain".into(), 0, text));
        }
        Some(mail)
    }

    /// mail-parser finds no header block: the bytes are kept as one text
    /// body, so phrase detection still gets a chance.
    fn one_text(raw: &[u8]) -> Mail {
        let mut mail = Mail::default();
        mail.leaves.push(Leaf::new(
            "text/plain".into(),
            0,
            String::from_utf8_lossy(raw).into_owned(),
        ));
        mail
    }

    /// Takes the bodies it reads out of `msg` rather than copying them: a
    /// decoded body (quoted-printable, base64, another charset) is already
    /// mail-parser's own `String`, and moves. mail-parser lists every part
    /// once, in its parent's list, so no body is asked for twice.
    fn walk(
        &mut self,
        msg: &mut Message<'_>,
        part_id: u32,
        depth: usize,
        visited: &mut usize,
        cuts: Option<&Cuts<'_>>,
    ) {
        // A hostile multipart could list the same part id many times; the
        // visit budget keeps the walk linear in the message size.
        *visited += 1;
        if depth > MAX_DEPTH || *visited > 4096 {
            return;
        }
        let Some(part) = msg.parts.get(part_id as usize) else {
            return;
        };
        let (ctype, report_type) = match part.content_type() {
            Some(ct) => (
                format!(
                    "{}/{}",
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or("").to_ascii_lowercase()
                ),
                ct.attribute("report-type").map(|v| v.to_ascii_lowercase()),
            ),
            None => ("text/plain".to_string(), None),
        };
        // mail-parser hands back a multipart whose boundary never occurs as a
        // single body; to us that body is plain report text.
        let ctype =
            if ctype.starts_with("multipart/") && !matches!(part.body, PartType::Multipart(_)) {
                "text/plain".to_string()
            } else {
                ctype
            };
        if let PartType::Multipart(ids) = &part.body {
            // Copied (a few ids) so that the children can be walked, and
            // their bodies taken, while the list is read.
            let ids = ids.clone();
            if depth == 0 && ctype == "multipart/report" && self.report_type.is_none() {
                self.report_type = report_type;
            }
            // The parts of a multipart/alternative say the same thing (RFC 2046
            // 5.1.4): the detectors match plain text, so a text/plain alternative
            // is read alone and the HTML rendering of the same words (converting
            // it was a tenth of the classifier's time) is skipped. `classify`
            // looks again with every part when that finds no recipient, so a
            // stub ("view this message in HTML") cannot hide an HTML report.
            let plain = (ctype == "multipart/alternative" && !self.all_alternatives)
                .then(|| {
                    ids.iter()
                        .copied()
                        .find(|&id| id > part_id && is_plain_text(msg, id))
                })
                .flatten();
            for id in ids {
                // Children always come after their parent; anything else is a loop.
                if id <= part_id {
                    continue;
                }
                if plain.is_none_or(|p| p == id) {
                    self.walk(msg, id, depth, visited, cuts);
                } else {
                    self.skipped_alternative = true;
                }
            }
            return;
        }
        let here = msg.raw_message.as_ptr();
        let Some(part) = msg.parts.get_mut(part_id as usize) else {
            return;
        };
        // The body left out of an HTML part, to decode when read.
        let later = cuts.and_then(|c| c.later(here, part));
        match &mut part.body {
            // Walked above.
            PartType::Multipart(_) => {}
            PartType::Message(inner) => {
                self.embedded.push(raw_fields(inner));
                let inner_subject = inner.subject().unwrap_or_default().to_string();
                if !inner_subject.is_empty() {
                    // Keep the decoded subject reachable as a field too.
                    if let Some(f) = self.embedded.last_mut() {
                        f.0.push(("x-decoded-subject".into(), inner_subject));
                    }
                }
                self.walk(inner, 0, depth + 1, visited, cuts);
            }
            PartType::Text(text) => {
                if ctype == "text/rfc822-headers" {
                    self.embedded.push(parse_fields(text));
                }
                let text = std::mem::take(text).into_owned();
                self.leaves.push(Leaf::new(ctype, depth, text));
            }
            PartType::Html(html) => {
                let leaf = match later {
                    Some(later) => Leaf::later(ctype, depth, later),
                    None => Leaf::html(ctype, depth, std::mem::take(html).into_owned()),
                };
                self.leaves.push(leaf);
            }
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
                // A message/rfc822 part mail-parser could not parse as a message
                // (truncated, odd encoding) still usually starts with its headers.
                if ctype == "message/rfc822"
                    || ctype == "message/global"
                    || ctype == "message/global-headers"
                {
                    let text = String::from_utf8_lossy(bytes).into_owned();
                    self.embedded.push(parse_fields(&text));
                    self.leaves.push(Leaf::new(ctype, depth, text));
                } else {
                    let bytes = std::mem::take(bytes).into_owned();
                    self.leaves.push(Leaf::binary(ctype, depth, bytes));
                }
            }
        }
    }

    /// Texts of the report itself (not of embedded originals).
    pub(crate) fn report_texts(&self) -> impl Iterator<Item = &Leaf> {
        self.leaves.iter().filter(|l| l.depth == 0)
    }
}

/// Whether part `id` is a text/plain body (a part without a Content-Type is one).
fn is_plain_text(msg: &Message<'_>, id: u32) -> bool {
    msg.parts.get(id as usize).is_some_and(|p| {
        matches!(p.body, PartType::Text(_))
            && p.content_type().is_none_or(|ct| {
                ct.ctype().eq_ignore_ascii_case("text")
                    && ct.subtype().is_none_or(|s| s.eq_ignore_ascii_case("plain"))
            })
    })
}

/// Every header field name any detector looks up in a message's own header
/// block or an embedded original's (`Fields::get` / `all` / `has`, and the
/// listmonk scan). Only these are kept: unfolding and copying the rest
/// (Received chains above all) was a large share of the parse, and the
/// message's own other fields are not even handed to mail-parser
/// (`unread`). A detector that reads a new field name from `Mail::headers`
/// or `Mail::embedded` must add it here.
pub(crate) const READ_FIELDS: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "return-path",
    "reply-to",
    "delivered-to",
    "x-failed-recipients",
    "x-apple-unsubscribe",
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-vacation",
    "precedence",
    "auto-submitted",
    "x-hmxmroriginalrecipient",
    "x-listmonk-subscriber",
    "x-listmonk-campaign",
];

fn raw_fields(msg: &Message<'_>) -> Fields {
    // What `msg.headers_raw()` yields (fields whose raw value is valid UTF-8),
    // but the name is checked first, so unread fields are never validated.
    let headers = msg
        .parts
        .first()
        .map(|p| p.headers.as_slice())
        .unwrap_or_default();
    Fields(
        headers
            .iter()
            .filter(|h| {
                let name = h.name.as_str();
                READ_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name))
            })
            .filter_map(|h| {
                let raw = msg
                    .raw_message
                    .get(h.offset_start as usize..h.offset_end as usize)?;
                let value = std::str::from_utf8(raw).ok()?;
                Some((h.name.as_str().to_ascii_lowercase(), unfold(value)))
            })
            .collect(),
    )
}

fn unfold(value: &str) -> String {
    // Most fields are one line (mail-parser leaves the line's own newline at
    // the end): nothing to join, and trimming gives the same result.
    match memchr::memchr(b'\n', value.as_bytes()) {
        None => return value.trim().to_string(),
        Some(i) if i + 1 == value.len() => return value.trim().to_string(),
        Some(_) => {}
    }
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if i > 0 {
            out.push(' ');
            out.push_str(line.trim_start());
        } else {
            out.push_str(line);
        }
    }
    out.trim().to_string()
}

/// Parses a block of `Name: value` lines (with folding) until the first blank
/// line. Hand-written because DSN bodies are several such blocks in a row and
/// quoted headers in plain-text bounces are not MIME entities, so mail-parser's
/// one-header-block-per-message API does not fit either.
pub(crate) fn parse_fields(text: &str) -> Fields {
    groups_up_to(text, 1).into_iter().next().unwrap_or_default()
}

/// Splits text into blank-line separated groups of header fields. Lines that
/// are neither a field nor a continuation are skipped rather than ending the
/// group, because real MTAs emit stray comment lines inside DSN blocks.
pub(crate) fn field_groups(text: &str) -> Vec<Fields> {
    groups_up_to(text, usize::MAX)
}

/// The first `limit` groups of `field_groups` (the rest of the text unread).
fn groups_up_to(text: &str, limit: usize) -> Vec<Fields> {
    let mut groups = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    let mut last_was_field = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                groups.push(Fields(std::mem::take(&mut cur)));
                if groups.len() >= limit {
                    return groups;
                }
            }
            last_was_field = false;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if last_was_field && let Some((_, v)) = cur.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        match split_field(line) {
            Some((name, value)) => {
                cur.push((name.to_ascii_lowercase(), value.trim().to_string()));
                last_was_field = true;
            }
            None => last_was_field = false,
        }
    }
    if !cur.is_empty() {
        groups.push(Fields(cur));
    }
    groups
}

fn split_field(line: &str) -> Option<(&str, &str)> {
    // A valid name is at most 64 bytes: a colon further on (or none) rejects
    // the line alike, so only the line's head is searched.
    let colon = memchr::memchr(b':', &line.as_bytes()[..line.len().min(65)])?;
    let name = &line[..colon];
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| (name, &line[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_split_on_blank_lines_and_unfold() {
        let g = field_groups(
            "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822;\n  x@y.z\nStatus: 5.1.1\n",
        );
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].get("final-recipient"), Some("rfc822; x@y.z"));
        assert_eq!(g[1].get("status"), Some("5.1.1"));
    }

    #[test]
    fn headerless_input_becomes_one_text_leaf() {
        let m = Mail::parse(b"just some words");
        assert_eq!(m.leaves.len(), 1);
    }

    #[test]
    fn nested_message_headers_are_embedded() {
        let raw = b"From: a@b.c\nContent-Type: multipart/report; report-type=delivery-status; boundary=XX\n\n--XX\nContent-Type: text/plain\n\nfailed\n--XX\nContent-Type: message/rfc822\n\nTo: r@x.org\nSubject: hi\n\nbody\n--XX--\n";
        let m = Mail::parse(raw);
        assert_eq!(m.report_type.as_deref(), Some("delivery-status"));
        assert_eq!(m.embedded.len(), 1);
        assert_eq!(m.embedded[0].get("to"), Some("r@x.org"));
    }
}
