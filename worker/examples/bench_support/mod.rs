//! What the two load generators (`loadgen`, `bench_providers`) share: the event mix of
//! `bench/ingest.sh`. (A folder without `main.rs`, so Cargo does not take it for an
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
