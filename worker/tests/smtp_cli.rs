//! The bounce MX as a user runs it: `bounce-worker verp encode|decode` with key files, and
//! `run --role smtp` reading only the Secrets it needs.

mod common;
mod smtp_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, write_config};
use smtp_support::*;

fn worker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bounce-worker"));
    c.env_remove("DATABASE_URL").env("NO_COLOR", "1");
    c
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = worker().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SUB: &str = "6c1a6d1e-2b8e-4c3c-9a53-6a2a4f0f9e11";
const CAMP: &str = "0f7f4c39-2d0c-4d5e-8a43-2c0b1f2e3d4c";

#[test]
fn verp_encode_and_decode_with_key_files_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let old = dir.path().join("old");
    let short = dir.path().join("short");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    std::fs::write(&old, "an-older-key-that-is-long-enough-to-sign").unwrap();
    std::fs::write(&short, "too-short").unwrap();
    let (k, o) = (key.to_str().unwrap(), old.to_str().unwrap());

    let (ok, address, err) = run(&[
        "verp",
        "encode",
        "--key-file",
        k,
        "--subscriber",
        SUB,
        "--campaign",
        CAMP,
        "--prefix",
        "bnc",
        "--domain",
        DOMAIN,
    ]);
    assert!(ok, "{err}");
    let address = address.trim();
    let local = address.split('@').next().unwrap();
    assert!(local.starts_with("bnc+"), "{address}");
    assert_eq!(local.len(), 64, "{address}");
    // The server's own keys open what the command made.
    let keys = bounce_worker::smtp::verp::Keys::new(KEY.as_bytes(), None).unwrap();
    let v = keys.open_address("bnc", address).unwrap();
    assert_eq!(v.subscriber.to_string(), SUB);
    assert_eq!(v.campaign.unwrap().to_string(), CAMP);

    let (ok, out, err) = run(&["verp", "decode", "--key-file", k, &address.to_uppercase()]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("subscriber {SUB}\ncampaign {CAMP}\n"));

    // Signed with the old key: refused, unless the old key is given as the previous one.
    let (ok, old_address, _) = run(&[
        "verp",
        "encode",
        "--key-file",
        o,
        "--subscriber",
        SUB,
        "--domain",
        DOMAIN,
    ]);
    assert!(ok);
    let old_address = old_address.trim();
    let (ok, _, err) = run(&["verp", "decode", "--key-file", k, old_address]);
    assert!(!ok, "a token of another key must not verify");
    assert!(err.contains("does not verify"), "{err}");
    let (ok, out, err) = run(&[
        "verp",
        "decode",
        "--key-file",
        k,
        "--previous-key-file",
        o,
        old_address,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("subscriber {SUB}\ncampaign -\n"));

    let (ok, _, err) = run(&[
        "verp",
        "encode",
        "--key-file",
        short.to_str().unwrap(),
        "--subscriber",
        SUB,
        "--domain",
        DOMAIN,
    ]);
    assert!(!ok);
    assert!(err.contains("at least 32"), "{err}");
    let (ok, _, err) = run(&[
        "verp",
        "encode",
        "--key-file",
        k,
        "--subscriber",
        SUB,
        "--prefix",
        "four",
        "--domain",
        DOMAIN,
    ]);
    assert!(!ok);
    assert!(err.contains("--prefix"), "{err}");
}

#[tokio::test]
async fn the_smtp_role_reads_no_api_credentials_and_serves_smtp() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, secrets) = write_config(dir.path(), &db.url, &smtp_spec(""));
    std::fs::create_dir_all(secrets.join("verp")).unwrap();
    std::fs::write(secrets.join("verp/key"), KEY).unwrap();
    // Its pods mount no API credentials: without them the webhook role refuses to start,
    // the SMTP role does not notice.
    std::fs::remove_dir_all(secrets.join("api")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (c, s) = (config.to_str().unwrap(), secrets.to_str().unwrap());
    let (ok, _, err) = run(&[
        "run",
        "--role",
        "webhook",
        "--listen",
        "127.0.0.1:0",
        "--config",
        c,
        "--secrets-dir",
        s,
    ]);
    assert!(!ok);
    assert!(err.contains("spec.api.credentialsSecretRef"), "{err}");

    let smtp_listen = format!("127.0.0.1:{port}");
    let mut child = worker()
        .args([
            "run",
            "--role",
            "smtp",
            "--listen",
            "127.0.0.1:0",
            "--smtp-listen",
        ])
        .arg(&smtp_listen)
        .args(["--config", c, "--secrets-dir", s])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let tcp = loop {
        if let Ok(tcp) = tokio::net::TcpStream::connect(&smtp_listen).await {
            break tcp;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the smtp role stopped ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "the smtp role never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut client = Client::new(tcp);
    assert!(client.reply().await.unwrap().starts_with("220 "));
    assert!(client.cmd("EHLO t").await.contains("PIPELINING"));
    child.kill().unwrap();
    child.wait().unwrap();

    // A key too short is refused before anything starts, naming the field.
    std::fs::write(secrets.join("verp/key"), "short").unwrap();
    let (ok, _, err) = run(&[
        "run",
        "--role",
        "smtp",
        "--listen",
        "127.0.0.1:0",
        "--config",
        c,
        "--secrets-dir",
        s,
    ]);
    assert!(!ok);
    assert!(
        err.contains("spec.smtp.verpKeySecretRef") && err.contains("at least 32"),
        "{err}"
    );
    // Without spec.smtp there is nothing to serve.
    let plain = tempfile::tempdir().unwrap();
    let (config, secrets) = write_config(plain.path(), &db.url, "");
    let (ok, _, err) = run(&[
        "run",
        "--role",
        "smtp",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        "--secrets-dir",
        secrets.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("no spec.smtp"), "{err}");
}
