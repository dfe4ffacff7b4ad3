//! listmonk's bounce API queries: list (paged, ordered, filtered), get, delete.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;

use super::Store;
use uuid::Uuid;

/// One bounce as listmonk's API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BounceRecord {
    pub id: i32,
    #[serde(rename = "type")]
    pub bounce_type: String,
    pub source: String,
    pub meta: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub email: String,
    pub subscriber_uuid: Uuid,
    pub subscriber_id: i32,
    pub subscriber_status: String,
    pub campaign: Option<CampaignRef>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CampaignRef {
    pub id: i32,
    pub name: String,
}

#[derive(FromRow)]
struct Row {
    total: i64,
    id: i32,
    bounce_type: String,
    source: String,
    meta: serde_json::Value,
    created_at: DateTime<Utc>,
    email: String,
    subscriber_uuid: Uuid,
    subscriber_id: i32,
    subscriber_status: String,
    campaign_id: Option<i32>,
    campaign_name: Option<String>,
}

impl From<Row> for BounceRecord {
    fn from(r: Row) -> Self {
        BounceRecord {
            id: r.id,
            bounce_type: r.bounce_type,
            source: r.source,
            meta: r.meta,
            created_at: r.created_at,
            email: r.email,
            subscriber_uuid: r.subscriber_uuid,
            subscriber_id: r.subscriber_id,
            subscriber_status: r.subscriber_status,
            campaign: match (r.campaign_id, r.campaign_name) {
                (Some(id), Some(name)) => Some(CampaignRef { id, name }),
                _ => None,
            },
        }
    }
}

/// The columns listmonk lets a client order by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    Email,
    CampaignName,
    Source,
    #[default]
    CreatedAt,
    Type,
}

impl OrderBy {
    pub fn parse(s: &str) -> Option<OrderBy> {
        Some(match s {
            "email" => OrderBy::Email,
            "campaign_name" => OrderBy::CampaignName,
            "source" => OrderBy::Source,
            "created_at" => OrderBy::CreatedAt,
            "type" => OrderBy::Type,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            OrderBy::Email => "s.email",
            OrderBy::CampaignName => "c.name",
            OrderBy::Source => "b.source",
            OrderBy::CreatedAt => "b.created_at",
            OrderBy::Type => "b.type",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Ids are compared as 64-bit numbers: an id beyond listmonk's 32-bit columns matches
    /// nothing instead of failing the query.
    pub id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub subscriber_id: Option<i64>,
    pub source: Option<String>,
    /// A reason name (docs/reasons.md), compared with `meta.reason`.
    pub reason: Option<String>,
    pub order_by: OrderBy,
    pub descending: bool,
    /// `None` returns every row (listmonk's `per_page=all`).
    pub limit: Option<i64>,
    pub offset: i64,
}

pub struct Page {
    pub total: i64,
    pub results: Vec<BounceRecord>,
}

pub async fn list(store: &Store, q: &ListQuery) -> Result<Page, sqlx::Error> {
    // Only the ORDER BY is spliced in, and only from the fixed names above. So the one
    // statement that stays dynamic (sqlx's macros take one literal text: this would be a
    // copy per column and direction); worker/tests/api.rs runs it with several columns,
    // both directions.
    let direction = if q.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT COUNT(*) OVER () AS total, b.id, b.type::text AS bounce_type, b.source, b.meta,
                b.created_at, s.email, s.uuid AS subscriber_uuid, b.subscriber_id,
                s.status::text AS subscriber_status, b.campaign_id, c.name AS campaign_name
         FROM bounces b
         JOIN subscribers s ON s.id = b.subscriber_id
         LEFT JOIN campaigns c ON c.id = b.campaign_id
         WHERE ($1::int8 IS NULL OR b.id = $1)
           AND ($2::int8 IS NULL OR b.campaign_id = $2)
           AND ($3::int8 IS NULL OR b.subscriber_id = $3)
           AND ($4::text IS NULL OR b.source = $4)
           AND ($7::text IS NULL OR b.meta->>'reason' = $7)
         ORDER BY {col} {direction} NULLS LAST, b.id {direction}
         LIMIT $5 OFFSET $6",
        col = q.order_by.column(),
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(q.id)
        .bind(q.campaign_id)
        .bind(q.subscriber_id)
        .bind(&q.source)
        .bind(q.limit)
        .bind(q.offset)
        .bind(&q.reason)
        .fetch_all(&store.pool)
        .await?;
    Ok(Page {
        total: rows.first().map_or(0, |r| r.total),
        results: rows.into_iter().map(BounceRecord::from).collect(),
    })
}

pub async fn get(store: &Store, id: i64) -> Result<Option<BounceRecord>, sqlx::Error> {
    let q = ListQuery {
        id: Some(id),
        ..Default::default()
    };
    Ok(list(store, &q).await?.results.into_iter().next())
}

/// Which bounces a delete removes.
pub enum Selection<'a> {
    All,
    Ids(&'a [i64]),
    Subscriber(i64),
}

pub async fn delete(store: &Store, which: Selection<'_>) -> Result<u64, sqlx::Error> {
    let done = match which {
        Selection::All => {
            sqlx::query!("DELETE FROM bounces")
                .execute(&store.pool)
                .await?
        }
        Selection::Ids(ids) => {
            sqlx::query!("DELETE FROM bounces WHERE id = ANY($1::int8[])", ids)
                .execute(&store.pool)
                .await?
        }
        Selection::Subscriber(id) => {
            sqlx::query!("DELETE FROM bounces WHERE subscriber_id = $1::int8", id)
                .execute(&store.pool)
                .await?
        }
    };
    Ok(done.rows_affected())
}
