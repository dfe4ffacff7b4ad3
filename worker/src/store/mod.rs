//! The Postgres store: the only module that talks to the database.
//!
//! - `migrate`: the worker's own schema, and listmonk-shaped tables on request.
//! - `record`: recording bounces with listmonk's rules, race-free across replicas.
//! - `bounces`: listmonk's bounce API queries.
//! - `export`: streaming CSV / NDJSON export.
//! - `evidence`: what caused each bounce (the bounce mail, the provider's event), kept
//!   beside its row, and its purge.
//! - `kept`: the bounces kept in the worker's own tables (unmatched, ignored), listed and
//!   purged after `spec.retention`.
//! - `purge`: deleting what is past its keeping, in short batches.
//! - `mailbox`: the mailbox scanner's lock and the messages it leaves in place.
//! - `nonces`: the provider webhooks' single-use signature tokens.
//! - `dead_letters`: events the database refuses, parked so their batch is recorded.
//! - `locks`: every advisory-lock key, in one place.
//!
//! The pool is the store's own: other modules call these functions with a `Store`.

pub mod bounces;
pub mod dead_letters;
pub mod evidence;
pub mod export;
pub mod kept;
pub mod locks;
pub mod mailbox;
pub mod migrate;
pub mod nonces;
pub mod purge;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tokio::sync::Semaphore;

pub use export::ExportLimits;

/// Whether the error means "the database cannot serve now" (so a retry may succeed), as
/// opposed to a statement it refused: a connection failure, or SQLSTATE class 40
/// (serialization failure, deadlock).
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    is_connection_failure(e)
        || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("40")))
}

/// Whether the database refused a value of the statement, which it will refuse however
/// often it is retried: SQLSTATE classes 22 (data exception: a character the encoding
/// cannot hold, a time out of range) and 54 (program limit exceeded: an index entry too
/// large).
pub fn is_refused_value(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("54")))
}

/// Whether the error is the database (or the way to it) failing, whatever the statement:
/// no connection, a broken one, or SQLSTATE classes 08 (connection), 53 (resources) and
/// 57 (operator intervention: shutdown, restart).
pub fn is_connection_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| ["08", "53", "57"].iter().any(|p| c.starts_with(p))),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

/// Whether the error is that of a connection the database (or something between) has
/// dropped: another connection may work at once. Narrower than [`is_connection_failure`]:
/// not a pool that has none to give, nor what a new connection would meet as well (TLS,
/// the server out of resources).
pub(crate) fn is_dropped_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
        _ => false,
    }
}

/// Whether `e` is a database error with SQLSTATE `code`.
pub(crate) fn has_code(e: &sqlx::Error, code: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(code))
}

/// How a batch's transaction begins ([`Store::begin_batch`] says why sequential scans are
/// priced out, and why READ COMMITTED is named). A macro so that [`COMMIT_AND_BEGIN_BATCH`]
/// is built from the same text.
macro_rules! begin_batch {
    () => {
        "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL enable_seqscan = off"
    };
}
pub const BEGIN_BATCH: &str = begin_batch!();

/// A batch's commit and the next batch's [`BEGIN_BATCH`], in one round trip
/// (`record::Chain`).
pub(crate) const COMMIT_AND_BEGIN_BATCH: &str = concat!("COMMIT; ", begin_batch!());

/// Why the worker is not ready: what `/readyz` logs.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("database unreachable: {0}")]
    Unreachable(sqlx::Error),
    #[error("listmonk's tables are missing (run migrate --standalone?)")]
    NoListmonkTables,
    #[error("the worker's schema is missing (run migrate)")]
    NoSchema,
    #[error("cannot read migrations: {0}")]
    MigrationsUnreadable(sqlx::Error),
    #[error("migrations not applied (need version {need}; run migrate)")]
    NotMigrated { need: i64 },
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// The export's own connections: a client that reads an export slowly holds one of
    /// these, never one that ingest needs.
    export_pool: PgPool,
    /// One permit per export connection, so that "every export is busy" is told apart from
    /// "the database is unreachable" (both would be a pool timeout).
    export_slots: Arc<Semaphore>,
    /// As asked for, but `connections` as granted.
    export_limits: ExportLimits,
}

/// A connection idle for longer than this is checked with a ping before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Checks a connection that sat idle (the database may have restarted, or a proxy dropped
/// it meanwhile) before it is handed out; one in steady use is not checked. sqlx's own check
/// pings before every acquire: one more round trip for every ingest batch, whose time is
/// mostly round trips (BENCHMARKS.md, issue 24).
async fn ping_if_idle(
    conn: &mut sqlx::PgConnection,
    idle_for: Duration,
) -> Result<bool, sqlx::Error> {
    if idle_for > PING_AFTER_IDLE {
        sqlx::Connection::ping(conn).await?;
    }
    Ok(true)
}

/// Makes READ COMMITTED the default of an ingest connection, whatever the database's
/// `default_transaction_isolation` says. The worker's concurrent writes rely on it: a
/// batch reads its subscribers' state after their locks are granted (and names the level
/// itself, [`Store::begin_batch`]); a dead letter's claim meeting the same id claimed by a
/// commit it waited for does nothing; the purges skip or find gone what another replica
/// took. Under REPEATABLE READ each of those is a serialization failure instead. Set once
/// per connection (one round trip when it opens); the export's connections keep the
/// database's default.
async fn read_committed(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, "SET default_transaction_isolation = 'read committed'").await?;
    Ok(())
}

