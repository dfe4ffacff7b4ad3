//! The message as it passes through: where the sender's DATA ends, and the few headers the
//! relay reads (listmonk's ids and the Message-ID), apart from the network.
//!
//! The relay never unstuffs or re-stuffs the body: the bytes after the sender's `354` go to
//! the upstream as they came, dots and final `CRLF.CRLF` included, so what the upstream
//! receives is byte for byte what the sender wrote (a DKIM signature made before the relay
//! stays valid) and no transparency mistake can creep in. Only the end marker is looked for,
//! and only the header block is read.

use uuid::Uuid;

/// The most bytes of header block read to find listmonk's headers; a longer block is
/// passed through all the same, read as if it ended there.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Finds the end of DATA (`CRLF.CRLF`, RFC 5321 §4.1.1.4) in the wire bytes, chunk by
/// chunk. It starts as if a line had just ended: the `DATA` command's own CRLF counts, so
/// a message whose first line is a lone dot is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndScanner {
    state: u8,
}

impl Default for EndScanner {
    fn default() -> Self {
        EndScanner { state: 2 }
    }
}

impl EndScanner {
    /// The length of `chunk` up to and including the end marker, when it ends in it.
    pub fn scan(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < chunk.len() {
            // Mid-line only a CR can start the marker: skip to the next one (byte by byte,
            // this loop took 15% of the relay's CPU in bench/relay.sh).
            if self.state == 0 {
                i += memchr::memchr(b'\r', &chunk[i..])?;
            }
            // 0 mid-line, 1 after CR, 2 at a line start, 3 after a leading dot, 4 after ".\r"
            self.state = match (self.state, chunk[i]) {
                (4, b'\n') => return Some(i + 1),
                (3, b'\r') => 4,
                (_, b'\r') => 1,
                (1, b'\n') => 2,
                (2, b'.') => 3,
                _ => 0,
            };
            i += 1;
        }
        None
    }
}

/// What the relay reads in a message's header block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Headers {
    /// `X-Listmonk-Subscriber`.
    pub subscriber: Option<Uuid>,
    /// `X-Listmonk-Campaign`.
    pub campaign: Option<Uuid>,
    /// `Message-ID`, without its angle brackets.
    pub message_id: Option<String>,
}

/// The end of the header block in `wire` (the blank line's end, or the end marker), when it
/// is there yet.
pub fn header_end(wire: &[u8]) -> Option<usize> {
    if wire.starts_with(b"\r\n") {
        return Some(2);
    }
    if let Some(i) = wire.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(i + 4);
    }
    EndScanner::default().scan(wire)
}

/// The headers of a header block as it came on the wire (a line starting with a dot has
/// one more, RFC 5321 §4.5.2). Folded lines are unfolded; values that do not parse are
/// absent, never guessed at.
pub fn headers(wire: &[u8]) -> Headers {
    // The header block only: what follows may be the whole body.
    let wire = match memchr::memmem::find(wire, b"\r\n\r\n") {
        Some(i) => &wire[..i + 2],
        None => wire,
    };
    let text = String::from_utf8_lossy(wire);
    let mut fields: Vec<String> = Vec::new();
    for line in text.split("\r\n") {
        if line.is_empty() {
            break;
        }
        let line = line.strip_prefix('.').unwrap_or(line);
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => fields.push(line.to_owned()),
        }
    }
    let mut h = Headers::default();
    for field in &fields {
        let Some((name, value)) = field.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let name = name.trim();
        if name.eq_ignore_ascii_case("X-Listmonk-Subscriber") {
            h.subscriber = h.subscriber.or(Uuid::parse_str(value).ok());
        } else if name.eq_ignore_ascii_case("X-Listmonk-Campaign") {
            h.campaign = h.campaign.or(Uuid::parse_str(value).ok());
        } else if name.eq_ignore_ascii_case("Message-ID") && h.message_id.is_none() {
            let id = value.trim_start_matches('<').trim_end_matches('>').trim();
            if !id.is_empty() && id.len() <= 998 {
                h.message_id = Some(id.to_owned());
            }
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_in_chunks(wire: &[u8], size: usize) -> Option<usize> {
        let mut s = EndScanner::default();
        let mut seen = 0;
        for chunk in wire.chunks(size) {
            if let Some(n) = s.scan(chunk) {
                return Some(seen + n);
            }
            seen += chunk.len();
        }
        None
    }

    #[test]
    fn the_end_marker_is_found_across_any_chunking() {
        let wire = b"Subject: x\r\n\r\n..stuffed\r\n.\r\nMAIL FROM:<a@b>\r\n";
        let end = wire.len() - b"MAIL FROM:<a@b>\r\n".len();
        for size in 1..wire.len() {
            assert_eq!(end_in_chunks(wire, size), Some(end), "chunks of {size}");
        }
        assert_eq!(end_in_chunks(b".\r\n", 1), Some(3), "an empty message");
        assert_eq!(
            end_in_chunks(b"a\n.\nb\r\n.\r\n", 2),
            Some(10),
            "bare LF ends nothing"
        );
        assert_eq!(end_in_chunks(b"a\r\n.x\r\n", 3), None);
        assert_eq!(end_in_chunks(b"a\r\n..\r\n", 3), None, "a stuffed lone dot");
    }

    #[test]
    fn listmonk_headers_and_the_message_id_are_read() {
        let s = "6c1a6d1e-2b8e-4c3c-9a53-6a2a4f0f9e11";
        let c = "0f7f4c39-2d0c-4d5e-8a43-2c0b1f2e3d4c";
        let wire = format!(
            "From: a@b\r\nx-listmonk-subscriber: {s}\r\nX-Listmonk-Campaign:\r\n {c}\r\n\
             Message-Id: <abc@example.com>\r\n\r\nX-Listmonk-Subscriber: nope\r\n"
        );
        let h = headers(wire.as_bytes());
        assert_eq!(h.subscriber, Some(Uuid::parse_str(s).unwrap()));
        assert_eq!(h.campaign, Some(Uuid::parse_str(c).unwrap()), "folded");
        assert_eq!(h.message_id.as_deref(), Some("abc@example.com"));
        let bad = headers(b"X-Listmonk-Subscriber: not-a-uuid\r\n\r\n");
        assert_eq!(bad, Headers::default());
        assert_eq!(
            header_end(wire.as_bytes()),
            wire.find("\r\n\r\n").map(|i| i + 4)
        );
        assert_eq!(header_end(b"Subject: x\r\n.\r\n"), Some(15));
        assert_eq!(header_end(b"Subject: x\r\n"), None);
    }
}
