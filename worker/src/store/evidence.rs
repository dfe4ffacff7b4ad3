//! The evidence kept with bounce rows (`bounceops.evidence`, migration 0005): written by
//! the statement that inserts the bounce rows (`store::record`), read by
//! `GET /api/bounces/{id}/message`, purged after `spec.evidence.keepDays`.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

use super::Store;
use super::purge::delete_in_batches;
use crate::evidence::Kept;

pub use super::purge::PURGE_BATCH;

/// Kept evidence as `unnest` takes it, one array per column, each row keyed by a number
/// the inserting statement gives its bounce row (`store::record` inserts both at once).
pub(super) struct Rows<'a> {
    pub ords: Vec<i64>,
    pub types: Vec<&'a str>,
    pub bodies: Vec<&'a [u8]>,
    pub sizes: Vec<i64>,
    pub truncated: Vec<bool>,
}

impl<'a> Rows<'a> {
    pub fn of(rows: impl Iterator<Item = (i64, &'a Kept)>) -> Rows<'a> {
        let mut r = Rows {
            ords: Vec::new(),
            types: Vec::new(),
            bodies: Vec::new(),
            sizes: Vec::new(),
            truncated: Vec::new(),
        };
        for (ord, k) in rows {
            r.ords.push(ord);
            r.types.push(k.kind.content_type());
            r.bodies.push(k.gzip.as_ref());
            r.sizes
                .push(i64::try_from(k.original_bytes).unwrap_or(i64::MAX));
            r.truncated.push(k.truncated);
        }
        r
    }
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

/// Where the orphan sweep goes on from. Each purge looks at the next [`SWEEP_SPAN`] rows
/// of evidence in bounce-id order, and after the last row starts again from the first, so
/// one pass costs the same at any table size (looking at every row each time cost 2.8 s of
/// database time at 10 million rows: BENCHMARKS.md, issue 24) and the whole table is
/// looked at every `rows / SWEEP_SPAN` purges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    after: i32,
    span: i64,
}

/// Evidence rows the orphan sweep looks at per purge.
pub const SWEEP_SPAN: i64 = 200_000;

impl Default for Sweep {
    fn default() -> Self {
        Sweep::with_span(SWEEP_SPAN)
    }
}

impl Sweep {
    /// A sweep looking at `span` rows per purge, from the first.
    pub fn with_span(span: i64) -> Sweep {
        Sweep {
            after: 0,
            span: span.max(1),
        }
    }
}

/// Deletes the evidence kept longer than `keep_days` (all of it at 0), [`PURGE_BATCH`]
/// rows per statement, and that of bounce rows deleted since, among the rows `sweep` looks
/// at next (and moves it on). Replicas purging at the same time skip each other's rows
/// (`SKIP LOCKED`) or find them gone, so concurrent runs neither wait long nor fail; one
/// run alone deletes everything expired.
pub async fn purge(
    store: &Store,
    keep_days: u32,
    sweep: &mut Sweep,
) -> Result<Purged, sqlx::Error> {
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
    // evidence without its bounce means the bounce was deleted. The statement is planned
    // for its parameters every time: a generic plan cannot see how narrow the span is
    // (the file says how the statement keeps to the span: 0.35-0.5 s at 10 M rows,
    // wherever the span is; BENCHMARKS.md, issue 24).
    let mut tx = store.pool.begin().await?;
    sqlx::query!("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await?;
    let pass = sqlx::query_file!("sql/evidence_sweep.sql", sweep.after, sweep.span)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    sweep.after = match pass.last {
        Some(last) if pass.looked == sweep.span => last,
        // The end of the table: the next pass starts from the first row.
        _ => 0,
    };
    Ok(Purged {
        expired,
        orphaned: pass.orphaned as u64,
    })
}
