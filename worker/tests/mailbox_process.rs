//! The `bounce-worker` binary scanning mailboxes as a user runs it: `run --once`, `run
//! --role all` with its metrics, a worker killed mid-scan (a real SIGKILL) and restarted,
//! verified TLS, and `parse`.

mod common;
mod mailbox_support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, write_config};
use mailbox_support::*;

fn worker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bounce-worker"));
    c.env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    c
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    secrets: PathBuf,
}

fn setup(db: &TestDb, dovecot: &Dovecot, protocol: &str, tls: &str, password: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let yaml = dovecot.mailbox_yaml(&secrets, "bounces", protocol, tls, password);
    let (config, secrets) = write_config(dir.path(), &db.url, &yaml);
    Setup {
        _dir: dir,
        config,
        secrets,
    }
}

fn once(s: &Setup) -> Command {
    let mut c = worker();
    c.args(["run", "--role", "mailbox", "--once", "--config"])
        .arg(&s.config)
        .arg("--secrets-dir")
        .arg(&s.secrets);
    c
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `n` subscribers `k<i>@example.net`, each with one soft bounce waiting in the mailbox.
async fn soft_bounces(db: &TestDb, dovecot: &Dovecot, n: usize) -> Vec<i32> {
    let ids: Vec<i32> = sqlx::query_scalar(
        "INSERT INTO subscribers (uuid, email, name)
         SELECT gen_random_uuid(), 'k' || g || '@example.net', 'k'
         FROM generate_series(1, $1) AS g ORDER BY g RETURNING id",
    )
    .bind(n as i32)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for i in 1..=n {
        let email = format!("k{i}@example.net");
        dovecot.deliver(USER, &listmonk_bounce(&email, "4.2.2", None, None));
    }
    ids
}

async fn each_counted_once(db: &TestDb, n: usize) {
    let per_subscriber: Vec<i64> = sqlx::query_scalar(
        "SELECT COUNT(b.id) FROM subscribers s LEFT JOIN bounces b ON b.subscriber_id = s.id
         GROUP BY s.id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(per_subscriber.len(), n);
    assert!(
        per_subscriber.iter().all(|&c| c == 1),
        "every subscriber has exactly one bounce: {per_subscriber:?}"
    );
}

/// SIGKILL once the first batch is committed, i.e. between a commit and the removal of
/// its messages; then a restart must finish the job with every bounce counted once.
async fn killed_mid_scan(protocol: &str) {
    const N: usize = 400;
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    soft_bounces(&db, &dovecot, N).await;
    dovecot.deliver(USER, &human_reply());
    dovecot.deliver(USER, &vacation());
    let s = setup(&db, &dovecot, protocol, "none", PASSWORD);

    let mut child = once(&s)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if db.total_bounces().await > 0 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the worker ended ({status}) before anything was committed");
        }
        assert!(Instant::now() < deadline, "nothing committed within 60s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the scan finished before the kill: nothing was tested"
    );
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();

    let committed = db.total_bounces().await as usize;
    let left = dovecot.messages(USER).len();
    assert!(committed < N, "killed mid-scan: {committed} committed");
    assert!(left > 2, "messages of uncommitted bounces are still there");
    if protocol == "pop3" {
        assert_eq!(left, N + 2, "POP3 removes nothing before QUIT");
    }

    let out = once(&s).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    each_counted_once(&db, N).await;
    assert_eq!(
        dovecot.messages(USER).len(),
        2,
        "only the reply and the vacation remain"
    );
    let claimed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bounceops.processed_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(claimed, N as i64);
}

#[tokio::test]
async fn pop3_worker_killed_mid_scan_loses_nothing_and_counts_nothing_twice() {
    killed_mid_scan("pop3").await;
}

#[tokio::test]
async fn imap_worker_killed_mid_scan_loses_nothing_and_counts_nothing_twice() {
    killed_mid_scan("imap").await;
}

#[tokio::test]
async fn once_with_bad_credentials_exits_non_zero_with_a_clear_error() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    dovecot.deliver(USER, &human_reply());
    let s = setup(&db, &dovecot, "imap", "none", "wrong-password");
    let out = once(&s).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("login refused"), "{}", text(&out));
    assert!(
        stderr.contains("bounces"),
        "the mailbox is named: {}",
        text(&out)
    );
    assert!(!stderr.contains("wrong-password"), "{}", text(&out));
}

