//! Scrapes a real worker: the worker's server (the code `bounce-worker run` runs) on
//! loopback against a throwaway Postgres database, fed a few bounces through the generic
//! webhook and a provider webhook, and one mailbox it cannot reach; then every metric the
//! dashboard and the alerts query must be in its `/metrics`, except the few that need
//! what this test cannot make happen (listed, and checked in the source instead).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use bounce_worker::config::Settings;
use bounce_worker::mailbox::MailboxConfig;
use bounce_worker::secrets::SecretsDir;
use bounce_worker::server;
use bounce_worker::store::migrate;
use bounceops_tests::helm::{self, FULL_VALUES};
use bounceops_tests::metrics::{family, names_in_code, names_in_promql};
use bounceops_tests::read;
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Queried metrics a short-lived worker on loopback cannot produce, with why. They are
/// still checked against the source by `metric_names.rs`.
const NOT_EXERCISED: &[(&str, &str)] = &[
    (
        "bounceops_db_errors_total",
        "needs the database to fail mid-request",
    ),
    (
        "bounceops_mailbox_last_success_timestamp_seconds",
        "needs a mail server to scan successfully",
    ),
];

fn admin_url() -> String {
    std::env::var("BOUNCEOPS_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "BOUNCEOPS_TEST_DATABASE_URL is not set: this test runs a worker against a real \
             Postgres. Run it through `bash scripts/test.sh`, which finds or starts one"
        )
    })
}

/// The same server and credentials, another database.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

