//! One scan of one mailbox, and the per-message decision it applies.
//!
//! Order of a scan, chosen so that a crash at any point loses nothing and counts nothing
//! twice:
//! 1. take the mailbox's advisory lock (or skip: another replica is scanning);
//! 2. list the messages with their sizes and drop those already read and kept;
//! 3. per batch: fetch (all but the messages over `maxMessageBytes`), classify, record the
//!    bounces in one transaction, remember the messages kept, and only then mark the
//!    recorded messages for removal;
//! 4. end the session (POP3 deletes at QUIT; IMAP has expunged per batch).
//!
//! A crash after a commit and before the removal leaves the message in the mailbox; the
//! next scan reads it again, and its events carry the same ids (derived from the mailbox
//! and the message's bytes), so the store reports them as duplicates and the message is
//! removed then.
//!
//! Memory: a batch is bounded by count and by listed bytes, a message by `maxMessageBytes`
//! (larger ones are not downloaded: moved to `moveTo`, or left in place and remembered like
//! other kept mail), and the classifier runs on
//! tokio's blocking pool, dropping each body once classified; of a bounce only its
//! compressed copy stays, kept with its bounce rows as evidence (`crate::evidence`).

use std::time::Instant;

use bounce_classify::{Classification, Kind};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::metrics::MailboxMetrics;
use super::{Fetched, Listed, MailboxConfig, ScanError, Session};
use crate::budget::ByteBudget;
use crate::classified::recorded;
use crate::event::BounceEvent;
use crate::evidence::{Evidence, Kept, Kind as EvidenceKind, Policy};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::{self, Store};

/// Messages fetched and committed together: large enough that one transaction carries
/// many bounces, small enough that a crash repeats little work.
pub const BATCH: usize = 50;

/// Listed bytes fetched together: with [`BATCH`], what one batch holds in memory. A
/// message larger than this (up to `maxMessageBytes`) is fetched on its own.
pub const BATCH_BYTES: u64 = 8 << 20;

/// The `kind` of a message over `maxMessageBytes`, in metrics and `mailbox_kept`.
pub const OVERSIZED: &str = "oversized";

/// The `kind`, in metrics and `mailbox_kept`, of a report naming more than
/// [`bounce_classify::MAX_RECIPIENTS`] recipients: left for a human, nothing recorded.
pub const TOO_MANY_RECIPIENTS: &str = "too-many-recipients";

/// What one scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Another scanner held the mailbox; nothing was read.
    pub locked: bool,
    pub read: usize,
    /// Messages whose bounces are committed and that were removed from the mailbox.
    pub removed: usize,
    pub kept: usize,
    pub events: usize,
    /// Messages over `maxMessageBytes` met for the first time: not downloaded, left in
    /// place (or moved to `moveTo`) and counted once.
    pub oversized: usize,
}

/// What to do with one message.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Record these events; remove the message once they are committed.
    Record(Vec<BounceEvent>),
    /// Leave the message where it is and remember it, under this kind.
    Keep(&'static str),
}

/// The pure decision for one classified message. `digest` identifies the message's bytes.
pub fn plan(mailbox: &MailboxConfig, digest: &str, c: &Classification) -> Plan {
    if c.too_many_recipients {
        return Plan::Keep(TOO_MANY_RECIPIENTS);
    }
    if !recorded(c) {
        return Plan::Keep(match c.kind {
            Kind::Autoreply => "autoreply",
            Kind::Delivery => "delivery",
            Kind::Unknown => "unknown",
            // A failure report naming nobody: left for a human, never guessed at.
            Kind::Bounce | Kind::Complaint => "unreadable-report",
        });
    }
    let (campaign_uuid, subscriber_uuid) = crate::classified::listmonk_ids(c);
    let events = c
        .recipients
        .iter()
        .map(|r| {
            let bounce_type = r.bounce_type;
            let mut meta = serde_json::Map::new();
            meta.insert("mailbox".into(), mailbox.name.clone().into());
            crate::classified::add_recipient_meta(r, &mut meta);
            BounceEvent {
                email: Some(r.email.clone()),
                subscriber_uuid,
                campaign_uuid,
                bounce_type,
                source: mailbox.source(),
                meta: serde_json::Value::Object(meta),
                created_at: None,
                event_id: format!("{}/{digest}/{}", mailbox.key, r.email),
                reason: Some(r.reason),
                evidence: None,
                request_digest: None,
            }
        })
        .collect();
    Plan::Record(events)
}