#[tokio::test]
async fn verified_tls_against_a_trusted_certificate() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    db.subscriber("k1@example.net").await;
    dovecot.deliver(
        USER,
        &listmonk_bounce("k1@example.net", "5.1.1", None, None),
    );
    let s = setup(&db, &dovecot, "pop3", "tls", PASSWORD);
    // tlsSkipVerify is false: the server's certificate must chain to a trusted root,
    // here the test's own, trusted through SSL_CERT_FILE as OpenSSL users would.
    let out = once(&s)
        .env("SSL_CERT_FILE", &dovecot.cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(db.total_bounces().await, 1);
    assert!(dovecot.messages(USER).is_empty());
}

#[tokio::test]
async fn role_all_serves_webhooks_and_scans_with_metrics() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    let (id, _) = db.subscriber("k1@example.net").await;
    dovecot.deliver(
        USER,
        &listmonk_bounce("k1@example.net", "5.1.1", None, None),
    );
    let s = setup(&db, &dovecot, "imap", "starttls", PASSWORD);
    // tlsSkipVerify through the YAML, as users write it.
    let yaml = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        yaml.replace(
            "      tls: starttls\n",
            "      tls: starttls\n      tlsSkipVerify: true\n",
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = worker()
        .args(["run", "--role", "all", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&s.config)
        .arg("--secrets-dir")
        .arg(&s.secrets)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first scan is over when its duration is observed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        assert!(child.try_wait().unwrap().is_none(), "the worker exited");
        assert!(Instant::now() < deadline, "no scan completed");
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            let text = r.text().await.unwrap_or_default();
            if text.contains("bounceops_mailbox_scan_duration_seconds_count{mailbox=\"bounces\"}") {
                break text;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(db.bounce_count(id).await, 1);
    for name in [
        "bounceops_mailbox_scans_total{mailbox=\"bounces\",result=\"ok\"}",
        "bounceops_mailbox_messages_total{kind=\"bounce\",mailbox=\"bounces\"} 1",
        "bounceops_mailbox_scan_duration_seconds_count{mailbox=\"bounces\"}",
        "bounceops_mailbox_auth_failures_total{mailbox=\"bounces\"} 0",
        "bounceops_events_total{outcome=\"recorded\",source=\"mailbox:bounces\",type=\"hard\"} 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no clean stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn once_is_refused_for_the_webhook_role_and_mailbox_role_needs_mailboxes() {
    let dir = tempfile::tempdir().unwrap();
    let (config, secrets) = write_config(dir.path(), "postgres://postgres@127.0.0.1:1/x", "");
    for (args, expected) in [
        (&["--role", "webhook", "--once"][..], "--once"),
        (&["--role", "mailbox"][..], "no spec.mailboxes"),
    ] {
        let out = worker()
            .args(["run", "--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--secrets-dir")
            .arg(&secrets)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn parse_prints_json_per_file_and_fails_on_a_missing_file() {
    let dsn = fixture_path("sendmail-dsn-user-unknown.eml");
    let dir = tempfile::tempdir().unwrap();
    let reply = dir.path().join("reply.eml");
    std::fs::write(&reply, human_reply()).unwrap();
    let missing = dir.path().join("missing.eml");
    let out = worker()
        .args(["parse", "--json"])
        .arg(&dsn)
        .arg(&missing)
        .arg(fixture_path("arf-abuse-complaint.eml"))
        .arg(&reply)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a missing file fails the run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.eml"), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", text(&out));
    let bounce = &lines[0];
    assert!(
        bounce["file"]
            .as_str()
            .unwrap()
            .ends_with("sendmail-dsn-user-unknown.eml")
    );
    assert_eq!(bounce["kind"], "bounce");
    assert_eq!(
        bounce["recipients"],
        serde_json::json!([{
            "email": "amelie.roux@example.net",
            "status": "5.1.1",
            "action": "failed",
            "diagnostic": "550 5.1.1 <amelie.roux@example.net>... User unknown",
            "type": "hard",
            "reason": "userunknown",
        }])
    );
    assert_eq!(
        (&bounce["subscriber_uuid"], &bounce["campaign_uuid"]),
        (
            &serde_json::json!("3f2b8c1e-7d4a-4c9b-a1e2-5b6c7d8e9f01"),
            &serde_json::json!("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
        )
    );
    assert_eq!(lines[1]["kind"], "complaint");
    assert_eq!(lines[1]["recipients"][0]["type"], "complaint");
    assert_eq!(lines[1]["recipients"][0]["reason"], "feedback");
    assert_eq!(lines[2]["kind"], "unknown");
    assert_eq!(lines[2]["recipients"], serde_json::json!([]));

    let human = worker().arg("parse").arg(&dsn).output().unwrap();
    assert!(human.status.success());
    let shown = String::from_utf8_lossy(&human.stdout);
    assert!(
        shown.contains("bounce") && shown.contains("hard") && shown.contains("5.1.1"),
        "{shown}"
    );
}
