//! Owns the HTML bodies that mail-parser is not asked to decode. It decodes
//! every body as it parses (quoted-printable, base64, the charset), and most
//! HTML is never read: a report's HTML alternative is skipped when there is
//! a plain one (`mime::Mail::walk`), and the other HTML parts (reports
//! written only in HTML, returned newsletters) are only searched for
//! listmonk's header names, which their bytes as they came mostly answer.
//! Decoding them was a tenth of a pass over the corpus, most of it spent on
//! three large HTML reports (BENCHMARKS.md, issue 23, eleventh round).
//!
//! So `mime::Mail` hands mail-parser the message without the bodies of its
//! text/html parts ([`Cuts`]), and a part that is read decodes its own body
//! when first asked ([`Later`]), with mail-parser's own decoders, run as its
//! parser runs them. The parts are found here with a few byte searches, but
//! mail-parser is the judge of them: a parse is kept only when mail-parser
//! finds, at every place a body was left out, an empty text/html child of a
//! multipart with the boundary that ended the body; else the message is
//! parsed as it came. That is enough for every part to come out as it would
//! have. mail-parser 0.11 ends a leaf's body at the first `--` and boundary
//! of its multipart (each of its three decoders does, and so does its
//! recovery from a body it cannot decode); it reads nothing past a part's
//! header block before that part's body, so everything before the place was
//! read the same; and a body's content never decides how the parts after
//! it are read (it decides the part's own type, text or HTML, which
//! `Later` decides the same way).

use crate::header_lines::{block_start, field_start};
use crate::phrases::Search;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, Message, MessagePart, MimeHeaders, PartType};
use memchr::memmem;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

/// The body of a text/html part as found in the message: its bytes, where
/// the delimiter that ends it ends, and the boundary in that delimiter.
#[derive(Debug)]
struct HtmlBody {
    bytes: Range<usize>,
    delimiter_end: usize,
    boundary: Vec<u8>,
}

/// The bodies of `raw`'s text/html parts that follow a delimiter line, in
/// order. (The media type is searched in lower case only: a part that
/// writes it otherwise is decoded by mail-parser, as before.) The checks
/// here only spare a parse that `Cuts::confirmed_by` would turn down: what
/// looks like a part in a quoted original, or under a boundary mail-parser
/// does not read (a message parsed twice costs more than one parsed whole).
fn html_bodies(raw: &[u8]) -> Vec<HtmlBody> {
    static HTML: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"text/html"));
    let mut found = Vec::new();
    // A message that is no multipart has no parts (what looks like one is
    // in a quoted original).
    let Some(i) = HTML.find(raw) else {
        return found;
    };
    if !top_is_multipart(raw) {
        return found;
    }
    // Whether each boundary met is declared as mail-parser reads it.
    let mut declared: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut from = i;
    while let Some(i) = HTML.find(&raw[from..]).map(|i| from + i) {
        let body = html_body_at(raw, i).filter(|body| {
            match declared.iter().find(|(b, _)| *b == body.boundary) {
                Some(&(_, ok)) => ok,
                None => {
                    let ok = is_declared(raw, &body.boundary);
                    declared.push((body.boundary.clone(), ok));
                    ok
                }
            }
        });
        match body {
            Some(body) => {
                from = body.delimiter_end;
                found.push(body);
                if found.len() == MAX_BODIES {
                    break;
                }
            }
            None => from = i + 1,
        }
    }
    found
}

/// Most bodies left out of one message: a report or a returned newsletter
/// has a few HTML parts. A hostile multipart of a quarter of a million has
/// the rest decoded by mail-parser as they come, so leaving them out adds
/// no more than a copy of the message to what classifying it takes.
const MAX_BODIES: usize = 64;

/// Whether the message's own header block has a multipart Content-Type.
fn top_is_multipart(raw: &[u8]) -> bool {
    let end = memmem::find(raw, b"\n\n").unwrap_or(raw.len());
    let mut pos = 0;
    while pos < end {
        let line = line_end(raw, pos).unwrap_or(raw.len());
        if let Some((name, value)) = split_field(&raw[pos..line])
            && name.eq_ignore_ascii_case(b"content-type")
        {
            return value
                .trim_ascii_start()
                .get(..10)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"multipart/"));
        }
        pos = line;
    }
    false
}

