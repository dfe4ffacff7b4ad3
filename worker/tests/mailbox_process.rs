//! The `bounce-worker` binary scanning mailboxes as a user runs it: `run --once`, `run
//! --role all` with its metrics, a worker killed mid-scan (a real SIGKILL) and restarted,
//! verified TLS, and `parse`.

mod common;
mod mailbox_support;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, metric_value, write_config};
use mailbox_support::*;

fn worker() -> Command {
    with_test_env(Command::new(env!("CARGO_BIN_EXE_bounce-worker")))
}

/// The worker with its address space limited to `bytes` (`prlimit --as`): an allocation
/// past it fails, and the worker aborts.
fn limited(bytes: u64) -> Command {
    let mut c = Command::new("prlimit");
    c.arg(format!("--as={bytes}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_bounce-worker"))
        // Each runtime thread reserves address space (its stack, allocator pages): fixed,
        // so the limit means the same on a machine of any size.
        .env("TOKIO_WORKER_THREADS", "2");
    with_test_env(c)
}

fn with_test_env(mut c: Command) -> Command {
    c.env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    c
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    secrets: PathBuf,
}

fn setup(db: &TestDb, dovecot: &Dovecot, protocol: &str, tls: &str, password: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let yaml = dovecot.mailbox_yaml(&secrets, "bounces", protocol, tls, password);
    let (config, secrets) = write_config(dir.path(), &db.url, &yaml);
    Setup {
        dir,
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

/// Each role reads only the Secrets it uses, so the operator can mount no others: the
/// scanner (and `migrate`) start and work without the API credentials or a provider's key
/// on disk; the webhook role still requires them.
#[tokio::test]
async fn each_role_reads_only_its_own_secrets() {
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    soft_bounces(&db, &dovecot, 1).await;
    let s = setup(&db, &dovecot, "pop3", "none", PASSWORD);
    // An enabled provider whose key file does not exist: only the webhook role reads it.
    let config = std::fs::read_to_string(&s.config).unwrap()
        + "  providers:\n    sendgrid: {enabled: true, publicKeySecretRef: {name: sendgrid, key: public-key}}\n";
    std::fs::write(&s.config, config).unwrap();
    std::fs::remove_dir_all(s.secrets.join("api")).unwrap();

    let mut migrate = worker();
    migrate
        .args(["migrate", "--config"])
        .arg(&s.config)
        .arg("--secrets-dir")
        .arg(&s.secrets);
    let out = migrate.output().unwrap();
    assert!(
        out.status.success(),
        "migrate with the database secret only: {}",
        text(&out)
    );
    let out = once(&s).output().unwrap();
    assert!(
        out.status.success(),
        "the scanner without API or provider secrets: {}",
        text(&out)
    );
    assert!(
        dovecot.messages(USER).is_empty(),
        "the bounce was scanned and removed"
    );
    let recorded: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bounces b JOIN subscribers s ON s.id = b.subscriber_id WHERE s.email = $1",
    )
    .bind("k1@example.net")
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, 1);

    // The webhook role serves the API: without its credentials it does not start.
    let out = {
        let mut c = worker();
        c.args([
            "run",
            "--role",
            "webhook",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&s.config)
        .arg("--secrets-dir")
        .arg(&s.secrets);
        c.output().unwrap()
    };
    assert!(!out.status.success());
    assert!(
        text(&out).contains("spec.api.credentialsSecretRef"),
        "the webhook role reads the API credentials: {}",
        text(&out)
    );
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
    let (mut child, port) = serve(worker(), "all", &s, Stdio::null());
    let metrics = scrape_after_scans(&mut child, port, 1.0).await;
    assert_eq!(db.bounce_count(id).await, 1);
    for name in [
        "bounceops_mailbox_scans_total{mailbox=\"bounces\",result=\"ok\"}",
        "bounceops_mailbox_messages_total{kind=\"bounce\",mailbox=\"bounces\"} 1",
        "bounceops_mailbox_scan_duration_seconds_count{mailbox=\"bounces\"}",
        "bounceops_mailbox_auth_failures_total{mailbox=\"bounces\"} 0",
        "bounceops_events_total{outcome=\"recorded\",reason=\"userunknown\",source=\"mailbox:bounces\",type=\"hard\"} 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let status = terminate(child).await;
    assert!(status.success(), "{status:?}");
}

/// `run --role <role>` on a free loopback port; `stderr` takes its log.
fn serve(mut worker: Command, role: &str, s: &Setup, stderr: Stdio) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = worker
        .args(["run", "--role", role, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&s.config)
        .arg("--secrets-dir")
        .arg(&s.secrets)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    (child, port)
}

/// The worker's `/metrics` once `scans` scans of the mailbox are over (their durations
/// observed); fails if the worker exits first.
async fn scrape_after_scans(child: &mut Child, port: u16, scans: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the worker exited: {status}");
        }
        assert!(Instant::now() < deadline, "{scans} scans did not complete");
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            let text = r.text().await.unwrap_or_default();
            let series = "bounceops_mailbox_scan_duration_seconds_count{mailbox=\"bounces\"}";
            if metric_value(&text, series) >= scans {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM, and the exit status once the worker has stopped.
async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "no clean stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 256 MiB of address space: twice what the worker needs to scan this mailbox
/// (`bench/mailbox_e2e/run.sh` passes under 128 MiB), and not enough for the whole
/// download of [`HUGE`], which took it to 440 MiB resident (BENCHMARKS.md).
const ADDRESS_SPACE: u64 = 256 << 20;
/// Eight times the default `maxMessageBytes`.
const HUGE: usize = 80 << 20;

/// A message far over `maxMessageBytes` neither kills the worker nor stops the others:
/// under a memory limit that its download would break, the worker records every other
/// bounce, leaves it in the mailbox, counts and logs it once (over several scans and
/// processes), and exits 0.
async fn oversized_under_a_memory_limit(protocol: &str) {
    const N: usize = 60; // more than one batch
    let dovecot = Dovecot::start();
    let db = TestDb::new().await;
    soft_bounces(&db, &dovecot, N).await;
    dovecot.deliver_large(USER, HUGE);
    let s = setup(&db, &dovecot, protocol, "none", PASSWORD);
    let log = s.dir.path().join("worker.log");
    let log_count = || {
        let text = std::fs::read_to_string(&log).unwrap();
        (text.matches("larger than maxMessageBytes").count(), text)
    };

    let stderr = std::fs::File::create(&log).unwrap();
    let (mut child, port) = serve(limited(ADDRESS_SPACE), "mailbox", &s, stderr.into());
    // Two scans (scanInterval: 1s): the second must skip the message.
    let metrics = scrape_after_scans(&mut child, port, 2.0).await;
    let status = terminate(child).await;
    assert!(status.success(), "{status:?}\n{}", log_count().1);
    let oversized = "bounceops_mailbox_messages_total{kind=\"oversized\",mailbox=\"bounces\"}";
    assert_eq!(metric_value(&metrics, oversized), 1.0, "{metrics}");
    each_counted_once(&db, N).await;
    let left = dovecot.message_sizes(USER, None);
    assert!(
        left.len() == 1 && left[0] as usize >= HUGE,
        "the huge message stays: {left:?}"
    );
    let (logged, log_text) = log_count();
    assert_eq!(logged, 1, "logged once:\n{log_text}");

    // A new process: the message is remembered, not logged again.
    let out = limited(ADDRESS_SPACE)
        .args(["run", "--role", "mailbox", "--once", "--config"])
        .arg(&s.config)
        .arg("--secrets-dir")
        .arg(&s.secrets)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("larger than maxMessageBytes"),
        "{}",
        text(&out)
    );
    assert_eq!(dovecot.message_sizes(USER, None), left);
    each_counted_once(&db, N).await;
}

#[tokio::test]
async fn pop3_message_far_over_the_limit_under_a_memory_limit() {
    oversized_under_a_memory_limit("pop3").await;
}

#[tokio::test]
async fn imap_message_far_over_the_limit_under_a_memory_limit() {
    oversized_under_a_memory_limit("imap").await;
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
            "remote_mta": "mailstore.example.net",
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

/// Messages built to exhaust the classifier: a 10 MB multipart of 1.4 million empty parts
/// (about 500 MB to classify before the classifier bounded what it reads), messages embedded in
/// each other 100,000 deep (a stack overflow: an abort of the whole worker) and 60,000 deep
/// sent base64-encoded (an overflow inside mail-parser). Each is classified, under a
/// 256 MiB address space (the mailbox pod's memory limit), as no bounce.
#[test]
fn parse_survives_messages_built_to_exhaust_the_classifier() {
    let head = "From: MAILER-DAEMON@mx.example.org\nTo: news@sender.example\nSubject: Undelivered Mail\nMIME-Version: 1.0\n";
    let nested = |n: usize| {
        format!(
            "To: r@example.org\n{}x\n",
            "Content-Type: message/rfc822\n\n".repeat(n)
        )
    };
    let encoded: String = {
        use std::io::Write;
        let mut child = Command::new("base64")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("coreutils base64");
        let input = nested(60_000);
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let messages = [
        format!(
            "{head}Content-Type: multipart/mixed; boundary=\"B\"\n\n{}--B--\n",
            "--B\n\nx\n".repeat(1_400_000)
        ),
        format!("{head}{}", nested(100_000)),
        format!(
            "{head}Content-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: message/rfc822\n\
Content-Transfer-Encoding: base64\n\n{encoded}--B--\n"
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, message) in messages.iter().enumerate() {
        let path = dir.path().join(format!("hostile-{i}.eml"));
        std::fs::write(&path, message).unwrap();
        let out = limited(256 << 20)
            .args(["parse", "--json"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "message {i}: {}", text(&out));
        let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(found["recipients"], serde_json::json!([]), "message {i}");
    }
}
