//! The evidence kept with bounces (issue 13, point 5), over HTTP against a real Postgres
//! and, for mailbox bounces, a real dovecot: from a blocklisted subscriber to the mail that
//! caused it in two requests, byte for byte; the generic webhook's own JSON; truncation;
//! `keepDays: 0`; the purge; and the endpoint's errors.

mod common;
mod mailbox_support;

use std::sync::Arc;

use bounce_worker::evidence::Policy;
use bounce_worker::ingest::Ingest;
use bounce_worker::mailbox::MailboxMetrics;
use bounce_worker::mailbox::scan::{self, Deps};
use bounce_worker::metrics::Metrics;
use bounce_worker::rules::Rules;
use bounce_worker::store::evidence::{self, PURGE_BATCH, Purged};
use bounceops_api::{MailboxProtocol, TlsMode};
use common::{TestDb, TestWorker};
use mailbox_support::*;
use serde_json::{Value, json};
use tokio::sync::watch;

/// GET `path` with credentials: status, headers, body bytes.
async fn get(w: &TestWorker, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = w
        .client
        .get(w.url(path))
        .header("Authorization", w.auth())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

/// Posts `body` to the generic webhook, then fetches what was kept of the subscriber's
/// (only) bounce: its id, and the answer to `GET /api/bounces/{id}/message`.
async fn posted_then_kept(
    w: &TestWorker,
    subscriber: i32,
    body: &[u8],
) -> (i64, u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = w
        .client
        .post(w.url("/webhooks/bounce"))
        .header("Authorization", w.auth())
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, bounces) = w
        .get_json(&format!("/api/subscribers/{subscriber}/bounces"))
        .await;
    let id = bounces["data"][0]["id"].as_i64().unwrap();
    let (status, headers, served) = get(w, &format!("/api/bounces/{id}/message")).await;
    (id, status, headers, served)
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn message_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn evidence_rows(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM bounceops.evidence")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// The operator's path: the subscriber's bounces name the bounce, the bounce serves the
/// very mail the mailbox held.
async fn from_subscriber_to_the_mail(protocol: MailboxProtocol) {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let (carol, carol_uuid) = db.subscriber("carol@example.net").await;
    let (_, campaign_uuid) = db.campaign("november").await;
    let mail = listmonk_bounce(
        "carol.forward@other.example",
        "5.1.1",
        Some(carol_uuid),
        Some(campaign_uuid),
    );
    dovecot.deliver(USER, &mail);

    let metrics = Metrics::new();
    let deps = Deps {
        store: db.store(),
        ingest: Ingest::start(db.store(), Arc::new(Rules::default()), metrics.clone(), 1),
        mailbox_metrics: MailboxMetrics::register(metrics.registry()).unwrap(),
        metrics,
        downloads: scan::downloads_budget(&[]),
    };
    let (_stop, stopped) = watch::channel(false);
    let mailbox = dovecot.mailbox("bounces", protocol, TlsMode::None);
    let summary = scan::scan(&mailbox, &deps, &stopped).await.expect("scan");
    assert_eq!((summary.removed, summary.events), (1, 1), "{summary:?}");
    assert!(
        dovecot.messages(USER).is_empty(),
        "the mail left the mailbox"
    );
    assert_eq!(db.status(carol).await.as_deref(), Some("blocklisted"));

    let w = TestWorker::start(&db.url, "").await;
    // Request 1: the blocklisted subscriber's bounces.
    let (status, body) = w
        .get_json(&format!("/api/subscribers/{carol}/bounces"))
        .await;
    assert_eq!(status, 200, "{body}");
    let bounces = body["data"].as_array().unwrap();
    assert_eq!(bounces.len(), 1, "{body}");
    assert_eq!(bounces[0]["subscriber_status"], "blocklisted");
    let id = bounces[0]["id"].as_i64().unwrap();
    // Request 2: the mail that caused it.
    let (status, headers, served) = get(&w, &format!("/api/bounces/{id}/message")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&served));
    assert_eq!(header(&headers, "content-type"), Some("message/rfc822"));
    assert_eq!(
        header(&headers, "content-disposition"),
        Some(format!("attachment; filename=\"bounce-{id}.eml\"").as_str())
    );
    assert_eq!(header(&headers, "bounceops-evidence-truncated"), None);
    assert!(
        served == mail,
        "the served message differs from the one delivered"
    );
}

#[tokio::test]
async fn pop3_bounce_mail_is_served_from_its_subscriber_in_two_requests() {
    from_subscriber_to_the_mail(MailboxProtocol::Pop3).await;
}

#[tokio::test]
async fn imap_bounce_mail_is_served_from_its_subscriber_in_two_requests() {
    from_subscriber_to_the_mail(MailboxProtocol::Imap).await;
}

/// One report naming two recipients: two bounce rows, each serving the whole report.
#[tokio::test]
async fn a_report_for_several_recipients_is_served_with_each_bounce() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let (ann, _) = db.subscriber("ann@example.net").await;
    let (bob, _) = db.subscriber("bob@example.net").await;
    let mail = String::from_utf8(listmonk_bounce("ann@example.net", "5.1.1", None, None))
        .unwrap()
        // A second per-recipient block, as an expanded alias gives.
        .replacen(
            "Final-Recipient: rfc822; ann@example.net",
            "Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\nFinal-Recipient: rfc822; ann@example.net",
            1,
        )
        .into_bytes();
    dovecot.deliver(USER, &mail);
    let parsed = bounce_classify::classify(&mail);
    assert_eq!(parsed.recipients.len(), 2, "fixture: {parsed:?}");

    let metrics = Metrics::new();
    let deps = Deps {
        store: db.store(),
        ingest: Ingest::start(db.store(), Arc::new(Rules::default()), metrics.clone(), 1),
        mailbox_metrics: MailboxMetrics::register(metrics.registry()).unwrap(),
        metrics,
        downloads: scan::downloads_budget(&[]),
    };
    let (_stop, stopped) = watch::channel(false);
    let mailbox = dovecot.mailbox("bounces", MailboxProtocol::Pop3, TlsMode::None);
    scan::scan(&mailbox, &deps, &stopped).await.expect("scan");

    let w = TestWorker::start(&db.url, "").await;
    for subscriber in [ann, bob] {
        let (_, body) = w
            .get_json(&format!("/api/subscribers/{subscriber}/bounces"))
            .await;
        let id = body["data"][0]["id"].as_i64().unwrap();
        let (status, _, served) = get(&w, &format!("/api/bounces/{id}/message")).await;
        assert_eq!(status, 200);
        assert!(served == mail, "subscriber {subscriber}");
    }
    assert_eq!(evidence_rows(&db).await, 2, "kept once per bounce row");
}

