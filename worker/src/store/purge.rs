//! Deleting what is past its keeping in short batches: the evidence (`store::evidence`)
//! and the bounces kept in the worker's own tables (`store::kept`).

use sqlx::Postgres;

use super::Store;

/// Rows deleted by one statement of a purge: a large backlog (after a retention was
/// lowered, or a long outage) is deleted in many short transactions, never in one that
/// holds its locks and its WAL for minutes.
pub const PURGE_BATCH: i64 = 1000;

pub(super) type Query<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Runs `sql` (a DELETE of at most [`PURGE_BATCH`] rows, its parameters bound by `bind`),
/// each time in its own transaction, until a run deletes fewer than that; returns the
/// rows deleted in all.
pub(super) async fn delete_in_batches(
    store: &Store,
    sql: &str,
    bind: impl for<'q> Fn(Query<'q>) -> Query<'q>,
) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let done = bind(sqlx::query(sql))
            .execute(&store.pool)
            .await?
            .rows_affected();
        deleted += done;
        if done < PURGE_BATCH as u64 {
            return Ok(deleted);
        }
    }
}
