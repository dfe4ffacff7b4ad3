//! Recording bounces with listmonk's semantics (DESIGN §3), race-free across replicas.
//!
//! A batch of events is recorded in one transaction, in two steps:
//! 1. claim the events' ids (exactly once: a retry finds its id taken), find each fresh
//!    event's subscriber (UUID first, else lower-cased e-mail) and take a
//!    transaction-level advisory lock on every subscriber found, in ascending id order, so
//!    two transactions never wait in a cycle; then load those subscribers' status and
//!    bounce counts with a statement of its own (its snapshot must be taken after the locks
//!    are held). Both statements run in one call of the function `bounceops.claim_batch`,
//!    one round trip. `plan` then plays the events in arrival order in memory;
//! 2. write the result: the bounces with their evidence and the `blocklist` and
//!    `unsubscribe` actions in one statement, then `delete` (after the insert, so that it
//!    takes the batch's own bounces too), one insert of unmatched events, one of ignored
//!    ones.
//!
//! Round trips are what a batch's time is mostly made of (BENCHMARKS.md, issue 24), so
//! what can share a statement does, and a writer that has another batch waiting when it
//! commits sends `COMMIT; BEGIN` in one round trip and records that batch in the
//! transaction so begun ([`Chain`]).
//!
//! Events whose reason `spec.rules.reasons` ignores have their id claimed in step 1, but no
//! subscriber is looked up, locked or counted for them, and step 2 only keeps them. The
//! others are first given the type their reason counts as, so that the bounce row says
//! what its rule was applied as.
//!
//! Under the lock, the counts a transaction sees include every committed bounce of those
//! subscribers, so no two replicas can both see the same `n` and skip or double an action.
//! Batching many events into one transaction is the group commit that lets the webhook
//! answer only after the commit without paying one fsync, or one statement, per event.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bounceops_api::Action;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::Store;
use crate::event::{BounceEvent, Outcome, has_received_id};
use crate::evidence::Evidence;
use crate::plan::{Step, SubscriberState, Treatment, plan, retyped, treatment};
use crate::rules::Rules;

/// Why a batch is not known to be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Nothing of the batch was committed.
    #[error("{0}")]
    NotCommitted(#[from] sqlx::Error),
    /// COMMIT was sent and what became of it is not known: its answer never came (the
    /// connection broke, or the server ended the session right after it), or a
    /// `COMMIT; BEGIN` of a [`Chain`] failed without saying which statement. The batch is
    /// either wholly committed or not at all, and only the database knows which
    /// ([`committed`] asks it).
    #[error("the outcome of COMMIT is unknown: {0}")]
    CommitUnknown(sqlx::Error),
}

impl RecordError {
    /// The underlying error, once it no longer matters whether the commit happened.
    pub fn into_sqlx(self) -> sqlx::Error {
        match self {
            RecordError::NotCommitted(e) | RecordError::CommitUnknown(e) => e,
        }
    }
}

/// Records `events` in one transaction and returns one outcome per event, in order.
/// On error nothing of the batch is committed, unless the error is
/// [`RecordError::CommitUnknown`].
pub async fn record(
    store: &Store,
    rules: &Rules,
    events: &[BounceEvent],
) -> Result<Vec<Outcome>, RecordError> {
    record_chained(store, rules, events, &mut Chain::default(), &|| false).await
}