/// The classifier is total by contract, but a panic in it or in the MIME parser under it
/// (mail-parser 0.11.9 has a reachable `debug_assert!`, see classify/fuzz/regressions)
/// must cost one message, not the mailbox's scanner.
pub fn classify_guarded(raw: &[u8]) -> Option<Classification> {
    std::panic::catch_unwind(|| bounce_classify::classify(raw)).ok()
}

/// Splits `items` into consecutive batches of at most `count` items weighing at most
/// `bytes` together; an item heavier than `bytes` alone makes a batch of one.
pub fn batches<T>(items: &[T], count: usize, bytes: u64, weight: impl Fn(&T) -> u64) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut load) = (0, 0u64);
    for (i, item) in items.iter().enumerate() {
        let w = weight(item);
        if i > start && (i - start == count || load + w > bytes) {
            out.push(&items[start..i]);
            (start, load) = (i, 0);
        }
        load += w;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// What the classifier made of one downloaded message.
enum Read {
    /// With the message's digest, and its kept copy when it is a bounce and evidence is
    /// kept.
    Classified(Classification, String, Option<Kept>),
    /// The classifier panicked on it.
    Unreadable,
    /// The server sent more than `maxMessageBytes` of it.
    Oversized,
}

/// Classifies a batch on tokio's blocking pool: a large message can keep the classifier
/// busy for seconds, which on the async threads would stall every other mailbox's session
/// and the HTTP server. Each body is dropped as soon as it is classified and hashed, and,
/// for a bounce, compressed: so is compression, for the same reason.
async fn classify_batch(
    fetched: Vec<(u32, Fetched)>,
    evidence: Policy,
) -> Result<Vec<(u32, Read)>, ScanError> {
    tokio::task::spawn_blocking(move || {
        fetched
            .into_iter()
            .map(|(handle, f)| {
                let read = match f {
                    Fetched::Oversized => Read::Oversized,
                    Fetched::Whole(raw) => match classify_guarded(&raw) {
                        Some(c) => {
                            // Only what will be recorded: mail left in the mailbox is its
                            // own evidence.
                            let kept = recorded(&c)
                                .then(|| evidence.keep(EvidenceKind::Message, &raw))
                                .flatten();
                            Read::Classified(c, digest(&raw), kept)
                        }
                        None => Read::Unreadable,
                    },
                };
                (handle, read)
            })
            .collect()
    })
    .await
    .map_err(|e| ScanError::Protocol(format!("the classifier task failed: {e}")))
}

fn digest(raw: &[u8]) -> String {
    let d = Sha256::digest(raw);
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

pub fn kind_label(kind: &Kind) -> &'static str {
    match kind {
        Kind::Bounce => "bounce",
        Kind::Complaint => "complaint",
        Kind::Autoreply => "autoreply",
        Kind::Delivery => "delivery",
        Kind::Unknown => "unknown",
    }
}

/// Everything a scan needs besides the mailbox itself.
#[derive(Clone)]
pub struct Deps {
    pub store: Store,
    /// Bounces are recorded through the same group commit as the webhooks' (one write
    /// path, one set of metrics).
    pub ingest: Ingest,
    pub metrics: Metrics,
    pub mailbox_metrics: MailboxMetrics,
    /// [`downloads_budget`].
    pub downloads: ByteBudget,
}

/// What the scans of one worker, every mailbox's together, may have downloaded at once:
/// [`BATCH_BYTES`], or the largest `maxMessageBytes` when that is more, by the sizes the
/// servers list. A batch waits for its bytes before it is fetched and gives them back once
/// it is classified; one larger than the budget (one message, up to its `maxMessageBytes`)
/// waits for all of it. Mailboxes are scanned at the same time, and classifying a hostile
/// message takes about eleven times its size (a 10 MiB plain-text report: 119 MB),
/// so without it two mailboxes each sent one such message would take a 256 MiB pod past its
/// limit, on every scan until a human removed the messages.
pub fn downloads_budget(mailboxes: &[MailboxConfig]) -> ByteBudget {
    let largest = mailboxes.iter().map(|m| m.max_message_bytes).max();
    ByteBudget::new(largest.unwrap_or(0).max(BATCH_BYTES))
}

/// Scans `mailbox` once, with metrics. `stop` turning true ends the scan after the batch
/// in progress (its bounces committed and its messages removed).
pub async fn scan(
    mailbox: &MailboxConfig,
    deps: &Deps,
    stop: &watch::Receiver<bool>,
) -> Result<Summary, ScanError> {
    let started = Instant::now();
    let m = &deps.mailbox_metrics;
    let name = mailbox.name.as_str();
    let result = async {
        let Some(lock) = store::mailbox::ScanLock::try_take(&deps.store, &mailbox.key).await?
        else {
            return Ok(Summary {
                locked: true,
                ..Summary::default()
            });
        };
        let result = scan_locked(mailbox, deps, stop).await;
        lock.release().await;
        result
    }
    .await;
    let label = match &result {
        Ok(s) if s.locked => "locked",
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    m.scans.with_label_values(&[name, label]).inc();
    match &result {
        Ok(s) if !s.locked => {
            m.scan_duration
                .with_label_values(&[name])
                .observe(started.elapsed().as_secs_f64());
            m.last_success
                .with_label_values(&[name])
                .set(chrono::Utc::now().timestamp() as f64);
        }
        Ok(_) => {}
        Err(e) => {
            m.scan_duration
                .with_label_values(&[name])
                .observe(started.elapsed().as_secs_f64());
            match e {
                ScanError::Connect(_) => m.connection_failures.with_label_values(&[name]).inc(),
                ScanError::Auth(_) => m.auth_failures.with_label_values(&[name]).inc(),
                _ => {}
            }
        }
    }
    result
}

async fn scan_locked(
    mailbox: &MailboxConfig,
    deps: &Deps,
    stop: &watch::Receiver<bool>,
) -> Result<Summary, ScanError> {
    let m = &deps.mailbox_metrics;
    let name = mailbox.name.as_str();
    let mut session = Session::open(mailbox).await?;
    let listed = session.list().await?;
    let kept = store::mailbox::kept(&deps.store, &mailbox.key).await?;
    let present: Vec<&str> = listed.iter().map(|l| l.id.as_str()).collect();
    store::mailbox::forget_missing(&deps.store, &mailbox.key, &present).await?;
    let todo: Vec<&Listed> = listed
        .iter()
        .filter(|l| !kept.contains(&l.id))
        .take(mailbox.max_messages_per_scan)
        .collect();

    let mut summary = Summary::default();
    let max = mailbox.max_message_bytes;
    // Oversized messages weigh nothing: they are not fetched.
    let weight = |l: &&Listed| if l.size > max { 0 } else { l.size };
    for batch in batches(&todo, BATCH, BATCH_BYTES, weight) {
        if *stop.borrow() {
            tracing::info!(mailbox = name, "stopping the scan after a whole batch");
            break;
        }
        let (mut oversized, wanted): (Vec<&Listed>, Vec<&Listed>) =
            batch.iter().partition(|l| l.size > max);
        let handles: Vec<u32> = wanted.iter().map(|l| l.handle).collect();
        let listed: u64 = wanted.iter().map(|l| l.size).sum();
        let downloading = deps.downloads.take(listed).await;
        // What the budget covers, and the eighth more that honest servers may send
        // (`pop3::retr_cap` says why).
        let room = listed + listed / 8;
        let fetched =
            classify_batch(session.fetch(&handles, room).await?, deps.ingest.evidence()).await?;
        // Classified: what is left of the batch is its results.
        drop(downloading);
        let mut events: Vec<BounceEvent> = Vec::new();
        let mut remove = Vec::new();
        let mut keep = Vec::new();
        for (handle, read) in fetched {
            let Some(listed) = wanted.iter().find(|l| l.handle == handle) else {
                continue;
            };
            let (c, digest, kept) = match read {
                Read::Classified(c, digest, kept) => (c, digest, kept),
                Read::Oversized => {
                    oversized.push(listed);
                    continue;
                }
                Read::Unreadable => {
                    summary.read += 1;
                    tracing::error!(mailbox = name, message = %listed.id, "the classifier failed on this message; left in place");
                    m.messages.with_label_values(&[name, "unknown"]).inc();
                    keep.push((listed.id.clone(), "unreadable"));
                    continue;
                }
            };
            summary.read += 1;
            let label = match c.too_many_recipients {
                true => TOO_MANY_RECIPIENTS,
                false => kind_label(&c.kind),
            };
            m.messages.with_label_values(&[name, label]).inc();
            match plan(mailbox, &digest, &c) {
                Plan::Record(e) => {
                    // A report naming several recipients is kept once per bounce row; the
                    // compressed copy itself is shared until then.
                    events.extend(e.into_iter().map(|e| BounceEvent {
                        evidence: kept.clone().map(Evidence::Kept),
                        ..e
                    }));
                    remove.push(handle);
                }
                Plan::Keep(kind) => {
                    if kind == TOO_MANY_RECIPIENTS {
                        tracing::warn!(
                            mailbox = name,
                            message = %listed.id,
                            max_recipients = bounce_classify::MAX_RECIPIENTS,
                            "the report names more than max_recipients recipients; nothing recorded, left in place"
                        );
                    }
                    keep.push((listed.id.clone(), kind))
                }
            }
        }
        let recorded = events.len();
        if !events.is_empty() {
            // Ingest counts the outcomes and the database errors.
            deps.ingest.record(events).await?;
        }
        let kept = keep.len();
        let handles: Vec<u32> = oversized.iter().map(|l| l.handle).collect();
        let moved = session.set_aside(&handles).await?;
        if !moved {
            keep.extend(oversized.iter().map(|l| (l.id.clone(), OVERSIZED)));
        }
        store::mailbox::remember(&deps.store, &mailbox.key, &keep).await?;
        // Counted and logged only now that they are moved or remembered: a later scan
        // skips them, so each is counted and logged once.
        for l in &oversized {
            m.messages.with_label_values(&[name, OVERSIZED]).inc();
            tracing::warn!(
                mailbox = name,
                message = %l.id,
                listed_bytes = l.size,
                max_message_bytes = max,
                "message larger than maxMessageBytes, not downloaded; {}",
                if moved { "moved to moveTo" } else { "left in place" }
            );
        }
        // Committed above: from here on, removing the messages cannot lose a bounce.
        session.remove(&remove).await?;
        summary.removed += remove.len();
        summary.kept += kept;
        summary.events += recorded;
        summary.oversized += oversized.len();
    }
    session.finish().await?;
    m.removed
        .with_label_values(&[name])
        .inc_by(summary.removed as u64);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bounce_classify::{BounceType, Recipient};

    fn mailbox() -> MailboxConfig {
        MailboxConfig::for_tests("bounces")
    }

    fn recipient(email: &str, t: BounceType) -> Recipient {
        Recipient {
            email: email.into(),
            status: Some("5.1.1".into()),
            action: Some("failed".into()),
            diagnostic: Some("x".repeat(5000)),
            bounce_type: t,
            reason: bounce_classify::Reason::UserUnknown,
            remote_mta: Some("mx.example.net".into()),
        }
    }

    fn classification(kind: Kind, recipients: Vec<Recipient>) -> Classification {
        Classification {
            kind,
            recipients,
            subscriber_uuid: Some("6c1a6d1e-2b8e-4c3c-9a53-6a2a4f0f9e11".into()),
            campaign_uuid: Some("not-a-uuid".into()),
            too_many_recipients: false,
        }
    }

    #[test]
    fn non_bounces_are_kept() {
        for (kind, label) in [
            (Kind::Autoreply, "autoreply"),
            (Kind::Delivery, "delivery"),
            (Kind::Unknown, "unknown"),
        ] {
            assert_eq!(
                plan(&mailbox(), "d", &classification(kind, vec![])),
                Plan::Keep(label)
            );
        }
        assert_eq!(
            plan(&mailbox(), "d", &classification(Kind::Bounce, vec![])),
            Plan::Keep("unreadable-report")
        );
    }

    #[test]
    fn the_downloads_budget_is_the_largest_message_or_a_batch() {
        let mut large = mailbox();
        large.max_message_bytes = 20 << 20;
        assert_eq!(
            downloads_budget(&[mailbox(), large]).bytes(),
            20 << 20,
            "the largest maxMessageBytes"
        );
        assert_eq!(
            downloads_budget(&[]).bytes(),
            BATCH_BYTES,
            "at least a batch"
        );
    }

    #[test]
    fn a_report_naming_too_many_is_kept_apart() {
        for kind in [Kind::Bounce, Kind::Complaint] {
            let c = Classification {
                too_many_recipients: true,
                ..classification(kind, vec![])
            };
            assert_eq!(plan(&mailbox(), "d", &c), Plan::Keep(TOO_MANY_RECIPIENTS));
        }
    }

    #[test]
    fn one_recipient_takes_the_subscriber_header() {
        let c = classification(Kind::Bounce, vec![recipient("a@x.org", BounceType::Hard)]);
        let Plan::Record(events) = plan(&mailbox(), "abc", &c) else {
            panic!("expected events");
        };
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.bounce_type, BounceType::Hard);
        assert!(e.subscriber_uuid.is_some());
        assert_eq!(e.campaign_uuid, None, "a malformed UUID is ignored");
        assert_eq!(e.source, "mailbox:bounces");
        assert_eq!(
            e.meta["diagnostic"].as_str().unwrap().len(),
            crate::providers::reason::MAX_DIAGNOSTIC
        );
        assert!(e.event_id.ends_with("/abc/a@x.org"));
        assert_eq!(e.reason, Some(bounce_classify::Reason::UserUnknown));
        assert_eq!(e.meta["reason"], "userunknown");
        assert_eq!(e.meta["remote_mta"], "mx.example.net");
    }

    #[test]
    fn several_recipients_are_found_by_address() {
        let c = classification(
            Kind::Complaint,
            vec![
                recipient("a@x.org", BounceType::Complaint),
                recipient("b@x.org", BounceType::Complaint),
            ],
        );
        let Plan::Record(events) = plan(&mailbox(), "abc", &c) else {
            panic!("expected events");
        };
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.subscriber_uuid.is_none()));
        assert!(
            events
                .iter()
                .all(|e| e.bounce_type == BounceType::Complaint)
        );
        assert_ne!(events[0].event_id, events[1].event_id);
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let sizes = |bs: Vec<&[u64]>| bs.into_iter().map(<[u64]>::to_vec).collect::<Vec<_>>();
        let by_count = batches(&[1, 1, 1, 1, 1], 2, 100, |w| *w);
        assert_eq!(sizes(by_count), vec![vec![1, 1], vec![1, 1], vec![1]]);
        let by_bytes = batches(&[4, 4, 4, 1, 9, 2], 50, 8, |w| *w);
        assert_eq!(
            sizes(by_bytes),
            vec![vec![4, 4], vec![4, 1], vec![9], vec![2]],
            "a message over the byte bound goes alone"
        );
        let weightless = batches(&[0, 0, 0], 2, 8, |w| *w);
        assert_eq!(sizes(weightless), vec![vec![0, 0], vec![0]]);
        assert!(batches(&[] as &[u64], 2, 8, |w| *w).is_empty());
    }

    #[test]
    fn digest_is_stable() {
        assert_eq!(digest(b"x"), digest(b"x"));
        assert_ne!(digest(b"x"), digest(b"y"));
        assert_eq!(digest(b"x").len(), 32);
    }
}
