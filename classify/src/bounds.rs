//! Owns the bound on what of a message mail-parser is handed. It builds a
//! tree of every MIME part before the classifier reads any, and drops it by
//! recursion: a 10 MiB message of 1.5 million empty parts took about 500 MB to
//! classify, and 350,000 messages embedded in each other 574 MB and then a
//! stack overflow (an abort, not a panic: the worker process ended) as the
//! tree was dropped; 60,000 of them sent base64-encoded, in 2.4 MB,
//! overflowed the stack inside mail-parser. A real report has a few parts
//! (the corpus's most: 82 blank lines in a message).
//!
//! Every part mail-parser makes, and every level of embedding, has a header
//! block of its own, which ends at a blank line. So the message is cut at
//! the blank line past [`MAX_BLANK_LINES`]: what follows is never read (a
//! report's own parts come first, and the returned message's headers before
//! its body). An embedded message sent encoded (which mail-parser decodes
//! and parses, three levels deep) is decoded here as mail-parser would, and
//! its blank lines count toward the same bound; when they pass it, the
//! message is cut before that part.

use crate::header_lines::{block_start, field_start, field_value, lines, named};
use mail_parser::parsers::MessageStream;

/// Most blank lines (`\n\n`, overlapping: three line breaks are two) of a
/// message that mail-parser may read, its embedded messages sent encoded
/// included.
const MAX_BLANK_LINES: usize = 4096;
/// mail-parser 0.11 decodes an embedded message sent encoded, and one inside
/// that, three levels deep (its `MAX_NESTED_ENCODED`).
const ENCODED_LEVELS: usize = 3;
/// Messages up to this size are read whole, as they come: each level of
/// embedding takes at least 30 bytes (a Content-Type naming a message, a
/// blank line) and each part 7, so one holds at most some 2,000 levels
/// (a tenth of what a 2 MiB stack takes) and 9,000 parts (a few MB), even
/// sent encoded; and real reports are smaller (the corpus's largest is 73
/// KB, most a few KB), so they are not searched at all.
const READ_WHOLE: usize = 64 << 10;

/// The part of `raw` (LF line ends) that mail-parser may read: all of it,
/// unless it passes the bound, then up to where it does.
pub(crate) fn bounded(raw: &[u8]) -> &[u8] {
    if raw.len() <= READ_WHOLE {
        return raw;
    }
    let mut budget = MAX_BLANK_LINES;
    &raw[..allowed(raw, ENCODED_LEVELS, &mut budget)]
}

/// How many bytes of `raw` are within `budget` blank lines, those of the
/// embedded messages sent encoded `levels` deep included; takes what it
/// counts from `budget`.
fn allowed(raw: &[u8], levels: usize, budget: &mut usize) -> usize {
    let (blank, end) = blank_lines(raw, *budget);
    *budget -= blank.len();
    if levels == 0 {
        return end;
    }
    let encoded = encoded_messages(&raw[..end], &blank);
    // Quoted-printable decodes byte by byte, so one decoding from the first
    // such part's body to the end holds every such part's decoding (and
    // counts a part's body once, whatever header blocks it seems to hold).
    if let Some(first) = encoded.iter().find(|p| !p.base64) {
        let decoded = quoted_printable(&raw[first.body..end]);
        if allowed(&decoded, levels - 1, budget) < decoded.len() {
            return first.block;
        }
    }
    // Base64 ends at the first `--` (any delimiter holds one; any other `-`
    // is no base64), and a body with a `:` is none either (its decoder gives
    // up, and mail-parser keeps the body as text): no two overlap.
    for part in encoded.iter().filter(|p| p.base64) {
        let body = &raw[part.body..end];
        let body = &body[..memchr::memmem::find(body, b"--").unwrap_or(body.len())];
        let (stop, decoded) = MessageStream::new(body).decode_base64_mime(b"");
        if stop != usize::MAX && allowed(&decoded, levels - 1, budget) < decoded.len() {
            return part.block;
        }
    }
    end
}

/// `text` decoded as quoted-printable by mail-parser's decoder, a piece at a
/// time from each `--` to the next (a part's body ends at one), leaving out
/// the pieces it gives up on. Decoded whole, one bad escape anywhere after
/// the part (a base64 pad, `==`) would lose it all. Piece by piece, the
/// decoder's state is the same as in the whole body from each piece's first
/// byte on, so a body loses a piece only where mail-parser gives up on the
/// whole body (and keeps it as text, not a message).
fn quoted_printable(text: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(text.len());
    let mut from = 0;
    while from < text.len() {
        let to =
            memchr::memmem::find(&text[from + 1..], b"--").map_or(text.len(), |i| from + 1 + i);
        let (stop, piece) = MessageStream::new(&text[from..to]).decode_quoted_printable_mime(b"");
        if stop != usize::MAX {
            decoded.extend_from_slice(&piece);
        }
        from = to;
    }
    decoded
}

