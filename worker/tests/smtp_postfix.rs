//! The bounce MX with a real MTA: Debian's Postfix, started on loopback with its own
//! configuration and queue, makes real DSNs (a local recipient that does not exist, a
//! destination that never answers) and delivers them, through its transport map, to the
//! worker's SMTP port. Skipped, saying so, only where Postfix is not installed.

mod common;
mod smtp_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Proxy, TestDb, server_addr};
use smtp_support::postfix::{self, Postfix};
use smtp_support::*;

fn skipped() -> bool {
    match postfix::unavailable() {
        Some(why) => {
            bounceops_tests::cluster::skipped("worker: the bounce MX with Postfix", &why);
            true
        }
        None => false,
    }
}

/// Hands `message` to Postfix's smtpd from `sender` to `rcpt`, as a mailing would.
async fn submit(postfix: &Postfix, sender: &str, rcpt: &str, message: &str) {
    let mut c = connect(postfix.smtpd).await;
    c.cmd("EHLO sender.test").await;
    for (command, expect) in [
        (format!("MAIL FROM:<{sender}>"), "250"),
        (format!("RCPT TO:<{rcpt}>"), "250"),
        ("DATA".into(), "354"),
    ] {
        let r = c.cmd(&command).await;
        assert!(r.starts_with(expect), "{command}: {r}\n{}", postfix.log());
    }
    let r = c.cmd(&format!("{message}.")).await;
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT").await;
}

fn campaign_mail(sub: &str) -> String {
    format!(
        "From: news@sender.test\r\nTo: {sub}\r\nSubject: Our news\r\n\
         Message-Id: <{}@sender.test>\r\n\r\nHello.\r\n",
        uuid::Uuid::new_v4().simple()
    )
}