/// A writer's transaction for its next batch, begun by the commit of its last one:
/// `COMMIT; BEGIN` is one round trip, so under load every batch but the first is spared
/// its own `BEGIN`, one of the few round trips a batch is mostly made of (BENCHMARKS.md,
/// issue 24).
pub struct Chain {
    begun: Option<(Transaction<'static, Postgres>, Instant)>,
    waits: Duration,
    /// Batches in a row on the chained connection.
    links: u32,
}

/// Batches in a row on one connection before a commit lets it go back to the pool:
/// sqlx applies the pool's `max_lifetime` and `idle_timeout` to a connection as it comes
/// back, which a chained one otherwise never does under steady load.
const MAX_LINKS: u32 = 1000;

/// How long a transaction begun ahead waits for its batch, from the moment the commit that
/// began it was sent. `NOW()` in it (the default of a bounce's `created_at`, the clock of
/// `spec.rules.window`) is about that moment, so a batch that comes later begins its own;
/// the one that waited is rolled back as its connection goes back to the pool. Under load
/// the next batch is taken at once.
const CHAIN_WAITS: Duration = Duration::from_millis(10);

impl Default for Chain {
    fn default() -> Chain {
        Chain::waiting(CHAIN_WAITS)
    }
}

impl Chain {
    /// A chain whose transactions begun ahead wait `waits` for their batch (the default
    /// is 10 ms; tests that drive batches by hand wait longer, or not at all).
    pub fn waiting(waits: Duration) -> Chain {
        Chain {
            begun: None,
            waits,
            links: 0,
        }
    }

    /// Whether a transaction is begun ahead.
    pub fn is_begun(&self) -> bool {
        self.begun.is_some()
    }

    /// Rolls back the transaction begun ahead, if any: its batch is not coming soon.
    pub fn end(&mut self) {
        self.begun = None;
    }

    /// The transaction begun ahead, when it is fresh enough.
    fn take(&mut self) -> Option<Transaction<'static, Postgres>> {
        let waits = self.waits;
        self.begun
            .take()
            .filter(|(_, begun)| begun.elapsed() < waits)
            .map(|(tx, _)| tx)
    }
}

/// [`record`] for a writer: in the transaction `chain` holds, when there is a fresh one,
/// and, when `more` says another batch is waiting at the commit, with that batch's
/// transaction begun by the same round trip and left in `chain`.
pub async fn record_chained(
    store: &Store,
    rules: &Rules,
    events: &[BounceEvent],
    chain: &mut Chain,
    more: &(dyn Fn() -> bool + Send + Sync),
) -> Result<Vec<Outcome>, RecordError> {
    let retyped = retyped(events, rules);
    let events: &[BounceEvent] = &retyped;
    if let Some(tx) = chain.take() {
        match record_in(tx, rules, events, chain, more).await {
            // The database dropped the connection while it waited for this batch (a
            // restart, `idle_in_transaction_session_timeout`: 25P03): nothing of the batch
            // is committed (an error at or after COMMIT is `CommitUnknown`), so it begins
            // again on another connection, as `Store::begin_batch` does for a pooled one.
            // Not after a cancel or a statement timeout (57014): that is the batch's own.
            Err(RecordError::NotCommitted(e))
                if (super::is_dropped_connection(&e) && !super::has_code(&e, "57014"))
                    || super::has_code(&e, "25P03") =>
            {
                tracing::debug!(error = %e, "the transaction begun ahead was lost; beginning again");
            }
            other => return other,
        }
    }
    // A connection of its own: the run of batches on one connection starts again.
    chain.links = 0;
    let tx = store.begin_batch().await?;
    record_in(tx, rules, events, chain, more).await
}

