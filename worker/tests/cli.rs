//! The `bounce-worker` binary as a user runs it: configuration errors, migrate, and a clean
//! stop on SIGTERM.

mod common;

use std::process::{Command, Stdio};

use common::{TestDb, write_config};

fn worker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bounce-worker"));
    c.env_remove("DATABASE_URL").env("NO_COLOR", "1");
    c
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = worker()
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config)
        .arg("--secrets-dir")
        .arg(&secrets)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready when /readyz answers 200; bounded, polling rather than sleeping a guess.
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(ready, "worker did not become ready");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
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
    let out = Command::new(env!("CARGO_BIN_EXE_bounce-worker"))
        .env_remove("DATABASE_URL")
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
