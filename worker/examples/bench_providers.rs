//! Provider webhook benchmark (issue 3; run by `bench/providers/run.sh`; not a test).
//!
//! One run, the scenarios side by side against one in-process worker and a fresh
//! database: the generic webhook (one event per request), the generic webhook carrying an
//! SES-sized payload, SES notifications through SNS (one bounce per notification,
//! SignatureVersion 1 RSA-2048 verified on every request, the certificate cached after the
//! warm-up request), and SendGrid batches of 100 events (one P-256 signature per batch).
//! Every request is prepared (and signed) before the clock starts, so the client's signing
//! costs nothing; each run starts from the same database state. Each round runs every
//! scenario at every concurrency of `--clients` (closed loop), alternating scenarios so
//! that noise on a shared machine hits all of them alike. Prints one line per run (rate,
//! and the CPU per event of this process, of Postgres and left idle), then a JSON summary.
//!
//! The worker runs on its own Tokio runtime (its own threads), the clients on another.

// The allocator the worker binary ships with (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bounce_worker::config::Settings;
use bounce_worker::secrets::SecretsDir;
use bounce_worker::store::migrate;
use p256::pkcs8::EncodePublicKey;
use rsa::RsaPrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

mod bench_support;

use bench_support::Rng;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:bench";
const CERT_PATH: &str = "/SimpleNotificationService-0123456789abcdef.pem";
const DB: &str = "bounceops_bench_providers";
const CAMPAIGN: &str = "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f";

const SCENARIOS: [&str; 4] = ["generic", "generic_like_ses", "ses", "sendgrid"];