async fn record_in(
    mut tx: Transaction<'static, Postgres>,
    rules: &Rules,
    events: &[BounceEvent],
    chain: &mut Chain,
    more: &(dyn Fn() -> bool + Send + Sync),
) -> Result<Vec<Outcome>, RecordError> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];

    let counted: Vec<bool> = events
        .iter()
        .map(|e| treatment(e, rules) != Treatment::Ignore)
        .collect();
    let Claimed {
        taken,
        subscriber_ids,
        now,
        state,
    } = claim_and_find(&mut tx, events, &claimed(events), &counted, rules.window).await?;
    for (i, outcome) in earlier_claims(&mut tx, events, &taken).await? {
        outcomes[i] = Some(outcome);
    }

    let pending: Vec<usize> = (0..events.len())
        .filter(|&i| outcomes[i].is_none())
        .collect();
    let ignored: Vec<usize> = pending.iter().copied().filter(|&i| !counted[i]).collect();
    let steps = plan(events, &pending, &subscriber_ids, state, rules, now);

    let inserts: Vec<usize> = pending
        .iter()
        .copied()
        .filter(|i| matches!(steps[i], Step::Insert { .. }))
        .collect();
    let actions = Actions::planned(&pending, &steps);
    let (bounce_ids, mut changed) =
        insert_bounces(&mut tx, events, &inserts, &steps, &actions).await?;
    // After the insert, so that a `delete` in this batch takes this batch's bounces and
    // evidence too.
    changed.extend(delete_subscribers(&mut tx, &actions.delete).await?);
    let unmatched: Vec<usize> = pending
        .iter()
        .copied()
        .filter(|i| steps[i] == Step::Unmatched)
        .collect();
    insert_unmatched(&mut tx, events, &unmatched).await?;
    insert_ignored(&mut tx, events, &ignored).await?;
    if more() && chain.links < MAX_LINKS {
        let sent = Instant::now();
        // A plain string: the simple query protocol, which takes several statements.
        match sqlx::Executor::execute(&mut *tx, super::COMMIT_AND_BEGIN_BATCH).await {
            Ok(_) => {
                chain.begun = Some((tx, sent));
                chain.links += 1;
            }
            // Which of the statements failed is not told apart (a refused COMMIT rolled
            // back, a failed BEGIN after it committed): the database is asked, as for a
            // lost answer.
            Err(e) => return Err(RecordError::CommitUnknown(e)),
        }
    } else {
        chain.links = 0;
        tx.commit().await.map_err(|e| match e {
            // The server refused the commit (a deferred check, a serialization failure):
            // rolled back, for sure. Not when it ended the session (08, 57: a shutdown, a
            // terminated backend), which it may do right after committing, as it writes
            // the commit's log line.
            sqlx::Error::Database(_) if !super::is_dropped_connection(&e) => {
                RecordError::NotCommitted(e)
            }
            _ => RecordError::CommitUnknown(e),
        })?;
    }

    let applied = |id: i32, action: Option<Action>| action.filter(|a| changed.contains(&(id, *a)));
    for i in pending {
        outcomes[i] = Some(match steps[&i] {
            Step::Insert {
                subscriber_id,
                action,
            } => Outcome::Recorded {
                bounce_id: bounce_ids[&i],
                action: applied(subscriber_id, action),
            },
            Step::Blocklisted => Outcome::Blocklisted,
            Step::OverThreshold {
                subscriber_id,
                action,
            } => Outcome::OverThreshold {
                action: applied(subscriber_id, action),
            },
            Step::Unmatched => Outcome::Unmatched,
            Step::Ignored => Outcome::Ignored,
        });
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every event has an outcome"))
        .collect())
}

/// Which of `events` have their id claimed: every id a sender may send again, and of the
/// ids the worker made on receipt ([`has_received_id`]), only the first. Those are new by
/// construction (a sender's retry of such an event is a new event), so claiming each of
/// them would guard against nothing and cost a row and an index entry per event (with the
/// generic webhook, a third of a batch's database time: BENCHMARKS.md, issue 24). One is
/// still claimed so that [`committed`] can tell whether the batch is in: it and the rest
/// of the batch are committed together or not at all.
fn claimed(events: &[BounceEvent]) -> Vec<bool> {
    let mut first_received = true;
    events
        .iter()
        .map(|e| !has_received_id(e) || std::mem::replace(&mut first_received, false))
        .collect()
}

/// What [`claim_and_find`] found.
struct Claimed {
    /// The indexes of events whose id was claimed before (by an earlier commit, or earlier
    /// in this batch).
    taken: Vec<usize>,
    /// Event index -> subscriber id, for the fresh counted events whose subscriber exists;
    /// each of those subscribers is locked.
    subscriber_ids: HashMap<usize, i32>,
    /// The transaction's clock (the client's when no subscriber was locked: then nothing
    /// consults it).
    now: DateTime<Utc>,
    /// Each locked subscriber that still exists: its status and bounce counts per type
    /// (only those inside the rules' window, when there is one), read once the locks were
    /// held.
    state: HashMap<i32, SubscriberState>,
}

