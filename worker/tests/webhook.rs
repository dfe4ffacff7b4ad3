//! The generic webhook over real HTTP against a real Postgres: listmonk's contract, auth,
//! bad input, the commit-before-2xx promise, and the database going away and back.

mod common;

use common::{Proxy, TestDb, TestWorker, metric_value, server_addr};
use serde_json::json;

#[tokio::test]
async fn records_and_answers_like_listmonk() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("alice@example.com").await;
    let (campaign_id, campaign_uuid) = db.campaign("November").await;
    let w = TestWorker::start(&db.url, "").await;
    let r = w
        .post_bounce(&json!({
            "email": "Alice@Example.com", "campaign_uuid": campaign_uuid, "type": "hard",
            "source": "api", "meta": {"reason": "5.1.1"}, "created_at": "2026-03-04T05:06:07Z"
        }))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"data": true})
    );
    let (campaign, source, meta, at): (
        Option<i32>,
        String,
        serde_json::Value,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(
        "SELECT campaign_id, source, meta, created_at FROM bounces WHERE subscriber_id = $1",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(campaign, Some(campaign_id));
    assert_eq!(source, "api");
    assert_eq!(meta, json!({"reason": "5.1.1"}));
    assert_eq!(at.to_rfc3339(), "2026-03-04T05:06:07+00:00");
    assert_eq!(db.status(id).await.as_deref(), Some("blocklisted"));
}

#[tokio::test]
async fn unknown_subscriber_is_accepted_and_kept() {
    let db = TestDb::new().await;
    let w = TestWorker::start(&db.url, "").await;
    let r = w
        .post_bounce(&json!({"email": "ghost@example.com", "type": "soft", "source": "x"}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(db.unmatched_count().await, 1);
}

#[tokio::test]
async fn auth_is_required_and_checked() {
    let db = TestDb::new().await;
    db.subscriber("a@example.com").await;
    let w = TestWorker::start(&db.url, "").await;
    let body = json!({"email": "a@example.com", "type": "hard", "source": "x"});
    let send = |auth: Option<&str>| {
        let mut req = w.client.post(w.url("/webhooks/bounce")).json(&body);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send()
    };
    let none = send(None).await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    assert_eq!(send(Some("Bearer abc")).await.unwrap().status(), 401);
    assert_eq!(
        send(Some("token tester:wrong")).await.unwrap().status(),
        403
    );
    assert_eq!(
        send(Some("token nobody:t0ken")).await.unwrap().status(),
        403
    );
    let wrong_basic = format!("Basic {}", base64_encode("tester:nope"));
    assert_eq!(send(Some(&wrong_basic)).await.unwrap().status(), 403);
    assert_eq!(
        db.total_bounces().await,
        0,
        "nothing recorded without valid credentials"
    );

    let basic = format!("Basic {}", base64_encode("tester:t0ken"));
    assert_eq!(send(Some(&basic)).await.unwrap().status(), 200);
    assert_eq!(db.total_bounces().await, 1);

    // The API is protected the same way.
    let api = w.client.get(w.url("/api/bounces")).send().await.unwrap();
    assert_eq!(api.status(), 401);
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn bad_input_gets_400_with_a_message_and_writes_nothing() {
    let db = TestDb::new().await;
    db.subscriber("a@example.com").await;
    let w = TestWorker::start(&db.url, "").await;
    let cases: &[(&str, &str)] = &[
        ("{", "invalid JSON"),
        ("", "invalid JSON"),
        ("null", "expected an object"),
        ("[1,2]", "expected an object"),
        (r#"{"email": 42, "type": "hard"}"#, "invalid JSON"),
        (r#"{"type": "hard"}"#, "email or subscriber_uuid"),
        (
            r#"{"email": "not-an-address", "type": "hard"}"#,
            "invalid email",
        ),
        (
            r#"{"subscriber_uuid": "1234", "type": "hard"}"#,
            "invalid subscriber_uuid",
        ),
        (
            r#"{"email": "a@example.com", "campaign_uuid": "zz", "type": "hard"}"#,
            "invalid campaign_uuid",
        ),
        (
            r#"{"email": "a@example.com", "type": "bounced"}"#,
            "invalid type",
        ),
        (
            r#"{"email": "a@example.com", "type": "hard", "meta": [1]}"#,
            "invalid meta",
        ),
        (
            r#"{"email": "a@example.com", "type": "hard", "created_at": "2026-13-45"}"#,
            "invalid created_at",
        ),
        ("\u{0}\u{1}\u{2}binary", "invalid JSON"),
    ];
    for (body, expected) in cases {
        let r = w
            .client
            .post(w.url("/webhooks/bounce"))
            .header("Authorization", w.auth())
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body:?}");
        let message = r.json::<serde_json::Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(expected), "{body:?}: {message}");
    }
    assert_eq!(db.total_bounces().await + db.unmatched_count().await, 0);
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let db = TestDb::new().await;
    db.subscriber("a@example.com").await;
    let w = TestWorker::start(&db.url, "  webhook: {maxBodyBytes: 2048}\n").await;
    let big = json!({"email": "a@example.com", "type": "hard", "source": "x", "meta": {"pad": "x".repeat(4096)}});
    let r = w.post_bounce(&big).await;
    assert_eq!(r.status(), 413);
    assert!(r.json::<serde_json::Value>().await.unwrap()["message"].is_string());
    let small = json!({"email": "a@example.com", "type": "hard", "source": "x", "meta": {"pad": "x".repeat(512)}});
    assert_eq!(w.post_bounce(&small).await.status(), 200);
    assert_eq!(db.total_bounces().await, 1);
}

/// Many concurrent requests; each 2xx must find its bounce already committed, seen from
/// another connection at the moment the response arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_2xx_event_is_committed_when_the_response_arrives() {
    let db = TestDb::new().await;
    let mut emails = Vec::new();
    for i in 0..20 {
        let email = format!("s{i}@example.com");
        db.subscriber(&email).await;
        emails.push(email);
    }
    let w = std::sync::Arc::new(
        TestWorker::start(&db.url, "  rules: {soft: {count: 1000, action: none}}\n").await,
    );
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let w = w.clone();
            let pool = db.pool.clone();
            // Every tenth goes to an unknown address: it must be in the unmatched table.
            let email = if i % 10 == 9 { format!("ghost{i}@example.com") } else { emails[i % 20].clone() };
            let marker = format!("m{i}");
            tokio::spawn(async move {
                let r = w
                    .post_bounce(&json!({"email": email, "type": "soft", "source": "x", "meta": {"marker": marker}}))
                    .await;
                assert_eq!(r.status(), 200);
                let found: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM bounces WHERE meta->>'marker' = $1)
                          + (SELECT COUNT(*) FROM bounceops.unmatched WHERE meta->>'marker' = $1)",
                )
                .bind(&marker)
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(found, 1, "{marker} answered 200 but is not committed");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.total_bounces().await, 180);
    assert_eq!(db.unmatched_count().await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_simultaneous_webhooks_for_one_subscriber() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("race@example.com").await;
    let w = std::sync::Arc::new(
        TestWorker::start(&db.url, "  rules: {hard: {count: 3, action: blocklist}}\n").await,
    );
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let w = w.clone();
            tokio::spawn(async move {
                w.post_bounce(&json!({"email": "race@example.com", "type": "hard", "source": "x"}))
                    .await
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(db.bounce_count(id).await, 3);
    assert_eq!(db.status(id).await.as_deref(), Some("blocklisted"));
}

/// A worker whose database connections go through a proxy the test can cut or stall, with
/// one bounce (`body`) recorded through it.
async fn worker_behind_proxy() -> (TestDb, Proxy, TestWorker, serde_json::Value) {
    let db = TestDb::new().await;
    db.subscriber("a@example.com").await;
    let proxy = Proxy::start(server_addr(&db.url)).await;
    let w = TestWorker::start(&proxy.url_for(&db.url), "").await;
    let body = json!({"email": "a@example.com", "type": "soft", "source": "x"});
    assert_eq!(w.post_bounce(&body).await.status(), 200);
    (db, proxy, w, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_gives_503_then_recovers() {
    let (db, proxy, w, body) = worker_behind_proxy().await;

    proxy.cut();
    let r = w.post_bounce(&body).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let ready = w.client.get(w.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        db.total_bounces().await,
        1,
        "the 503'd bounce was not recorded"
    );

    proxy.restore();
    // The pool reconnects on demand: the first request after the outage succeeds.
    assert_eq!(w.post_bounce(&body).await.status(), 200);
    assert_eq!(
        w.client
            .get(w.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(db.total_bounces().await, 2);
}

#[tokio::test]
async fn disabled_generic_webhook_is_404() {
    let db = TestDb::new().await;
    let w = TestWorker::start(&db.url, "  providers: {generic: {enabled: false}}\n").await;
    let r = w
        .post_bounce(&json!({"email": "a@example.com", "type": "soft", "source": "x"}))
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn metrics_move_with_events() {
    let db = TestDb::new().await;
    db.subscriber("a@example.com").await;
    let w = TestWorker::start(&db.url, "").await;
    let metric = metric_value;
    let before = w.metrics().await;
    assert_eq!(
        metric(
            &before,
            "bounceops_events_total{outcome=\"recorded\",reason=\"other\",source=\"api\",type=\"hard\"}"
        ),
        0.0
    );

    w.post_bounce(&json!({"email": "a@example.com", "type": "hard", "source": "api"}))
        .await;
    w.post_bounce(&json!({"email": "a@example.com", "type": "hard", "source": "api"}))
        .await;
    w.post_bounce(&json!({"email": "nobody@example.com", "type": "soft", "source": "api"}))
        .await;
    w.post_bounce(
        &json!({"email": "nobody@example.com", "type": "hard", "source": "api",
                          "meta": {"reason": "blocked"}}),
    )
    .await;
    w.client
        .post(w.url("/webhooks/bounce"))
        .send()
        .await
        .unwrap(); // 401

    let after = w.metrics().await;
    assert_eq!(
        metric(
            &after,
            "bounceops_events_total{outcome=\"recorded\",reason=\"other\",source=\"api\",type=\"hard\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            "bounceops_events_total{outcome=\"blocklisted\",reason=\"other\",source=\"api\",type=\"hard\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            "bounceops_events_total{outcome=\"unmatched\",reason=\"other\",source=\"api\",type=\"soft\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            "bounceops_events_total{outcome=\"unmatched\",reason=\"blocked\",source=\"api\",type=\"hard\"}"
        ),
        1.0,
        "a known reason is its own label value"
    );
    assert_eq!(
        metric(&after, "bounceops_unmatched_total{source=\"api\"}"),
        2.0
    );
    assert_eq!(
        metric(
            &after,
            "bounceops_actions_total{action=\"blocklist\",type=\"hard\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            "bounceops_http_requests_total{method=\"POST\",route=\"/webhooks/bounce\",status=\"200\"}"
        ),
        4.0
    );
    assert_eq!(
        metric(
            &after,
            "bounceops_http_requests_total{method=\"POST\",route=\"/webhooks/bounce\",status=\"401\"}"
        ),
        1.0
    );
    assert!(
        metric(
            &after,
            "bounceops_http_request_duration_seconds_count{route=\"/webhooks/bounce\"}"
        ) >= 4.0
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let db = TestDb::new().await;
    let w = TestWorker::start(&db.url, "").await;
    assert_eq!(
        w.client
            .get(w.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        w.client
            .get(w.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Not migrated: not ready, and nothing more to an unauthenticated caller (the reason,
    // which may name hosts, users and schemas, goes to the log).
    sqlx::query("DROP TABLE bounceops.unmatched")
        .execute(&db.pool)
        .await
        .unwrap();
    let r = w.client.get(w.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "not ready\n");
}

#[tokio::test]
async fn graceful_stop_finishes_in_flight_requests() {
    let db = TestDb::new().await;
    db.subscriber("a@example.com").await;
    let w = TestWorker::start(&db.url, "  rules: {soft: {count: 1000, action: none}}\n").await;
    let client = w.client.clone();
    let url = w.url("/webhooks/bounce");
    let auth = w.auth();
    let in_flight: Vec<_> = (0..50)
        .map(|_| {
            let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("Authorization", auth)
                    .json(&json!({"email": "a@example.com", "type": "soft", "source": "x"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // Stop while the requests are in flight: each one either gets its 200 (and is then
    // committed) or never gets an answer; none is answered and lost.
    tokio::task::yield_now().await;
    w.stop().await.unwrap();
    let mut ok = 0;
    for t in in_flight {
        if matches!(t.await.unwrap(), Ok(200)) {
            ok += 1;
        }
    }
    assert_eq!(
        db.total_bounces().await,
        ok,
        "every 200 is committed, nothing else is"
    );
}

/// A sender that retries with the same `Idempotency-Key` (after a timeout, or a worker
/// killed between its commit and its answer) gets 200 and the bounce is stored once.
#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_is_recorded_once() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("k@example.com").await;
    let w = TestWorker::start(&db.url, "").await;
    let body = json!({"email": "k@example.com", "type": "soft", "source": "api"});
    let post = |key: Option<&'static str>| {
        let mut r = w
            .client
            .post(w.url("/webhooks/bounce"))
            .header("Authorization", w.auth())
            .json(&body);
        if let Some(key) = key {
            r = r.header("Idempotency-Key", key);
        }
        r.send()
    };
    for _ in 0..3 {
        assert_eq!(
            post(Some("campaign-7/k@example.com"))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(db.bounce_count(id).await, 1, "one key, one bounce");
    assert_eq!(post(None).await.unwrap().status(), 200);
    assert_eq!(db.bounce_count(id).await, 2, "without a key, a new bounce");
    let bad = post(Some("two words")).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(db.bounce_count(id).await, 2);
    let metrics = w.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "bounceops_events_total{outcome=\"duplicate\",reason=\"other\",source=\"api\",type=\"soft\"}"
        ),
        2.0
    );
}

/// While the database is unreachable (connections hang, as in a network partition), a
/// batch of many senders' bounces fails at once: every sender gets 503 after one
/// connection timeout, instead of job after job each waiting out the pool's timeout until
/// the request deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_fails_a_whole_batch_at_once() {
    let (db, proxy, w, body) = worker_behind_proxy().await;

    proxy.stall();
    let started = std::time::Instant::now();
    let posts = (0..64).map(|_| w.post_bounce(&body));
    let answers = futures::future::join_all(posts).await;
    let took = started.elapsed();
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|&s| s == 503), "{statuses:?}");
    // One pool timeout is 3 s; a batch or two of them. Job by job, 64 senders would wait
    // 3 s each in turn, until the 30 s request deadline.
    assert!(
        took < std::time::Duration::from_secs(12),
        "64 senders were answered in {took:?}"
    );
    assert_eq!(db.total_bounces().await, 1);
}

/// Everything logged, at every level, into one buffer.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A credential in a query (Azure's `code`, a provider URL's `token`) never reaches the
/// log, even with `RUST_LOG=trace`: the request's URI is logged with its value hidden.
#[tokio::test]
async fn query_credentials_are_not_logged_at_any_level() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // The test's runtime has one thread, so the worker's tasks log through this too.
    let _logging = tracing::subscriber::set_default(subscriber);
    let db = TestDb::new().await;
    let w = TestWorker::start(&db.url, "").await;
    for path in [
        "/webhooks/bounce?code=s3cret-code&x=1",
        "/api/bounces?token=s3cret-token&page=2",
        "/healthz?api_key=s3cret-key",
    ] {
        let r = w.client.get(w.url(path)).send().await.unwrap();
        assert!(r.status().as_u16() < 500, "{path}");
    }
    w.stop().await.unwrap();
    let logged = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(!logged.contains("s3cret"), "{logged}");
    for hidden in [
        "/webhooks/bounce?code=***&x=1",
        "/api/bounces?token=***&page=2",
        "/healthz?api_key=***",
    ] {
        assert!(logged.contains(hidden), "{hidden} in {logged}");
    }
}

/// The IETF draft's answer to a key reused for another request: 422, and nothing is
/// recorded; the true retry (the same bytes) is still answered 200 and recorded once.
#[tokio::test]
async fn an_idempotency_key_is_bound_to_its_body() {
    let db = TestDb::new().await;
    let (first, _) = db.subscriber("first@example.com").await;
    let (other, _) = db.subscriber("other@example.com").await;
    let w = TestWorker::start(&db.url, "").await;
    let one = json!({"email": "first@example.com", "type": "hard", "source": "api"});
    let two = json!({"email": "other@example.com", "type": "hard", "source": "api"});
    assert_eq!(w.post_keyed("k-1", &one).await.0, 200);
    let (status, message) = w.post_keyed("k-1", &two).await;
    assert_eq!(status, 422);
    assert!(
        message.contains("Idempotency-Key") && message.contains("different request body"),
        "{message}"
    );
    assert_eq!(w.post_keyed("k-1", &one).await.0, 200, "a true retry");
    assert_eq!(db.bounce_count(first).await, 1);
    assert_eq!(
        db.bounce_count(other).await,
        0,
        "the other body is not recorded"
    );
    let metrics = w.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "bounceops_events_total{outcome=\"key_reused\",reason=\"other\",source=\"api\",type=\"hard\"}"
        ),
        1.0
    );
}

/// Concurrent requests with one key and different bodies (grouped into one transaction or
/// racing in several): exactly one body is recorded, once, and every other body is told
/// 422; requests with the recorded body are answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_reusing_a_key_record_one_body_once() {
    let db = TestDb::new().await;
    // Subscribers of their own per round, so that no rule threshold hides a bounce.
    let mut ids = Vec::new();
    for round in 0..5 {
        for i in 0..4 {
            ids.push(db.subscriber(&format!("r{round}c{i}@example.com")).await.0);
        }
    }
    let w = TestWorker::start(&db.url, "").await;
    for round in 0..5 {
        let key = format!("race-{round}");
        let posts = (0..16).map(|n| {
            let email = format!("r{round}c{}@example.com", n % 4);
            let body = json!({"email": email, "type": "soft", "source": "api"});
            w.client
                .post(w.url("/webhooks/bounce"))
                .header("Authorization", w.auth())
                .header("Idempotency-Key", key.clone())
                .json(&body)
                .send()
        });
        let statuses: Vec<u16> = futures::future::join_all(posts)
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect();
        let accepted: Vec<usize> = (0..16).filter(|&n| statuses[n] == 200).collect();
        assert!(
            statuses.iter().all(|&s| s == 200 || s == 422),
            "{statuses:?}"
        );
        // The bodies answered 200 are all the same body: the one recorded.
        let winner = accepted[0] % 4;
        assert!(accepted.iter().all(|n| n % 4 == winner), "{statuses:?}");
        assert_eq!(accepted.len(), 4, "{statuses:?}");
    }
    let mut total = 0;
    for id in ids {
        total += db.bounce_count(id).await;
    }
    assert_eq!(total, 5, "one bounce per key");
}

/// NUL in `meta` (key and value) and in `source`: Postgres refuses it in text and jsonb,
/// so it is stored as U+FFFD; and a lone surrogate is read as U+FFFD. Never a 500.
#[tokio::test]
async fn nul_and_lone_surrogates_are_stored_as_replacement_characters() {
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("nul@example.com").await;
    let w = TestWorker::start(&db.url, "").await;
    let body = r#"{"email":"nul@example.com","type":"soft","source":"ap\u0000i","meta":{"k\u0000":"v\u0000","s":"x\ud800y"}}"#;
    let r = w
        .client
        .post(w.url("/webhooks/bounce"))
        .header("Authorization", w.auth())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (source, meta): (String, serde_json::Value) =
        sqlx::query_as("SELECT source, meta FROM bounces WHERE subscriber_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(source, "ap\u{FFFD}i");
    assert_eq!(meta, json!({"k\u{FFFD}": "v\u{FFFD}", "s": "x\u{FFFD}y"}));
}

/// A value the database refuses however it is sent (here a character a LATIN1 database
/// cannot hold): the generic webhook answers 422 with the database's reason, the bounce
/// is parked as a dead letter, counted, and listed by `GET /api/dead-letters`; a retry
/// with its key is answered as before.
#[tokio::test]
async fn a_bounce_the_database_refuses_is_a_422_and_a_dead_letter() {
    let db = TestDb::latin1().await;
    let (id, _) = db.subscriber("jp@example.com").await;
    let w = TestWorker::start(&db.url, "").await;
    let body = json!({"email": "jp@example.com", "type": "hard", "source": "api",
                      "meta": {"diagnostic": "550 宛先不明"}});
    for _ in 0..2 {
        let (status, message) = w.post_keyed("jp-1", &body).await;
        assert_eq!(status, 422);
        assert!(
            message.contains("cannot be stored") && message.contains("22P05"),
            "{message}"
        );
    }
    assert_eq!(db.bounce_count(id).await, 0);
    // A bounce the database can hold goes through as ever.
    let ok = json!({"email": "jp@example.com", "type": "soft", "source": "api"});
    assert_eq!(w.post_bounce(&ok).await.status(), 200);
    assert_eq!(db.bounce_count(id).await, 1);

    let (status, listed) = w.get_json("/api/dead-letters").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["data"]["total"], 1,
        "one dead letter for the key: {listed}"
    );
    let letter = &listed["data"]["results"][0];
    assert_eq!(letter["source"], "api");
    assert_eq!(letter["event_id"], "idempotency-key:jp-1");
    assert!(
        letter["reason"].as_str().unwrap().starts_with("22P05"),
        "{letter}"
    );
    assert_eq!(letter["item"]["email"], "jp@example.com");
    assert_eq!(letter["item"]["meta"]["diagnostic"], "550 宛先不明");
    let (status, _) = w.get_json("/api/dead-letters?source=other").await;
    assert_eq!(status, 200);
    let (status, _) = w
        .get_json("/api/dead-letters?page=9223372036854775807")
        .await;
    assert_eq!(status, 400);
    let anonymous = w
        .client
        .get(w.url("/api/dead-letters"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let metrics = w.metrics().await;
    assert_eq!(
        metric_value(&metrics, "bounceops_dead_letters_total{source=\"api\"}"),
        1.0
    );
}
