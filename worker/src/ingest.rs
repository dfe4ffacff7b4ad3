//! Group commit: events from concurrent requests are recorded together, in one
//! transaction, by a fixed set of writer tasks.
//!
//! A request hands its events to `Ingest::record` and waits for the commit of the batch
//! that carried them, so a 2xx still means "committed". While one batch is being written,
//! new requests queue up; the next free writer takes them all (up to `MAX_BATCH_EVENTS`),
//! so under load many events share one transaction and one WAL flush, and when idle a
//! lone event is written at once, without waiting for company. A writer that finds
//! requests queued as it commits begins their transaction with the same round trip
//! (`record::Chain`).
//!
//! Every event comes through here, so this is also where every text is made storable
//! (`storable`), and where `spec.evidence` applies: the originals that providers and the
//! generic webhook hand over are kept (bounded and compressed) or dropped before they are
//! queued, and the kept ones are purged after `keepDays`; the bounces kept in the worker's
//! own tables are purged after `spec.retention` with them.
//!
//! One bad event never fails its neighbours: when the database refuses a value of a batch
//! (a data exception), the batch is split until the event it refuses stands alone; that
//! one is parked in `bounceops.dead_letters` (`Outcome::DeadLettered`) and the rest is
//! recorded. Dead letters are purged after 30 days, with the event ids and the evidence.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::event::{BounceEvent, Outcome};
use crate::evidence::{self, Evidence, Policy};
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::record::{self, RecordError};
use crate::store::{self, Store, dead_letters};
use bounceops_api::RetentionSpec;

const MAX_BATCH_EVENTS: usize = 128;
const QUEUE_JOBS: usize = 4096;

/// How long an event's identity is remembered at least (at most twice that; see
/// `record::forget_old_event_ids`): twice the longest provider retry window.
const EVENT_IDS_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a rotation of the event ids may hold the batches queued behind it, at most.
const ROTATION_LOCK_WAIT: Duration = Duration::from_secs(1);
/// Forgetting runs this often; every replica runs it, which is harmless (a rotation of the
/// event ids happens once, the purges delete what another replica left). Purging old
/// evidence and old kept bounces runs with it, and each run deletes little.
const FORGET_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database refused the batch for a reason of its own.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database is unreachable (or was while the batch was written): retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("the worker is shutting down")]
    Closed,
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        if store::is_unavailable(&e) {
            IngestError::Unavailable(e.to_string())
        } else {
            IngestError::Database(e)
        }
    }
}

struct Job {
    events: Vec<BounceEvent>,
    reply: Reply,
}

#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<Job>,
    evidence: Policy,
}

impl Ingest {
    /// [`Ingest::start_keeping`] by the default policies (`spec.evidence` and
    /// `spec.retention` absent).
    pub fn start(store: Store, rules: Arc<Rules>, metrics: Metrics, writers: usize) -> Ingest {
        Ingest::start_keeping(
            store,
            rules,
            metrics,
            writers,
            Policy::default(),
            RetentionSpec::default(),
        )
    }

    /// Starts `writers` writer tasks; each holds at most one database connection. Evidence
    /// is kept, and purged, by `evidence`; kept bounces are purged by `retention`.
    pub fn start_keeping(
        store: Store,
        rules: Arc<Rules>,
        metrics: Metrics,
        writers: usize,
        evidence: Policy,
        retention: RetentionSpec,
    ) -> Ingest {
        let (queue, rx) = mpsc::channel(QUEUE_JOBS);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(
                rx.clone(),
                store.clone(),
                rules.clone(),
                metrics.clone(),
            ));
        }
        tokio::spawn(forget_old(store, queue.downgrade(), evidence, retention));
        Ingest { queue, evidence }
    }

    /// How evidence is kept (`spec.evidence`).
    pub fn evidence(&self) -> Policy {
        self.evidence
    }

    /// Records `events`; returns when they are committed (or failed, with nothing of them
    /// committed). Outcomes come back in the order of `events`.
    pub async fn record(&self, events: Vec<BounceEvent>) -> Result<Vec<Outcome>, IngestError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut events = events;
        events.iter_mut().for_each(crate::storable::event);
        let events = seal(self.evidence, events).await?;
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { events, reply })
            .await
            .map_err(|_| IngestError::Closed)?;
        answer.await.map_err(|_| IngestError::Closed)?
    }
}

