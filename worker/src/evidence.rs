//! The evidence kept with a bounce (issue 13, point 5): the bounce mail a mailbox received,
//! or the provider's own JSON event, so that an operator can read what caused a blocklisting
//! (`GET /api/bounces/{id}/message`).
//!
//! Kept gzip-compressed and bounded by `spec.evidence.maxBytes` (the first bytes are kept
//! and the rest is marked as cut), for `spec.evidence.keepDays`; `store::evidence` stores,
//! serves and purges it.
//!
//! Inputs hand over their original in one of two states. The mailbox scanner compresses
//! each message on the blocking pool where it classifies it (a message can be megabytes),
//! so its events arrive [`Evidence::Kept`]. Provider and generic-webhook events are parsed
//! where no configuration is at hand, so they carry their JSON [`Evidence::Original`], and
//! `Ingest::record`, the one door of every event, keeps it by the policy.

use std::io::{Read, Write};

use bounceops_api::EvidenceSpec;
use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// What the kept bytes are, which decides how they are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole mail (a DSN, an ARF report), as the mailbox held it.
    Message,
    /// The JSON event a provider (or a generic-webhook client) sent.
    Json,
}

impl Kind {
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Message => "message/rfc822",
            Kind::Json => "application/json",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Kind::Message => "eml",
            Kind::Json => "json",
        }
    }

    pub fn from_content_type(s: &str) -> Option<Kind> {
        match s {
            "message/rfc822" => Some(Kind::Message),
            "application/json" => Some(Kind::Json),
            _ => None,
        }
    }
}

/// What an event carries of its origin.
#[derive(Clone, PartialEq)]
pub enum Evidence {
    /// As received, not yet bounded nor compressed.
    Original { kind: Kind, bytes: Bytes },
    /// Bounded and compressed, ready to store.
    Kept(Kept),
}

impl Evidence {
    /// A provider's JSON event as it came, before anything is added to it.
    pub fn json(value: &serde_json::Value) -> Evidence {
        Evidence::Original {
            kind: Kind::Json,
            // Serialising a `Value` cannot fail (its map keys are strings).
            bytes: serde_json::to_vec(value).unwrap_or_default().into(),
        }
    }

    /// Bytes as received (a request body that is itself the event).
    pub fn json_bytes(bytes: Bytes) -> Evidence {
        Evidence::Original {
            kind: Kind::Json,
            bytes,
        }
    }
}

// By hand: a derived `Debug` would print every byte of a message into logs and test failures.
impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evidence::Original { kind, bytes } => f
                .debug_struct("Original")
                .field("kind", kind)
                .field("bytes", &bytes.len())
                .finish(),
            Evidence::Kept(k) => k.fmt(f),
        }
    }
}

/// A kept original: the gzip of its first bytes (all of them unless `truncated`).
#[derive(Clone, PartialEq)]
pub struct Kept {
    pub kind: Kind,
    pub gzip: Bytes,
    /// The size of the whole original, also when only its first bytes are kept.
    pub original_bytes: u64,
    pub truncated: bool,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("kind", &self.kind)
            .field("gzip", &self.gzip.len())
            .field("original_bytes", &self.original_bytes)
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// `spec.evidence`, as the worker applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Days an original is kept; 0 keeps none.
    pub keep_days: u32,
    /// Most bytes of one original kept.
    pub max_bytes: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from(&EvidenceSpec::default())
    }
}

impl From<&EvidenceSpec> for Policy {
    fn from(spec: &EvidenceSpec) -> Self {
        Policy {
            keep_days: spec.keep_days,
            max_bytes: spec.max_bytes,
        }
    }
}

/// Originals up to this size are compressed where they arrive, even on the async threads:
/// that takes microseconds. Larger ones go to the blocking pool.
pub const INLINE_BYTES: usize = 64 << 10;

impl Policy {
    pub fn keeps(&self) -> bool {
        self.keep_days > 0
    }

    /// The kept form of `original`, or `None` when nothing is kept. CPU-bound: a large
    /// original belongs on the blocking pool.
    pub fn keep(&self, kind: Kind, original: &[u8]) -> Option<Kept> {
        if !self.keeps() {
            return None;
        }
        let limit = usize::try_from(self.max_bytes).unwrap_or(usize::MAX);
        let truncated = original.len() > limit;
        let head = &original[..original.len().min(limit)];
        Some(Kept {
            kind,
            gzip: gzip(head).into(),
            original_bytes: original.len() as u64,
            truncated,
        })
    }

