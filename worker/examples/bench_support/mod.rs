//! What the load generators (`loadgen`, `bench_providers`, `smtp_load`) share: the event
//! mix of `bench/ingest.sh`, and how latencies are reported. (A folder without `main.rs`, so Cargo does not take it for an
//! example of its own.)

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
#[allow(dead_code)] // bench_providers reports rates only
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[i] as f64 / 1000.0
}
