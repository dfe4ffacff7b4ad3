//! Streaming export of bounces as CSV or NDJSON, of any size, in flat memory.
//!
//! Postgres formats the rows itself (`COPY ... TO STDOUT`), which is both the fastest path
//! and the one that gets CSV quoting right; the bytes flow from the server through a small
//! bounded channel to the HTTP response, so a slow client slows the query instead of
//! filling memory. COPY takes no bind parameters, so the filters travel as transaction-
//! local settings (`set_config`) that the query reads back: no value is spliced into SQL.
//!
//! Since a slow client holds its connection for as long as it dawdles, exports run on
//! connections of their own ([`ExportLimits`]), and a client that stops reading is cut off.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use sqlx::Acquire;
use tokio::sync::{mpsc, oneshot};

use super::Store;
use crate::event::BounceType;

/// Size of the pieces sent to the client: large enough to amortise the per-chunk cost,
/// small enough that the bounded channel keeps memory flat (8 of them in flight).
const CHUNK_BYTES: usize = 64 * 1024;

/// How exports use the database. `from_env` documents the defaults' reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportLimits {
    /// Connections, hence exports at the same time, per worker (taken out of
    /// `spec.database.maxConnections`: at most a quarter of it, at least one).
    pub connections: u32,
    /// How long a new export waits for a free connection before it is refused with 503.
    pub wait: Duration,
    /// How long the client may leave a chunk unread before the export is cut off.
    pub stall: Duration,
    /// The longest one export may take, however steadily the client reads.
    pub deadline: Duration,
}