/// One HTTP/1.1 request on loopback; (status, body).
async fn http(
    port: u16,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Metric families (names without `_bucket` / `_sum` / `_count`) in a text exposition.
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every metric family the dashboard and the alert rules query.
fn queried() -> BTreeSet<String> {
    let code = names_in_code();
    let mut exprs = Vec::new();
    let dash: Json =
        serde_json::from_str(&read("charts/bounceops/dashboards/bounceops.json")).unwrap();
    fn walk(v: &Json, out: &mut Vec<String>) {
        match v {
            Json::Object(m) => m.iter().for_each(|(k, x)| match (k.as_str(), x) {
                ("expr", Json::String(s)) => out.push(s.clone()),
                _ => walk(x, out),
            }),
            Json::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&dash, &mut exprs);
    let rules = helm::template("bounceops-system", &[FULL_VALUES], &[]);
    for g in rules.one("PrometheusRule")["spec"]["groups"]
        .as_sequence()
        .unwrap()
    {
        for r in g["rules"].as_sequence().unwrap() {
            exprs.push(r["expr"].as_str().unwrap().to_owned());
        }
    }
    exprs
        .iter()
        .flat_map(|e| names_in_promql(e))
        .map(|n| family(&n, &code))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_exports_what_the_dashboard_and_alerts_query() {
    // A throwaway database with listmonk-shaped tables and one subscriber.
    let admin_url = admin_url();
    let db = format!("bounceops_scrape_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach Postgres at BOUNCEOPS_TEST_DATABASE_URL: {e}"));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = with_database(&admin_url, &db);
    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to the scrape database");
    migrate::run(&pool, true)
        .await
        .expect("migrate --standalone");
    sqlx::query("INSERT INTO subscribers (uuid, email, name) VALUES (gen_random_uuid(), 'known@example.com', 'Known')")
        .execute(&pool)
        .await
        .expect("seed a subscriber");
    pool.close().await;

    // Config and secrets, as the operator lays them out. The mailbox's port is closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("bounceops-scrape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let secrets = dir.join("secrets");
    write(&secrets.join("db/url"), &url);
    write(&secrets.join("api/credentials"), "scrape:token\n");
    write(&secrets.join("postmark/credentials"), "pm:secret\n");
    write(&secrets.join("mailbox/username"), "user");
    write(&secrets.join("mailbox/password"), "password");
    let config = dir.join("config.yaml");
    write(
        &config,
        &format!(
            "apiVersion: bounceops.io/v1alpha1
kind: BounceConfig
metadata: {{name: scrape, namespace: test}}
spec:
  database: {{urlSecretRef: {{name: db, key: url}}, schema: standalone}}
  api: {{credentialsSecretRef: {{name: api, key: credentials}}}}
  providers:
    generic: {{enabled: true}}
    postmark: {{enabled: true, credentialsSecretRef: {{name: postmark, key: credentials}}}}
  mailboxes:
    - name: unreachable
      protocol: pop3
      host: 127.0.0.1
      port: {closed}
      tls: none
      usernameSecretRef: {{name: mailbox, key: username}}
      passwordSecretRef: {{name: mailbox, key: password}}
      scanInterval: 1h
"
        ),
    );
    let sd = SecretsDir::new(&secrets);
    let settings = Settings::load(&config, &sd, None).expect("the worker accepts the config");
    let mailboxes = MailboxConfig::resolve_all(&settings.spec.mailboxes, &sd).expect("mailboxes");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(async move {
        server::serve_with_mailboxes(
            &settings,
            listener,
            async {
                let _ = stop_rx.await;
            },
            mailboxes,
        )
        .await
    });

    // Traffic: a known and an unknown subscriber, a provider event twice (a retry), a
    // provider request without credentials.
    let token = Some("token scrape:token");
    for email in ["known@example.com", "nobody@example.com"] {
        let body = format!(r#"{{"email":"{email}","type":"hard","source":"scrape"}}"#);
        let (status, text) = http(port, "POST", "/webhooks/bounce", token, &body).await;
        assert_eq!(status, 200, "{text}");
    }
    let pm = r#"{"RecordType":"Bounce","Type":"HardBounce","ID":4242,"Email":"known@example.com","BouncedAt":"2026-01-01T00:00:00Z"}"#;
    let pm_auth = Some("Basic cG06c2VjcmV0"); // pm:secret
    for _ in 0..2 {
        let (status, text) = http(port, "POST", "/webhooks/service/postmark", pm_auth, pm).await;
        assert_eq!(status, 200, "{text}");
    }
    let (status, _) = http(port, "POST", "/webhooks/service/postmark", None, pm).await;
    assert_eq!(status, 401);

    // Wait for the first (failing) scan of the mailbox.
    let mut exposition = String::new();
    for _ in 0..100 {
        let (status, body) = http(port, "GET", "/metrics", None, "").await;
        assert_eq!(status, 200);
        exposition = body;
        if exposition.contains("bounceops_mailbox_scan_duration_seconds_count") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&admin)
        .await;
    let _ = std::fs::remove_dir_all(&dir);

    let scraped = families(&exposition);
    let skipped: BTreeSet<&str> = NOT_EXERCISED.iter().map(|(n, _)| *n).collect();
    let operator = |n: &str| n.starts_with("bounceops_operator_");
    // The bounce MX's metrics come from `--role smtp` with spec.smtp, which this worker
    // does not run; the SMTP suites scrape that role.
    let smtp = |n: &str| n.starts_with("bounceops_smtp_");
    // Likewise the sending relay's, from `--role relay`: bench/relay.sh reads them from
    // that role's /metrics, and the relay's tests its counters.
    let relay = |n: &str| n.starts_with("bounceops_relay_");
    let missing: Vec<String> = queried()
        .into_iter()
        .filter(|n| {
            !operator(n)
                && !smtp(n)
                && !relay(n)
                && !skipped.contains(n.as_str())
                && !scraped.contains(n)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "queried by the dashboard or alerts but not in the worker's /metrics: {missing:?}\n{exposition}"
    );
    // The skipped ones really were not produced (else move them out of the list).
    for (n, why) in NOT_EXERCISED {
        assert!(
            !scraped.contains(*n),
            "{n} was scraped after all; remove it from NOT_EXERCISED ({why})"
        );
    }
}
