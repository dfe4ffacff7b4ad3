//! The senders of the exactly-once soak (bench/soak/run.sh; not a test): N clients post
//! generic-webhook bounces, each with its own sequence number in `meta.seq`, and retry each
//! one until it is answered 2xx, while the script restarts Postgres and kills the worker.
//! At the end it counts, per sequence number, the rows in `bounces` and
//! `bounceops.unmatched`, and prints one JSON object: sent, answered (2xx), lost (answered
//! but not stored), doubled (stored more than once), unanswered (still failing when the
//! run ended), and the attempts that failed on the way, by kind.
//!
//! With `--idempotency-keys` every bounce carries an `Idempotency-Key` (its sequence
//! number), as a sender that retries should; without, a retry is a new request, which is
//! what listmonk-style senders do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

mod bench_support;

#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    webhook: bench_support::Webhook,
    /// The database the worker writes to, for the final count.
    #[arg(long)]
    database_url: String,
    #[arg(long, default_value_t = 16)]
    clients: u64,
    #[arg(long, default_value_t = 600.0)]
    seconds: f64,
    /// Subscribers user1..N@soak.test exist; one bounce in ten names nobody (unmatched).
    #[arg(long, default_value_t = 1000)]
    subscribers: u64,
    #[arg(long)]
    idempotency_keys: bool,
    /// How long a bounce may keep failing after the run's end before it counts as
    /// unanswered.
    #[arg(long, default_value_t = 120.0)]
    drain_seconds: f64,
}

#[derive(Default)]
struct Tally {
    sent: u64,
    answered: Vec<u64>,
    unanswered: u64,
    failures: BTreeMap<String, u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = clap::Parser::parse();
    let args = Arc::new(args);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()?;
    let next = Arc::new(AtomicU64::new(1));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let end = Instant::now() + Duration::from_secs_f64(args.seconds);
    let give_up = end + Duration::from_secs_f64(args.drain_seconds);
    let clients = (0..args.clients).map(|_| {
        let (args, client, next, tally) =
            (args.clone(), client.clone(), next.clone(), tally.clone());
        tokio::spawn(async move {
            while Instant::now() < end {
                let seq = next.fetch_add(1, Ordering::SeqCst);
                let answered = send_until_answered(&args, &client, seq, give_up, &tally).await;
                let mut t = tally.lock().await;
                t.sent += 1;
                if answered {
                    t.answered.push(seq);
                } else {
                    t.unanswered += 1;
                }
            }
        })
    });
    futures::future::join_all(clients).await;

    let pool = sqlx::PgPool::connect(&args.database_url).await?;
    let stored: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT seq, COUNT(*) FROM (
             SELECT (meta->>'seq')::int8 AS seq FROM bounces WHERE source = 'soak'
             UNION ALL
             SELECT (meta->>'seq')::int8 FROM bounceops.unmatched WHERE source = 'soak') r
         GROUP BY seq",
    )
    .fetch_all(&pool)
    .await?;
    let stored: BTreeMap<u64, i64> = stored.into_iter().map(|(s, n)| (s as u64, n)).collect();
    let t = tally.lock().await;
    let lost = t
        .answered
        .iter()
        .filter(|s| !stored.contains_key(s))
        .count();
    let doubled = stored.values().filter(|&&n| n > 1).count();
    let extra_rows: i64 = stored.values().map(|n| n - 1).filter(|&n| n > 0).sum();
    println!(
        "{}",
        serde_json::json!({
            "clients": args.clients,
            "seconds": args.seconds,
            "idempotency_keys": args.idempotency_keys,
            "sent": t.sent,
            "answered_2xx": t.answered.len(),
            "unanswered": t.unanswered,
            "stored": stored.len(),
            "lost": lost,
            "doubled": doubled,
            "extra_rows": extra_rows,
            "failed_attempts": t.failures,
        })
    );
    Ok(())
}

/// Posts bounce `seq` until a 2xx answer or `give_up`; returns whether it was answered.
async fn send_until_answered(
    args: &Args,
    client: &reqwest::Client,
    seq: u64,
    give_up: Instant,
    tally: &Mutex<Tally>,
) -> bool {
    let k = seq % args.subscribers + 1;
    let email = if seq.is_multiple_of(10) {
        format!("nobody{k}@soak.test")
    } else {
        format!("user{k}@soak.test")
    };
    let body = serde_json::json!({
        "email": email, "type": "soft", "source": "soak", "meta": {"seq": seq},
    });
    let mut backoff = Duration::from_millis(50);
    while Instant::now() < give_up {
        let mut request = args.webhook.post(client).json(&body);
        if args.idempotency_keys {
            request = request.header("Idempotency-Key", format!("soak-{seq}"));
        }
        let failure = match request.send().await {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => format!("http_{}", r.status().as_u16()),
            Err(e) if e.is_connect() => "connect".to_owned(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(_) => "connection_lost".to_owned(),
        };
        *tally.lock().await.failures.entry(failure).or_default() += 1;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    false
}
