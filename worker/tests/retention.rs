//! `spec.retention` (issue 20, point 9): the bounces kept in the worker's own tables
//! (`bounceops.unmatched`, `bounceops.ignored`) are purged once past their days, in
//! batches, safely from several replicas at once; until then `GET /api/unmatched` and
//! `GET /api/ignored` serve them. Against a real Postgres.

mod common;

use std::time::{Duration, Instant};

use bounce_worker::store::kept::{self, Purged};
use bounce_worker::store::purge::PURGE_BATCH;
use bounceops_api::RetentionSpec;
use common::{TestDb, TestWorker};
use serde_json::{Value, json};

/// Inserts `n` rows into `table` (`unmatched` or `ignored`), received `days_ago` (plus an
/// hour, so that a row is never exactly at the limit); returns their ids.
async fn kept_rows(db: &TestDb, table: &str, n: usize, days_ago: i32) -> Vec<i64> {
    let (columns, values) = match table {
        "unmatched" => ("", ""),
        _ => (", reason", ", 'blocked'"),
    };
    sqlx::query_scalar(&format!(
        "INSERT INTO bounceops.{table} (email, type, source, meta, received_at{columns})
         SELECT 'gone' || i || '@example.com', 'hard', 'test', '{{}}',
                NOW() - make_interval(days => $2, hours => 1){values}
         FROM generate_series(1, $1) i
         RETURNING id"
    ))
    .bind(n as i32)
    .bind(days_ago)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn ids_in(db: &TestDb, table: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!("SELECT id FROM bounceops.{table} ORDER BY id"))
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn rows_past_their_days_are_purged_and_newer_ones_kept() {
    let db = TestDb::new().await;
    // More than one batch of old unmatched rows, so that the purge must loop.
    let old_unmatched = kept_rows(&db, "unmatched", PURGE_BATCH as usize + 7, 90).await;
    let young_unmatched = kept_rows(&db, "unmatched", 3, 89).await;
    let old_ignored = kept_rows(&db, "ignored", 4, 30).await;
    let young_ignored = kept_rows(&db, "ignored", 2, 29).await;

    let store = db.store();
    let defaults = RetentionSpec::default();
    assert_eq!((defaults.unmatched_days, defaults.ignored_days), (90, 30));
    let purged = kept::purge(&store, &defaults).await.unwrap();
    assert_eq!(
        purged,
        Purged {
            unmatched: old_unmatched.len() as u64,
            ignored: old_ignored.len() as u64,
        }
    );
    assert_eq!(ids_in(&db, "unmatched").await, young_unmatched);
    assert_eq!(ids_in(&db, "ignored").await, young_ignored);
    assert_eq!(
        kept::purge(&store, &defaults).await.unwrap(),
        Purged::default(),
        "nothing left to purge"
    );
    // Each table by its own days.
    let shorter = RetentionSpec {
        ignored_days: 1,
        ..RetentionSpec::default()
    };
    assert_eq!(
        kept::purge(&store, &shorter).await.unwrap(),
        Purged {
            unmatched: 0,
            ignored: 2
        }
    );
}

#[tokio::test]
async fn concurrent_purges_neither_fail_nor_delete_twice() {
    let db = TestDb::new().await;
    let old_unmatched = kept_rows(&db, "unmatched", 3 * PURGE_BATCH as usize, 100).await;
    let old_ignored = kept_rows(&db, "ignored", 2 * PURGE_BATCH as usize + 1, 100).await;
    let young = kept_rows(&db, "unmatched", 5, 1).await;
    let retention = RetentionSpec::default();
    // Three replicas at once, each with its own pool, as separate workers would be.
    let stores = [db.store(), db.store(), db.store()];
    let results =
        futures::future::join_all(stores.iter().map(|s| kept::purge(s, &retention))).await;
    let mut total = Purged::default();
    for r in results {
        let p = r.expect("a concurrent purge fails");
        total.unmatched += p.unmatched;
        total.ignored += p.ignored;
    }
    assert_eq!(
        total,
        Purged {
            unmatched: old_unmatched.len() as u64,
            ignored: old_ignored.len() as u64,
        }
    );
    assert_eq!(ids_in(&db, "unmatched").await, young);
    assert!(ids_in(&db, "ignored").await.is_empty());
}

/// Waits (polling, bounded) until `table` holds exactly `want`.
async fn until_ids(db: &TestDb, table: &str, want: &[i64]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ids = ids_in(db, table).await;
        if ids == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table} still holds {ids:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The worker purges by the spec's days from its start, and serves what is kept until then.
#[tokio::test]
async fn the_worker_purges_by_spec_retention_and_serves_the_rest() {
    let db = TestDb::new().await;
    db.subscriber("ann@example.com").await;
    let old_unmatched = kept_rows(&db, "unmatched", 2, 6).await;
    let old_ignored = kept_rows(&db, "ignored", 2, 3).await;
    let young_ignored = kept_rows(&db, "ignored", 1, 1).await;
    let w = TestWorker::start(
        &db.url,
        "  rules: {reasons: {blocked: {type: ignore}}}\n  retention: {unmatchedDays: 5, ignoredDays: 2}\n",
    )
    .await;
    for body in [
        json!({"email": "Nobody@Example.com", "type": "hard", "source": "relay",
               "meta": {"reason": "userunknown"}}),
        json!({"email": "other@example.com", "type": "soft", "source": "ses"}),
        json!({"email": "ann@example.com", "type": "hard", "source": "relay",
               "meta": {"reason": "blocked"}}),
    ] {
        assert_eq!(w.post_bounce(&body).await.status(), 200, "{body}");
    }
    // The periodic task runs once at start: the rows older than the spec's days go.
    let unmatched_now: Vec<i64> = ids_in(&db, "unmatched")
        .await
        .into_iter()
        .filter(|id| !old_unmatched.contains(id))
        .collect();
    assert_eq!(unmatched_now.len(), 2);
    until_ids(&db, "unmatched", &unmatched_now).await;
    let ignored_now: Vec<i64> = ids_in(&db, "ignored")
        .await
        .into_iter()
        .filter(|id| !old_ignored.contains(id))
        .collect();
    assert_eq!(
        ignored_now.len(),
        2,
        "the young row and ann's blocked bounce"
    );
    assert!(ignored_now.contains(&young_ignored[0]));
    until_ids(&db, "ignored", &ignored_now).await;

    let (status, body) = w.get_json("/api/unmatched").await;
    assert_eq!(status, 200);
    let data = &body["data"];
    assert_eq!(
        (&data["total"], &data["page"], &data["per_page"]),
        (&json!(2), &json!(1), &json!(20))
    );
    let newest = &data["results"][0];
    assert_eq!(newest["email"], "other@example.com");
    assert_eq!(newest["meta"], json!({}));
    assert_eq!(newest["campaign_uuid"], Value::Null);
    for key in [
        "id",
        "email",
        "subscriber_uuid",
        "campaign_uuid",
        "type",
        "reason",
        "source",
        "meta",
        "bounced_at",
        "received_at",
    ] {
        assert!(newest.get(key).is_some(), "{key} in {newest}");
    }
    let (_, body) = w.get_json("/api/unmatched?email=NOBODY@example.com").await;
    let results = body["data"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["reason"], "userunknown");
    assert_eq!(results[0]["type"], "hard");
    let (_, body) = w
        .get_json("/api/unmatched?source=ses&per_page=1&page=1")
        .await;
    assert_eq!(body["data"]["total"], 1);
    let (_, body) = w.get_json("/api/unmatched?order=asc&per_page=1").await;
    assert_eq!(body["data"]["results"][0]["email"], "nobody@example.com");
    let (_, body) = w.get_json("/api/unmatched?page=5").await;
    assert_eq!(body["data"]["total"], 0);

    let (status, body) = w
        .get_json("/api/ignored?reason=blocked&email=ann@example.com")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["total"], 1);
    assert_eq!(body["data"]["results"][0]["reason"], "blocked");
    let (status, body) = w.get_json("/api/ignored?reason=nope").await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("invalid reason"));
    for (query, field) in [
        ("email=a%00b", "invalid email"),
        ("source=%00", "invalid source"),
        ("page=9223372036854775807", "invalid page"),
    ] {
        let (status, body) = w.get_json(&format!("/api/unmatched?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            body["message"].as_str().unwrap().starts_with(field),
            "{body}"
        );
    }

    let r = w.client.get(w.url("/api/unmatched")).send().await.unwrap();
    assert_eq!(r.status(), 401, "authenticated like the other routes");
}