/// Whether `boundary` is first named in a Content-Type field whose value
/// mail-parser reads as a multipart with that boundary: a boundary on a
/// line of its own, not folded into the field (Exchange writes those),
/// is no boundary to mail-parser, and the "parts" are one body.
fn is_declared(raw: &[u8], boundary: &[u8]) -> bool {
    let Some(at) = memmem::find(raw, boundary) else {
        return false;
    };
    let Some(field) = field_around(raw, at) else {
        return false;
    };
    let Some((name, value)) = split_field(&raw[field]) else {
        return false;
    };
    if !name.eq_ignore_ascii_case(b"content-type") {
        return false;
    }
    MessageStream::new(value)
        .parse_content_type()
        .as_content_type()
        .is_some_and(|ct| {
            ct.ctype() == "multipart"
                && ct.attribute("boundary").map(str::as_bytes) == Some(boundary)
        })
}

/// The HTML bodies left out of the bytes handed to mail-parser.
pub(crate) struct Cuts<'a> {
    /// The message as it came (after `unread`).
    raw: &'a [u8],
    /// The message without the bodies: what mail-parser is handed.
    lean: Vec<u8>,
    bodies: Vec<HtmlBody>,
    /// Where each body was in `lean`.
    at: Vec<usize>,
}

impl<'a> Cuts<'a> {
    /// `raw` without its HTML bodies; `None` when it has none to leave out.
    pub(crate) fn find(raw: &'a [u8]) -> Option<Cuts<'a>> {
        let bodies = html_bodies(raw);
        // The copy without them costs a pass over the message and its size
        // in memory: worth it only for bodies that are a good part of it.
        let left_out: usize = bodies.iter().map(|b| b.bytes.len()).sum();
        if left_out == 0 || left_out < raw.len() / 8 {
            return None;
        }
        let mut lean = Vec::with_capacity(raw.len());
        let mut at = Vec::with_capacity(bodies.len());
        let mut kept_from = 0;
        for body in &bodies {
            lean.extend_from_slice(&raw[kept_from..body.bytes.start]);
            at.push(lean.len());
            kept_from = body.bytes.end;
        }
        lean.extend_from_slice(&raw[kept_from..]);
        Some(Cuts {
            raw,
            lean,
            bodies,
            at,
        })
    }

    pub(crate) fn lean(&self) -> &[u8] {
        &self.lean
    }

    /// Whether mail-parser read, at every place a body was left out, an
    /// empty text/html part of a multipart with the boundary that ended the
    /// body (the module's comment says why that is enough).
    pub(crate) fn confirmed_by(&self, msg: &Message<'_>) -> bool {
        let mut seen = vec![false; self.at.len()];
        self.confirm(msg, &mut seen);
        seen.iter().all(|&s| s)
    }

    fn confirm(&self, msg: &Message<'_>, seen: &mut [bool]) {
        // A part is one of the message's own only in a `Message` read from
        // `lean` (an embedded message sent encoded is parsed from its
        // decoded copy, where offsets mean something else).
        if msg.raw_message.as_ptr() != self.lean.as_ptr() {
            return;
        }
        for part in &msg.parts {
            match &part.body {
                PartType::Multipart(ids) => {
                    let Some(boundary) =
                        part.content_type().and_then(|ct| ct.attribute("boundary"))
                    else {
                        continue;
                    };
                    for &id in ids {
                        if let Some(k) = msg.parts.get(id as usize).and_then(|c| self.index(c))
                            && self.bodies[k].boundary == boundary.as_bytes()
                        {
                            seen[k] = true;
                        }
                    }
                }
                PartType::Message(inner) => self.confirm(inner, seen),
                _ => {}
            }
        }
    }

    /// Which body left out was `part`'s, if it is an empty text/html part
    /// where one was.
    fn index(&self, part: &MessagePart<'_>) -> Option<usize> {
        let empty_html = matches!(&part.body, PartType::Html(h) if h.is_empty())
            && part.offset_body == part.offset_end;
        empty_html
            .then(|| self.at.binary_search(&(part.offset_body as usize)).ok())
            .flatten()
    }

    /// The body left out of `part`, a part of the `Message` whose
    /// `raw_message` starts at `here`, to decode when read.
    pub(crate) fn later(&self, here: *const u8, part: &MessagePart<'_>) -> Option<Later> {
        if here != self.lean.as_ptr() {
            return None;
        }
        let body = &self.bodies[self.index(part)?];
        Some(Later {
            bytes: self.raw[body.bytes.start..body.delimiter_end].to_vec(),
            body_len: body.bytes.len(),
            boundary: body.boundary.clone(),
            encoding: part.encoding,
            charset: part
                .content_type()
                .and_then(|ct| ct.attribute("charset"))
                .map(str::to_string),
            decoded: std::cell::OnceCell::new(),
        })
    }
}

/// The body of the text/html part whose Content-Type names the media type
/// at `at`, when that field is in a header block right after a delimiter
/// line and a delimiter with the same boundary follows.
fn html_body_at(raw: &[u8], at: usize) -> Option<HtmlBody> {
    let field = field_around(raw, at)?;
    let (name, value) = split_field(&raw[field.clone()])?;
    if !name.eq_ignore_ascii_case(b"content-type") {
        return None;
    }
    let value = value.trim_ascii_start();
    let media = value
        .iter()
        .take_while(|b| !(b.is_ascii_whitespace() || **b == b';'))
        .count();
    if !value[..media].eq_ignore_ascii_case(b"text/html") {
        return None;
    }
    // The line above the header block is the delimiter: `--`, the
    // boundary, maybe spaces (a blank line there, or none, and this is no
    // part's header).
    let above = block_start(raw, field.start, 0).checked_sub(1)?;
    let delimiter_line = memchr::memrchr(b'\n', &raw[..above]).map_or(0, |i| i + 1);
    let boundary = trim_end(raw[delimiter_line..above].strip_prefix(b"--")?).to_vec();
    if boundary.is_empty() {
        return None;
    }
    // The body starts after the blank line that ends the header block.
    let body = memmem::find(&raw[field.start - 1..], b"\n\n")? + field.start + 1;
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(&boundary);
    let found = memmem::find(&raw[body..], &delimiter)? + body;
    // The line break before a delimiter belongs to the delimiter.
    let end = if found > body && raw[found - 1] == b'\n' {
        found - 1
    } else {
        found
    };
    Some(HtmlBody {
        bytes: body..end,
        delimiter_end: found + delimiter.len(),
        boundary,
    })
}

/// The field (its first line and its folded lines) that byte `at` is in;
/// `None` for the message's first line (no delimiter line above it).
fn field_around(raw: &[u8], at: usize) -> Option<Range<usize>> {
    let start = field_start(raw, at, &mut None).filter(|&s| s > 0)?;
    let mut end = line_end(raw, at)?;
    while matches!(raw.get(end), Some(b' ' | b'\t')) {
        end = line_end(raw, end)?;
    }
    Some(start..end)
}

/// Where the line holding `at` ends (after its line break).
fn line_end(raw: &[u8], at: usize) -> Option<usize> {
    memchr::memchr(b'\n', &raw[at..]).map(|i| at + i + 1)
}

fn split_field(field: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', field)?;
    Some((&field[..colon], &field[colon + 1..]))
}

fn trim_end(v: &[u8]) -> &[u8] {
    let n = v
        .iter()
        .rev()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    &v[..v.len() - n]
}

/// A text/html part's body, decoded when first read.
#[derive(Debug)]
pub(crate) struct Later {
    /// The body as it came, through the delimiter that ends it.
    bytes: Vec<u8>,
    /// Where the body's own bytes end in `bytes`.
    body_len: usize,
    boundary: Vec<u8>,
    encoding: Encoding,
    charset: Option<String>,
    decoded: std::cell::OnceCell<Decoded>,
}

/// What mail-parser makes of a text/html body.
#[derive(Debug)]
pub(crate) enum Decoded {
    Html(String),
    /// A body its decoder gave up on: its bytes as they came, as text.
    Text(String),
}

impl Later {
    /// The body as mail-parser 0.11's `MessageParser::parse` makes it: the
    /// part's decoder, its recovery when that fails (the bytes as they are,
    /// and a text part, not HTML), then the charset.
    pub(crate) fn decoded(&self) -> &Decoded {
        self.decoded.get_or_init(|| {
            let mut stream = MessageStream::new(&self.bytes);
            let (end, bytes) = match self.encoding {
                Encoding::QuotedPrintable => stream.decode_quoted_printable_mime(&self.boundary),
                Encoding::Base64 => stream.decode_base64_mime(&self.boundary),
                Encoding::None => stream.mime_part(&self.boundary),
            };
            let (bytes, html) = if end == usize::MAX {
                let (end, _) = stream.seek_part_end(Some(&self.boundary));
                (Cow::Borrowed(&self.bytes[..end]), false)
            } else {
                (bytes, true)
            };
            let decoder = self
                .charset
                .as_deref()
                .and_then(|c| charset_decoder(c.as_bytes()));
            let text = match (bytes, decoder) {
                (Cow::Owned(vec), Some(decode)) => decode(&vec),
                (Cow::Owned(vec), None) => String::from_utf8(vec)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                (Cow::Borrowed(bytes), Some(decode)) => decode(bytes),
                (Cow::Borrowed(bytes), None) => String::from_utf8_lossy(bytes).into_owned(),
            };
            if html {
                Decoded::Html(text)
            } else {
                Decoded::Text(text)
            }
        })
    }

