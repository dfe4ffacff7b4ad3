//! Migrations. The worker's own tables are versioned with sqlx's migrator, whose
//! bookkeeping table is kept inside the `bounceops` schema so listmonk's `public` schema
//! gains nothing. The listmonk-shaped tables are created only on request, once.

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgPool};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");
const STANDALONE: &str = include_str!("../../sql/listmonk_standalone.sql");

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub created_listmonk_tables: bool,
    /// Migrations applied by this run (0: the schema was already up to date).
    pub applied: usize,
}

pub async fn run(pool: &PgPool, standalone: bool) -> Result<Report, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // Two workers starting at once must not both create tables: serialise on a lock.
    sqlx::query!(
        "SELECT pg_advisory_lock(hashtext($1))",
        super::locks::MIGRATE
    )
    .fetch_one(&mut *conn)
    .await?;
    let result = async {
        let mut report = Report::default();
        if standalone {
            let exists = sqlx::query_scalar!(
                r#"SELECT to_regclass('subscribers') IS NOT NULL AS "exists!""#
            )
            .fetch_one(&mut *conn)
            .await?;
            if !exists {
                let mut tx = conn.begin().await?;
                sqlx::raw_sql(STANDALONE).execute(&mut *tx).await?;
                tx.commit().await?;
                report.created_listmonk_tables = true;
            }
        }
        // Every pod's init container runs this. Once the schema is migrated it must need no
        // right that a running worker lacks: `CREATE SCHEMA IF NOT EXISTS` and sqlx's
        // `CREATE TABLE IF NOT EXISTS _sqlx_migrations` are refused without CREATE on the
        // database / the schema even when the object exists, so look before creating.
        let pending = pending(&mut conn).await?;
        if pending == 0 {
            return Ok(report);
        }
        let schema_exists = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'bounceops') AS "exists!""#
        )
        .fetch_one(&mut *conn)
        .await?;
        if !schema_exists {
            sqlx::query!("CREATE SCHEMA bounceops")
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query!("SET search_path TO bounceops, public")
            .execute(&mut *conn)
            .await?;
        let run = MIGRATOR.run(&mut *conn).await;
        sqlx::query!("RESET search_path")
            .execute(&mut *conn)
            .await?;
        run.map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        report.applied = pending;
        Ok::<_, sqlx::Error>(report)
    }
    .await;
    sqlx::query!(
        "SELECT pg_advisory_unlock(hashtext($1))",
        super::locks::MIGRATE
    )
    .fetch_one(&mut *conn)
    .await?;
    result
}

/// How many of this binary's migrations are not applied, as they are, in the database.
/// A migration recorded with another checksum (edited after it ran) or as failed counts as
/// pending, so that sqlx's migrator, which then runs, reports it in its own words.
async fn pending(conn: &mut sqlx::PgConnection) -> Result<usize, sqlx::Error> {
    let table_exists = sqlx::query_scalar!(
        r#"SELECT to_regclass('bounceops._sqlx_migrations') IS NOT NULL AS "exists!""#
    )
    .fetch_one(&mut *conn)
    .await?;
    if !table_exists {
        return Ok(MIGRATOR.iter().count());
    }
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query!("SELECT version, checksum FROM bounceops._sqlx_migrations WHERE success")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|r| (r.version, r.checksum))
            .collect();
    Ok(MIGRATOR
        .iter()
        .filter(|m| {
            !applied
                .iter()
                .any(|(v, sum)| *v == m.version && sum.as_slice() == m.checksum.as_ref())
        })
        .count())
}

/// Whether every migration this binary carries has been applied.
pub async fn check_applied(pool: &PgPool) -> Result<(), super::NotReady> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied =
        sqlx::query_scalar!("SELECT max(version) FROM bounceops._sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .map_err(super::NotReady::MigrationsUnreadable)?;
    match applied {
        Some(v) if v >= latest => Ok(()),
        _ => Err(super::NotReady::NotMigrated { need: latest }),
    }
}