    /// `evidence` in the state the store takes: an original kept (or dropped) by this
    /// policy; one already kept stays as it is.
    pub fn seal(&self, evidence: Option<Evidence>) -> Option<Evidence> {
        match evidence? {
            Evidence::Original { kind, bytes } => self.keep(kind, &bytes).map(Evidence::Kept),
            kept @ Evidence::Kept(_) => self.keeps().then_some(kept),
        }
    }
}

/// Originals shorter than this are kept in a stored deflate block, uncompressed inside their
/// gzip frame. Deflate saves little there (the providers' events of the tests: 6-16% below
/// 256 bytes, 18-48% above; a listmonk webhook body of 60 bytes comes out 20 bytes larger),
/// while building its compressor zeroes some 300 KB of tables, whatever the input: that
/// was a fifth of the worker's CPU at the ingest benchmark's peak (BENCHMARKS.md, issue 24).
const DEFLATE_FROM: usize = 256;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    if bytes.len() < DEFLATE_FROM {
        return gzip_stored(bytes);
    }
    // Level 6 (the default) gets most of what gzip can from text; higher levels cost
    // several times the CPU for a few percent.
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3 + 64),
        Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// `bytes` (fewer than 65,536) as one gzip member (RFC 1952) holding one stored deflate block
/// (RFC 1951, 3.2.4). By hand: flate2 builds its whole compressor also at level 0.
fn gzip_stored(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("a stored block holds fewer than 65,536 bytes");
    let mut out = Vec::with_capacity(bytes.len() + 23);
    // ID1 ID2, deflate, no flags, no modification time, no extra flags, OS unknown: what
    // flate2's GzEncoder writes.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    out.push(1); // the final block, stored
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
    out.extend_from_slice(&u32::from(len).to_le_bytes());
    out
}

/// Why stored evidence cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Damaged {
    #[error("the kept message does not decompress: {0}")]
    Corrupt(String),
    #[error("the kept message decompresses to {got} bytes where {expected} were kept")]
    WrongSize { got: u64, expected: String },
}