/// Claims the ids of the events marked in `claim` in `bounceops.processed_events`, each
/// with its request digest (`Idempotency-Key`s), finds the subscriber of each fresh event
/// (freshly claimed, or not claimed at all) that is `counted`, takes that subscriber's
/// lock, and then reads the locked subscribers' state: one round trip, the function
/// `bounceops.claim_batch` (worker/migrations/0007_claim_batch.sql). The state is read by
/// a statement of its own inside it, whose snapshot is taken once the locks are held, so
/// it counts every bounce committed by a replica this batch waited for. Each round trip
/// saved is a tenth or more of a batch's time (BENCHMARKS.md, issue 24).
///
/// Ids are inserted in sorted order so that concurrent batches sharing ids cannot deadlock
/// on them; an id given twice in the batch is inserted with its first event's digest
/// (`ord`), that event counted as fresh and the later ones as taken.
///
/// A given UUID decides alone, as in listmonk: it does not fall back to the e-mail
/// address. The locks are taken in ascending id order, so two batches never wait on each
/// other in a cycle; a subscriber named twice is locked twice, which advisory locks allow.
/// An event whose subscriber does not exist comes back without an id, and nothing is
/// locked for it.
async fn claim_and_find(
    tx: &mut Transaction<'static, Postgres>,
    events: &[BounceEvent],
    claim: &[bool],
    counted: &[bool],
    window: Option<Duration>,
) -> Result<Claimed, sqlx::Error> {
    let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let digests: Vec<Option<Vec<u8>>> = events
        .iter()
        .map(|e| e.request_digest.map(|d| d.to_vec()))
        .collect();
    let uuids: Vec<Option<Uuid>> = events.iter().map(|e| e.subscriber_uuid).collect();
    let emails: Vec<Option<String>> = events
        .iter()
        .map(|e| e.email.as_ref().map(|e| e.to_lowercase()))
        .collect();
    let rows = sqlx::query!(
        "SELECT * FROM bounceops.claim_batch($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &sources as &[&str],
        &ids as &[&str],
        &digests as &[Option<Vec<u8>>],
        claim,
        counted,
        &uuids as &[Option<Uuid>],
        &emails as &[Option<String>],
        super::locks::SUBSCRIBER,
        window.map(|w| w.as_secs_f64()),
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut fresh = vec![false; events.len()];
    let mut subscriber_ids = HashMap::new();
    let mut now = None;
    let mut state = HashMap::new();
    for row in rows {
        let malformed =
            || sqlx::Error::Decode(format!("bounceops.claim_batch returned {row:?}").into());
        match (row.event_ord, row.subscriber) {
            // An event's row; `event_ord` counts from 1.
            (Some(ord), subscriber) => {
                let i = usize::try_from(ord - 1)
                    .ok()
                    .filter(|&i| i < events.len())
                    .ok_or_else(malformed)?;
                fresh[i] = true;
                if let Some(id) = subscriber {
                    subscriber_ids.insert(i, id);
                }
            }
            // A locked subscriber's row.
            (None, Some(id)) => {
                let (Some(status), Some(soft), Some(hard), Some(complaint), Some(clock)) = (
                    row.subscriber_status.as_deref(),
                    row.soft_count,
                    row.hard_count,
                    row.complaint_count,
                    row.clock,
                ) else {
                    return Err(malformed());
                };
                now = Some(clock);
                state.insert(
                    id,
                    SubscriberState {
                        blocklisted: status == "blocklisted",
                        soft,
                        hard,
                        complaint,
                    },
                );
            }
            (None, None) => return Err(malformed()),
        }
    }
    let taken = (0..events.len()).filter(|&i| !fresh[i]).collect();
    Ok(Claimed {
        taken,
        subscriber_ids,
        now: now.unwrap_or_else(Utc::now),
        state,
    })
}

/// What the events whose id was claimed before (`taken`) come to. A duplicate, unless the
/// id is an `Idempotency-Key` (the event has a request digest): then the claim's digest
/// tells a retry of the same request (a duplicate, or the dead letter it was parked as,
/// answered as the first time) from another request reusing the key.
///
/// Only keyed events that were claimed before cost this statement: a provider's retry and
/// a fresh key add no round trip. It runs after the claim's INSERT, which waited for any
/// transaction holding one of these ids, so it reads the committed claim (or this batch's
/// own, for a key given twice in it).
async fn earlier_claims(
    tx: &mut Transaction<'static, Postgres>,
    events: &[BounceEvent],
    taken: &[usize],
) -> Result<Vec<(usize, Outcome)>, sqlx::Error> {
    let keyed: Vec<usize> = taken
        .iter()
        .copied()
        .filter(|&i| events[i].request_digest.is_some())
        .collect();
    let mut claims: HashMap<(String, String), EarlierClaim> = HashMap::new();
    if !keyed.is_empty() {
        let sources: Vec<&str> = keyed.iter().map(|&i| events[i].source.as_str()).collect();
        let ids: Vec<&str> = keyed.iter().map(|&i| events[i].event_id.as_str()).collect();
        // The dead letter's columns are NOT NULL in their table; the LEFT JOIN makes them
        // nullable here (`?`).
        let rows = sqlx::query_as!(
            EarlierClaim,
            r#"SELECT p.source, p.event_id, p.body_sha256, d.id AS "dead_letter?", d.reason AS "reason?"
                 FROM bounceops.processed_events p
                 JOIN unnest($1::text[], $2::text[]) AS t(s, e)
                   ON p.source = t.s AND p.event_id = t.e
                 LEFT JOIN LATERAL (
                     SELECT id, reason FROM bounceops.dead_letters dl
                      WHERE dl.source = p.source AND dl.event_id = p.event_id
                      ORDER BY id LIMIT 1) d ON TRUE"#,
            &sources as &[&str],
            &ids as &[&str],
        )
        .fetch_all(&mut **tx)
        .await?;
        claims = rows
            .into_iter()
            .map(|c| ((c.source.clone(), c.event_id.clone()), c))
            .collect();
    }
    Ok(taken
        .iter()
        .map(|&i| {
            let e = &events[i];
            let Some(ours) = e.request_digest else {
                return (i, Outcome::Duplicate);
            };
            let claim = claims.get(&(e.source.clone(), e.event_id.clone()));
            let outcome = match claim {
                // Claimed for another body.
                Some(EarlierClaim {
                    body_sha256: Some(theirs),
                    ..
                }) if theirs.as_slice() != ours.as_slice() => Outcome::KeyReused,
                Some(EarlierClaim {
                    dead_letter: Some(id),
                    reason: Some(reason),
                    ..
                }) => Outcome::DeadLettered {
                    id: *id,
                    reason: reason.clone(),
                },
                // The same body, or a key claimed before digests were kept: a retry.
                _ => Outcome::Duplicate,
            };
            (i, outcome)
        })
        .collect())
}

/// A claim of an `Idempotency-Key` made before, and the dead letter it was parked as.
struct EarlierClaim {
    source: String,
    event_id: String,
    body_sha256: Option<Vec<u8>>,
    dead_letter: Option<i64>,
    reason: Option<String>,
}

/// After [`RecordError::CommitUnknown`]: whether that batch is committed. It tries to claim
/// the batch's claimed ids ([`claimed`]) again, in a transaction it then rolls back. An
/// insert waits for any transaction still holding one of those ids (the lost one, if its
/// server has not ended it yet) and then conflicts with a committed id, so the answer is
/// exact: the batch is committed exactly when none of those ids can be claimed. (Ids that
/// were duplicates of earlier commits conflict either way; a batch of nothing but those is
/// all recorded.)
pub async fn committed(store: &Store, events: &[BounceEvent]) -> Result<bool, sqlx::Error> {
    let mut tx = store.begin_batch().await?;
    // A lost transaction whose server never notices its client is gone would make the
    // insert wait forever; past this the caller answers "retry later" instead.
    sqlx::query!("SET LOCAL lock_timeout = '10s'")
        .execute(&mut *tx)
        .await?;
    let claim = claimed(events);
    let nothing_counted = vec![false; events.len()];
    let taken = claim_and_find(&mut tx, events, &claim, &nothing_counted, None)
        .await?
        .taken
        .len();
    let claimable = taken < claim.iter().filter(|c| **c).count();
    tx.rollback().await?;
    Ok(!claimable)
}

/// Forgets the event ids of the previous half of `bounceops.processed_events` once the
/// current half has taken claims for `keep`, and makes the emptied half the current one
/// (`bounceops.rotate_claims`, worker/migrations/0008_event_id_halves.sql): milliseconds of
/// database time however many ids go. Each id is remembered for at least `keep`, and for at
/// most twice that as long as rotations succeed. Returns when the forgotten ids' half had
/// begun taking claims, or None when no rotation was due.
///
/// The rotation waits for the batches in flight, and every batch after it waits for the
/// rotation: it waits at most `lock_wait` for a lock, then fails with 55P03 (the worker
/// tries again at its next run). A retry older than the ids kept is recorded again:
/// providers stop retrying within 3 days (SendGrid's 72 hours is the longest), and a
/// mailbox message whose removal failed is read again at the next scan.
pub async fn forget_old_event_ids(
    store: &Store,
    keep: Duration,
    lock_wait: Duration,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    // One statement on its own: the function's lock timeout lasts to the end of the
    // transaction.
    sqlx::query_scalar!(
        "SELECT bounceops.rotate_claims($1, $2)",
        keep.as_secs_f64(),
        lock_wait.as_secs_f64()
    )
    .fetch_one(&store.pool)
    .await
}

/// Inserts the bounces of the events in `order` with the evidence kept with them, and
/// carries out the `blocklist` and `unsubscribe` actions, in one statement (neither action
/// touches what the insert writes); returns each inserted event's bounce id and the
/// (subscriber, action) pairs that changed something. A campaign UUID that matches no
/// campaign is stored as NULL. The ids are drawn from the bounces' own sequence (as the
/// column's default would) before the rows are written, so that the evidence can name its
/// bounce in the same statement. Each part sharing the statement is a round trip fewer.
async fn insert_bounces(
    tx: &mut Transaction<'static, Postgres>,
    events: &[BounceEvent],
    order: &[usize],
    steps: &HashMap<usize, Step>,
    actions: &Actions,
) -> Result<(HashMap<usize, i32>, HashSet<(i32, Action)>), sqlx::Error> {
    if order.is_empty() && actions.blocklist.is_empty() && actions.unsubscribe.is_empty() {
        return Ok(Default::default());
    }
    let subscribers: Vec<i32> = order
        .iter()
        .map(|i| match steps[i] {
            Step::Insert { subscriber_id, .. } => subscriber_id,
            _ => unreachable!("only inserts are listed"),
        })
        .collect();
    let c = Columns::of(events, order);
    let kept = super::evidence::Rows::of(order.iter().enumerate().filter_map(|(at, i)| {
        match &events[*i].evidence {
            // `ord` of the bounce row, counting from 1.
            Some(Evidence::Kept(k)) => Some((at as i64 + 1, k)),
            _ => None,
        }
    }));
    // The actions' statements are listmonk's own, exactly; it leaves `updated_at` alone in
    // them, and so do we.
    let rows = sqlx::query!(
        r#"WITH t AS (
               SELECT nextval('bounces_id_seq')::int4 AS id, u.*
               FROM unnest($1::int4[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[],
                           $6::timestamptz[])
                    WITH ORDINALITY AS u(sid, camp, type, source, meta, at, ord)
           ), inserted AS (
               INSERT INTO bounces (id, subscriber_id, campaign_id, type, source, meta, created_at)
               SELECT t.id, t.sid, c.id, t.type::bounce_type, t.source, t.meta, COALESCE(t.at, NOW())
               FROM t LEFT JOIN campaigns c ON c.uuid = t.camp
               ORDER BY t.ord
           ), evidence AS (
               INSERT INTO bounceops.evidence
                      (bounce_id, content_type, gzip, original_bytes, truncated)
               SELECT t.id, k.content_type, k.gzip, k.original_bytes, k.truncated
               FROM unnest($7::int8[], $8::text[], $9::bytea[], $10::int8[], $11::bool[])
                    AS k(ord, content_type, gzip, original_bytes, truncated)
               JOIN t ON t.ord = k.ord
           ), blocklisted AS (
               UPDATE subscribers SET status = 'blocklisted'
               WHERE id = ANY($12) AND status <> 'blocklisted' RETURNING id
           ), unsubscribed AS (
               UPDATE subscriber_lists SET status = 'unsubscribed'
               WHERE subscriber_id = ANY($13) AND status <> 'unsubscribed'
               RETURNING subscriber_id
           )
           SELECT 'bounce' AS "row!", ord, id AS "id!" FROM t
           UNION ALL SELECT 'blocklisted', NULL, id FROM blocklisted
           UNION ALL SELECT 'unsubscribed', NULL, subscriber_id FROM unsubscribed"#,
        &subscribers,
        &c.campaigns as &[Option<Uuid>],
        &c.types as &[&str],
        &c.sources as &[&str],
        &c.metas as &[&serde_json::Value],
        &c.times as &[Option<DateTime<Utc>>],
        &kept.ords,
        &kept.types as &[&str],
        &kept.bodies as &[&[u8]],
        &kept.sizes,
        &kept.truncated,
        &actions.blocklist,
        &actions.unsubscribe,
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut bounce_ids = HashMap::new();
    let mut changed = HashSet::new();
    for row in rows {
        match (row.row.as_str(), row.ord) {
            ("bounce", Some(ord)) => {
                bounce_ids.insert(order[(ord - 1) as usize], row.id);
            }
            ("blocklisted", _) => {
                changed.insert((row.id, Action::Blocklist));
            }
            ("unsubscribed", _) => {
                changed.insert((row.id, Action::Unsubscribe));
            }
            _ => unreachable!("the statement names each row it returns"),
        }
    }
    Ok((bounce_ids, changed))
}

/// The subscribers each action is planned for, by action. Every planned action has a
/// place here (an exhaustive match: a new `Action` cannot be planned and then silently
/// skipped).
#[derive(Debug, Default)]
struct Actions {
    blocklist: Vec<i32>,
    unsubscribe: Vec<i32>,
    delete: Vec<i32>,
}

impl Actions {
    fn planned(order: &[usize], steps: &HashMap<usize, Step>) -> Actions {
        let mut actions = Actions::default();
        for i in order {
            if let Step::Insert {
                subscriber_id,
                action: Some(a),
            }
            | Step::OverThreshold {
                subscriber_id,
                action: Some(a),
            } = steps[i]
            {
                match a {
                    Action::None => {}
                    Action::Blocklist => actions.blocklist.push(subscriber_id),
                    Action::Unsubscribe => actions.unsubscribe.push(subscriber_id),
                    Action::Delete => actions.delete.push(subscriber_id),
                }
            }
        }
        actions
    }
}

/// The `delete` action, exactly as listmonk does it (bounces and list memberships go with
/// the subscriber through ON DELETE CASCADE), after the evidence of their bounces. Last of
/// the actions: a subscriber blocklisted or unsubscribed earlier in the batch may be deleted
/// by a later event, as it would be event after event.
async fn delete_subscribers(
    tx: &mut Transaction<'static, Postgres>,
    ids: &[i32],
) -> Result<Vec<(i32, Action)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    super::evidence::forget_subscribers(tx, ids).await?;
    let deleted = sqlx::query_scalar!(
        "DELETE FROM subscribers WHERE id = ANY($1) RETURNING id",
        ids,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(deleted.into_iter().map(|id| (id, Action::Delete)).collect())
}

async fn insert_unmatched(
    tx: &mut Transaction<'static, Postgres>,
    events: &[BounceEvent],
    order: &[usize],
) -> Result<(), sqlx::Error> {
    if order.is_empty() {
        return Ok(());
    }
    let c = Columns::of(events, order);
    sqlx::query!(
        "INSERT INTO bounceops.unmatched
            (email, subscriber_uuid, campaign_uuid, type, source, meta, bounced_at)
         SELECT e, u, c, t, s, m, COALESCE(a, NOW())
         FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[],
                     $7::timestamptz[]) AS x(e, u, c, t, s, m, a)",
        &c.emails as &[Option<&str>],
        &c.subscribers as &[Option<Uuid>],
        &c.campaigns as &[Option<Uuid>],
        &c.types as &[&str],
        &c.sources as &[&str],
        &c.metas as &[&serde_json::Value],
        &c.times as &[Option<DateTime<Utc>>],
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps the ignored events, with their reason, out of listmonk's tables.
async fn insert_ignored(
    tx: &mut Transaction<'static, Postgres>,
    events: &[BounceEvent],
    order: &[usize],
) -> Result<(), sqlx::Error> {
    if order.is_empty() {
        return Ok(());
    }
    let reasons: Vec<&str> = order
        .iter()
        .map(|&i| events[i].reason.map_or("", |r| r.as_str()))
        .collect();
    let c = Columns::of(events, order);
    sqlx::query!(
        "INSERT INTO bounceops.ignored
            (email, subscriber_uuid, campaign_uuid, type, reason, source, meta, bounced_at)
         SELECT e, u, c, t, r, s, m, COALESCE(a, NOW())
         FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                     $7::jsonb[], $8::timestamptz[]) AS x(e, u, c, t, r, s, m, a)",
        &c.emails as &[Option<&str>],
        &c.subscribers as &[Option<Uuid>],
        &c.campaigns as &[Option<Uuid>],
        &c.types as &[&str],
        &reasons as &[&str],
        &c.sources as &[&str],
        &c.metas as &[&serde_json::Value],
        &c.times as &[Option<DateTime<Utc>>],
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The columns of a batch's bounce, unmatched and ignored rows, one array per column, as
/// `unnest` takes them (bounces use the subscriber's id instead of the first two).
struct Columns<'a> {
    emails: Vec<Option<&'a str>>,
    subscribers: Vec<Option<Uuid>>,
    campaigns: Vec<Option<Uuid>>,
    types: Vec<&'a str>,
    sources: Vec<&'a str>,
    metas: Vec<&'a serde_json::Value>,
    times: Vec<Option<DateTime<Utc>>>,
}

impl<'a> Columns<'a> {
    fn of(events: &'a [BounceEvent], order: &[usize]) -> Columns<'a> {
        let picked = || order.iter().map(|&i| &events[i]);
        Columns {
            emails: picked().map(|e| e.email.as_deref()).collect(),
            subscribers: picked().map(|e| e.subscriber_uuid).collect(),
            campaigns: picked().map(|e| e.campaign_uuid).collect(),
            types: picked().map(|e| e.bounce_type.as_str()).collect(),
            sources: picked().map(|e| e.source.as_str()).collect(),
            metas: picked().map(|e| &e.meta).collect(),
            times: picked().map(|e| e.created_at).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BounceType, received_id};

    fn event(event_id: String, request_digest: Option<[u8; 32]>) -> BounceEvent {
        BounceEvent {
            email: Some("x@example.com".into()),
            subscriber_uuid: None,
            campaign_uuid: None,
            bounce_type: BounceType::Soft,
            source: "t".into(),
            meta: serde_json::json!({}),
            created_at: None,
            event_id,
            reason: None,
            evidence: None,
            request_digest,
        }
    }

    /// Every id a sender may send again is claimed; of the ids made on receipt, only the
    /// first, which stands for the batch when a lost commit is settled.
    #[test]
    fn ids_made_on_receipt_are_claimed_once_per_batch() {
        let events = [
            event(received_id(), None),
            event("sendgrid-1".into(), None),
            event(received_id(), None),
            // An Idempotency-Key that looks like a made id is the sender's.
            event(received_id(), Some([1; 32])),
            // Only a UUID after the prefix is one of ours.
            event("received:42".into(), None),
            event(received_id(), None),
        ];
        assert_eq!(claimed(&events), [true, true, false, true, true, false]);
        assert_eq!(claimed(&events[1..2]), [true]);
        assert_eq!(claimed(&[]), Vec::<bool>::new());
    }
}
