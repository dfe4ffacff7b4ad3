//! 200 BounceConfigs reconciled from cold against the mocked API (the in-memory server
//! of `tests/common`, behind kube's real client): time to converge, API writes per
//! config, writes in a steady state, peak RSS.
//!
//! cargo bench -p bounce-operator --bench cold_start
//! (CONFIGS=n and CONCURRENCY=n override the defaults of 200 and 16.)

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use bounce_operator::metrics::Metrics;
use bounce_operator::reconcile::desired::Settings;
use bounce_operator::reconcile::{self, Context};
use bounceops_api::ConditionStatus;
use common::FakeApi;
use futures::StreamExt;
use kube::runtime::events::{Recorder, Reporter};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn spec(i: usize) -> String {
    let mut s = format!(
        "database: {{urlSecretRef: {{name: db-{i}, key: url}}}}\napi: {{credentialsSecretRef: {{name: api-{i}, key: credentials}}}}\nwebhook: {{replicas: {}, ingress: {{enabled: {}, host: b{i}.example.com}}}}\n",
        1 + i % 3,
        i % 2 == 0
    );
    if i % 2 == 1 {
        s.push_str(&format!(
            "mailboxes: [{{name: bounces, protocol: imap, host: imap.example.com, port: 993, usernameSecretRef: {{name: mb-{i}, key: user}}, passwordSecretRef: {{name: mb-{i}, key: pass}}}}]\n"
        ));
    }
    s
}

fn main() {
    let n = env_or("CONFIGS", 200);
    let concurrency = env_or("CONCURRENCY", 16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (client, fake) = FakeApi::start();
        let names: Vec<(String, String)> = (0..n).map(|i| (format!("ns-{}", i % 10), format!("cfg-{i}"))).collect();
        for (i, (ns, name)) in names.iter().enumerate() {
            fake.put_secret(ns, &format!("db-{i}"), &["url"]);
            fake.put_secret(ns, &format!("api-{i}"), &["credentials"]);
            fake.put_secret(ns, &format!("mb-{i}"), &["user", "pass"]);
            fake.put_config(ns, name, &spec(i));
        }
        let metrics = Arc::new(Metrics::new());
        let recorder = Recorder::new(client.clone(), Reporter { controller: bounce_operator::MANAGER.into(), instance: None });
        let ctx = Arc::new(Context::new(client, Settings::default(), recorder, metrics.clone()));

        let pass = |label: &'static str| {
            let fake = fake.clone();
            let ctx = ctx.clone();
            let names = names.clone();
            async move {
                let mark = fake.log_len();
                let started = Instant::now();
                let errors = futures::stream::iter(names.iter().cloned())
                    .map(|(ns, name)| {
                        let cfg = Arc::new(fake.config(&ns, &name));
                        reconcile::reconcile(cfg, ctx.clone())
                    })
                    .buffer_unordered(concurrency)
                    .filter(|r| futures::future::ready(r.is_err()))
                    .count()
                    .await;
                let took = started.elapsed();
                let calls = fake.log_len() - mark;
                let writes = fake.writes_since(mark).len();
                println!(
                    "{label:>7}: {n} configs in {:>7.1} ms, {errors} errors, {calls} API calls ({:.1}/config), {writes} writes ({:.2}/config)",
                    took.as_secs_f64() * 1e3,
                    calls as f64 / n as f64,
                    writes as f64 / n as f64
                );
                (took, writes)
            }
        };

        let (cold, _) = pass("cold").await;
        let ready = names
            .iter()
            .filter(|(ns, name)| {
                fake.config(ns, name)
                    .status
                    .and_then(|s| s.condition("Ready").map(|c| c.status == ConditionStatus::True))
                    .unwrap_or(false)
            })
            .count();
        println!("  ready: {ready}/{n} after one pass (converged in {:.1} ms)", cold.as_secs_f64() * 1e3);
        let (_, steady1) = pass("steady").await;
        let (_, steady2) = pass("steady").await;
        println!("  steady-state writes: {} (goal 0)", steady1 + steady2);
        println!("  operator writes by kind: apply {}, delete {}, status {}, event {}",
            metrics.writes("apply"), metrics.writes("delete"), metrics.writes("status"), metrics.writes("event"));
        println!("  peak RSS: {:.1} MiB (process: operator code + the in-memory API server and its {} objects)",
            peak_rss_kib() as f64 / 1024.0, fake.paths_under("/").len());
        assert_eq!(ready, n, "every config converged");
        assert_eq!(steady1 + steady2, 0, "steady state writes nothing");
    });
}