    /// Whether the decoded body certainly lacks `word`, told from its bytes
    /// as they came; `false` when that cannot be told without decoding.
    ///
    /// A character of the decoded text comes from a byte as it came, or from
    /// a quoted-printable escape (`=` and two hex digits); a soft line break
    /// (`=`, maybe spaces, a line break) joins two lines. So when no escape
    /// stands for a byte of the word, the word is in the decoded text only
    /// if it is in the bytes with the soft line breaks taken out, and so too
    /// when the decoder gives up and the bytes are the text. That holds for
    /// a charset in which a byte below 128 is itself and no other byte is a
    /// byte below 128 (UTF-8, ASCII, ISO 8859, Windows-125x), for a word
    /// without `=` or white space.
    pub(crate) fn certainly_lacks(&self, word: &Search) -> bool {
        let body = &self.bytes[..self.body_len];
        if !self.ascii_compatible()
            || word.holds(b'=')
            || (0..=b' ').any(|b| word.holds(b))
            || memchr::memchr(b'\r', body).is_some()
        {
            return false;
        }
        match self.encoding {
            Encoding::None => !word.is_match_bytes(body),
            Encoding::QuotedPrintable => {
                let mut joined = Vec::with_capacity(body.len());
                let mut kept_from = 0;
                for eq in memchr::memchr_iter(b'=', body) {
                    let after = eq
                        + 1
                        + body[eq + 1..]
                            .iter()
                            .take_while(|b| matches!(b, b' ' | b'\t' | b'\x0c'))
                            .count();
                    match body.get(after) {
                        // A soft line break (or one cut off by the delimiter).
                        Some(b'\n') | None => {
                            joined.extend_from_slice(&body[kept_from..eq]);
                            kept_from = (after + 1).min(body.len());
                        }
                        Some(&h) => {
                            let l = body.get(after + 1).copied().unwrap_or(0);
                            if let (Some(h), Some(l)) = (hex(h), hex(l))
                                && word.holds(h << 4 | l)
                            {
                                return false;
                            }
                        }
                    }
                }
                joined.extend_from_slice(&body[kept_from..]);
                !word.is_match_bytes(&joined)
            }
            Encoding::Base64 => false,
        }
    }

