//! Owns dropping the header fields of the message itself that no detector
//! reads (Received chains, DKIM and ARC signatures, authentication results)
//! before mail-parser parses the message: they are a quarter of a bounce's
//! bytes, and mail-parser reads every byte of every field, one at a time,
//! whether it keeps the field or not (about a seventh of a pass).
//!
//! Only what is certain to leave mail-parser's reading of the rest unchanged
//! is dropped: whole fields of the plain form `Name: value` with their
//! folded lines (each of mail-parser 0.11's field parsers, the skipping one
//! and those for Subject and Content-*, ends a field at a line break not
//! followed by a space or tab, as here), never the first field (a block that
//! kept none would no longer be a header block), and nothing from the first
//! line that is not such a field on. Embedded originals' header blocks are
//! left alone: finding them is parsing the MIME structure.

use crate::mime::READ_FIELDS;

/// `raw` without the unread fields of its header block, or `None` when it
/// has none (most of a message is its body: a copy only when it pays).
pub(crate) fn without_unread_fields(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    // Start of the bytes not yet copied to `out`, and of the current line.
    let mut kept_from = 0;
    let mut pos = 0;
    // Whether the field being read is dropped, once one has been read.
    let mut dropping: Option<bool> = None;
    let mut ended = false;
    while pos < raw.len() {
        let end = memchr::memchr(b'\n', &raw[pos..]).map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        let drop = match line[0] {
            // The blank line that ends the block.
            b'\n' => {
                ended = true;
                break;
            }
            b' ' | b'\t' => match dropping {
                Some(d) => d,
                None => break,
            },
            _ => match plain_field_name(line) {
                Some(name) => {
                    let drop = dropping.is_some() && !is_read(name) && !is_parsed(name);
                    dropping = Some(drop);
                    drop
                }
                None => break,
            },
        };
        if drop {
            let out = out.get_or_insert_with(|| Vec::with_capacity(raw.len()));
            out.extend_from_slice(&raw[kept_from..pos]);
            kept_from = end;
        }
        pos = end;
    }
    // A block cut off before its end (a truncated message) is no header
    // block to mail-parser: nothing to gain.
    if !ended && pos >= raw.len() {
        return None;
    }
    let mut out = out?;
    out.extend_from_slice(&raw[kept_from..]);
    Some(out)
}

/// The name of a line that opens a field as `Name:`: letters, digits and
/// hyphens up to the colon (mail-parser also reads names with spaces or
/// other bytes in them; those lines end the dropping).
fn plain_field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))?;
    (colon > 0 && line[colon] == b':').then(|| &line[..colon])
}

/// Fields read through mail-parser (`mime::PARSER`): the Subject and the
/// MIME fields.
fn is_parsed(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"subject")
        || name
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"content-"))
}

fn is_read(name: &[u8]) -> bool {
    // Lower-cased once, then compared whole: this runs on every field.
    let mut lower = [0u8; 32];
    let Some(lower) = lower.get_mut(..name.len()) else {
        return false;
    };
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    READ_FIELDS.iter().any(|f| f.as_bytes() == lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_fields_go_with_their_folded_lines() {
        let raw = b"From: a@b.c\nReceived: from x\n\tby y\nTo: r@x.org\nDKIM-Signature: v=1;\n b=abc\nSubject: hi\n  there\nX-Mailer: z\nContent-Type: text/plain\nX-Odd Name: kept\nReceived: kept after it\n\nReceived: body\n";
        let out = without_unread_fields(raw).expect("fields dropped");
        assert_eq!(
            out,
            b"From: a@b.c\nTo: r@x.org\nSubject: hi\n  there\nContent-Type: text/plain\nX-Odd Name: kept\nReceived: kept after it\n\nReceived: body\n"
        );
    }

    #[test]
    fn every_read_field_is_known_as_read() {
        for name in READ_FIELDS {
            assert!(is_read(name.to_ascii_uppercase().as_bytes()), "{name}");
        }
        assert!(!is_read(b"received"));
    }

    #[test]
    fn the_first_field_and_odd_lines_stay() {
        assert_eq!(
            without_unread_fields(b"Received: x\nFrom: a@b.c\n\nbody"),
            None
        );
        assert_eq!(
            without_unread_fields(b"From: a@b.c\nnot a field\nReceived: x\n\nbody"),
            None
        );
        assert_eq!(
            without_unread_fields(b" folded first\nReceived: x\n\n"),
            None
        );
        assert_eq!(without_unread_fields(b""), None);
    }
}
