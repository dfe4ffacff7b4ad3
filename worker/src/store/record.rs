//! Recording bounces with listmonk's semantics (DESIGN §3), race-free across replicas.
//!
//! A batch of events is recorded in one transaction, in four steps:
//! 1. claim provider event ids (exactly once: a retry finds its id taken);
//! 2. find each subscriber (UUID first, else lower-cased e-mail);
//! 3. take a transaction-level advisory lock on every subscriber involved, in ascending id
//!    order, so that two transactions never wait on each other in a cycle;
//! 4. per event, in arrival order: count, decide (a pure function), insert, act.
//!
//! Under the lock, the count a transaction sees includes every committed bounce of that
//! subscriber, so no two replicas can both see the same `n` and skip or double an action.
//! Batching many events into one transaction is the group commit that lets the webhook
//! answer only after the commit without paying one fsync per event.

use std::collections::HashMap;

use bounceops_api::Action;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::event::{BounceEvent, Outcome};
use crate::rules::{Rules, decide};

/// First key of the two-key advisory lock on a subscriber; the second is its id. A fixed
/// namespace keeps our locks apart from any other application's on the same database.
const SUBSCRIBER_LOCK_NAMESPACE: i32 = 0x626f_756e; // "boun"

/// Records `events` in one transaction and returns one outcome per event, in order.
/// On error nothing of the batch is committed.
pub async fn record(
    pool: &PgPool,
    rules: &Rules,
    events: &[BounceEvent],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];

    for i in claim_event_ids(&mut tx, events).await? {
        outcomes[i] = Some(Outcome::Duplicate);
    }

    let pending: Vec<usize> = (0..events.len())
        .filter(|&i| outcomes[i].is_none())
        .collect();
    let subscriber_ids = find_subscribers(&mut tx, events, &pending).await?;

    let mut to_lock: Vec<i32> = subscriber_ids.values().copied().collect();
    to_lock.sort_unstable();
    to_lock.dedup();
    if !to_lock.is_empty() {
        // The ORDER BY in the subquery fixes the order in which the locks are taken.
        sqlx::query(
            "SELECT pg_advisory_xact_lock($1, id)
             FROM (SELECT unnest($2::int4[]) AS id ORDER BY 1) AS ids",
        )
        .bind(SUBSCRIBER_LOCK_NAMESPACE)
        .bind(&to_lock)
        .execute(&mut *tx)
        .await?;
    }

    for i in pending {
        let event = &events[i];
        let outcome = match subscriber_ids.get(&i) {
            Some(&id) => match record_one(&mut tx, rules, id, event).await? {
                Some(outcome) => outcome,
                // Deleted after the lookup (by an earlier event of this batch, or by
                // another transaction before we got the lock): now unknown.
                None => keep_unmatched(&mut tx, event).await?,
            },
            None => keep_unmatched(&mut tx, event).await?,
        };
        outcomes[i] = Some(outcome);
    }

    tx.commit().await?;
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every event has an outcome"))
        .collect())
}

/// Inserts the provider event ids of the batch; returns the indexes of events whose id was
/// already recorded (by an earlier commit, or earlier in this batch). Ids are inserted in
/// sorted order so that concurrent batches sharing ids cannot deadlock on them.
async fn claim_event_ids(
    tx: &mut Transaction<'static, Postgres>,
    events: &[BounceEvent],
) -> Result<Vec<usize>, sqlx::Error> {
    let keyed: Vec<(usize, &str, &str)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.event_id.as_deref().map(|id| (i, e.source.as_str(), id)))
        .collect();
    if keyed.is_empty() {
        return Ok(Vec::new());
    }
    let sources: Vec<&str> = keyed.iter().map(|k| k.1).collect();
    let ids: Vec<&str> = keyed.iter().map(|k| k.2).collect();
    let fresh: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO bounceops.processed_events (source, event_id)
         SELECT s, e FROM unnest($1::text[], $2::text[]) AS t(s, e) ORDER BY s, e
         ON CONFLICT DO NOTHING
         RETURNING source, event_id",
    )
    .bind(&sources)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut unclaimed: std::collections::HashSet<(String, String)> = fresh.into_iter().collect();
    Ok(keyed
        .into_iter()
        .filter(|(_, s, id)| !unclaimed.remove(&((*s).to_owned(), (*id).to_owned())))
        .map(|(i, _, _)| i)
        .collect())
}

