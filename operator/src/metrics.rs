//! The operator's own Prometheus metrics (`bounceops_operator_*`), served on `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    duration: HistogramVec,
    writes: IntCounterVec,
    configs: IntGaugeVec,
    pub leader: IntGauge,
    /// config key -> (condition type -> status), the source of the `configs` gauge.
    by_config: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("bounceops_operator_reconciles_total", "Reconciles by result: ok, degraded (a Degraded condition was set) or error (retried with backoff)."),
            &["result"],
        )
        .expect("metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "bounceops_operator_reconcile_duration_seconds",
                "Time one reconcile took.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["result"],
        )
        .expect("metric");
        let writes = IntCounterVec::new(
            Opts::new(
                "bounceops_operator_api_writes_total",
                "Writes sent to the Kubernetes API, by kind: apply, delete, status, event.",
            ),
            &["kind"],
        )
        .expect("metric");
        let configs = IntGaugeVec::new(
            Opts::new(
                "bounceops_operator_configs",
                "BounceConfigs by condition type and status.",
            ),
            &["condition", "status"],
        )
        .expect("metric");
        let leader = IntGauge::new(
            "bounceops_operator_leader",
            "1 while this replica holds the leader Lease.",
        )
        .expect("metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(writes.clone()),
            Box::new(configs.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics {
            registry,
            reconciles,
            duration,
            writes,
            configs,
            leader,
            by_config: Mutex::default(),
        }
    }

    pub fn observe_reconcile(&self, result: &str, took: Duration) {
        self.reconciles.with_label_values(&[result]).inc();
        self.duration
            .with_label_values(&[result])
            .observe(took.as_secs_f64());
    }

    pub fn write(&self, kind: &str) {
        self.writes.with_label_values(&[kind]).inc();
    }

    pub fn writes(&self, kind: &str) -> u64 {
        self.writes.with_label_values(&[kind]).get()
    }

    pub fn total_writes(&self) -> u64 {
        ["apply", "delete", "status", "event"]
            .iter()
            .map(|k| self.writes(k))
            .sum()
    }

    pub fn reconciles(&self, result: &str) -> u64 {
        self.reconciles.with_label_values(&[result]).get()
    }

    /// Records a config's conditions (`None`: the config is gone) and recomputes the
    /// gauge, so it never counts a deleted config.
    pub fn set_conditions(&self, key: String, conditions: Option<BTreeMap<String, String>>) {
        let mut by = self.by_config.lock().expect("metrics lock");
        match conditions {
            Some(c) => {
                by.insert(key, c);
            }
            None => {
                by.remove(&key);
            }
        }
        self.configs.reset();
        for conds in by.values() {
            for (t, s) in conds {
                self.configs
                    .with_label_values(&[t.as_str(), s.as_str()])
                    .inc();
            }
        }
    }

    /// Keeps only the configs whose keys are listed.
    pub fn retain_configs(&self, keep: &std::collections::BTreeSet<String>) {
        let stale: Vec<String> = {
            let by = self.by_config.lock().expect("metrics lock");
            by.keys().filter(|k| !keep.contains(*k)).cloned().collect()
        };
        for k in stale {
            self.set_conditions(k, None);
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_condition_gauge_forgets_deleted_configs() {
        let m = Metrics::new();
        m.observe_reconcile("ok", Duration::from_millis(3));
        m.write("apply");
        m.set_conditions(
            "mail/a".into(),
            Some(BTreeMap::from([("Ready".into(), "True".into())])),
        );
        m.set_conditions(
            "mail/b".into(),
            Some(BTreeMap::from([("Ready".into(), "True".into())])),
        );
        let text = m.render();
        assert!(
            text.contains("bounceops_operator_reconciles_total{result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bounceops_operator_configs{condition=\"Ready\",status=\"True\"} 2"),
            "{text}"
        );
        assert!(text.contains("bounceops_operator_reconcile_duration_seconds_bucket"));
        m.retain_configs(&["mail/a".to_owned()].into());
        assert!(
            m.render()
                .contains("bounceops_operator_configs{condition=\"Ready\",status=\"True\"} 1")
        );
        for line in m.render().lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("bounceops_operator_"), "{line}");
        }
    }
}
