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
}

pub async fn run(pool: &PgPool, standalone: bool) -> Result<Report, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // Two workers starting at once must not both create tables: serialise on a lock.
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(super::locks::MIGRATE)
        .execute(&mut *conn)
        .await?;
    let result = async {
        let mut report = Report::default();
        if standalone {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass('subscribers') IS NOT NULL")
                .fetch_one(&mut *conn)
                .await?;
            if !exists {
                let mut tx = conn.begin().await?;
                sqlx::raw_sql(STANDALONE).execute(&mut *tx).await?;
                tx.commit().await?;
                report.created_listmonk_tables = true;
            }
        }
        sqlx::query("CREATE SCHEMA IF NOT EXISTS bounceops")
            .execute(&mut *conn)
            .await?;
        sqlx::query("SET search_path TO bounceops, public")
            .execute(&mut *conn)
            .await?;
        let run = MIGRATOR.run(&mut *conn).await;
        sqlx::query("RESET search_path").execute(&mut *conn).await?;
        run.map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        Ok::<_, sqlx::Error>(report)
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(super::locks::MIGRATE)
        .execute(&mut *conn)
        .await?;
    result
}

/// Whether every migration this binary carries has been applied.
pub async fn check_applied(pool: &PgPool) -> Result<(), String> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM bounceops._sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .map_err(|e| format!("cannot read migrations: {e}"))?;
    match applied {
        Some(v) if v >= latest => Ok(()),
        _ => Err(format!(
            "migrations not applied (need version {latest}; run migrate)"
        )),
    }
}
