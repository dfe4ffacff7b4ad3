//! What the load generators (`loadgen`, `bench_providers`, `smtp_load`, `soak`) share: the
//! webhook they post to, the event mix of `bench/ingest.sh`, and how latencies are reported.
//! (A folder without `main.rs`, so Cargo does not take it for an example of its own.)

// Each example takes the part it needs.
#![allow(dead_code)]

// The generic webhook a load generator posts to (`loadgen`, `soak`), as `bench/common.sh`
// configures the worker. Not a doc comment: clap would make it the help's first line.
#[derive(clap::Args)]
pub struct Webhook {
    /// The generic webhook to post to.
    #[arg(long, default_value = "http://127.0.0.1:9000/webhooks/bounce")]
    pub url: String,
    /// The Authorization header.
    #[arg(long, default_value = "token bench:bench-token")]
    pub auth: String,
}

impl Webhook {
    /// A POST to the webhook with its credentials.
    pub fn post(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client.post(&self.url).header("Authorization", &self.auth)
    }
}

/// xorshift: a reproducible event mix without a crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A subscriber address `user<k>@bench.test`, k uniform in 1..=subscribers, and
    /// whether this bounce is hard (30%).
    pub fn pick(&mut self, subscribers: u64) -> (String, bool) {
        let k = self.next() % subscribers + 1;
        (format!("user{k}@bench.test"), self.next() % 10 < 3)
    }
}

/// The `p` quantile (0 to 1) of latencies sorted ascending, in microseconds, as
/// milliseconds; 0 when there are none.
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

/// The line a load run prints (bench/*.sh read it): its mode, the `counts` the caller adds
/// (failures, sessions), and the rate and latencies of the requests that succeeded, whose
/// latencies (microseconds) are sorted here.
pub fn report(
    open_loop: bool,
    latencies_us: &mut [u64],
    seconds: f64,
    counts: serde_json::Value,
) -> serde_json::Value {
    latencies_us.sort_unstable();
    let pct = |p: f64| percentile_ms(latencies_us, p);
    let mut line = serde_json::json!({
        "mode": if open_loop { "open" } else { "closed" },
        "ok": latencies_us.len(),
        "seconds": (seconds * 100.0).round() / 100.0,
        "rate": (latencies_us.len() as f64 / seconds).round(),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
    });
    if let (Some(line), serde_json::Value::Object(counts)) = (line.as_object_mut(), counts) {
        line.extend(counts);
    }
    line
}