impl Store {
    /// A transaction for recording a batch. Its statements touch only the rows the batch
    /// names, through their indexes, and they must keep doing so whatever Postgres last
    /// learned of the tables' sizes: a statement prepared on a connection is planned
    /// generically after five runs and that plan is kept for the connection's life, so
    /// plans made while `bounces` was nearly empty (a new installation, a cleared table)
    /// would read the whole table for each subscriber's count as it grows, until the next
    /// ANALYZE (measured: 43-60 ms instead of 0.2-0.5 ms per state query at 14,000 rows, a
    /// quarter of the ingest rate). Sequential scans are priced out in these transactions
    /// only (`SET LOCAL`, sent with BEGIN: no round trip of its own); planning every
    /// statement afresh (`plan_cache_mode`) would cost half a millisecond per batch.
    ///
    /// The isolation level is named, not left to the database's default: a batch reads its
    /// subscribers' state with a statement of its own once their locks are granted, so that
    /// it sees what another replica committed while it waited (`record::claim_and_find`).
    /// That needs a snapshot per statement, which READ COMMITTED gives and REPEATABLE READ
    /// (some installations' `default_transaction_isolation`) does not.
    ///
    /// A connection in steady use is not pinged before it is handed out ([`ping_if_idle`]),
    /// so one the database dropped meanwhile (a restart, a proxy cutting connections) fails
    /// here, at BEGIN, before anything of the batch was sent: the batch then begins on
    /// another connection (the broken one is closed as it goes back to the pool), up to once
    /// per connection the pool may hold, and only then does the failure reach its senders.
    pub(crate) async fn begin_batch(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut retries = self.pool.options().get_max_connections();
        loop {
            match self.pool.begin_with(BEGIN_BATCH).await {
                Err(e) if retries > 0 && is_dropped_connection(&e) => {
                    tracing::debug!(error = %e, "a pooled connection was dropped; beginning on another");
                    retries -= 1;
                }
                other => return other,
            }
        }
    }

    /// [`Store::connect_lazy_with`] the default export limits.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Store, sqlx::Error> {
        Store::connect_lazy_with(url, max_connections, ExportLimits::default())
    }

    /// Pools that connect lazily: the worker starts (and reports not ready) while the
    /// database is down, and requests fail fast with 503 instead of hanging. The export's
    /// connections are taken out of `max_connections`, so that it stays the bound of what a
    /// worker opens: at most a quarter of them, at least one.
    pub fn connect_lazy_with(
        url: &str,
        max_connections: u32,
        export: ExportLimits,
    ) -> Result<Store, sqlx::Error> {
        let options: PgConnectOptions = url
            .parse::<PgConnectOptions>()?
            .application_name("bounce-worker")
            .log_statements(tracing::log::LevelFilter::Trace);
        let export_connections = export.connections.min(max_connections / 4).max(1);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.saturating_sub(export_connections).max(1))
            .acquire_timeout(Duration::from_secs(3))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move { ping_if_idle(conn, meta.idle_for).await })
            })
            .after_connect(|conn, _| Box::pin(read_committed(conn)))
            .connect_lazy_with(options.clone());
        let export_pool = PgPoolOptions::new()
            .max_connections(export_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options);
        Ok(Store {
            pool,
            export_pool,
            export_slots: Arc::new(Semaphore::new(export_connections as usize)),
            export_limits: ExportLimits {
                connections: export_connections,
                ..export
            },
        })
    }

    /// Runs the worker's migrations (and creates listmonk's tables when `standalone`).
    pub async fn migrate(&self, standalone: bool) -> Result<migrate::Report, sqlx::Error> {
        migrate::run(&self.pool, standalone).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.export_pool.close().await;
    }

    /// The UUID of the subscriber whose address is `email` (listmonk stores addresses
    /// lower-cased), for the sending relay's return path of mail without listmonk's headers.
    pub async fn subscriber_uuid_by_email(
        &self,
        email: &str,
    ) -> Result<Option<uuid::Uuid>, sqlx::Error> {
        sqlx::query_scalar!(
            "SELECT uuid FROM subscribers WHERE LOWER(email) = LOWER($1)",
            email
        )
        .fetch_optional(&self.pool)
        .await
    }

    /// Ready when the database answers and the tables the worker needs exist.
    pub async fn readiness(&self) -> Result<(), NotReady> {
        let row = sqlx::query!(
            r#"SELECT to_regclass('bounces') IS NOT NULL AND to_regclass('subscribers') IS NOT NULL
                        AS "listmonk!",
                      to_regclass('bounceops.unmatched') IS NOT NULL AS "ours!""#
        )
        .fetch_one(&self.pool)
        .await
        .map_err(NotReady::Unreachable)?;
        match (row.listmonk, row.ours) {
            (false, _) => Err(NotReady::NoListmonkTables),
            (_, false) => Err(NotReady::NoSchema),
            _ => migrate::check_applied(&self.pool).await,
        }
    }
}
