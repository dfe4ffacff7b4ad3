//! `bounceops.dead_letters`: events the database refuses whatever is retried, parked so
//! that the rest of their batch is recorded (`ingest` finds them), listed by the API, and
//! purged after `spec.retention.deadLetterDays`.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::Store;
use crate::event::BounceEvent;
use crate::storable::{MAX_EVENT_ID_BYTES, ascii};

/// Parks `e`, refused by the database for `reason`, and claims its id in the same
/// transaction, so that a retry of it is a duplicate. Returns the dead letter's id, or
/// None when the id was claimed already (the event is recorded or parked, by a concurrent
/// attempt or an earlier one).
pub async fn park(
    store: &Store,
    e: &BounceEvent,
    reason: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let source = ascii(&e.source);
    let event_id = parked_id(&e.event_id);
    // READ COMMITTED whatever the database's default, as a batch's: the claim must read the
    // current half after its lock is granted, with a snapshot of its own.
    let mut tx = store
        .pool
        .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await?;
    // The claim is a batch's (`bounceops.claim_batch`, which knows the halves the ids are
    // kept in) of this one event, not counted, so nothing is locked but the claim.
    let id = sqlx::query_scalar!(
        "WITH claim AS (
             SELECT 1 FROM bounceops.claim_batch(
                 ARRAY[$1::text], ARRAY[$2::text], ARRAY[$5::bytea], ARRAY[TRUE],
                 ARRAY[FALSE], ARRAY[NULL::uuid], ARRAY[NULL::text], 0, NULL)
             WHERE event_ord IS NOT NULL)
         INSERT INTO bounceops.dead_letters (source, event_id, reason, item)
         SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM claim)
         RETURNING id",
        source,
        event_id,
        ascii(reason),
        item(e),
        e.request_digest.as_ref().map(|d| d.as_slice()) as Option<&[u8]>,
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The id a dead letter keeps (and claims) for `event_id`: ASCII, so that the row goes in
/// whatever refused the event; an id that escaping made long is kept by its digest, as
/// `storable` keeps long ids.
fn parked_id(event_id: &str) -> String {
    let id = ascii(event_id);
    if id.len() > MAX_EVENT_ID_BYTES {
        return format!("sha256:{}", hex::encode(Sha256::digest(&id)));
    }
    id
}

/// The event as the worker tried to store it, as JSON.
fn item(e: &BounceEvent) -> Vec<u8> {
    let value = serde_json::json!({
        "email": e.email,
        "subscriber_uuid": e.subscriber_uuid,
        "campaign_uuid": e.campaign_uuid,
        "type": e.bounce_type.as_str(),
        "source": e.source,
        "event_id": e.event_id,
        "created_at": e.created_at,
        "meta": e.meta,
    });
    // Serialising a `Value` cannot fail (its map keys are strings).
    serde_json::to_vec(&value).unwrap_or_default()
}

/// One dead letter as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub reason: String,
    /// The parked event: JSON when it reads as JSON, else its bytes as lossy text.
    pub item: serde_json::Value,
    pub received_at: DateTime<Utc>,
}

struct Row {
    id: i64,
    source: String,
    event_id: String,
    reason: String,
    item: Vec<u8>,
    received_at: DateTime<Utc>,
    total: i64,
}

/// A page of dead letters, newest first, and how many there are in all (of `source`, when
/// given).
pub async fn list(
    store: &Store,
    source: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DeadLetter>, i64), sqlx::Error> {
    let source = source.map(ascii);
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, source, event_id, reason, item, received_at, COUNT(*) OVER () AS "total!"
             FROM bounceops.dead_letters
            WHERE $1::text IS NULL OR source = $1
            ORDER BY id DESC LIMIT $2 OFFSET $3"#,
        source,
        limit,
        offset,
    )
    .fetch_all(&store.pool)
    .await?;
    let total = match rows.first() {
        Some(r) => r.total,
        // Past the last page the window has no row to count on.
        None if offset > 0 => {
            sqlx::query_scalar!(
                r#"SELECT COUNT(*) AS "count!" FROM bounceops.dead_letters
                        WHERE $1::text IS NULL OR source = $1"#,
                source,
            )
            .fetch_one(&store.pool)
            .await?
        }
        None => 0,
    };
    let letters = rows
        .into_iter()
        .map(|r| DeadLetter {
            id: r.id,
            source: r.source,
            event_id: r.event_id,
            reason: r.reason,
            item: serde_json::from_slice(&r.item)
                .unwrap_or_else(|_| String::from_utf8_lossy(&r.item).into_owned().into()),
            received_at: r.received_at,
        })
        .collect();
    Ok((letters, total))
}

/// Deletes dead letters older than `keep_days`; returns how many.
pub async fn purge(store: &Store, keep_days: u32) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM bounceops.dead_letters
          WHERE received_at < NOW() - make_interval(days => $1)",
        keep_days as i32,
    )
    .execute(&store.pool)
    .await?;
    Ok(done.rows_affected())
}