/// Maps event index -> subscriber id for the events whose subscriber exists. A given UUID
/// decides alone, as in listmonk: it does not fall back to the e-mail address.
async fn find_subscribers(
    tx: &mut Transaction<'static, Postgres>,
    events: &[BounceEvent],
    pending: &[usize],
) -> Result<HashMap<usize, i32>, sqlx::Error> {
    if pending.is_empty() {
        return Ok(HashMap::new());
    }
    let idx: Vec<i32> = pending.iter().map(|&i| i as i32).collect();
    let uuids: Vec<Option<Uuid>> = pending.iter().map(|&i| events[i].subscriber_uuid).collect();
    let emails: Vec<Option<String>> = pending
        .iter()
        .map(|&i| events[i].email.as_ref().map(|e| e.to_lowercase()))
        .collect();
    let rows: Vec<(i32, i32)> = sqlx::query_as(
        "SELECT t.i, COALESCE(by_uuid.id, by_email.id)
         FROM unnest($1::int4[], $2::uuid[], $3::text[]) AS t(i, u, e)
         LEFT JOIN subscribers by_uuid ON by_uuid.uuid = t.u
         LEFT JOIN subscribers by_email ON t.u IS NULL AND LOWER(by_email.email) = t.e
         WHERE COALESCE(by_uuid.id, by_email.id) IS NOT NULL",
    )
    .bind(&idx)
    .bind(&uuids)
    .bind(&emails)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(i, id)| (i as usize, id)).collect())
}

/// Applies the rules to one event of a locked, existing subscriber. `None` when the
/// subscriber no longer exists.
async fn record_one(
    tx: &mut Transaction<'static, Postgres>,
    rules: &Rules,
    subscriber_id: i32,
    event: &BounceEvent,
) -> Result<Option<Outcome>, sqlx::Error> {
    let window_secs = rules.window.map(|w| w.as_secs_f64());
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT s.status::text,
                (SELECT COUNT(*) FROM bounces b
                  WHERE b.subscriber_id = s.id AND b.type = $2::bounce_type
                    AND ($3::float8 IS NULL OR b.created_at > NOW() - make_interval(secs => $3)))
         FROM subscribers s WHERE s.id = $1",
    )
    .bind(subscriber_id)
    .bind(event.bounce_type.as_str())
    .bind(window_secs)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((status, existing)) = row else {
        return Ok(None);
    };
    let blocklisted = status == "blocklisted";
    let rule = rules.for_type(event.bounce_type);
    let decision = decide(
        existing + 1,
        rule,
        blocklisted,
        rules.record_after_threshold,
    );

    let bounce_id = if decision.insert {
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO bounces (subscriber_id, campaign_id, type, source, meta, created_at)
             VALUES ($1, (SELECT id FROM campaigns WHERE uuid = $2), $3::bounce_type, $4, $5,
                     COALESCE($6, NOW()))
             RETURNING id",
        )
        .bind(subscriber_id)
        .bind(event.campaign_uuid)
        .bind(event.bounce_type.as_str())
        .bind(&event.source)
        .bind(&event.meta)
        .bind(event.created_at)
        .fetch_one(&mut **tx)
        .await?;
        Some(id)
    } else {
        None
    };

    let applied = match decision.action {
        Some(action) => apply(tx, action, subscriber_id).await?.then_some(action),
        None => None,
    };

    Ok(Some(match bounce_id {
        Some(bounce_id) => Outcome::Recorded {
            bounce_id,
            action: applied,
        },
        None if blocklisted => Outcome::Blocklisted,
        None => Outcome::OverThreshold { action: applied },
    }))
}

/// Carries out an action exactly as listmonk does; returns whether anything changed.
/// listmonk leaves `updated_at` alone in all three, and so do we.
async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    action: Action,
    subscriber_id: i32,
) -> Result<bool, sqlx::Error> {
    let sql = match action {
        Action::None => return Ok(false),
        Action::Blocklist => {
            "UPDATE subscribers SET status = 'blocklisted' WHERE id = $1 AND status <> 'blocklisted'"
        }
        Action::Unsubscribe => {
            "UPDATE subscriber_lists SET status = 'unsubscribed'
             WHERE subscriber_id = $1 AND status <> 'unsubscribed'"
        }
        // Bounces and list memberships go with it through listmonk's ON DELETE CASCADE.
        Action::Delete => "DELETE FROM subscribers WHERE id = $1",
    };
    let done = sqlx::query(sql)
        .bind(subscriber_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

async fn keep_unmatched(
    tx: &mut Transaction<'static, Postgres>,
    event: &BounceEvent,
) -> Result<Outcome, sqlx::Error> {
    sqlx::query(
        "INSERT INTO bounceops.unmatched
            (email, subscriber_uuid, campaign_uuid, type, source, meta, bounced_at)
         VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, NOW()))",
    )
    .bind(&event.email)
    .bind(event.subscriber_uuid)
    .bind(event.campaign_uuid)
    .bind(event.bounce_type.as_str())
    .bind(&event.source)
    .bind(&event.meta)
    .bind(event.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(Outcome::Unmatched)
}
