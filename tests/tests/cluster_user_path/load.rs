//! Clients posting generic webhook bounces through a Service, each for its own subscriber,
//! recording which ones were answered 2xx: the bounces the workers promised to keep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

pub struct Answered {
    /// The e-mail addresses whose bounce was answered 2xx.
    pub ok: Vec<String>,
    /// Requests that failed or were answered otherwise (connection refused or reset while
    /// a pod went away, 503 while it drained), with the first few reasons.
    pub failed: usize,
    pub reasons: Vec<String>,
}

/// Runs `clients` concurrent clients posting one hard bounce per address of `emails` to
/// `base` until `stop` turns true or the addresses run out; `answered` counts the 2xx
/// answers as they come.
pub async fn post_until(
    base: String,
    token: String,
    emails: Vec<String>,
    clients: usize,
    answered: Arc<AtomicUsize>,
    stop: watch::Receiver<bool>,
) -> Answered {
    let queue = Arc::new(Mutex::new(emails.into_iter()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        // A fresh connection per request, as many independent senders would: kube-proxy
        // picks a pod per connection, so every pod takes its share.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (queue, http, stop, answered) =
                (queue.clone(), http.clone(), stop.clone(), answered.clone());
            let url = format!("{base}/webhooks/bounce");
            let auth = format!("token {token}");
            tokio::spawn(async move {
                let mut out = Answered {
                    ok: vec![],
                    failed: 0,
                    reasons: vec![],
                };
                while !*stop.borrow() {
                    let Some(email) = queue.lock().unwrap().next() else {
                        break;
                    };
                    let res = http
                        .post(&url)
                        .header("Authorization", &auth)
                        .json(&json!({"email": email, "type": "hard", "source": "e2e-load"}))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().is_success() => {
                            out.ok.push(email);
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => {
                            out.failed += 1;
                            out.reasons.push(format!("{}", r.status()));
                        }
                        Err(e) => {
                            out.failed += 1;
                            // reqwest's own message hides the cause (refused, reset, ...).
                            let mut why = e.to_string();
                            let mut source = std::error::Error::source(&e);
                            while let Some(s) = source {
                                why = format!("{why}: {s}");
                                source = s.source();
                            }
                            out.reasons.push(why);
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Answered {
        ok: vec![],
        failed: 0,
        reasons: vec![],
    };
    for t in tasks {
        let mut one = t.await.expect("a client task");
        all.ok.append(&mut one.ok);
        all.failed += one.failed;
        all.reasons.append(&mut one.reasons);
    }
    all.reasons.truncate(5);
    all
}

pub struct Sent {
    pub ok: usize,
    pub failed: usize,
}

/// Posts one hard bounce per address of `emails` at `rate` per second (in 10 ms steps),
/// each on its own task, until the addresses run out; waits for the answers.
pub async fn paced(base: &str, token: &str, emails: Vec<String>, rate: u64) -> Sent {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("{base}/webhooks/bounce");
    let auth = format!("token {token}");
    let per_step = (rate / 100).max(1) as usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut emails = emails.into_iter();
    loop {
        ticker.tick().await;
        let batch: Vec<String> = emails.by_ref().take(per_step).collect();
        if batch.is_empty() {
            break;
        }
        for email in batch {
            let req = http
                .post(&url)
                .header("Authorization", &auth)
                .json(&json!({"email": email, "type": "hard", "source": "bench"}));
            tasks.spawn(async move { req.send().await.is_ok_and(|r| r.status().is_success()) });
        }
    }
    let mut sent = Sent { ok: 0, failed: 0 };
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(true) => sent.ok += 1,
            _ => sent.failed += 1,
        }
    }
    sent
}