#[derive(clap::Parser, Clone)]
struct Args {
    /// A superuser URL of the Postgres to create the benchmark database in.
    #[arg(
        long,
        env = "BOUNCEOPS_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,
    #[arg(long, default_value_t = 100_000)]
    subscribers: u64,
    /// Concurrencies to run every scenario at (closed loop: each client sends its
    /// next request when the last is answered).
    #[arg(long, value_delimiter = ',', default_values_t = [32, 128])]
    clients: Vec<usize>,
    /// Requests per round of the one-event scenarios.
    #[arg(long, default_value_t = 6_000)]
    requests: usize,
    /// SendGrid batches (of 100 events) per round.
    #[arg(long, default_value_t = 150)]
    batches: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// A prepared request: path, headers, body, and how many events it carries.
struct Prepared {
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
    events: usize,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The generic webhook; `like_ses` adds what an SES bounce stores (campaign and a meta of
/// the same size), so that the difference to `ses` is verification, parsing and dedupe.
fn generic(a: &Args, seed: u64, like_ses: bool) -> Vec<Prepared> {
    let mut rng = Rng(seed);
    (0..a.requests)
        .map(|i| {
            let (email, hard) = rng.pick(a.subscribers);
            let t = if hard { "hard" } else { "soft" };
            let body = if like_ses {
                json!({"email": email, "type": t, "source": "bench",
                       "campaign_uuid": CAMPAIGN, "meta": ses_message(seed, i, &email, hard)})
                .to_string()
            } else {
                format!(r#"{{"email":"{email}","type":"{t}","source":"bench"}}"#)
            };
            Prepared {
                path: "/webhooks/bounce",
                headers: vec![
                    ("authorization", "token bench:bench-token".into()),
                    ("content-type", "application/json".into()),
                ],
                body,
                events: 1,
            }
        })
        .collect()
}

fn ses_message(seed: u64, i: usize, email: &str, hard: bool) -> serde_json::Value {
    json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": if hard { "Permanent" } else { "Transient" },
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": email, "status": if hard { "5.1.1" } else { "4.2.2" }}],
            "timestamp": "2026-01-02T03:04:05.000Z"
        },
        "mail": {"messageId": format!("mail-{seed}-{i}"), "headersTruncated": false,
                 "headers": [{"name": "X-Listmonk-Campaign", "value": CAMPAIGN}]}
    })
}

fn ses(a: &Args, seed: u64, key: &RsaPrivateKey, cert_url: &str) -> Vec<Prepared> {
    let mut rng = Rng(seed);
    // Current, since the worker refuses a Timestamp outside its tolerance (replays).
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let unsigned: Vec<serde_json::Value> = (0..a.requests)
        .map(|i| {
            let (email, hard) = rng.pick(a.subscribers);
            let message = ses_message(seed, i, &email, hard);
            json!({
                "Type": "Notification",
                "MessageId": format!("bench-{seed}-{i}"),
                "TopicArn": TOPIC,
                "Message": message.to_string(),
                "Timestamp": now,
                "SignatureVersion": "1",
                "SigningCertURL": cert_url,
            })
        })
        .collect();
    // RSA signing is the slow part of preparing; two threads halve it.
    let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key.clone());
    let half = unsigned.len().div_ceil(2);
    std::thread::scope(|s| {
        let parts: Vec<_> = unsigned
            .chunks(half.max(1))
            .map(|chunk| {
                let signer = signer.clone();
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|env| {
                            let mut text = String::new();
                            for k in ["Message", "MessageId", "Timestamp", "TopicArn", "Type"] {
                                text.push_str(&format!("{k}\n{}\n", env[k].as_str().unwrap()));
                            }
                            let mut env = env.clone();
                            env["Signature"] = json!(b64(&signer.sign(text.as_bytes()).to_vec()));
                            Prepared {
                                path: "/webhooks/service/ses",
                                headers: vec![
                                    ("x-amz-sns-message-type", "Notification".into()),
                                    ("content-type", "text/plain; charset=UTF-8".into()),
                                ],
                                body: env.to_string(),
                                events: 1,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap()).collect()
    })
}

fn sendgrid(a: &Args, seed: u64, key: &p256::ecdsa::SigningKey) -> Vec<Prepared> {
    let mut rng = Rng(seed);
    let ts = chrono::Utc::now().timestamp().to_string();
    (0..a.batches)
        .map(|b| {
            let events: Vec<_> = (0..100)
                .map(|i| {
                    let (email, hard) = rng.pick(a.subscribers);
                    json!({
                        "email": email, "timestamp": 1767323045, "event": "bounce", "type": "bounce",
                        "sg_event_id": format!("sg-{seed}-{b}-{i}"),
                        "bounce_classification": if hard { "Invalid Address" } else { "Technical Failure" },
                        "reason": "550 5.1.1 user unknown", "status": "5.1.1",
                        "X-Listmonk-Campaign": CAMPAIGN
                    })
                })
                .collect();
            let body = serde_json::Value::Array(events).to_string();
            let mut signed = ts.clone().into_bytes();
            signed.extend_from_slice(body.as_bytes());
            let signature: p256::ecdsa::Signature = key.sign(&signed);
            Prepared {
                path: "/webhooks/service/sendgrid",
                headers: vec![
                    (
                        "x-twilio-email-event-webhook-signature",
                        b64(signature.to_der().as_bytes()),
                    ),
                    ("x-twilio-email-event-webhook-timestamp", ts.clone()),
                    ("content-type", "application/json".into()),
                ],
                body,
                events: 100,
            }
        })
        .collect()
}

fn certificate_pem(key: &RsaPrivateKey) -> String {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::EncodePem;
    use x509_cert::der::pem::LineEnding;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    CertificateBuilder::new(
        Profile::Root,
        SerialNumber::from(1u32),
        Validity::from_now(Duration::from_secs(86400)).unwrap(),
        Name::from_str("CN=sns.bench.test").unwrap(),
        spki,
        &signer,
    )
    .unwrap()
    .build::<rsa::pkcs1v15::Signature>()
    .unwrap()
    .to_pem(LineEnding::LF)
    .unwrap()
}

/// Sends every prepared request with `clients` keep-alive clients; returns (events
/// committed, seconds, failed requests).
async fn run(base: &str, clients: usize, prepared: Arc<Vec<Prepared>>) -> (usize, f64, usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, prepared, next, base) = (
                client.clone(),
                prepared.clone(),
                next.clone(),
                base.to_owned(),
            );
            tokio::spawn(async move {
                let (mut events, mut failed) = (0, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = prepared.get(i) else { break };
                    let mut req = client
                        .post(format!("{base}{}", p.path))
                        .body(p.body.clone());
                    for (k, v) in &p.headers {
                        req = req.header(*k, v);
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => events += p.events,
                        Ok(r) => {
                            failed += 1;
                            if failed == 1 {
                                eprintln!("bench: {} -> {}", p.path, r.status());
                            }
                        }
                        Err(_) => failed += 1,
                    }
                }
                (events, failed)
            })
        })
        .collect();
    let (mut events, mut failed) = (0, 0);
    for t in tasks {
        let (e, f) = t.await.unwrap();
        events += e;
        failed += f;
    }
    (events, started.elapsed().as_secs_f64(), failed)
}

