//! Event ids are remembered in two halves of `bounceops.processed_events` and forgotten a
//! half at a time (worker/migrations/0008_event_id_halves.sql, issue 24): a retry is a
//! duplicate for at least the time kept, across rotations, however the rotation and the
//! batches in flight interleave. Against a real Postgres.

mod common;

use std::time::Duration;

use bounce_worker::event::{BounceEvent, BounceType, Outcome};
use bounce_worker::rules::Rules;
use bounce_worker::store::Store;
use bounce_worker::store::locks::CLAIM_HALVES;
use bounce_worker::store::record::{RecordError, forget_old_event_ids, record};
use bounceops_api::{Action, Rule};
use chrono::{DateTime, Utc};
use common::TestDb;
use sqlx::migrate::Migrator;
use tokio::task::JoinHandle;

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longer than any test's waits, so that only the test that means to sees a rotation give up.
const PATIENT: Duration = Duration::from_secs(60);

fn event(email: &str, event_id: &str) -> BounceEvent {
    BounceEvent {
        email: Some(email.to_owned()),
        subscriber_uuid: None,
        campaign_uuid: None,
        bounce_type: BounceType::Soft,
        source: "test".into(),
        meta: serde_json::json!({}),
        created_at: None,
        event_id: event_id.into(),
        reason: None,
        evidence: None,
        request_digest: None,
    }
}

/// Rules under which every soft bounce is stored.
fn rules() -> Rules {
    Rules {
        soft: Rule {
            count: 100,
            action: Action::None,
        },
        ..Rules::default()
    }
}

async fn outcome(db: &TestDb, e: &BounceEvent) -> Outcome {
    record(&db.store(), &rules(), std::slice::from_ref(e))
        .await
        .unwrap()
        .remove(0)
}

fn recorded(o: &Outcome) -> bool {
    matches!(o, Outcome::Recorded { .. })
}

