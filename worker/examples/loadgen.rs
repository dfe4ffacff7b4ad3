//! Load generator for the generic webhook (used by bench/ingest.sh; not a test).
//!
//! Closed loop (`--clients N`): N keep-alive clients post as fast as answers come back, for
//! the peak rate. Open loop (`--rate R`): requests start on a fixed schedule whatever the
//! answers, so latency is measured without the coordinated omission of a closed loop.
//! Prints one JSON object with the counts, the rate and latency percentiles.
//!
//! Each request bounces `user<k>@bench.test`, k uniform in 1..=subscribers; 30% are hard,
//! the rest soft (`bench_support::Rng`, reproducible).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

mod bench_support;

use bench_support::Rng;

#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    webhook: bench_support::Webhook,
    /// Keep-alive clients of the closed loop.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Requests per second, open loop (instead of the closed loop).
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    #[arg(long, default_value_t = 200_000)]
    subscribers: u64,
}

fn body(rng: &mut Rng, subscribers: u64) -> String {
    let (email, hard) = rng.pick(subscribers);
    let t = if hard { "hard" } else { "soft" };
    format!(r#"{{"email":"{email}","type":"{t}","source":"bench"}}"#)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
}

async fn post(client: &reqwest::Client, a: &Args, body: String, tally: &Mutex<Tally>) {
    let started = Instant::now();
    let ok = a
        .webhook
        .post(client)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    let us = started.elapsed().as_micros() as u64;
    let mut t = tally.lock().await;
    if ok {
        t.latencies_us.push(us);
    } else {
        t.errors += 1;
    }
}

#[tokio::main]
async fn main() {
    let a = Arc::new(<Args as clap::Parser>::parse());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.clients.max(256))
        .build()
        .unwrap();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let started = Instant::now();
    match a.rate {
        None => {
            let tasks: Vec<_> = (0..a.clients)
                .map(|i| {
                    let (a, client, tally) = (a.clone(), client.clone(), tally.clone());
                    tokio::spawn(async move {
                        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
                        while Instant::now() < deadline {
                            post(&client, &a, body(&mut rng, a.subscribers), &tally).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        Some(rate) => {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let in_flight = Arc::new(AtomicU64::new(0));
            let mut rng = Rng(0x2545_F491_4F6C_DD1D);
            let mut tasks = Vec::new();
            while Instant::now() < deadline {
                tick.tick().await;
                let (a, client, tally, in_flight) =
                    (a.clone(), client.clone(), tally.clone(), in_flight.clone());
                let b = body(&mut rng, a.subscribers);
                in_flight.fetch_add(1, Ordering::Relaxed);
                tasks.push(tokio::spawn(async move {
                    post(&client, &a, b, &tally).await;
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut t = tally.lock().await;
    let counts = serde_json::json!({"errors": t.errors});
    let line = bench_support::report(a.rate.is_some(), &mut t.latencies_us, seconds, counts);
    println!("{line}");
}