/// Where the first `allowed` blank lines of `raw` are (each one's line
/// break), and where `raw` is cut: at the next one, or its end.
fn blank_lines(raw: &[u8], allowed: usize) -> (Vec<usize>, usize) {
    let mut blank = Vec::new();
    let mut from = 0;
    // A line break then another: memmem skips the text between (most lines
    // are not blank).
    while let Some(at) = memchr::memmem::find(&raw[from..], b"\n\n").map(|i| from + i) {
        let mut line = at + 1;
        while raw.get(line) == Some(&b'\n') {
            if blank.len() == allowed {
                return (blank, line);
            }
            blank.push(line);
            line += 1;
        }
        from = line;
    }
    (blank, raw.len())
}

/// A part whose body mail-parser may decode and parse as a message.
struct EncodedMessage {
    /// Where its header block starts (where the message is cut for it).
    block: usize,
    body: usize,
    base64: bool,
}

/// The parts of `raw` sent base64 or quoted-printable whose header block
/// names a message type, or names none under a digest (a digest's parts are
/// messages by default). Found from the encodings' names back to their
/// field; types are read by mail-parser's own parser. A block that names a
/// type or an encoding twice is taken at its worst: each encoding named is
/// checked. `blank`: where the blank lines of `raw` are.
fn encoded_messages(raw: &[u8], blank: &[usize]) -> Vec<EncodedMessage> {
    // The encodings' names (any case) found by a byte of each that is rare
    // in text, `q` and the `6` of `64`: searching for the words themselves
    // ignoring case costs as much as the rest of the classifier.
    let hits = memchr::memchr3_iter(b'q', b'Q', b'6', raw).filter(|&i| match raw[i] {
        b'6' => i >= 4 && named(&raw[i - 4..], b"base64"),
        _ => named(&raw[i..], b"quoted-printable"),
    });
    // Whether a part with no type of its own is a digest's (then a message),
    // found when first asked.
    let digest = std::cell::OnceCell::new();
    let is_digest = || {
        *digest.get_or_init(|| {
            let mut last = None;
            memchr::memchr_iter(b'/', raw).any(|i| {
                named(&raw[i + 1..], b"digest")
                    && field_start(raw, i, &mut last).is_some_and(|f| {
                        named(&raw[f..], b"content-type")
                            && media_type(raw, f).1 == "multipart/digest"
                    })
            })
        })
    };
    let mut last = None;
    let mut found = Vec::new();
    // Blocks do not overlap and are met in order: each line is read once.
    let mut done = 0;
    for at in hits {
        if at < done {
            continue;
        }
        let Some(field) = field_start(raw, at, &mut last)
            .filter(|&f| named(&raw[f..], b"content-transfer-encoding"))
        else {
            continue;
        };
        if encoding(raw, field).is_none() {
            continue;
        }
        let Some(&blank_line) = blank.get(blank.partition_point(|&b| b < field)) else {
            continue;
        };
        let body = blank_line + 1;
        let block = block_start(raw, field, done);
        let (mut types, mut encodings) = (Vec::new(), Vec::new());
        for line in lines(raw, block, body) {
            if named(&raw[line..], b"content-type") {
                types.push(media_type(raw, line).0);
            } else if named(&raw[line..], b"content-transfer-encoding") {
                encodings.extend(encoding(raw, line));
            }
        }
        let message = if types.is_empty() {
            is_digest()
        } else {
            types.iter().any(|t| t == "message")
        };
        if message {
            for base64 in [true, false].into_iter().filter(|e| encodings.contains(e)) {
                found.push(EncodedMessage {
                    block,
                    body,
                    base64,
                });
            }
        }
        done = body;
    }
    found
}

/// A Content-Type field's type (`message`) and type/subtype, as mail-parser
/// reads the field starting at `at`.
fn media_type(raw: &[u8], at: usize) -> (String, String) {
    let value = field_value(raw, at);
    match MessageStream::new(value)
        .parse_content_type()
        .as_content_type()
    {
        Some(ct) => (
            ct.ctype().to_string(),
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()),
        ),
        None => Default::default(),
    }
}

