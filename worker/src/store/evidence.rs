//! The evidence kept with bounce rows (`bounceops.evidence`, migration 0005): written in
//! the transaction that inserts the bounce rows, read by `GET /api/bounces/{id}/message`,
//! purged after `spec.evidence.keepDays`.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

use super::Store;
use super::purge::delete_in_batches;
use crate::evidence::Kept;

pub use super::purge::PURGE_BATCH;

/// Stores the evidence of newly inserted bounce rows, `(bounce id, evidence)`.
pub async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[(i32, &Kept)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = rows.iter().map(|(id, _)| *id).collect();
    let types: Vec<&str> = rows.iter().map(|(_, k)| k.kind.content_type()).collect();
    let bodies: Vec<&[u8]> = rows.iter().map(|(_, k)| k.gzip.as_ref()).collect();
    let sizes: Vec<i64> = rows
        .iter()
        .map(|(_, k)| i64::try_from(k.original_bytes).unwrap_or(i64::MAX))
        .collect();
    let truncated: Vec<bool> = rows.iter().map(|(_, k)| k.truncated).collect();
    sqlx::query!(
        "INSERT INTO bounceops.evidence (bounce_id, content_type, gzip, original_bytes, truncated)
         SELECT * FROM unnest($1::int4[], $2::text[], $3::bytea[], $4::int8[], $5::bool[])",
        &ids,
        &types as &[&str],
        &bodies as &[&[u8]],
        &sizes,
        &truncated,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes the evidence of these subscribers' bounces, before the `delete` action deletes
/// the subscribers (and, by cascade, the bounces): nothing of a deleted subscriber stays
/// behind until the next purge.
pub async fn forget_subscribers(
    tx: &mut Transaction<'static, Postgres>,
    subscriber_ids: &[i32],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM bounceops.evidence e USING bounces b
         WHERE e.bounce_id = b.id AND b.subscriber_id = ANY($1)",
        subscriber_ids,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A bounce row, and its evidence if any is kept.
#[derive(Debug)]
pub struct Found {
    pub bounce_created_at: DateTime<Utc>,
    pub source: String,
    pub evidence: Option<Stored>,
}

/// Evidence as stored: still compressed.
#[derive(Debug)]
pub struct Stored {
    pub content_type: String,
    pub gzip: Vec<u8>,
    pub original_bytes: i64,
    pub truncated: bool,
}

/// The bounce `id` with its evidence; `None` when there is no such bounce.
pub async fn get(store: &Store, id: i32) -> Result<Option<Found>, sqlx::Error> {
    // The evidence's columns are NOT NULL in their table; the LEFT JOIN makes them
    // nullable here (`?`), and all four are present or none.
    let row = sqlx::query!(
        r#"SELECT b.created_at, b.source, e.content_type AS "content_type?", e.gzip AS "gzip?",
                  e.original_bytes AS "original_bytes?", e.truncated AS "truncated?"
           FROM bounces b LEFT JOIN bounceops.evidence e ON e.bounce_id = b.id
           WHERE b.id = $1"#,
        id,
    )
    .fetch_optional(&store.pool)
    .await?;
    Ok(row.map(|r| {
        let evidence = match (r.content_type, r.gzip, r.original_bytes, r.truncated) {
            (Some(content_type), Some(gzip), Some(original_bytes), Some(truncated)) => {
                Some(Stored {
                    content_type,
                    gzip,
                    original_bytes,
                    truncated,
                })
            }
            _ => None,
        };
        Found {
            bounce_created_at: r.created_at,
            source: r.source,
            evidence,
        }
    }))
}

/// What one purge deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Kept longer than `keepDays`.
    pub expired: u64,
    /// Whose bounce row is gone.
    pub orphaned: u64,
}

impl Purged {
    pub fn is_empty(&self) -> bool {
        self.expired == 0 && self.orphaned == 0
    }
}

/// Deletes the evidence kept longer than `keep_days` (all of it at 0), and that of bounce
/// rows deleted since, [`PURGE_BATCH`] rows per statement. Replicas purging at the same
/// time skip each other's rows (`SKIP LOCKED`), so concurrent runs neither wait nor fail;
/// one run alone deletes everything due.
pub async fn purge(store: &Store, keep_days: u32) -> Result<Purged, sqlx::Error> {
    let expired = delete_in_batches(|| async {
        let done = sqlx::query!(
            "DELETE FROM bounceops.evidence WHERE bounce_id IN (
                SELECT bounce_id FROM bounceops.evidence
                WHERE created_at < NOW() - make_interval(days => $1)
                ORDER BY created_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED)",
            keep_days as i32,
            PURGE_BATCH,
        )
        .execute(&store.pool)
        .await?;
        Ok(done.rows_affected())
    })
    .await?;
    // A bounce row and its evidence are committed together, so a snapshot that sees the
    // evidence without its bounce means the bounce was deleted.
    let orphaned = delete_in_batches(|| async {
        let done = sqlx::query!(
            "DELETE FROM bounceops.evidence WHERE bounce_id IN (
                SELECT e.bounce_id FROM bounceops.evidence e
                WHERE NOT EXISTS (SELECT 1 FROM bounces b WHERE b.id = e.bounce_id)
                LIMIT $1
                FOR UPDATE OF e SKIP LOCKED)",
            PURGE_BATCH,
        )
        .execute(&store.pool)
        .await?;
        Ok(done.rows_affected())
    })
    .await?;
    Ok(Purged { expired, orphaned })
}