    fn ascii_compatible(&self) -> bool {
        let Some(charset) = self.charset.as_deref() else {
            return true;
        };
        let c = charset.to_ascii_lowercase();
        ["utf-8", "utf8", "us-ascii", "ascii"].contains(&c.as_str())
            || ["iso-8859-", "iso8859-", "windows-125", "cp125"]
                .iter()
                .any(|p| c.starts_with(p))
            // An unknown charset is read as UTF-8.
            || charset_decoder(charset.as_bytes()).is_none()
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::Mail;

    const SUB: &str = "5c3ab9d1-1111-4a2b-9c3d-0123456789ab";
    const CAMP: &str = "0f0e0d0c-2222-4b3c-8d4e-abcdefabcdef";

    /// Messages made to meet each way the bodies could be misplaced.
    fn hostile() -> Vec<String> {
        let head = "From: MAILER-DAEMON@mx.example.org\nTo: news@sender.example\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n";
        vec![
            // Every encoding, charsets, soft line breaks in listmonk's header
            // names, a letter's escape, broken encodings, a part never closed.
            format!(
                "{head}Content-Type: multipart/mixed; boundary=\"OUT\"\n\n\
--OUT\nContent-Type: multipart/alternative; boundary=\"ALT\"\n\n\
--ALT\nContent-Type: text/plain\n\n<r@example.org>: user unknown\n\
--ALT\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
<p>X-List=\nmonk-Campaign: {CAMP}</p> caf=C3=A9 =3D soft =  \nbreak\n\
--ALT--\n\
--OUT\nContent-Type: text/html; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n\
<p>x-listmonk=2Dsubscriber: {SUB}</p> =E9t=E9\n\
--OUT\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
<i>X-List=\nmonk-Campaign: {CAMP}</i>\n\
--OUT\nContent-Type: text/html\n\n<b>as it came</b> X-LISTMONK-campaign: {CAMP} <meta content=\"text/html\">\n\
--OUT\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
bad =3D == escape x-listmonk-subscriber: {SUB}\n\
--OUT\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\nPGI+aGk8L2I+\n\
--OUT\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n!!not base64!!\n\
--OUT\nContent-Type: text/html; charset=iso-2022-jp\nContent-Transfer-Encoding: quoted-printable\n\n\
=1B$B$3$s$K$A$O=1B(B x-listmonk-\n\
--OUT\nContent-Type:\n text/html;\n charset=windows-1252\n\nfolded=\n\
--OUT  \nContent-Type: text/html\n\n--OUT\nContent-Type: text/html\n\nends without a line break--OUT\n\
X-Note: text/html\nContent-Type: text/plain\n\nnot html\n\
--OUT\nContent-Type: text/html\n\nnever closed <b>x-listmonk-</b>\n"
            ),
            // A boundary on a line of its own (Exchange): no boundary to
            // mail-parser, so the "parts" are one body.
            format!(
                "{head}Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\n\n\
--R\nContent-Type: multipart/alternative; differences=Content-Type;\nboundary=\"A\"\n\n\
--A\nContent-Type: text/plain\n\nDelivery has failed to r@example.org\n\
--A\nContent-Type: text/html; charset=us-ascii\nContent-Transfer-Encoding: quoted-printable\n\n<b>Delivery =\nhas failed</b>\n\
--A--\n\n--R\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n\
Final-Recipient: rfc822; r@example.org\nAction: failed\nStatus: 5.1.1\n\n--R--\n"
            ),
            // An original quoted in a text part, HTML parts and all: no parts
            // of the message, in a message that is one text and in one that
            // is a multipart.
            format!(
                "{head}Content-Type: text/plain\n\n<r@example.org>: user unknown\n\n--- copy\n\
Content-Type: multipart/alternative; boundary=\"Q\"\n\n--Q\nContent-Type: text/html\n\n<p>X-Listmonk-Campaign: {CAMP}</p>\n--Q--\n"
            ),
            format!(
                "{head}Content-Type: multipart/mixed; boundary=\"M\"\n\n--M\nContent-Type: text/plain\n\n\
<r@example.org>: user unknown\n\n--- copy\nContent-Type: multipart/alternative; boundary=\"Q\"\n\n\
--Q\nContent-Type: text/html\n\n<p>X-Listmonk-Campaign: {CAMP}</p>\n--Q--\n--M--\n"
            ),
            // A delimiter that is another's with more after it: mail-parser
            // reads `--abX` as the outer `--ab` and what follows, and ends
            // the HTML part at the `--ab` in its text, not at `--abX`.
            format!(
                "{head}Content-Type: multipart/mixed; boundary=\"ab\"\n\n\
--ab\nContent-Type: multipart/alternative; boundary=\"abX\"\n\n\
--abX\nContent-Type: text/plain\n\n<r@example.org>: user unknown\n--abX--\n\
--abX\nContent-Type: text/html\n\n<p>{}</p> --abY more\n--abX--\n--ab--\n",
                "a long body ".repeat(20)
            ),
            // A boundary that begins another; the original returned inline
            // and encoded, each with an alternative of its own.
            format!(
                "{head}Content-Type: multipart/report; boundary=\"ab\"\n\n\
--ab\nContent-Type: text/html\n\n<p>user unknown: r@example.org</p>\n\
--ab\nContent-Type: multipart/related; boundary=\"ab-inner\"\n\n\
--ab-inner\nContent-Type: text/html\n\n<img src=cid:x> --ab in the text\n--ab-inner--\n\
--ab\nContent-Type: message/rfc822\n\nTo: r@example.org\nX-Listmonk-Subscriber: {SUB}\n\
Content-Type: multipart/alternative; boundary=\"E\"\n\n--E\nContent-Type: text/plain\n\nnews\n\
--E\nContent-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n<p>ne=\nws</p>\n--E--\n\
--ab\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n{}\n--ab--\n",
                crate::tests::base64(
                    format!(
                        "To: r@example.org\nContent-Type: multipart/alternative; boundary=\"F\"\n\n\
--F\nContent-Type: text/html\n\n<p>X-Listmonk-Campaign: {CAMP}</p>\n--F--\n"
                    )
                    .as_bytes()
                )
            ),
        ]
    }

    /// Every message the test can reach: the fixtures, the hostile ones and,
    /// where `BOUNCEOPS_CORPUS` names it, the corpus; each also cut short.
    fn messages() -> Vec<Vec<u8>> {
        let mut files = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures"
        ))];
        if let Some(corpus) = std::env::var_os("BOUNCEOPS_CORPUS") {
            files.push(std::path::Path::new(&corpus).join("emails"));
        }
        let mut messages: Vec<Vec<u8>> = hostile().into_iter().map(String::into_bytes).collect();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "eml") {
                messages.push(std::fs::read(&path).unwrap());
            }
        }
        let whole = messages.len();
        for i in 0..whole {
            let m = crate::normalize_newlines(&messages[i]).into_owned();
            messages[i] = m.clone();
            messages.extend([m[..m.len() / 3].to_vec(), m[..m.len() * 2 / 3].to_vec()]);
        }
        messages
    }

    fn described(mail: &Mail) -> String {
        let mut out = format!(
            "{:?}\n{}\n{:?}\n{:?}\n{}\n",
            mail.headers, mail.subject, mail.report_type, mail.embedded, mail.skipped_alternative
        );
        for leaf in &mail.leaves {
            out += &format!(
                "-- {} {}\n{}\n{}\n",
                leaf.ctype,
                leaf.depth,
                leaf.source(),
                leaf.text()
            );
        }
        out
    }

    #[test]
    fn every_message_reads_the_same_with_its_html_bodies_left_out() {
        let words: Vec<Search> = ["x-listmonk-", "html", "user unknown", "caf\u{e9}"]
            .iter()
            .map(|w| Search::rare(&[w]))
            .collect();
        let mut left_out = 0;
        for raw in messages() {
            let shown = String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned();
            left_out += usize::from(Cuts::find(&raw).is_some());
            for all_alternatives in [false, true] {
                let later = Mail::parse_with(&raw, all_alternatives);
                let decoded = Mail::parse_decoded(&raw, all_alternatives);
                // A body said to lack a word lacks it: the source of HTML
                // not rendered yet (as the listmonk search asks, before any
                // leaf is read), the text once it is made.
                for leaf in &later.leaves {
                    let lacks: Vec<bool> = words.iter().map(|w| !leaf.may_contain(w)).collect();
                    let source = leaf.source();
                    let (kind, body) = source.split_once(": ").unwrap_or_default();
                    for (word, lacks) in words.iter().zip(lacks) {
                        if lacks {
                            let read = if kind == "html" { body } else { leaf.text() };
                            assert!(!word.is_match(read), "{source}");
                        }
                    }
                    for word in &words {
                        assert_eq!(leaf.may_contain(word), word.is_match(leaf.text()));
                    }
                }
                assert_eq!(described(&later), described(&decoded), "{shown}");
            }
            assert_eq!(
                crate::classify_with(&raw, Mail::parse_with),
                crate::classify_with(&raw, Mail::parse_decoded),
                "{shown}"
            );
        }
        assert!(
            left_out >= 8,
            "only {left_out} messages had HTML bodies left out"
        );
    }

    #[test]
    fn the_listmonk_ids_are_found_in_html_read_later() {
        let messages = hostile();
        let c = crate::classify(messages[0].as_bytes());
        assert_eq!(c.subscriber_uuid.as_deref(), Some(SUB));
        assert_eq!(c.campaign_uuid.as_deref(), Some(CAMP));
    }

    #[test]
    fn html_bodies_are_found_after_their_delimiter_only() {
        let m = hostile();
        let raw = m[0].as_bytes();
        let bodies = html_bodies(raw);
        let text = |b: &HtmlBody| String::from_utf8_lossy(&raw[b.bytes.clone()]).into_owned();
        assert!(text(&bodies[0]).starts_with("<p>X-List=\nmonk"));
        assert!(text(&bodies[0]).ends_with("break"));
        assert_eq!(bodies[0].boundary, b"ALT");
        assert!(
            bodies
                .iter()
                .any(|b| text(b) == "ends without a line break")
        );
        assert!(bodies.iter().all(|b| !text(b).contains("not html")));
        // Not closed: no delimiter after it.
        assert!(bodies.iter().all(|b| !text(b).contains("never closed")));
        // An undeclared boundary, and a quoted original in a text message.
        assert!(html_bodies(m[1].as_bytes()).is_empty());
        assert!(html_bodies(m[2].as_bytes()).is_empty());
    }
}