/// The halves that hold a claim of `event_id`.
async fn claims_of(db: &TestDb, event_id: &str) -> Vec<i16> {
    sqlx::query_scalar("SELECT half FROM bounceops.processed_events WHERE event_id = $1")
        .bind(event_id)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// Whether the worker's periodic call rotates the halves now (patiently: no test but the
/// ones about giving up should see it give up).
async fn rotates(store: &Store) -> bool {
    forget_old_event_ids(store, WEEK, PATIENT)
        .await
        .unwrap()
        .is_some()
}

/// Makes the current half look as if it had taken claims since `ago`.
async fn current_half_began(db: &TestDb, ago: &str) {
    sqlx::query("UPDATE bounceops.processed_events_current SET since = NOW() - $1::interval")
        .bind(ago)
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_id_is_a_duplicate_until_the_rotation_after_the_one_that_ended_its_half() {
    let db = TestDb::new().await;
    db.subscriber("r@example.com").await;
    let first = event("r@example.com", "evt-first");
    assert!(recorded(&outcome(&db, &first).await));

    // Just migrated: nothing is due.
    let store = db.store();
    assert!(!rotates(&store).await);
    current_half_began(&db, "6 days 23 hours").await;
    assert!(!rotates(&store).await);
    assert_eq!(outcome(&db, &first).await, Outcome::Duplicate);

    // A week on, the halves turn: the first id is now in the previous half, still refused,
    // and is not claimed again in the current one.
    current_half_began(&db, "7 days 1 minute").await;
    assert!(rotates(&store).await, "a rotation was due");
    assert!(!rotates(&store).await);
    assert_eq!(outcome(&db, &first).await, Outcome::Duplicate);
    assert_eq!(claims_of(&db, "evt-first").await, vec![0]);
    let second = event("r@example.com", "evt-second");
    assert!(recorded(&outcome(&db, &second).await));
    assert_eq!(claims_of(&db, "evt-second").await, vec![1]);

    // Another week: the first id's half is emptied, and its retry is recorded again; the
    // second id is now in the previous half, refused.
    current_half_began(&db, "7 days 1 minute").await;
    assert!(rotates(&store).await);
    assert!(claims_of(&db, "evt-first").await.is_empty());
    assert_eq!(outcome(&db, &second).await, Outcome::Duplicate);
    let again = outcome(&db, &first).await;
    assert!(recorded(&again), "{again:?}");
    assert_eq!(claims_of(&db, "evt-first").await, vec![0]);
    let bounces: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bounces b JOIN subscribers s ON s.id = b.subscriber_id
         WHERE s.email = 'r@example.com'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(bounces, 3, "first, second, first again");
}

/// Replicas rotating at the same time rotate once.
#[tokio::test]
async fn concurrent_rotations_turn_the_halves_once() {
    let db = TestDb::new().await;
    current_half_began(&db, "8 days").await;
    let stores = [db.store(), db.store(), db.store()];
    let results = futures::future::join_all(
        stores
            .iter()
            .map(|s| forget_old_event_ids(s, WEEK, PATIENT)),
    )
    .await;
    let rotated = results
        .into_iter()
        .map(|r| r.expect("a concurrent rotation fails"))
        .filter(Option::is_some)
        .count();
    assert_eq!(rotated, 1);
    let half: i16 = sqlx::query_scalar("SELECT half FROM bounceops.processed_events_current")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(half, 1);
}

/// A batch that has claimed `in_flight` and not committed, a due rotation (waiting at most
/// `wait`) queued behind it, and a batch of `later` events queued behind the rotation.
struct Queued {
    batch: sqlx::Transaction<'static, sqlx::Postgres>,
    rotation: JoinHandle<Result<Option<DateTime<Utc>>, sqlx::Error>>,
    later: JoinHandle<Result<Vec<Outcome>, RecordError>>,
}

async fn queued_behind_a_batch(
    db: &TestDb,
    in_flight: &str,
    wait: Duration,
    later: Vec<BounceEvent>,
) -> Queued {
    current_half_began(db, "8 days").await;
    let mut batch = db.pool.begin().await.unwrap();
    assert!(common::claim(&mut batch, "test", in_flight).await);
    let store = db.store();
    let rotation = tokio::spawn(async move { forget_old_event_ids(&store, WEEK, wait).await });
    assert!(
        db.a_statement_waits_for("advisory").await,
        "the rotation never waited for the batch in flight"
    );
    let store = db.store();
    let later = tokio::spawn(async move { record(&store, &rules(), &later).await });
    assert!(
        db.statements_wait_for("advisory", 2).await,
        "the later batch never queued behind the rotation"
    );
    // Both wait for the halves' lock, under the class store::locks lists for it.
    let on_halves: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks
         WHERE locktype = 'advisory' AND NOT granted AND classid = $1::int8::oid
           AND objid = 0 AND objsubid = 2
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(i64::from(CLAIM_HALVES))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(on_halves, 2);
    Queued {
        batch,
        rotation,
        later,
    }
}

/// A rotation waits for a batch that has claimed and not yet committed, and the batches
/// after it wait for the rotation: the id the first batch claimed is refused to the later
/// one, whose fresh id goes to the other half.
#[tokio::test]
async fn a_rotation_waits_for_the_claims_in_flight() {
    let db = TestDb::new().await;
    db.subscriber("w@example.com").await;
    let later = vec![
        event("w@example.com", "evt-in-flight"),
        event("w@example.com", "evt-after"),
    ];
    let q = queued_behind_a_batch(&db, "evt-in-flight", PATIENT, later).await;
    assert!(!q.rotation.is_finished() && !q.later.is_finished());
    q.batch.commit().await.unwrap();
    assert!(q.rotation.await.unwrap().unwrap().is_some());
    let later = q.later.await.unwrap().unwrap();
    assert_eq!(later[0], Outcome::Duplicate);
    assert!(recorded(&later[1]), "{:?}", later[1]);
    assert_eq!(claims_of(&db, "evt-in-flight").await, vec![0]);
    assert_eq!(claims_of(&db, "evt-after").await, vec![1]);
}

/// A batch that does not end holds a rotation up for at most its lock wait: then the
/// rotation gives up (and is tried again later), and the batches queued behind it go on.
#[tokio::test]
async fn a_rotation_held_up_gives_up_and_lets_the_batches_through() {
    let db = TestDb::new().await;
    db.subscriber("h@example.com").await;
    let later = vec![event("h@example.com", "evt-later")];
    let q = queued_behind_a_batch(&db, "evt-stuck", Duration::from_secs(3), later).await;
    let failed = q
        .rotation
        .await
        .unwrap()
        .expect_err("the rotation waited past its lock wait");
    let code = failed.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("55P03"), "{failed}");
    let later = q.later.await.unwrap().unwrap().remove(0);
    assert!(recorded(&later), "{later:?}");
    q.batch.rollback().await.unwrap();
    let half: i16 = sqlx::query_scalar("SELECT half FROM bounceops.processed_events_current")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(half, 0, "no rotation happened");
    assert!(rotates(&db.store()).await, "the next call rotates");
}

/// Whatever holds the half to be emptied without being a claim (a dump, a vacuum against
/// wraparound) makes the rotation give up at once, not hold the batches queued behind it.
#[tokio::test]
async fn a_rotation_does_not_wait_for_a_reader_of_the_half_it_empties() {
    let db = TestDb::new().await;
    current_half_began(&db, "8 days").await;
    let mut dump = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE bounceops.processed_events_1 IN ACCESS SHARE MODE")
        .execute(&mut *dump)
        .await
        .unwrap();
    let failed = forget_old_event_ids(&db.store(), WEEK, PATIENT)
        .await
        .expect_err("the rotation emptied a half being read");
    let code = failed.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("55P03"), "{failed}");
    // NOWAIT's refusal, not the lock wait running out.
    assert!(
        failed.to_string().contains("could not obtain lock"),
        "{failed}"
    );
    dump.rollback().await.unwrap();
    assert!(rotates(&db.store()).await);
}

