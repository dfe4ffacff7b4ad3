//! Single-use signature tokens, shared by every replica through Postgres
//! (`bounceops.provider_nonces`, migration 0003).
//!
//! This is the one place outside `store` that runs SQL: the table belongs to the provider
//! webhooks alone and the check must happen before parsing, so it stays next to its only
//! caller rather than widening the store's interface.

use std::sync::atomic::{AtomicI64, Ordering};

use sha2::{Digest, Sha256};

use crate::store::Store;

/// Purge old tokens at most this often per process.
const PURGE_EVERY_SECONDS: i64 = 600;

#[derive(Default)]
pub struct Nonces {
    last_purge: AtomicI64,
}

impl Nonces {
    /// Claims `nonce` for `body`. True when the nonce is new, or was seen with this exact
    /// body (the provider retrying a delivery whose first attempt failed); false when it was
    /// seen with another body (a captured signature replayed with a forged body).
    pub async fn claim(
        &self,
        store: &Store,
        source: &str,
        nonce: &str,
        body: &[u8],
        keep_seconds: u32,
    ) -> Result<bool, sqlx::Error> {
        let hash = Sha256::digest(body).to_vec();
        let seen: Option<Vec<u8>> = sqlx::query_scalar(
            "WITH ins AS (
                 INSERT INTO bounceops.provider_nonces (source, nonce, body_sha256)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING body_sha256)
             SELECT COALESCE((SELECT body_sha256 FROM ins),
                             (SELECT body_sha256 FROM bounceops.provider_nonces
                               WHERE source = $1 AND nonce = $2))",
        )
        .bind(source)
        .bind(nonce)
        .bind(&hash)
        .fetch_one(store.pool())
        .await?;
        self.maybe_purge(store, keep_seconds).await;
        // None: a concurrent request inserted it and has not committed yet; refusing is
        // safe, the provider retries and then finds the committed row.
        Ok(seen.is_some_and(|s| s == hash))
    }

    async fn maybe_purge(&self, store: &Store, keep_seconds: u32) {
        let now = chrono::Utc::now().timestamp();
        let last = self.last_purge.load(Ordering::Relaxed);
        if now - last < PURGE_EVERY_SECONDS
            || self
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Twice the tolerance: a token is refused by its timestamp long before it goes.
        let keep = f64::from(keep_seconds) * 2.0;
        if let Err(e) = sqlx::query(
            "DELETE FROM bounceops.provider_nonces WHERE received_at < NOW() - make_interval(secs => $1)",
        )
        .bind(keep)
        .execute(store.pool())
        .await
        {
            tracing::warn!(error = %e, "cannot purge old provider nonces");
        }
    }
}
