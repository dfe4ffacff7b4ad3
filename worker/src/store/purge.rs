//! Deleting what is past its keeping in short batches: the evidence (`store::evidence`)
//! and the bounces kept in the worker's own tables (`store::kept`).

/// Rows deleted by one statement of a purge: a large backlog (after a retention was
/// lowered, or a long outage) is deleted in many short transactions, never in one that
/// holds its locks and its WAL for minutes.
pub const PURGE_BATCH: i64 = 1000;

/// Runs `batch` (one DELETE of at most [`PURGE_BATCH`] rows, returning how many it
/// deleted), each time in its own transaction, until a run deletes fewer than that;
/// returns the rows deleted in all.
pub(super) async fn delete_in_batches<F, Fut>(batch: F) -> Result<u64, sqlx::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    let mut deleted = 0;
    loop {
        let done = batch().await?;
        deleted += done;
        if done < PURGE_BATCH as u64 {
            return Ok(deleted);
        }
    }
}