/// A database migrated before the halves existed keeps its claims: they become the first
/// half, still refused, and go with the second rotation. A worker of the previous version
/// keeps working on it, but for parking dead letters.
#[tokio::test]
async fn claims_made_before_the_halves_are_kept_by_the_migration() {
    let db = TestDb::unmigrated().await;
    // The migrations before 0008, as a worker of the previous version ran them.
    let earlier = tempfile::tempdir().unwrap();
    let mut names: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    names.sort();
    for path in names.iter().filter(|p| p.file_name().unwrap() < "0008") {
        std::fs::copy(path, earlier.path().join(path.file_name().unwrap())).unwrap();
    }
    assert_eq!(std::fs::read_dir(earlier.path()).unwrap().count(), 7);
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::raw_sql(include_str!("../sql/listmonk_standalone.sql"))
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql("CREATE SCHEMA bounceops; SET search_path TO bounceops, public")
        .execute(&mut *conn)
        .await
        .unwrap();
    Migrator::new(earlier.path())
        .await
        .unwrap()
        .run(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(
        "RESET search_path;
         INSERT INTO bounceops.processed_events (source, event_id, received_at)
         SELECT 'test', 'old-' || i, NOW() - i * interval '1 hour' FROM generate_series(1, 100) i",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);

    let report = bounce_worker::store::migrate::run(&db.pool, true)
        .await
        .unwrap();
    assert_eq!(report.applied, 1);
    db.subscriber("m@example.com").await;
    let old = event("m@example.com", "old-42");
    assert_eq!(outcome(&db, &old).await, Outcome::Duplicate);
    assert_eq!(claims_of(&db, "old-42").await, vec![0]);

    // What a worker of the previous version still sends meanwhile (its statements as
    // 3389e19 wrote them; it claims through the same `claim_batch`, replaced): its purge
    // works, slowly, and parking a dead letter fails (its INSERT names no half) with
    // nothing claimed, as docs/install.md says.
    let purged = sqlx::query(
        "DELETE FROM bounceops.processed_events
         WHERE received_at < NOW() - make_interval(secs => $1)",
    )
    .bind(90.5 * 3600.0)
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(purged.rows_affected(), 10, "ids 91 to 100 hours old");
    let parked = sqlx::query(
        "WITH claim AS (
             INSERT INTO bounceops.processed_events (source, event_id, body_sha256)
             VALUES ('test', 'parked-by-an-old-worker', NULL)
             ON CONFLICT DO NOTHING
             RETURNING 1)
         INSERT INTO bounceops.dead_letters (source, event_id, reason, item)
         SELECT 'test', 'parked-by-an-old-worker', 'refused', '\\x7b7d'
         WHERE EXISTS (SELECT 1 FROM claim)",
    )
    .execute(&db.pool)
    .await
    .expect_err("an INSERT naming no half");
    let code = parked.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("23514"), "{parked}");
    assert!(claims_of(&db, "parked-by-an-old-worker").await.is_empty());
    let store = db.store();
    for _ in 0..2 {
        current_half_began(&db, "8 days").await;
        assert!(rotates(&store).await);
    }
    assert!(recorded(&outcome(&db, &old).await));
}