impl Default for ExportLimits {
    /// Two connections: exports are rare (an operator's download, a nightly job), and each
    /// streams some 200,000 rows a second, so a third caller waits seconds at most. 30 s
    /// without reading 64 KiB is a client that stopped, not a slow link. 30 minutes is
    /// some 300 million rows at the measured rate (BENCHMARKS.md): only a client that
    /// reads just fast enough to dodge the stall timeout reaches it.
    fn default() -> Self {
        ExportLimits {
            connections: 2,
            wait: Duration::from_secs(2),
            stall: Duration::from_secs(30),
            deadline: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Every export connection is taken: the caller should retry later.
    #[error("all {0} export connections are in use")]
    Busy(u32),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The error that ends an export's body when the export did not run to its end, so that
/// the client sees a broken download rather than a short one that looks complete.
#[derive(Debug, thiserror::Error)]
#[error("the export was cut off before its end")]
pub struct Incomplete;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv(Cells),
    Ndjson,
}

/// What a CSV cell holds when its text would start a spreadsheet formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cells {
    /// OWASP's advice against CSV injection: a cell of free text that begins with `=`,
    /// `+`, `-`, `@`, TAB or CR gets a leading `'`, so that a spreadsheet shows it as text
    /// instead of running it (a remote server's reply reaches `diagnostic` unchecked).
    #[default]
    Neutralised,
    /// Every cell exactly as stored, for byte-exact exports read by programs.
    AsStored,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub bounce_type: Option<BounceType>,
    pub source: Option<String>,
    pub campaign_id: Option<i32>,
    /// A reason name (docs/reasons.md), compared with `meta.reason`.
    pub reason: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The rows an export reads: every bounce with its subscriber and campaign.
const FROM: &str = "
    FROM bounces b
    JOIN subscribers s ON s.id = b.subscriber_id
    LEFT JOIN campaigns c ON c.id = b.campaign_id";

/// The export's filters, each from a setting of the transaction (empty: no filter), so that
/// the statement is one text whatever the request asks.
const WHERE: &str = "
    CROSS JOIN (SELECT NULLIF(current_setting('bounceops.export_type'), '') AS type,
                       NULLIF(current_setting('bounceops.export_source'), '') AS source,
                       NULLIF(current_setting('bounceops.export_campaign'), '')::int4 AS campaign,
                       NULLIF(current_setting('bounceops.export_reason'), '') AS reason,
                       NULLIF(current_setting('bounceops.export_since'), '')::timestamptz AS since,
                       NULLIF(current_setting('bounceops.export_until'), '')::timestamptz AS until) f
    WHERE (f.type IS NULL OR b.type::text = f.type)
      AND (f.source IS NULL OR b.source = f.source)
      AND (f.campaign IS NULL OR b.campaign_id = f.campaign)
      AND (f.reason IS NULL OR b.meta->>'reason' = f.reason)
      AND (f.since IS NULL OR b.created_at >= f.since)
      AND (f.until IS NULL OR b.created_at < f.until)";

/// The unfiltered CSV export as a plain query: what `bench/export.sh` gives `psql \copy`
/// (through `cargo run --example export_query`), so that the benchmark compares the very
/// query the worker runs.
pub fn csv_query(cells: Cells) -> String {
    format!("SELECT {} {FROM} ORDER BY b.id", csv_columns(cells))
}

/// A CSV column of free text, neutralised as [`Cells`] says. Done by Postgres inside the
/// COPY, so the export keeps its speed (BENCHMARKS.md). `type`, `subscriber_status`, the
/// ids, the UUID and `created_at` cannot start a formula; `meta` is JSON text, which starts
/// with `{`, `[`, `"`, a letter or a number (a `-` there is a negative number, not a
/// formula), so it is left as stored too. The first character is compared by its code
/// (`=`, `+`, `-`, `@`, TAB, CR), which copies no text: with `left(x, 1)` the default export
/// took 18.6 s against 13.8 s for `raw=true`, with `ascii` 12.6 s against 12.3 s (one run
/// each, BENCHMARKS.md).
fn text_cell(expr: &str, name: &str, cells: Cells) -> String {
    match cells {
        Cells::AsStored => format!("{expr} AS {name}"),
        Cells::Neutralised => format!(
            r#"CASE WHEN ascii({expr}) IN (61, 43, 45, 64, 9, 13)
                    THEN '''' || ({expr}) ELSE {expr} END AS {name}"#
        ),
    }
}

/// The CSV's columns, as `SELECT` lists them. Why it bounced (`reason`, `status`,
/// `diagnostic`: the keys every input writes into `meta`, docs/reasons.md) comes after
/// `meta`, so the columns of earlier versions keep their places.
pub fn csv_columns(cells: Cells) -> String {
    [
        "b.id, b.type".to_owned(),
        text_cell("b.source", "source", cells),
        text_cell("s.email", "email", cells),
        "s.uuid AS subscriber_uuid, b.subscriber_id, s.status AS subscriber_status, \
         b.campaign_id"
            .to_owned(),
        text_cell("c.name", "campaign_name", cells),
        "to_json(b.created_at) #>> '{}' AS created_at, b.meta".to_owned(),
        text_cell("b.meta->>'reason'", "reason", cells),
        text_cell("b.meta->>'status'", "status", cells),
        text_cell("b.meta->>'diagnostic'", "diagnostic", cells),
    ]
    .join(", ")
}

const WHY_JSON: &str = "'reason', b.meta->>'reason', 'status', b.meta->>'status',
                        'diagnostic', b.meta->>'diagnostic'";

fn copy_statement(format: Format) -> String {
    match format {
        Format::Csv(cells) => format!(
            "COPY (SELECT {} {FROM} {WHERE} ORDER BY b.id) TO STDOUT WITH (FORMAT csv, HEADER true)",
            csv_columns(cells)
        ),
        // One JSON object per line. CSV format with quote and delimiter characters that
        // JSON text cannot contain unescaped (control characters) copies each object
        // verbatim, whereas text format would double every backslash in it. Postgres
        // writes `"id" : 1`: `push_compact` takes the spaces out.
        Format::Ndjson => format!(
            "COPY (SELECT json_build_object(
                     'id', b.id, 'type', b.type, 'source', b.source, 'meta', b.meta,
                     'created_at', b.created_at, 'email', s.email,
                     'subscriber_uuid', s.uuid, 'subscriber_id', b.subscriber_id,
                     'subscriber_status', s.status, {WHY_JSON},
                     'campaign', CASE WHEN c.id IS NULL THEN NULL
                                      ELSE json_build_object('id', c.id, 'name', c.name) END)
                   {FROM} {WHERE} ORDER BY b.id)
             TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        ),
    }
}

/// Why an export stopped before its end.
enum Cut {
    ClientGone,
    Stalled,
    PastDeadline,
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Cut {
    fn from(e: sqlx::Error) -> Self {
        Cut::Database(e)
    }
}

/// Starts an export on one of the export's connections. Returns once Postgres has
/// accepted the query (so a database error becomes an HTTP error, not a truncated 200),
/// then streams chunks; the stream ends with [`Incomplete`] unless the export ran to its
/// end.
pub async fn start(
    store: &Store,
    filter: Filter,
    format: Format,
) -> Result<impl Stream<Item = Result<Bytes, Incomplete>> + use<>, StartError> {
    let limits = store.export_limits;
    let slot = tokio::time::timeout(limits.wait, store.export_slots.clone().acquire_owned())
        .await
        .map_err(|_| StartError::Busy(limits.connections))?
        .expect("the export semaphore is never closed");
    let mut conn = store.export_pool.acquire().await?;
    let (started_tx, started_rx) = oneshot::channel();
    let (chunks_tx, chunks_rx) = mpsc::channel(8);
    let (completed_tx, completed_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut started = Some(started_tx);
        let result: Result<(), Cut> = async {
            let mut tx = conn.begin().await?;
            // Backstops only: a COPY waiting on a reader cannot be cancelled by Postgres
            // (it acts on statement_timeout between writes, never while one is blocked),
            // so the worker's own timers below are what end a stalled export.
            let deadline = format!("{}ms", limits.deadline.as_millis());
            sqlx::query!(
                "SELECT set_config('bounceops.export_type', $1, true) AS type,
                        set_config('bounceops.export_source', $2, true) AS source,
                        set_config('bounceops.export_campaign', $3, true) AS campaign,
                        set_config('bounceops.export_since', $4, true) AS since,
                        set_config('bounceops.export_until', $5, true) AS until,
                        set_config('bounceops.export_reason', $6, true) AS reason,
                        set_config('TimeZone', 'UTC', true) AS time_zone,
                        set_config('statement_timeout', $7, true) AS statement_timeout,
                        set_config('idle_in_transaction_session_timeout', $7, true) AS idle",
                filter.bounce_type.map_or("", |t| t.as_str()),
                filter.source.as_deref().unwrap_or(""),
                filter
                    .campaign_id
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                filter.since.map(|t| t.to_rfc3339()).unwrap_or_default(),
                filter.until.map(|t| t.to_rfc3339()).unwrap_or_default(),
                filter.reason.as_deref().unwrap_or(""),
                deadline,
            )
            .fetch_one(&mut *tx)
            .await?;
            // Dynamic by necessity: sqlx's macros check prepared statements, and COPY is
            // not one. Every export test (worker/tests/export*.rs) runs it, each format, on
            // a migrated database.
            let mut stream = tx.copy_out_raw(&copy_statement(format)).await?;
            if let Some(s) = started.take() {
                let _ = s.send(Ok(()));
            }
            let chunks_tx = &chunks_tx;
            let send = move |chunk: Bytes| async move {
                match tokio::time::timeout(limits.stall, chunks_tx.send(chunk)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(Cut::ClientGone),
                    Err(_) => Err(Cut::Stalled),
                }
            };
            let copy = async {
                // Postgres sends one CopyData message per row; forwarding each as its own
                // HTTP chunk would cost a channel hand-off and a chunk header per row.
                let mut buf = BytesMut::with_capacity(CHUNK_BYTES);
                while let Some(row) = stream.next().await {
                    match format {
                        Format::Csv(_) => buf.extend_from_slice(&row?),
                        Format::Ndjson => push_compact(&row?, &mut buf),
                    }
                    if buf.len() >= CHUNK_BYTES {
                        send(buf.split().freeze()).await?;
                    }
                }
                if !buf.is_empty() {
                    send(buf.freeze()).await?;
                }
                Ok::<(), Cut>(())
            };
            tokio::time::timeout(limits.deadline, copy)
                .await
                .map_err(|_| Cut::PastDeadline)??;
            drop(stream);
            tx.commit().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                let _ = completed_tx.send(());
                drop(conn); // back to the export pool
            }
            Err(cut) => {
                match cut {
                    Cut::Database(e) => match started.take() {
                        Some(s) => {
                            let _ = s.send(Err(e));
                        }
                        None => tracing::warn!(error = %e, "export failed mid-stream"),
                    },
                    Cut::Stalled => tracing::warn!(
                        stall = ?limits.stall,
                        "export cut off: the client stopped reading"
                    ),
                    Cut::PastDeadline => tracing::warn!(
                        deadline = ?limits.deadline,
                        "export cut off: past its deadline"
                    ),
                    Cut::ClientGone => {}
                }
                // A COPY abandoned half-way leaves the connection mid-protocol; close it
                // rather than hand it back to the pool.
                let _ = conn.close().await;
            }
        }
        // Only now may the next export start: its connection is free.
        drop(slot);
    });
    match started_rx.await {
        Ok(Ok(())) => Ok(body(chunks_rx, completed_rx)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(sqlx::Error::WorkerCrashed.into()),
    }
}

/// The response body: the chunks, then an error unless the export signalled its end.
/// Without that, a cut-off export (the sender dropped) would end like a complete one.
fn body(
    chunks: mpsc::Receiver<Bytes>,
    completed: oneshot::Receiver<()>,
) -> impl Stream<Item = Result<Bytes, Incomplete>> {
    futures::stream::unfold(Some((chunks, completed)), |state| async move {
        let (mut chunks, completed) = state?;
        match chunks.recv().await {
            Some(chunk) => Some((Ok(chunk), Some((chunks, completed)))),
            None => match completed.await {
                Ok(()) => None,
                Err(_) => Some((Err(Incomplete), None)),
            },
        }
    })
}

/// Appends one line of JSON text from Postgres as compact JSON: whitespace outside strings
/// dropped, every other byte kept, then one `\n`. Written here rather than by parsing and
/// printing with serde_json, which would reorder the keys of `meta` and round its numbers:
/// this keeps each value byte for byte, and JSON allows whitespace nowhere else.
fn push_compact(line: &[u8], out: &mut BytesMut) {
    let (mut in_string, mut escaped) = (false, false);
    for &b in line {
        if in_string {
            out.extend_from_slice(&[b]);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            out.extend_from_slice(&[b]);
            in_string = b == b'"';
        }
    }
    out.extend_from_slice(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_from_postgres_is_made_compact_and_kept_byte_for_byte() {
        let mut out = BytesMut::new();
        push_compact(
            br#"{"id" : 1, "meta" : {"a b": "x : \" y", "n": 1.50, "t":"\\"}, "c" : null}"#,
            &mut out,
        );
        push_compact(b"{\"id\" : 2}\n", &mut out);
        assert_eq!(
            &out[..],
            &b"{\"id\":1,\"meta\":{\"a b\":\"x : \\\" y\",\"n\":1.50,\"t\":\"\\\\\"},\"c\":null}\n{\"id\":2}\n"[..]
        );
    }
}
