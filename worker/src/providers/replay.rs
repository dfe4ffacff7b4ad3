//! Single-use signature tokens, shared by every replica through Postgres
//! (`store::nonces`): a token is accepted for one request body only.

use std::sync::atomic::{AtomicI64, Ordering};

use sha2::{Digest, Sha256};

use crate::store::{Store, nonces};

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
        let nonce = crate::storable::key(nonce);
        let seen = nonces::claim(store, source, &nonce, &hash).await?;
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
        if let Err(e) = nonces::purge(store, keep).await {
            tracing::warn!(error = %e, "cannot purge old provider nonces");
        }
    }
}
