//! The bounces kept in the worker's own tables instead of listmonk's `bounces`: those of
//! unknown subscribers (`bounceops.unmatched`, migration 0001) and those whose reason
//! `spec.rules.reasons` ignores (`bounceops.ignored`, migration 0004). Listed for
//! `GET /api/unmatched` and `GET /api/ignored`, purged after `spec.retention`.

use bounceops_api::RetentionSpec;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

use super::Store;
use super::purge::{PURGE_BATCH, delete_in_batches};

/// One of the worker's tables of kept bounces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Unmatched,
    Ignored,
}

impl Table {
    /// Spliced into SQL: only these fixed names ever are. The statements of this module
    /// stay dynamic for it (sqlx's macros take one literal text; the two tables share
    /// every statement); worker/tests/retention.rs lists and purges both tables.
    fn name(self) -> &'static str {
        match self {
            Table::Unmatched => "bounceops.unmatched",
            Table::Ignored => "bounceops.ignored",
        }
    }

    /// An ignored bounce has its reason in a column of its own; an unmatched one has it
    /// where every input writes it, in `meta`.
    fn reason(self) -> &'static str {
        match self {
            Table::Unmatched => "meta->>'reason'",
            Table::Ignored => "reason",
        }
    }
}

/// One kept bounce, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, FromRow)]
pub struct KeptBounce {
    pub id: i64,
    pub email: Option<String>,
    pub subscriber_uuid: Option<Uuid>,
    pub campaign_uuid: Option<Uuid>,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub bounce_type: String,
    pub reason: Option<String>,
    pub source: String,
    pub meta: serde_json::Value,
    /// When it bounced, as its input said (else when it was received).
    pub bounced_at: DateTime<Utc>,
    /// When a worker received it: what the retention counts from.
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Compared lower-cased, as subscribers' addresses are.
    pub email: Option<String>,
    pub source: Option<String>,
    /// A reason name (docs/reasons.md).
    pub reason: Option<String>,
    pub ascending: bool,
    /// `None` returns every row.
    pub limit: Option<i64>,
    pub offset: i64,
}

pub struct Page {
    pub total: i64,
    pub results: Vec<KeptBounce>,
}

/// The kept bounces of `table` that match `q`, newest received first unless `ascending`.
pub async fn list(store: &Store, table: Table, q: &ListQuery) -> Result<Page, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        total: i64,
        #[sqlx(flatten)]
        bounce: KeptBounce,
    }
    let direction = if q.ascending { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT COUNT(*) OVER () AS total, id, email, subscriber_uuid, campaign_uuid, type,
                {reason} AS reason, source, meta, bounced_at, received_at
         FROM {table}
         WHERE ($1::text IS NULL OR LOWER(email) = LOWER($1))
           AND ($2::text IS NULL OR source = $2)
           AND ($3::text IS NULL OR {reason} = $3)
         ORDER BY received_at {direction}, id {direction}
         LIMIT $4 OFFSET $5",
        reason = table.reason(),
        table = table.name(),
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(&q.email)
        .bind(&q.source)
        .bind(&q.reason)
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(&store.pool)
        .await?;
    Ok(Page {
        total: rows.first().map_or(0, |r| r.total),
        results: rows.into_iter().map(|r| r.bounce).collect(),
    })
}

/// What one purge deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub unmatched: u64,
    pub ignored: u64,
}

impl Purged {
    pub fn is_empty(&self) -> bool {
        self.unmatched == 0 && self.ignored == 0
    }
}

/// Deletes the kept bounces received longer ago than `retention` allows, [`PURGE_BATCH`]
/// rows per statement. Replicas purging at the same time skip each other's rows
/// (`SKIP LOCKED`), so concurrent runs neither wait nor fail; one run alone deletes
/// everything due.
pub async fn purge(store: &Store, retention: &RetentionSpec) -> Result<Purged, sqlx::Error> {
    Ok(Purged {
        unmatched: purge_table(store, Table::Unmatched, retention.unmatched_days).await?,
        ignored: purge_table(store, Table::Ignored, retention.ignored_days).await?,
    })
}

async fn purge_table(store: &Store, table: Table, days: u32) -> Result<u64, sqlx::Error> {
    let sql = format!(
        "DELETE FROM {table} WHERE id IN (
            SELECT id FROM {table}
            WHERE received_at < NOW() - make_interval(days => $1)
            ORDER BY received_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED)",
        table = table.name(),
    );
    // Days are at most 3650 (validated), far inside an int4.
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    delete_in_batches(|| async {
        let done = sqlx::query(&sql)
            .bind(days)
            .bind(PURGE_BATCH)
            .execute(&store.pool)
            .await?;
        Ok(done.rows_affected())
    })
    .await
}