/// How many group-commit transactions the worker has run, from its metrics.
async fn batches(base: &str) -> f64 {
    metric_sum(base, "bounceops_ingest_batch_events_count ").await
}

/// Events the worker has answered for after their commit, of every outcome.
async fn outcomes(base: &str) -> f64 {
    metric_sum(base, "bounceops_events_total{").await
}

/// The sum of the worker's samples whose line starts with `prefix`.
async fn metric_sum(base: &str, prefix: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .sum()
}

/// CPU seconds used so far by this process and by all `postgres` processes, from /proc
/// (Linux; clock ticks of 1/100 s, the value every Linux build exposes to user space).
/// Read by hand because this is the only place that needs it.
fn cpu_seconds() -> (f64, f64) {
    fn ticks(stat: &str) -> Option<f64> {
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
    }
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .unwrap_or(0.0);
    let mut postgres = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = entry.path();
        if std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "postgres") {
            postgres += std::fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|s| ticks(&s))
                .unwrap_or(0.0);
        }
    }
    (own / 100.0, postgres / 100.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = <Args as clap::Parser>::parse();
    eprintln!("bench: database {DB}, {} subscribers", a.subscribers);
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&a.admin_url)
        .await
        .expect("admin connection (BOUNCEOPS_BENCH_DATABASE_URL)");
    for q in [
        format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
        format!("CREATE DATABASE {DB}"),
    ] {
        sqlx::query(&q).execute(&admin).await.unwrap();
    }
    let mut url = url::Url::parse(&a.admin_url).unwrap();
    url.set_path(&format!("/{DB}"));
    let db_url = url.to_string();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .unwrap();
    migrate::run(&pool, true).await.unwrap();
    sqlx::raw_sql(&format!(
        "INSERT INTO lists (uuid, name, type) VALUES (gen_random_uuid(), 'bench', 'public');
         INSERT INTO subscribers (uuid, email, name)
           SELECT gen_random_uuid(), 'user' || i || '@bench.test', 'u' FROM generate_series(1, {}) i;
         INSERT INTO subscriber_lists (subscriber_id, list_id, status)
           SELECT id, 1, 'confirmed' FROM subscribers;
         INSERT INTO campaigns (uuid, name, subject, from_email, body, messenger)
           VALUES ('2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f', 'bench', 's', 'f@bench.test', 'b', 'email');
         ANALYZE;",
        a.subscribers
    ))
    .execute(&pool)
    .await
    .unwrap();

    eprintln!("bench: generating keys (RSA-2048, P-256)");
    let rsa_key = RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let pem = certificate_pem(&rsa_key);
    let sg_key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let cert_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cert_base = format!("http://{}", cert_listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app =
            axum::Router::new().route(CERT_PATH, axum::routing::get(move || async move { pem }));
        axum::serve(cert_listener, app).await
    });

    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, key: &str, value: &str| {
        std::fs::create_dir_all(dir.path().join("secrets").join(name)).unwrap();
        std::fs::write(dir.path().join("secrets").join(name).join(key), value).unwrap();
    };
    secret("db", "url", &db_url);
    secret("api", "credentials", "bench:bench-token");
    secret(
        "sendgrid",
        "public-key",
        &b64(sg_key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()),
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "database: {{urlSecretRef: {{name: db, key: url}}, schema: standalone, maxConnections: 24}}
api: {{credentialsSecretRef: {{name: api, key: credentials}}}}
providers:
  generic: {{enabled: true}}
  ses: {{enabled: true, topicArns: ['{TOPIC}'], certUrlPattern: '{}/SimpleNotificationService-[0-9a-f]+\\.pem'}}
  sendgrid: {{enabled: true, publicKeySecretRef: {{name: sendgrid, key: public-key}}}}
",
            regex::escape(&cert_base)
        ),
    )
    .unwrap();
    let settings = Settings::load(&config, &SecretsDir::new(dir.path().join("secrets")), None)
        .expect("bench config");
    let registry = settings.providers.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            bounce_worker::server::serve(&settings, listener, std::future::pending())
                .await
                .unwrap();
        });
    });

    let reset = || async {
        sqlx::raw_sql(
            "TRUNCATE bounces, bounceops.unmatched, bounceops.processed_events;
             UPDATE subscribers SET status = 'enabled' WHERE status <> 'enabled';
             CHECKPOINT;",
        )
        .execute(&pool)
        .await
        .unwrap();
    };

    // Warm-up: connections, the SES certificate fetch (then cached), JIT-free but cold caches.
    let cert_url = format!("{cert_base}{CERT_PATH}");
    let warm = Args {
        requests: 50,
        batches: 2,
        ..a.clone()
    };
    for p in [
        generic(&warm, 7, false),
        ses(&warm, 7, &rsa_key, &cert_url),
        sendgrid(&warm, 7, &sg_key),
    ] {
        let clients = a.clients.iter().copied().max().unwrap_or(32);
        let (_, _, failed) = run(&base, clients, Arc::new(p)).await;
        assert_eq!(failed, 0, "warm-up requests failed");
    }

    // The worker-side CPU of each path, without HTTP or the database: what verification
    // and parsing cost per event.
    let cpu = Args {
        requests: a.requests.min(2000),
        batches: a.batches.min(20),
        ..a.clone()
    };
    let ctx = bounce_worker::providers::Context {
        store: bounce_worker::store::Store::connect_lazy(&db_url, 2).unwrap(),
        http: reqwest::Client::new(),
    };
    let mut cpu_us = serde_json::Map::new();
    for (name, prepared) in [
        ("generic", generic(&cpu, 9, false)),
        ("generic_like_ses", generic(&cpu, 9, true)),
        ("ses", ses(&cpu, 9, &rsa_key, &cert_url)),
        ("sendgrid", sendgrid(&cpu, 9, &sg_key)),
    ] {
        let events: usize = prepared.iter().map(|p| p.events).sum();
        let started = Instant::now();
        for p in &prepared {
            if name.starts_with("generic") {
                bounce_worker::http::webhook::parse(p.body.as_bytes()).unwrap();
                continue;
            }
            let mut headers = axum::http::HeaderMap::new();
            for (k, v) in &p.headers {
                headers.insert(*k, v.parse().unwrap());
            }
            let incoming = bounce_worker::providers::Incoming {
                headers,
                query: None,
                body: bytes::Bytes::from(p.body.clone()),
                now: chrono::Utc::now(),
            };
            let provider = registry.get(name).unwrap();
            provider.receive(&incoming, &ctx).await.unwrap();
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / events as f64;
        eprintln!("bench: worker CPU for {name:>16}: {us:.1} us/event (verify + parse)");
        cpu_us.insert(name.into(), json!((us * 10.0).round() / 10.0));
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // (scenario, clients, events, seconds), one per run.
    let mut results: Vec<(&str, usize, usize, f64)> = Vec::new();
    for round in 0..a.rounds {
        let seed = 1000 + round as u64;
        // Prepared once per round and replayed at each concurrency: the reset between
        // runs forgets the event ids, so a replay is recorded like new events.
        let prepared: Vec<(&str, Arc<Vec<Prepared>>)> = SCENARIOS
            .iter()
            .map(|&scenario| {
                let p = match scenario {
                    "generic" => generic(&a, seed, false),
                    "generic_like_ses" => generic(&a, seed, true),
                    "ses" => ses(&a, seed, &rsa_key, &cert_url),
                    _ => sendgrid(&a, seed, &sg_key),
                };
                (scenario, Arc::new(p))
            })
            .collect();
        for &clients in &a.clients {
            for (scenario, requests) in &prepared {
                reset().await;
                eprintln!(
                    "bench: round {} {clients:>3} clients {scenario:>16}: sending",
                    round + 1
                );
                let cpu_before = cpu_seconds();
                let batches_before = batches(&base).await;
                let outcomes_before = outcomes(&base).await;
                let (events, seconds, failed) = run(&base, clients, requests.clone()).await;
                let cpu_after = cpu_seconds();
                let transactions = batches(&base).await - batches_before;
                assert_eq!(failed, 0, "{scenario}: requests failed");
                // A rate of requests that stored nothing would be no rate. Every provider
                // event answered 2xx claimed its own id in the transaction that recorded
                // it; the generic webhook's events have no id of their own (the worker
                // claims one per transaction), so for them the worker's count of outcomes,
                // which it makes after the commit, must match.
                if scenario.starts_with("generic") {
                    let recorded = outcomes(&base).await - outcomes_before;
                    assert_eq!(
                        recorded as usize, events,
                        "{scenario}: outcomes committed against events answered 2xx"
                    );
                } else {
                    let claimed: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM bounceops.processed_events")
                            .fetch_one(&pool)
                            .await
                            .unwrap();
                    assert_eq!(
                        claimed as usize, events,
                        "{scenario}: identities recorded against events answered 2xx"
                    );
                }
                let rate = events as f64 / seconds;
                let per_event = |after: f64, before: f64| (after - before) * 1e6 / events as f64;
                eprintln!(
                    "bench: round {} {clients:>3} clients {scenario:>16}: {events} events in {seconds:.2}s = \
                     {rate:.0} events/s; CPU per event: {:.0} us this process (clients + worker), \
                     {:.0} us Postgres, {:.0} us idle; {:.1} events per transaction",
                    round + 1,
                    per_event(cpu_after.0, cpu_before.0),
                    per_event(cpu_after.1, cpu_before.1),
                    (cores * seconds - (cpu_after.0 - cpu_before.0) - (cpu_after.1 - cpu_before.1))
                        .max(0.0)
                        * 1e6
                        / events as f64,
                    events as f64 / transactions,
                );
                results.push((scenario, clients, events, seconds));
            }
        }
    }
    // Per scenario and concurrency: total events over total time across rounds.
    let rate_of = |s: &str, c: usize| {
        let (e, t) = results
            .iter()
            .filter(|r| r.0 == s && r.1 == c)
            .fold((0usize, 0f64), |(e, t), r| (e + r.2, t + r.3));
        e as f64 / t
    };
    // Per round, each scenario against the generic run of the same round and
    // concurrency; the median of those ratios resists a noisy neighbour better than
    // one pooled ratio.
    let median_ratio = |s: &str, c: usize| {
        let rate = |round: usize, name: &str| {
            let per_round = a.clients.len() * SCENARIOS.len();
            let r = results[round * per_round..(round + 1) * per_round]
                .iter()
                .find(|r| r.0 == name && r.1 == c)
                .unwrap();
            r.2 as f64 / r.3
        };
        let mut r: Vec<f64> = (0..a.rounds)
            .map(|round| rate(round, s) / rate(round, "generic"))
            .collect();
        r.sort_by(f64::total_cmp);
        (r[r.len() / 2] * 100.0).round() / 100.0
    };
    // Each scenario's capacity: its best pooled rate over the concurrencies tried.
    let peak = |s: &str| {
        a.clients
            .iter()
            .map(|&c| (rate_of(s, c), c))
            .max_by(|x, y| x.0.total_cmp(&y.0))
            .unwrap()
    };
    let mut summary = json!({"clients": a.clients, "rounds": a.rounds, "cpu_us_per_event": cpu_us});
    for &c in &a.clients {
        for s in SCENARIOS {
            summary[format!("{s}_events_per_s_at_{c}")] = json!(rate_of(s, c).round());
            if s != "generic" {
                summary[format!("{s}_vs_generic_median_at_{c}")] = json!(median_ratio(s, c));
            }
        }
    }
    let (generic_peak, _) = peak("generic");
    for s in SCENARIOS {
        let (rate, clients) = peak(s);
        summary[format!("{s}_peak_events_per_s")] = json!(rate.round());
        summary[format!("{s}_peak_clients")] = json!(clients);
        if s != "generic" {
            summary[format!("{s}_peak_vs_generic_peak")] =
                json!((rate / generic_peak * 100.0).round() / 100.0);
        }
    }
    println!("{summary}");
    drop(pool);
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .execute(&admin)
        .await;
}