/// Whether the Content-Transfer-Encoding field at `at` says base64
/// (`Some(true)`), quoted-printable (`Some(false)`) or neither.
fn encoding(raw: &[u8], at: usize) -> Option<bool> {
    let value = field_value(raw, at).trim_ascii();
    if named(value, b"base64") {
        Some(true)
    } else if named(value, b"quoted-printable") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::base64;

    const HEAD: &str = "From: MAILER-DAEMON@mx.example.org\nTo: news@sender.example\nSubject: Undelivered Mail\nMIME-Version: 1.0\n";

    fn blank_lines(text: &[u8]) -> usize {
        text.windows(2).filter(|w| w == b"\n\n").count()
    }

    /// Lines of text, no blank one, enough for a message past `READ_WHOLE`.
    fn filler() -> String {
        "a line of the report, long enough to fill it up\n".repeat(READ_WHOLE / 40)
    }

    #[test]
    fn a_message_is_cut_at_the_blank_line_past_the_bound() {
        let raw = format!(
            "{HEAD}\n{}{}",
            filler(),
            "x\n\n".repeat(MAX_BLANK_LINES + 10)
        );
        let kept = bounded(raw.as_bytes());
        assert_eq!(blank_lines(kept), MAX_BLANK_LINES);
        assert!(kept.len() < raw.len());
        // Runs of line breaks count each blank line they hold.
        let raw = format!("{HEAD}\n{}{}x", filler(), "\n".repeat(MAX_BLANK_LINES + 5));
        assert_eq!(blank_lines(bounded(raw.as_bytes())), MAX_BLANK_LINES);
        let small = format!(
            "{HEAD}\n{}{}",
            filler(),
            "x\n\n".repeat(MAX_BLANK_LINES - 2)
        );
        assert_eq!(bounded(small.as_bytes()), small.as_bytes());
        // A message up to `READ_WHOLE` is read whole, whatever it holds.
        let small = format!("{HEAD}\n{}", "\n".repeat(READ_WHOLE - 200));
        assert_eq!(bounded(small.as_bytes()), small.as_bytes());
    }

    fn with_original(headers: &str, body: &str) -> String {
        format!(
            "{HEAD}Content-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\n{}report\n\
--B\n{headers}\n\n{body}\n--B--\n",
            filler()
        )
    }

    #[test]
    fn an_encoded_message_past_the_bound_is_cut_off_with_what_follows() {
        let nested = format!(
            "To: r@example.org\n{}x\n",
            "Content-Type: message/rfc822\n\n".repeat(5000)
        );
        let cut = |raw: &str| String::from_utf8_lossy(bounded(raw.as_bytes())).into_owned();
        let b64 = "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64";
        assert!(cut(&with_original(b64, &base64(nested.as_bytes()))).ends_with("report\n--B\n"));
        // In any case and order of fields, folded, under a digest without a
        // type of its own; quoted-printable with its line breaks escaped (no
        // blank line left for the message's own count).
        // (A part after it with a base64 pad, `==`, which the decoder gives
        // up on, does not hide it.)
        let qp = format!(
            "{}\n--B\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\nYQ==",
            nested.replace('\n', "=0A")
        );
        for headers in [
            "content-transfer-encoding: Quoted-Printable\nCONTENT-TYPE:\n Message/RFC822",
            "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\
Content-Transfer-Encoding: quoted-printable",
            "Content-Transfer-Encoding: quoted-printable",
        ] {
            let raw = with_original(headers, &qp);
            let raw = if headers.to_lowercase().contains("type") {
                raw
            } else {
                raw.replace("multipart/mixed", "multipart/digest")
            };
            assert!(cut(&raw).ends_with("report\n--B\n"), "{headers}");
        }
        // A small one stays; so does a base64 body that is no message.
        let small = with_original(b64, &base64(b"To: r@example.org\n\nhi\n"));
        assert_eq!(bounded(small.as_bytes()), small.as_bytes());
        let image = with_original(
            "Content-Type: image/png\nContent-Transfer-Encoding: base64",
            &base64(nested.as_bytes()),
        );
        assert_eq!(bounded(image.as_bytes()), image.as_bytes());
    }

    #[test]
    fn header_blocks_that_seem_to_be_inside_a_body_are_counted_once() {
        // A quoted-printable original whose text holds many header blocks of
        // its own, each a few levels deep: all of it is one decoding, so the
        // levels add up past the bound.
        let piece = format!(
            "Content-Type: message/rfc822\nContent-Transfer-Encoding: quoted-printable\n\n{}",
            "Content-Type: message/rfc822=0A=0A".repeat(3)
        );
        let body = format!("{}\n", piece.repeat(MAX_BLANK_LINES / 3));
        let raw = with_original(
            "Content-Type: message/rfc822\nContent-Transfer-Encoding: quoted-printable",
            &body,
        );
        assert!(bounded(raw.as_bytes()).len() < raw.find(&piece).unwrap());
    }

    /// Each aborted the process (a stack overflow) or took hundreds of
    /// megabytes before the bound; classified now on a thread with the 2 MiB
    /// stack of tokio's blocking threads, where the worker classifies.
    #[test]
    fn hostile_structures_are_classified_on_a_small_stack() {
        let nested = |n: usize| {
            format!(
                "To: r@example.org\n{}x\n",
                "Content-Type: message/rfc822\n\n".repeat(n)
            )
        };
        let messages = [
            format!("{HEAD}{}", nested(100_000)),
            with_original(
                "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64",
                &base64(nested(60_000).as_bytes()),
            ),
            format!(
                "{HEAD}Content-Type: multipart/mixed; boundary=\"B\"\n\n{}--B--\n",
                "--B\n\nx\n".repeat(1_000_000)
            ),
        ];
        for raw in messages {
            // Without the bound, a stack overflow aborts this test's process.
            let found = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || crate::classify(raw.as_bytes()).recipients)
                .unwrap()
                .join()
                .expect("classified");
            assert!(found.is_empty(), "{found:?}");
        }
    }
}