async fn writer(
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    store: Store,
    rules: Arc<Rules>,
    metrics: Metrics,
) {
    // The transaction of the next batch, begun by the last batch's commit when more was
    // waiting (`record::Chain`).
    let mut chain = record::Chain::default();
    // Whether requests are queued: read as a batch commits. (`try_lock`: another writer
    // holding the queue is taking what is queued.)
    let more = || queue.try_lock().is_ok_and(|q| !q.is_empty());
    loop {
        let jobs = {
            // A writer that waits for the queue (another takes what is queued) holds no
            // transaction open meanwhile.
            let mut queue = match queue.try_lock() {
                Ok(queue) => queue,
                Err(_) => {
                    chain.end();
                    queue.lock().await
                }
            };
            let first = match queue.try_recv() {
                Ok(job) => job,
                Err(_) => {
                    // Nothing waiting: no transaction is held open while the queue is idle.
                    chain.end();
                    let Some(job) = queue.recv().await else {
                        return; // every sender dropped: shutting down
                    };
                    job
                }
            };
            let mut size = first.events.len();
            let mut jobs = vec![first];
            while size < MAX_BATCH_EVENTS {
                match queue.try_recv() {
                    Ok(job) => {
                        size += job.events.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        write_batch(&store, &rules, &metrics, jobs, &mut chain, &more).await;
    }
}

async fn write_batch(
    store: &Store,
    rules: &Rules,
    metrics: &Metrics,
    jobs: Vec<Job>,
    chain: &mut record::Chain,
    more: &(dyn Fn() -> bool + Send + Sync),
) {
    // The jobs' events side by side in one list (moved, not copied: an event's meta
    // can be kilobytes), and where each job's share of it ends.
    let mut events: Vec<BounceEvent> =
        Vec::with_capacity(jobs.iter().map(|j| j.events.len()).sum());
    let mut shares: Vec<(std::ops::Range<usize>, Reply)> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let start = events.len();
        events.extend(job.events);
        shares.push((start..events.len(), job.reply));
    }
    // Here rather than only in the store, so that metrics name the type counted.
    crate::plan::retype(&mut events, rules);
    metrics.batch_size.observe(events.len() as f64);
    match record_settled(store, rules, &events, chain, more).await {
        Ok(outcomes) => {
            for (range, reply) in shares {
                let mine = outcomes[range.clone()].to_vec();
                metrics.observe_outcomes(&events[range], &mine);
                let _ = reply.send(Ok(mine));
            }
        }
        // One bad job must not fail its neighbours: retry each job in its own transaction,
        // and split a job whose value the database refuses down to that event. Not when the
        // database itself is unreachable: every job would wait out the pool's timeout in
        // turn, so the whole batch fails at once and its senders retry later.
        Err(RecordError::NotCommitted(e))
            if (shares.len() > 1 || store::is_refused_value(&e))
                && !store::is_connection_failure(&e) =>
        {
            crate::warn_throttled!(error = %e, jobs = shares.len(), "batch failed; retrying jobs one by one");
            for (range, reply) in shares {
                let mine = &events[range];
                let result = record_isolating(store, rules, metrics, mine).await;
                finish(metrics, mine, reply, result);
            }
        }
        Err(e) => {
            let error = e.into_sqlx();
            metrics.db_errors.with_label_values(&["record"]).inc();
            crate::error_throttled!(error = %error, events = events.len(), "recording bounces failed");
            if shares.len() == 1 {
                if let Some((_, reply)) = shares.pop() {
                    let _ = reply.send(Err(IngestError::from(error)));
                }
                return;
            }
            // Several jobs reach here only when the database is unreachable.
            let message = error.to_string();
            for (_, reply) in shares {
                let _ = reply.send(Err(IngestError::Unavailable(message.clone())));
            }
        }
    }
}

/// [`record::record_chained`], with a commit of unknown outcome settled: the result never
/// says `CommitUnknown`.
async fn record_settled(
    store: &Store,
    rules: &Rules,
    events: &[BounceEvent],
    chain: &mut record::Chain,
    more: &(dyn Fn() -> bool + Send + Sync),
) -> Result<Vec<Outcome>, RecordError> {
    match record::record_chained(store, rules, events, chain, more).await {
        Err(RecordError::CommitUnknown(e)) => settle_lost_commit(store, events, e).await,
        other => other,
    }
}

/// [`record_settled`], and when the database refuses a value of `events`, the same for each
/// half, down to the event it refuses, which is parked as a dead letter. The halves are
/// recorded in order, so the rules see the events in the order they came.
fn record_isolating<'a>(
    store: &'a Store,
    rules: &'a Rules,
    metrics: &'a Metrics,
    events: &'a [BounceEvent],
) -> futures::future::BoxFuture<'a, Result<Vec<Outcome>, RecordError>> {
    Box::pin(async move {
        // Each in a transaction of its own: never chained.
        let unchained = &mut record::Chain::default();
        match record_settled(store, rules, events, unchained, &|| false).await {
            Err(RecordError::NotCommitted(e)) if store::is_refused_value(&e) => {
                if let [event] = events {
                    return park(store, metrics, event, &e).await.map(|o| vec![o]);
                }
                let (first, second) = events.split_at(events.len() / 2);
                let mut outcomes = record_isolating(store, rules, metrics, first).await?;
                outcomes.extend(record_isolating(store, rules, metrics, second).await?);
                Ok(outcomes)
            }
            other => other,
        }
    })
}

/// Parks an event the database refused (`refused`) as a dead letter, and counts it.
async fn park(
    store: &Store,
    metrics: &Metrics,
    event: &BounceEvent,
    refused: &sqlx::Error,
) -> Result<Outcome, RecordError> {
    let reason = match refused {
        sqlx::Error::Database(db) => {
            format!("{}: {}", db.code().unwrap_or_default(), db.message())
        }
        other => other.to_string(),
    };
    match dead_letters::park(store, event, &reason).await? {
        Some(id) => {
            metrics.count_dead_letter(&event.source);
            tracing::warn!(
                dead_letter = id,
                source = %event.source,
                %reason,
                "the database refuses an event; parked it in bounceops.dead_letters"
            );
            Ok(Outcome::DeadLettered { id, reason })
        }
        // Its id was claimed meanwhile: recorded or parked by another attempt.
        None => Ok(Outcome::Duplicate),
    }
}

/// The connection broke after COMMIT was sent: asks the database whether the batch is in.
/// Committed: every event is answered as recorded (`Outcome::Committed`), so its sender
/// does not send it again. Not committed, or no answer: the batch failed as a whole.
async fn settle_lost_commit(
    store: &Store,
    events: &[BounceEvent],
    lost: sqlx::Error,
) -> Result<Vec<Outcome>, RecordError> {
    tracing::warn!(error = %lost, events = events.len(), "the outcome of COMMIT is unknown; asking the database whether the batch is in");
    match record::committed(store, events).await {
        Ok(true) => {
            tracing::info!(
                events = events.len(),
                "the batch whose commit answer was lost is committed"
            );
            Ok(vec![Outcome::Committed; events.len()])
        }
        Ok(false) => Err(RecordError::NotCommitted(lost)),
        Err(e) => {
            tracing::error!(error = %e, "cannot tell whether the batch is committed; its senders will retry");
            Err(RecordError::NotCommitted(lost))
        }
    }
}

/// Keeps (or drops) the events' originals by `policy`, so that the store sees only kept
/// evidence. Large originals are compressed on the blocking pool, small ones here.
async fn seal(policy: Policy, events: Vec<BounceEvent>) -> Result<Vec<BounceEvent>, IngestError> {
    let original_bytes: usize = events
        .iter()
        .map(|e| match &e.evidence {
            Some(Evidence::Original { bytes, .. }) => bytes.len(),
            _ => 0,
        })
        .sum();
    let seal_all = move |mut events: Vec<BounceEvent>| {
        for e in &mut events {
            e.evidence = policy.seal(e.evidence.take());
        }
        events
    };
    if original_bytes <= evidence::INLINE_BYTES {
        return Ok(seal_all(events));
    }
    tokio::task::spawn_blocking(move || seal_all(events))
        .await
        .map_err(|_| IngestError::Closed)
}

/// Forgets old event ids and purges old dead letters, evidence and kept bounces, every
/// [`FORGET_EVERY`], as long as the `Ingest` it was started with runs (`alive` upgrades).
async fn forget_old(
    store: Store,
    alive: mpsc::WeakSender<Job>,
    evidence: Policy,
    retention: RetentionSpec,
) {
    let mut sweep = store::evidence::Sweep::default();
    let mut every = tokio::time::interval(FORGET_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if alive.upgrade().is_none() {
            return;
        }
        match record::forget_old_event_ids(&store, EVENT_IDS_KEPT, ROTATION_LOCK_WAIT).await {
            Ok(None) => {}
            Ok(Some(since)) => tracing::info!(
                claimed_since = %since,
                keep_days = EVENT_IDS_KEPT.as_secs() / 86400,
                "forgot the event ids of the previous half (each id is kept at least keep_days)"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot forget old event ids; will try again"),
        }
        match dead_letters::purge(&store, retention.dead_letter_days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                purged = n,
                keep_days = retention.dead_letter_days,
                "purged dead letters"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot purge old dead letters; will try again"),
        }
        match store::evidence::purge(&store, evidence.keep_days, &mut sweep).await {
            Ok(p) if p.is_empty() => {}
            Ok(p) => tracing::info!(
                expired = p.expired,
                orphaned = p.orphaned,
                keep_days = evidence.keep_days,
                "purged kept bounce messages"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot purge old evidence; will try again"),
        }
        match store::kept::purge(&store, &retention).await {
            Ok(p) if p.is_empty() => {}
            Ok(p) => tracing::info!(
                unmatched = p.unmatched,
                ignored = p.ignored,
                unmatched_days = retention.unmatched_days,
                ignored_days = retention.ignored_days,
                "purged kept bounces past spec.retention"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot purge old kept bounces; will try again"),
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<Outcome>, IngestError>>;

fn finish(
    metrics: &Metrics,
    events: &[BounceEvent],
    reply: Reply,
    result: Result<Vec<Outcome>, RecordError>,
) {
    match result {
        Ok(outcomes) => {
            metrics.observe_outcomes(events, &outcomes);
            let _ = reply.send(Ok(outcomes));
        }
        Err(e) => {
            metrics.db_errors.with_label_values(&["record"]).inc();
            tracing::error!(error = %e, "recording bounces failed");
            let _ = reply.send(Err(IngestError::from(e.into_sqlx())));
        }
    }
}