/// The kept bytes of stored evidence. `original_bytes` and `truncated` are what was stored
/// with them: they bound the output (a damaged row cannot inflate without end) and check
/// it.
pub fn unpack(gzip: &[u8], original_bytes: u64, truncated: bool) -> Result<Vec<u8>, Damaged> {
    let mut out = Vec::new();
    GzDecoder::new(gzip)
        .take(original_bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Damaged::Corrupt(e.to_string()))?;
    let got = out.len() as u64;
    match truncated {
        false if got != original_bytes => Err(Damaged::WrongSize {
            got,
            expected: original_bytes.to_string(),
        }),
        true if got >= original_bytes => Err(Damaged::WrongSize {
            got,
            expected: format!("fewer than {original_bytes}"),
        }),
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(keep_days: u32, max_bytes: u64) -> Policy {
        Policy {
            keep_days,
            max_bytes,
        }
    }

    #[test]
    fn a_message_round_trips_byte_for_byte() {
        let message = b"From: MAILER-DAEMON\r\nSubject: failure\r\n\r\n".repeat(200);
        let kept = policy(30, 1 << 20).keep(Kind::Message, &message).unwrap();
        assert!(!kept.truncated);
        assert_eq!(kept.original_bytes, message.len() as u64);
        assert!(kept.gzip.len() < message.len() / 10, "compressed");
        assert_eq!(
            unpack(&kept.gzip, kept.original_bytes, false).unwrap(),
            message
        );
    }

    #[test]
    fn originals_either_side_of_the_deflate_bound_round_trip() {
        for len in [1, 60, DEFLATE_FROM - 1, DEFLATE_FROM, 4 * DEFLATE_FROM] {
            let original: Vec<u8> = br#"{"email":"user@example.com","type":"soft"}"#
                .iter()
                .copied()
                .cycle()
                .take(len)
                .collect();
            let kept = policy(30, 1 << 20).keep(Kind::Json, &original).unwrap();
            assert_eq!(kept.gzip[..3], [0x1f, 0x8b, 8], "a gzip member");
            assert_eq!(
                unpack(&kept.gzip, len as u64, false).unwrap(),
                original,
                "{len}"
            );
            if len < DEFLATE_FROM {
                assert_eq!(kept.gzip.len(), len + 23, "stored: {len}");
            } else {
                assert!(kept.gzip.len() < len, "deflated: {len}");
            }
        }
    }

    #[test]
    fn a_stored_member_is_the_bytes_rfc_1952_gives() {
        // Header (deflate, no flags, no time, OS unknown), a final stored block of length 0
        // (LEN 0000, NLEN ffff), CRC-32 of nothing, ISIZE 0.
        let empty = "1f8b08000000000000ff010000ffff0000000000000000";
        assert_eq!(hex::encode(gzip_stored(b"")), empty);
        // "abc": LEN 3 (0300), NLEN fcff, the bytes, CRC-32 0x352441c2 little-endian.
        assert_eq!(
            hex::encode(gzip_stored(b"abc")),
            "1f8b08000000000000ff010300fcff616263c241243503000000"
        );
    }

    #[test]
    fn a_damaged_stored_member_is_refused() {
        let mut kept = gzip_stored(b"a listmonk webhook body");
        let at = kept.len() - 12; // a byte of the body: the CRC no longer matches
        kept[at] ^= 1;
        assert!(matches!(unpack(&kept, 23, false), Err(Damaged::Corrupt(_))));
    }

    #[test]
    fn an_empty_original_round_trips() {
        let kept = policy(1, 1024).keep(Kind::Json, b"").unwrap();
        assert_eq!(unpack(&kept.gzip, 0, false).unwrap(), b"");
    }

    #[test]
    fn past_max_bytes_the_first_bytes_are_kept() {
        let original: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let at_bound = policy(30, 5000).keep(Kind::Message, &original).unwrap();
        assert!(!at_bound.truncated, "exactly maxBytes is kept whole");
        let kept = policy(30, 4096).keep(Kind::Message, &original).unwrap();
        assert!(kept.truncated);
        assert_eq!(kept.original_bytes, 5000);
        assert_eq!(
            unpack(&kept.gzip, kept.original_bytes, true).unwrap(),
            &original[..4096]
        );
    }

    #[test]
    fn keep_days_zero_keeps_nothing() {
        let none = policy(0, 1 << 20);
        assert_eq!(none.keep(Kind::Message, b"x"), None);
        let kept = policy(30, 1 << 20).keep(Kind::Json, b"{}").unwrap();
        assert_eq!(none.seal(Some(Evidence::Kept(kept))), None);
        assert_eq!(
            none.seal(Some(Evidence::json(&serde_json::json!({})))),
            None
        );
    }

    #[test]
    fn seal_keeps_originals_and_leaves_kept_ones() {
        let p = policy(30, 1 << 20);
        let Some(Evidence::Kept(k)) = p.seal(Some(Evidence::json(&serde_json::json!({"a": 1}))))
        else {
            panic!("kept");
        };
        assert_eq!(k.kind, Kind::Json);
        assert_eq!(
            unpack(&k.gzip, k.original_bytes, false).unwrap(),
            br#"{"a":1}"#
        );
        let again = p.seal(Some(Evidence::Kept(k.clone())));
        assert_eq!(again, Some(Evidence::Kept(k)));
        assert_eq!(p.seal(None), None);
    }

    #[test]
    fn damaged_rows_are_errors_not_panics() {
        assert!(matches!(
            unpack(b"not gzip", 3, false),
            Err(Damaged::Corrupt(_))
        ));
        let kept = policy(30, 1 << 20).keep(Kind::Message, b"hello").unwrap();
        let mut cut = kept.gzip.to_vec();
        cut.truncate(cut.len() - 4);
        assert!(unpack(&cut, 5, false).is_err(), "a cut stream");
        assert_eq!(
            unpack(&kept.gzip, 4, false),
            Err(Damaged::WrongSize {
                got: 5,
                expected: "4".into()
            }),
            "a size that disagrees (the output is bounded by it)"
        );
        assert!(unpack(&kept.gzip, 5, true).is_err(), "truncated but whole");
    }

    #[test]
    fn debug_prints_sizes_not_bytes() {
        let e = Evidence::json_bytes(Bytes::from(vec![b'x'; 10_000]));
        let printed = format!("{e:?}");
        assert!(printed.len() < 100, "{printed}");
    }
}
