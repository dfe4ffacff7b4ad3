//! The mailbox scanner's own bookkeeping: the per-mailbox scan lock and the messages
//! deliberately left in a mailbox (`bounceops.mailbox_kept`, migration 0002). Bounces
//! themselves go through `record` like every other input.

use std::collections::HashSet;

use sqlx::{Connection, PgConnection};

use super::{Store, locks};

/// A session-level advisory lock held on a connection of its own, taken out of the pool:
/// closing that connection is what releases the lock, so a scanner that dies (or loses
/// its database connection) can never leave the mailbox locked.
pub struct ScanLock {
    conn: PgConnection,
    mailbox: String,
}

impl ScanLock {
    /// `None` when another scanner (another replica) holds the mailbox right now.
    pub async fn try_take(store: &Store, mailbox: &str) -> Result<Option<ScanLock>, sqlx::Error> {
        let mut conn = store.pool.acquire().await?.detach();
        let got = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_lock($1, hashtext($2)) AS "got!""#,
            locks::MAILBOX,
            mailbox,
        )
        .fetch_one(&mut conn)
        .await?;
        if got {
            Ok(Some(ScanLock {
                conn,
                mailbox: mailbox.to_owned(),
            }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Unlocks explicitly: the server ends a closed session (and drops its locks) a moment
    /// after the client goes, and the next scan must not find the mailbox still locked.
    pub async fn release(mut self) {
        let _ = sqlx::query!(
            "SELECT pg_advisory_unlock($1, hashtext($2))",
            locks::MAILBOX,
            self.mailbox,
        )
        .fetch_one(&mut self.conn)
        .await;
        let _ = self.conn.close().await;
    }
}

/// The ids of messages of `mailbox` already read and left in place.
pub async fn kept(store: &Store, mailbox: &str) -> Result<HashSet<String>, sqlx::Error> {
    let ids = sqlx::query_scalar!(
        "SELECT message_id FROM bounceops.mailbox_kept WHERE mailbox = $1",
        mailbox,
    )
    .fetch_all(&store.pool)
    .await?;
    Ok(ids.into_iter().collect())
}

/// Forgets kept messages that are no longer in the mailbox (a human deleted them, or
/// UIDVALIDITY changed), so the table stays as large as the mailbox.
pub async fn forget_missing(
    store: &Store,
    mailbox: &str,
    present: &[&str],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM bounceops.mailbox_kept
         WHERE mailbox = $1 AND NOT (message_id = ANY($2::text[]))",
        mailbox,
        present as &[&str],
    )
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Remembers messages left in place, with the kind that made us leave them.
pub async fn remember(
    store: &Store,
    mailbox: &str,
    kept: &[(String, &'static str)],
) -> Result<(), sqlx::Error> {
    if kept.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = kept.iter().map(|k| k.0.as_str()).collect();
    let kinds: Vec<&str> = kept.iter().map(|k| k.1).collect();
    sqlx::query!(
        "INSERT INTO bounceops.mailbox_kept (mailbox, message_id, kind)
         SELECT $1, id, kind FROM unnest($2::text[], $3::text[]) AS t(id, kind)
         ON CONFLICT DO NOTHING",
        mailbox,
        &ids as &[&str],
        &kinds as &[&str],
    )
    .execute(&store.pool)
    .await?;
    Ok(())
}
