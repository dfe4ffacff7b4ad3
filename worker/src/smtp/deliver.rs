//! One received message to the database: classified off the async threads, recorded
//! through `Ingest` (the one write path), and the reply that follows the commit.

use super::events;
use super::memory::{Held, MessageMemory};
use super::recipients::Recipient;
use crate::evidence::{Kind as EvidenceKind, Policy};
use crate::ingest::{Ingest, IngestError};
use crate::mailbox::scan::{classify_guarded, kind_label};
use sha2::{Digest, Sha256};

/// What became of a message, and the reply it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The `outcome` label of `bounceops_smtp_messages_total`.
    pub outcome: &'static str,
    pub code: u16,
    pub text: String,
}

/// Classifies `raw` for `recipients` and records its bounces; `250` only once they are
/// committed.
///
/// `room` is what `raw` takes of the MX's budget: given back with it, once classified.
pub async fn deliver(
    ingest: &Ingest,
    memory: &MessageMemory,
    raw: Vec<u8>,
    room: Held,
    recipients: Vec<Recipient>,
) -> Delivered {
    let policy: Policy = ingest.evidence();
    let permit = memory.classify(raw.len()).await;
    // Seconds of CPU for a large message: on the async threads it would stall every other
    // session and the HTTP server (the mailbox scanner does the same).
    let classified = tokio::task::spawn_blocking(move || {
        let _room = room;
        let c = classify_guarded(&raw)?;
        let digest: String = Sha256::digest(&raw)
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let kept = events::recorded(&c)
            .then(|| policy.keep(EvidenceKind::Message, &raw))
            .flatten();
        let events = events::events(&c, &recipients, &digest, kept.as_ref());
        Some((
            kind_label(&c.kind),
            c.too_many_recipients.then_some(digest),
            events,
        ))
    })
    .await;
    // Not held through the commit: group commit needs many messages waiting on it at once.
    drop(permit);
    let (kind, too_many, events) = match classified {
        Ok(Some(x)) => x,
        // Retrying would fail the same way: accepted and logged, as a mailbox leaves such
        // a message for a human.
        Ok(None) | Err(_) => {
            crate::error_throttled!(
                "the classifier failed on a received message; accepted, not recorded"
            );
            return Delivered {
                outcome: "not_bounce",
                code: 250,
                text: "2.0.0 Accepted, not readable as a bounce".into(),
            };
        }
    };
    if let Some(digest) = too_many {
        // Made to blocklist a list wholesale, or no report at all (`MAX_RECIPIENTS`). Refused
        // rather than accepted and dropped: a real sender's postmaster then hears of it.
        crate::warn_throttled!(
            message_sha256 = %digest,
            max_recipients = bounce_classify::MAX_RECIPIENTS,
            "a received report names more than max_recipients recipients; refused, nothing recorded"
        );
        return Delivered {
            outcome: "too_many_recipients",
            code: 550,
            text: format!(
                "5.7.0 The report names more than {} recipients; not recorded",
                bounce_classify::MAX_RECIPIENTS
            ),
        };
    }
    if events.is_empty() {
        return Delivered {
            outcome: "not_bounce",
            code: 250,
            text: format!("2.0.0 Accepted, not a bounce ({kind})"),
        };
    }
    let count = events.len();
    match ingest.record(events).await {
        Ok(_) => Delivered {
            outcome: "recorded",
            code: 250,
            text: format!("2.0.0 Recorded {count} bounce(s)"),
        },
        Err(e) => {
            crate::warn_throttled!(error = %e, "not recorded; answered 451 so the sender retries");
            let text = match e {
                IngestError::Closed => "4.3.0 Shutting down, try again later",
                _ => "4.3.0 Database unavailable, try again later",
            };
            Delivered {
                outcome: "temporary_failure",
                code: 451,
                text: text.into(),
            }
        }
    }
}
