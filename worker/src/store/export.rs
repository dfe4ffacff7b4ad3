//! Streaming export of bounces as CSV or NDJSON, of any size, in flat memory.
//!
//! Postgres formats the rows itself (`COPY ... TO STDOUT`), which is both the fastest path
//! and the one that gets CSV quoting right; the bytes flow from the server through a small
//! bounded channel to the HTTP response, so a slow client slows the query instead of
//! filling memory. COPY takes no bind parameters, so the filters travel as transaction-
//! local settings (`set_config`) that the query reads back: no value is spliced into SQL.

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::{Acquire, PgPool};
use tokio::sync::{mpsc, oneshot};

use crate::event::BounceType;

/// Size of the pieces sent to the client: large enough to amortise the per-chunk cost,
/// small enough that the bounded channel keeps memory flat (8 of them in flight).
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub bounce_type: Option<BounceType>,
    pub source: Option<String>,
    pub campaign_id: Option<i32>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

const FROM_WHERE: &str = "
    FROM bounces b
    JOIN subscribers s ON s.id = b.subscriber_id
    LEFT JOIN campaigns c ON c.id = b.campaign_id
    CROSS JOIN (SELECT NULLIF(current_setting('bounceops.export_type'), '') AS type,
                       NULLIF(current_setting('bounceops.export_source'), '') AS source,
                       NULLIF(current_setting('bounceops.export_campaign'), '')::int4 AS campaign,
                       NULLIF(current_setting('bounceops.export_since'), '')::timestamptz AS since,
                       NULLIF(current_setting('bounceops.export_until'), '')::timestamptz AS until) f
    WHERE (f.type IS NULL OR b.type::text = f.type)
      AND (f.source IS NULL OR b.source = f.source)
      AND (f.campaign IS NULL OR b.campaign_id = f.campaign)
      AND (f.since IS NULL OR b.created_at >= f.since)
      AND (f.until IS NULL OR b.created_at < f.until)
    ORDER BY b.id";

fn copy_statement(format: Format) -> String {
    match format {
        Format::Csv => format!(
            "COPY (SELECT b.id, b.type, b.source, s.email, s.uuid AS subscriber_uuid,
                          b.subscriber_id, s.status AS subscriber_status, b.campaign_id,
                          c.name AS campaign_name, to_json(b.created_at) #>> '{{}}' AS created_at,
                          b.meta
                   {FROM_WHERE})
             TO STDOUT WITH (FORMAT csv, HEADER true)"
        ),
        // One JSON object per line. CSV format with quote and delimiter characters that
        // JSON text cannot contain unescaped (control characters) copies each object
        // verbatim, whereas text format would double every backslash in it.
        Format::Ndjson => format!(
            "COPY (SELECT json_build_object(
                     'id', b.id, 'type', b.type, 'source', b.source, 'meta', b.meta,
                     'created_at', b.created_at, 'email', s.email,
                     'subscriber_uuid', s.uuid, 'subscriber_id', b.subscriber_id,
                     'subscriber_status', s.status,
                     'campaign', CASE WHEN c.id IS NULL THEN NULL
                                      ELSE json_build_object('id', c.id, 'name', c.name) END)
                   {FROM_WHERE})
             TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        ),
    }
}

/// Starts an export. Returns once Postgres has accepted the query (so a database error
/// becomes an HTTP error, not a truncated 200), then streams chunks through the receiver.
pub async fn start(
    pool: &PgPool,
    filter: Filter,
    format: Format,
) -> Result<mpsc::Receiver<Result<Bytes, sqlx::Error>>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let (started_tx, started_rx) = oneshot::channel();
    let (chunks_tx, chunks_rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut started = Some(started_tx);
        let mut finished = false;
        let result: Result<(), sqlx::Error> = async {
            let mut tx = conn.begin().await?;
            sqlx::query(
                "SELECT set_config('bounceops.export_type', $1, true),
                        set_config('bounceops.export_source', $2, true),
                        set_config('bounceops.export_campaign', $3, true),
                        set_config('bounceops.export_since', $4, true),
                        set_config('bounceops.export_until', $5, true),
                        set_config('TimeZone', 'UTC', true)",
            )
            .bind(filter.bounce_type.map_or("", |t| t.as_str()))
            .bind(filter.source.as_deref().unwrap_or(""))
            .bind(
                filter
                    .campaign_id
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
            )
            .bind(filter.since.map(|t| t.to_rfc3339()).unwrap_or_default())
            .bind(filter.until.map(|t| t.to_rfc3339()).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
            let mut stream = tx.copy_out_raw(&copy_statement(format)).await?;
            if let Some(s) = started.take() {
                let _ = s.send(Ok(()));
            }
            // Postgres sends one CopyData message per row; forwarding each as its own
            // HTTP chunk would cost a channel hand-off and a chunk header per row.
            let mut buf = BytesMut::with_capacity(CHUNK_BYTES);
            while let Some(row) = stream.next().await {
                buf.extend_from_slice(&row?);
                if buf.len() >= CHUNK_BYTES
                    && chunks_tx.send(Ok(buf.split().freeze())).await.is_err()
                {
                    return Ok(()); // the client went away
                }
            }
            if !buf.is_empty() && chunks_tx.send(Ok(buf.freeze())).await.is_err() {
                return Ok(());
            }
            drop(stream);
            tx.commit().await?;
            finished = true;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            match started.take() {
                Some(s) => {
                    let _ = s.send(Err(e));
                }
                None => {
                    // Mid-stream: the client sees the body end with an error, never a
                    // silently short export that looks complete.
                    tracing::warn!(error = %e, "export failed mid-stream");
                    let _ = chunks_tx.send(Err(e)).await;
                }
            }
        }
        if !finished {
            // A COPY abandoned half-way leaves the connection mid-protocol; close it
            // rather than hand it back to the pool.
            let _ = conn.close().await;
        }
    });
    match started_rx.await {
        Ok(Ok(())) => Ok(chunks_rx),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(sqlx::Error::WorkerCrashed),
    }
}