/// The generic webhook's body is the sender's event: served as it was posted.
#[tokio::test]
async fn a_webhook_bounce_serves_the_posted_json() {
    let db = TestDb::new().await;
    let (sub, _) = db.subscriber("dora@example.com").await;
    let w = TestWorker::start(&db.url, "").await;
    let posted = r#"{"email": "dora@example.com", "type": "hard", "source": "relay",
        "meta": {"smtp": "550 5.1.1 no such user"}}"#;
    let (id, status, headers, served) = posted_then_kept(&w, sub, posted.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    // Attacker-written text: no browser may take it for HTML.
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(
        header(&headers, "content-disposition"),
        Some(format!("attachment; filename=\"bounce-{id}.json\"").as_str())
    );
    assert_eq!(String::from_utf8(served).unwrap(), posted);
}

/// Over 64 KiB of originals in one request are compressed on the blocking pool: the same
/// result.
#[tokio::test]
async fn a_large_original_is_kept_whole() {
    let db = TestDb::new().await;
    let (sub, _) = db.subscriber("kim@example.com").await;
    let w = TestWorker::start(&db.url, "").await;
    let posted = serde_json::to_vec(&json!({
        "email": "kim@example.com", "type": "soft", "source": "relay",
        "meta": {"transcript": "250 ok\r\n".repeat(20_000)},
    }))
    .unwrap();
    assert!(posted.len() > bounce_worker::evidence::INLINE_BYTES);
    let (_, status, headers, served) = posted_then_kept(&w, sub, &posted).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "bounceops-evidence-truncated"), None);
    assert!(served == posted);
}

#[tokio::test]
async fn past_max_bytes_the_first_bytes_are_served_and_marked() {
    let db = TestDb::new().await;
    let (sub, _) = db.subscriber("erin@example.com").await;
    let w = TestWorker::start(&db.url, "  evidence: {maxBytes: 1024}\n").await;
    let posted = serde_json::to_vec(&json!({
        "email": "erin@example.com", "type": "soft", "source": "relay",
        "meta": {"transcript": "x".repeat(3000)},
    }))
    .unwrap();
    let (_, status, headers, served) = posted_then_kept(&w, sub, &posted).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "bounceops-evidence-truncated"),
        Some("true")
    );
    let original = posted.len().to_string();
    assert_eq!(
        header(&headers, "bounceops-evidence-original-bytes"),
        Some(original.as_str())
    );
    assert_eq!(served, &posted[..1024]);
}

