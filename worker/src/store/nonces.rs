//! Single-use signature tokens of the provider webhooks, shared by every replica
//! (`bounceops.provider_nonces`, migration 0003). The policy (what a token is, how long it
//! is kept) is `providers::replay`'s; this is its storage.

use super::Store;

/// Inserts (`source`, `nonce`) with the hash of its body unless present; returns the body
/// hash the token is recorded with, or `None` when a concurrent request inserted it and has
/// not committed yet.
pub async fn claim(
    store: &Store,
    source: &str,
    nonce: &str,
    body_sha256: &[u8],
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar!(
        "WITH ins AS (
             INSERT INTO bounceops.provider_nonces (source, nonce, body_sha256)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING body_sha256)
         SELECT COALESCE((SELECT body_sha256 FROM ins),
                         (SELECT body_sha256 FROM bounceops.provider_nonces
                           WHERE source = $1 AND nonce = $2))",
        source,
        nonce,
        body_sha256,
    )
    .fetch_one(&store.pool)
    .await
}

/// Forgets tokens received more than `keep_seconds` ago.
pub async fn purge(store: &Store, keep_seconds: f64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM bounceops.provider_nonces WHERE received_at < NOW() - make_interval(secs => $1)",
        keep_seconds,
    )
    .execute(&store.pool)
    .await?;
    Ok(done.rows_affected())
}
