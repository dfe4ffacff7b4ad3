//! The `bounce-worker` binary as a user runs it: configuration errors, migrate, and a clean
//! stop on SIGTERM.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{TestDb, write_config};

fn worker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bounce-worker"));
    c.env_remove("DATABASE_URL").env("NO_COLOR", "1");
    c
}

/// `bounce-worker run` on a free loopback port, its log piped.
fn spawn_run(config: &Path, secrets: &Path, extra: &[&str]) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = worker()
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(config)
        .arg("--secrets-dir")
        .arg(secrets)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, port)
}

/// Whether `url` answers (200 when `ok` is asked for) within 10 s; polled, not a guessed sleep.
async fn answers(url: &str, ok: bool) -> bool {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = client.get(url).send().await
            && (!ok || r.status() == 200)
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}

/// SIGTERM, as the kubelet stops a pod; then its exit and everything it logged.
async fn terminate(child: Child) -> std::process::Output {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

#[test]
fn config_error_names_file_and_field_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (config, secrets) = write_config(
        dir.path(),
        "postgres://postgres@127.0.0.1:5432/x",
        "  rules: {hard: {count: 0, action: blocklist}}\n",
    );
    let out = worker()
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--secrets-dir")
        .arg(&secrets)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bounceconfig.yaml"), "{err}");
    assert!(err.contains("spec.rules.hard.count"), "{err}");

    // A valid spec whose Secret cannot be read: named by the field that refers to it.
    let valid = tempfile::tempdir().unwrap();
    let (config, _) = write_config(valid.path(), "postgres://postgres@127.0.0.1:5432/x", "");
    let out = worker()
        .args(["migrate", "--config"])
        .arg(&config)
        .args(["--secrets-dir", "/nonexistent-secrets"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.database.urlSecretRef"), "{err}");

    let out = worker()
        .args(["run", "--config", "/nonexistent.yaml", "--secrets-dir", "."])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[tokio::test]
async fn migrate_is_idempotent_and_standalone_creates_listmonk_tables() {
    let db = TestDb::new().await; // already migrated once, standalone
    let dir = tempfile::tempdir().unwrap();
    let (config, secrets) = write_config(dir.path(), &db.url, "");
    for _ in 0..2 {
        let out = worker()
            .args(["migrate", "--standalone", "--config"])
            .arg(&config)
            .arg("--secrets-dir")
            .arg(&secrets)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let versions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bounceops._sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(versions >= 1);
    // Nothing of ours in listmonk's public schema.
    let ours: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE '%sqlx%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(ours, 0);
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, secrets) = write_config(dir.path(), &db.url, "");
    let (child, port) = spawn_run(&config, &secrets, &[]);
    assert!(
        answers(&format!("http://127.0.0.1:{port}/readyz"), true).await,
        "worker did not become ready"
    );
    let out = terminate(child).await;
    assert!(out.status.success(), "exit status {:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(log.contains("in-flight requests are done"), "{log}");
}

/// `kubectl logs` is no terminal: no colour codes; and a failure is said once, each cause
/// once (sqlx repeats its database error's text in its own).
#[test]
fn a_failure_is_said_once_in_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("{}_missing_{}", "bounceops", uuid::Uuid::new_v4().simple());
    let mut u = url::Url::parse(&common::admin_url()).unwrap();
    u.set_path(&format!("/{missing}"));
    let (config, secrets) = write_config(dir.path(), u.as_str(), "");
    let out = worker()
        .env_remove("NO_COLOR")
        .args(["migrate", "--config"])
        .arg(&config)
        .arg("--secrets-dir")
        .arg(&secrets)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\u{1b}'), "colour codes in a log: {err:?}");
    assert_eq!(
        err.matches(&format!("database \"{missing}\" does not exist"))
            .count(),
        1,
        "{err}"
    );
    assert!(err.starts_with("bounce-worker: "), "{err}");
}

/// While the database is down every request is answered 503 and every sender retries: the
/// log says so once per 10 s from each place (`held_back` then counts the rest; the
/// telemetry module's tests show the count), not once per request.
#[tokio::test]
async fn a_database_outage_is_logged_once_per_interval_not_once_per_request() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: every connection is refused.
    let (config, secrets) = write_config(dir.path(), "postgres://postgres@127.0.0.1:1/x", "");
    let (child, port) = spawn_run(&config, &secrets, &["--log-format", "json"]);
    let started = std::time::Instant::now();
    let client = reqwest::Client::new();
    assert!(
        answers(&format!("http://127.0.0.1:{port}/healthz"), false).await,
        "the worker never listened"
    );

    // Two waves of 40 senders, each answered once the pool gives up on the database.
    let url = format!("http://127.0.0.1:{port}/webhooks/bounce");
    let auth = format!("token {}:{}", common::USER, common::TOKEN);
    let mut statuses = Vec::new();
    for wave in 0..2 {
        let requests = (0..40).map(|i| {
            let bounce = serde_json::json!({
                "email": format!("r{wave}-{i}@example.com"),
                "type": "hard",
                "source": "outage",
            });
            client
                .post(&url)
                .header("authorization", &auth)
                .json(&bounce)
                .send()
        });
        for r in futures::future::join_all(requests).await {
            statuses.push(r.unwrap().status().as_u16());
        }
    }
    assert_eq!(statuses, vec![503; 80]);
    let elapsed = started.elapsed();

    let out = terminate(child).await;
    let log = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // A gate lets through its first line, then one per 10 s.
    let allowed = 1 + elapsed.as_secs() / 10;
    for message in [
        "response failed",
        "database unavailable",
        "recording bounces failed",
    ] {
        let said: Vec<_> = lines.iter().filter(|l| l["message"] == message).collect();
        assert!(
            !said.is_empty() && said.len() as u64 <= allowed,
            "{message:?} said {} times in {elapsed:?} (at most {allowed}):\n{log}",
            said.len()
        );
        assert!(said.iter().all(|l| l["held_back"].is_u64()), "{log}");
    }
}
