//! The shared table of invalid specs (tests/src/invalid_specs.rs) against the real
//! `bounce-worker` binary, started as the operator's pods start it (the whole object in a
//! file, every referenced Secret present): each row makes it exit non-zero at start-up,
//! naming the config file and the row's field. The table's valid spec starts and serves,
//! so the refusals are the rows' doing.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bounceops_tests::invalid_specs;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

fn worker(config: &Path, secrets: &Path, listen: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bounce-worker"))
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .args(["run", "--role", "all", "--listen", listen, "--config"])
        .arg(config)
        .arg("--secrets-dir")
        .arg(secrets)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bounce-worker")
}

/// Writes the BounceConfig object of `spec` as `<dir>/<name>.yaml`, and a usable value
/// for every Secret it references under `<dir>/secrets`.
fn write_config(dir: &Path, name: &str, spec: &Value) -> (PathBuf, PathBuf) {
    let object = json!({"apiVersion": "bounceops.io/v1alpha1", "kind": "BounceConfig",
                        "metadata": {"name": "newsletter", "namespace": "mail"}, "spec": spec});
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(&config, serde_yaml::to_string(&object).unwrap()).unwrap();
    let secrets = dir.join("secrets");
    write_secrets(spec, &secrets);
    (config, secrets)
}

fn write_secrets(value: &Value, dir: &Path) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k.ends_with("SecretRef") {
                    let (name, key) = (v["name"].as_str().unwrap(), v["key"].as_str().unwrap());
                    if name.is_empty() || key.is_empty() {
                        continue;
                    }
                    std::fs::create_dir_all(dir.join(name)).unwrap();
                    std::fs::write(dir.join(name).join(key), secret_value(name, key)).unwrap();
                } else {
                    write_secrets(v, dir);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| write_secrets(v, dir)),
        _ => {}
    }
}

/// A value the worker accepts for the Secret `name`/`key`.
fn secret_value(name: &str, key: &str) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match (name, key) {
        (_, "url") => "postgres://postgres@127.0.0.1:5432/unused".into(),
        ("sendgrid", _) => {
            let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
            b64(key.verifying_key().to_public_key_der().unwrap().as_bytes())
        }
        ("resend", _) => format!("whsec_{}", b64(b"0123456789abcdef")),
        ("mailbox", "username") => "bounces".into(),
        // A `user:password` line: credentials for those that want them, a token for others.
        _ => "user:password".into(),
    }
}

/// Waits for the process to exit; `None` (after killing it) when it is still running at
/// the deadline.
fn exit_of(mut child: Child) -> Option<(bool, String)> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status.success(), err));
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_invalid_spec_stops_the_worker_at_start_naming_file_and_field() {
    let table = invalid_specs::table();
    assert!(table.len() >= 25, "the table has {} rows", table.len());
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for (i, row) in table.iter().enumerate() {
        let (config, secrets) = write_config(dir.path(), &format!("row{i}"), &row.spec);
        let expected = format!("{}: ", row.field);
        match exit_of(worker(&config, &secrets, "127.0.0.1:0")) {
            None => wrong.push(format!("{}: still running after {DEADLINE:?}", row.case)),
            Some((true, _)) => wrong.push(format!("{}: exited 0", row.case)),
            Some((false, err)) => {
                let file = format!("{}: ", config.display());
                if !err.contains(&file) || !err.contains(&expected) {
                    wrong.push(format!(
                        "{}: expected {file:?} and {expected:?} in: {err}",
                        row.case
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_tables_valid_spec_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (config, secrets) = write_config(dir.path(), "valid", &invalid_specs::valid_spec());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = worker(&config, &secrets, &format!("127.0.0.1:{port}"));
    let started = Instant::now();
    let serving = loop {
        if healthz(port) {
            break true;
        }
        if child.try_wait().unwrap().is_some() || started.elapsed() > DEADLINE {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(
        serving,
        "the valid spec did not start: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn healthz(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}