async fn rows(db: &TestDb, subscriber: i32) -> Vec<(String, Option<i32>, serde_json::Value)> {
    sqlx::query_as(
        "SELECT type::text, campaign_id, meta FROM bounces WHERE subscriber_id = $1 ORDER BY id",
    )
    .bind(subscriber)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// Polls `check` until it holds, failing with Postfix's log after `within`.
async fn until<F: std::future::Future<Output = bool>>(
    postfix: &Postfix,
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn queue_empty(postfix: &Postfix) {
    until(
        postfix,
        Duration::from_secs(60),
        "Postfix's queue empties",
        || async { postfix.queue().is_empty() },
    )
    .await;
}

fn worker_addr(w: &SmtpWorker) -> SocketAddr {
    w.smtp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postfix_dsn_to_a_verp_return_path_is_recorded_once() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("no-such-user@local.test").await;
    let (camp_id, camp) = db.campaign("news").await;
    let w = SmtpWorker::start(&db.url, "").await;
    let postfix = Postfix::start(&[(DOMAIN, worker_addr(&w))], "");
    let verp = w.verp(sub, Some(camp));
    submit(
        &postfix,
        &verp,
        "no-such-user@local.test",
        &campaign_mail("no-such-user@local.test"),
    )
    .await;
    until(
        &postfix,
        Duration::from_secs(60),
        "the DSN is recorded",
        || async { !rows(&db, sub_id).await.is_empty() },
    )
    .await;
    queue_empty(&postfix).await;
    let rows = rows(&db, sub_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (kind, campaign, meta) = &rows[0];
    assert_eq!(kind, "hard", "{meta}");
    assert_eq!(*campaign, Some(camp_id));
    assert_eq!(meta["recipient"], "no-such-user@local.test", "{meta}");
    assert_eq!(meta["status"], "5.1.1", "{meta}");
    assert!(
        postfix.log().contains("status=sent (250 2.0.0 Recorded"),
        "{}",
        postfix.log()
    );
    assert_eq!(outcome(&w.metrics().await, "recorded"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_then_failed_delivery_is_a_soft_bounce() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("user@unreachable.test").await;
    let w = SmtpWorker::start(&db.url, "").await;
    // A port where nothing listens: every attempt is deferred; Postfix warns of the delay,
    // then gives up and returns the message.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let postfix = Postfix::start(
        &[(DOMAIN, worker_addr(&w)), ("unreachable.test", dead)],
        "delay_warning_time = 2s\nmaximal_queue_lifetime = 6s\nbounce_queue_lifetime = 6s\n\
         minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n",
    );
    let verp = w.verp(sub, None);
    submit(
        &postfix,
        &verp,
        "user@unreachable.test",
        &campaign_mail("user@unreachable.test"),
    )
    .await;
    until(
        &postfix,
        Duration::from_secs(90),
        "the final failure is recorded",
        || async {
            rows(&db, sub_id)
                .await
                .iter()
                .any(|(_, _, meta)| meta["action"] == "failed")
        },
    )
    .await;
    queue_empty(&postfix).await;
    let rows = rows(&db, sub_id).await;
    assert!(rows.iter().all(|(kind, _, _)| kind == "soft"), "{rows:?}");
    assert!(
        rows.iter().any(|(_, _, meta)| meta["action"] == "delayed"),
        "the delay warning came first: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|(_, _, meta)| meta["status"].as_str().unwrap_or("").starts_with('4')),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arf_report_to_a_feedback_address_is_a_complaint() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let (sub_id, _) = db.subscriber("complainer@example.net").await;
    let w = SmtpWorker::start(&db.url, "").await;
    let postfix = Postfix::start(&[("example.com", worker_addr(&w))], "");
    let arf = "From: fbl@isp.test\r\nTo: fbl@example.com\r\nSubject: FW: abuse report\r\n\
               MIME-Version: 1.0\r\n\
               Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n\
               --b\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n\
               --b\r\nContent-Type: message/feedback-report\r\n\r\n\
               Feedback-Type: abuse\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\n\
               Original-Rcpt-To: <complainer@example.net>\r\n\r\n\
               --b\r\nContent-Type: message/rfc822\r\n\r\n\
               From: news@sender.test\r\nTo: complainer@example.net\r\nSubject: news\r\n\r\nbody\r\n\
               --b--\r\n";
    submit(&postfix, "fbl@isp.test", FEEDBACK, arf).await;
    until(
        &postfix,
        Duration::from_secs(60),
        "the complaint is recorded",
        || async { !rows(&db, sub_id).await.is_empty() },
    )
    .await;
    queue_empty(&postfix).await;
    let rows = rows(&db, sub_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "complaint");
    assert_eq!(rows[0].2["feedback_loop"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_gets_451_and_postfix_redelivers_once() {
    if skipped() {
        return;
    }
    let db = TestDb::new().await;
    let (sub_id, sub) = db.subscriber("no-such-user@local.test").await;
    let proxy = Proxy::start(server_addr(&db.url)).await;
    let w = SmtpWorker::start(&proxy.url_for(&db.url), "").await;
    // Retries only when the test asks (postqueue -f), so the 451 is seen to hold the DSN.
    let postfix = Postfix::start(
        &[(DOMAIN, worker_addr(&w))],
        "minimal_backoff_time = 1h\nmaximal_backoff_time = 1h\n",
    );
    proxy.cut();
    let verp = w.verp(sub, None);
    submit(
        &postfix,
        &verp,
        "no-such-user@local.test",
        &campaign_mail("no-such-user@local.test"),
    )
    .await;
    until(
        &postfix,
        Duration::from_secs(60),
        "the worker answers 451",
        || async { outcome(&w.metrics().await, "temporary_failure") >= 1.0 },
    )
    .await;
    until(
        &postfix,
        Duration::from_secs(30),
        "Postfix defers the DSN",
        || async { postfix.log().contains("451 4.3.0") },
    )
    .await;
    assert_eq!(postfix.queue().len(), 1, "the DSN waits in Postfix's queue");
    assert!(rows(&db, sub_id).await.is_empty());

    proxy.restore();
    postfix.flush();
    until(
        &postfix,
        Duration::from_secs(60),
        "the retry is recorded",
        || async { !rows(&db, sub_id).await.is_empty() },
    )
    .await;
    queue_empty(&postfix).await;
    assert_eq!(rows(&db, sub_id).await.len(), 1);
    assert_eq!(outcome(&w.metrics().await, "recorded"), 1.0);
}

#[test]
fn a_parameter_given_again_replaces_the_first() {
    let cf = postfix::main_cf("a = 1\nb = 2\nc =\n", "b = 3\nc = x\n\nd = 4\n");
    assert_eq!(cf, "a = 1\nb = 3\nc = x\nd = 4\n");
}