#[tokio::test]
async fn keep_days_zero_keeps_nothing_and_says_so() {
    let db = TestDb::new().await;
    let (sub, _) = db.subscriber("fay@example.com").await;
    let w = TestWorker::start(&db.url, "  evidence: {keepDays: 0}\n").await;
    let r = w
        .post_bounce(&json!({"email": "fay@example.com", "type": "soft", "source": "relay"}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(evidence_rows(&db).await, 0);
    let (_, body) = w.get_json(&format!("/api/subscribers/{sub}/bounces")).await;
    let id = body["data"][0]["id"].as_i64().unwrap();
    let (status, _, body) = get(&w, &format!("/api/bounces/{id}/message")).await;
    assert_eq!(status, 404);
    assert_eq!(
        message_of(&body),
        format!("bounce {id} has no kept message: spec.evidence.keepDays is 0, so none are kept")
    );
}

#[tokio::test]
async fn the_endpoint_refuses_and_explains() {
    let db = TestDb::new().await;
    let (sub, _) = db.subscriber("gus@example.com").await;
    // A bounce written by listmonk itself: nothing kept.
    let old: i32 = sqlx::query_scalar(
        "INSERT INTO bounces (subscriber_id, type, source, meta, created_at)
         VALUES ($1, 'hard', 'listmonk', '{}', NOW() - INTERVAL '40 days') RETURNING id",
    )
    .bind(sub)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let recent: i32 = sqlx::query_scalar(
        "INSERT INTO bounces (subscriber_id, type, source, meta)
         VALUES ($1, 'soft', 'listmonk', '{}') RETURNING id",
    )
    .bind(sub)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let w = TestWorker::start(&db.url, "").await;

    let unauthenticated = w
        .client
        .get(w.url(&format!("/api/bounces/{recent}/message")))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let (status, _, body) = get(&w, "/api/bounces/abc/message").await;
    assert_eq!(
        (status, message_of(&body)),
        (400, "invalid id: \"abc\"".into())
    );
    let (status, _, body) = get(&w, "/api/bounces/0/message").await;
    assert_eq!(status, 400, "{}", message_of(&body));

    let missing = old.max(recent) + 100;
    let (status, _, body) = get(&w, &format!("/api/bounces/{missing}/message")).await;
    assert_eq!(
        (status, message_of(&body)),
        (404, format!("bounce {missing} not found"))
    );

    let (status, _, body) = get(&w, &format!("/api/bounces/{old}/message")).await;
    assert_eq!(status, 404);
    let text = message_of(&body);
    assert!(
        text.starts_with(&format!("bounce {old} has no kept message: it is from "))
            && text.ends_with("and messages are kept 30 days (spec.evidence.keepDays)"),
        "{text}"
    );
    let (status, _, body) = get(&w, &format!("/api/bounces/{recent}/message")).await;
    assert_eq!(status, 404);
    assert_eq!(
        message_of(&body),
        format!(
            "bounce {recent} has no kept message (kept 30 days): it was recorded before \
             messages were kept, or its source (\"listmonk\") sent nothing to keep"
        )
    );

    // A damaged row is a clear 500, not a panic.
    sqlx::query(
        "INSERT INTO bounceops.evidence (bounce_id, content_type, gzip, original_bytes)
         VALUES ($1, 'message/rfc822', '\\x00010203', 10)",
    )
    .bind(recent)
    .execute(&db.pool)
    .await
    .unwrap();
    let (status, _, body) = get(&w, &format!("/api/bounces/{recent}/message")).await;
    assert_eq!(status, 500);
    let text = message_of(&body);
    assert!(
        text.starts_with(&format!(
            "bounce {recent}: the kept message does not decompress"
        )),
        "{text}"
    );
}

/// Inserts `n` bounces with evidence kept `days_ago`; returns their ids.
async fn kept(db: &TestDb, subscriber: i32, n: usize, days_ago: i32) -> Vec<i32> {
    let gzip = Policy::default()
        .keep(bounce_worker::evidence::Kind::Json, b"{}")
        .unwrap()
        .gzip;
    sqlx::query_scalar(
        "WITH b AS (
             INSERT INTO bounces (subscriber_id, type, source, meta)
             SELECT $1, 'soft', 'test', '{}' FROM generate_series(1, $2) RETURNING id)
         INSERT INTO bounceops.evidence (bounce_id, content_type, gzip, original_bytes, created_at)
         SELECT id, 'application/json', $3, 2, NOW() - make_interval(days => $4) FROM b
         RETURNING bounce_id",
    )
    .bind(subscriber)
    .bind(n as i32)
    .bind(gzip.as_ref())
    .bind(days_ago)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_purge_removes_old_and_orphaned_evidence_only() {
    let db = TestDb::new().await;
    let (sub, _) = db.subscriber("hal@example.com").await;
    // More than one batch of old rows, so the purge must loop.
    let old = kept(&db, sub, PURGE_BATCH as usize + 5, 31).await;
    let young = kept(&db, sub, 3, 29).await;
    let orphan = kept(&db, sub, 2, 1).await;
    sqlx::query("DELETE FROM bounces WHERE id = ANY($1)")
        .bind(&orphan)
        .execute(&db.pool)
        .await
        .unwrap();

    let store = db.store();
    // Two replicas purging at once: neither fails, and together they delete each row once.
    let (mut one, mut two) = (evidence::Sweep::default(), evidence::Sweep::default());
    let (a, b) = tokio::join!(
        evidence::purge(&store, 30, &mut one),
        evidence::purge(&store, 30, &mut two)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.expired + b.expired, a.orphaned + b.orphaned),
        (old.len() as u64, 2)
    );
    let left: Vec<i32> =
        sqlx::query_scalar("SELECT bounce_id FROM bounceops.evidence ORDER BY bounce_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(left, young);
    assert_eq!(
        evidence::purge(&store, 30, &mut one).await.unwrap(),
        Purged::default(),
        "nothing left to purge"
    );
    // keepDays 0: everything goes.
    assert_eq!(
        evidence::purge(&store, 0, &mut one).await.unwrap().expired,
        3
    );
    assert_eq!(evidence_rows(&db).await, 0);
}

/// The orphan sweep looks at a span of rows per purge, goes on from there at the next one,
/// and starts again from the first row after the last: every orphan is found within
/// `rows / span` purges, whatever the table's size.
#[tokio::test]
async fn the_orphan_sweep_goes_round_the_table_a_span_at_a_time() {
    let db = TestDb::new().await;
    let (sub, _) = db.subscriber("kim@example.com").await;
    let mut rows = kept(&db, sub, 5, 1).await;
    rows.sort_unstable();
    // Orphans at the second and the fifth row.
    sqlx::query("DELETE FROM bounces WHERE id = ANY($1)")
        .bind([rows[1], rows[4]])
        .execute(&db.pool)
        .await
        .unwrap();
    let store = db.store();
    let mut sweep = evidence::Sweep::with_span(2);
    let mut orphaned = Vec::new();
    for _ in 0..4 {
        orphaned.push(
            evidence::purge(&store, 30, &mut sweep)
                .await
                .unwrap()
                .orphaned,
        );
    }
    // Rows 1-2 (one orphan), 3-4 (none), 5 (one; the end, so round again), 1-2 (none left).
    assert_eq!(orphaned, [1, 0, 1, 0]);
    assert_eq!(evidence_rows(&db).await, 3);
}

/// The `delete` action removes the subscriber's evidence with it, in the same transaction.
#[tokio::test]
async fn a_deleted_subscriber_leaves_no_evidence() {
    let db = TestDb::new().await;
    let (sub, _) = db.subscriber("ivy@example.com").await;
    let (other, _) = db.subscriber("jon@example.com").await;
    let w = TestWorker::start(&db.url, "  rules: {soft: {count: 2, action: delete}}\n").await;
    for email in ["ivy@example.com", "jon@example.com"] {
        let r = w
            .post_bounce(&json!({"email": email, "type": "soft", "source": "relay"}))
            .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(evidence_rows(&db).await, 2);
    // Ivy's second soft bounce deletes her: her first bounce's evidence and this one's go.
    let r = w
        .post_bounce(&json!({"email": "ivy@example.com", "type": "soft", "source": "relay"}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(db.status(sub).await, None);
    let left: Vec<i32> = sqlx::query_scalar(
        "SELECT b.subscriber_id FROM bounceops.evidence e JOIN bounces b ON b.id = e.bounce_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(left, vec![other]);
    assert_eq!(evidence_rows(&db).await, 1, "no orphan left either");
}
