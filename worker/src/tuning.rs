//! The worker's tuning variables: what tunes one process for its hardware and its traffic,
//! not what the installation means (that is the BounceConfig). All of them are read here,
//! once, at start-up, into [`Tuning`], part of the one `Settings`; no other module reads
//! the environment for them. docs/reference.md lists them (a test checks it names each).
//!
//! A value that does not parse, or is zero, keeps the default: a typo in a pod's
//! environment must not stop a worker that would run fine with the default.

use std::time::Duration;

use crate::connections::ConnectionLimits;
use crate::http::providers::UNVERIFIED_BODY_BYTES;
use crate::store::ExportLimits;

/// Every variable, with what it sets: the list the docs must name.
pub const VARIABLES: [&str; 9] = [
    "BOUNCEOPS_WRITERS",
    "BOUNCEOPS_REQUEST_TIMEOUT",
    "BOUNCEOPS_UNVERIFIED_BODY_BYTES",
    "BOUNCEOPS_HEADER_READ_TIMEOUT",
    "BOUNCEOPS_MAX_CONNECTIONS",
    "BOUNCEOPS_SHUTDOWN_GRACE",
    "BOUNCEOPS_EXPORT_CONNECTIONS",
    "BOUNCEOPS_EXPORT_STALL_TIMEOUT",
    "BOUNCEOPS_EXPORT_TIMEOUT",
];

/// What the variables set, with their defaults where absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Ingest writers (`BOUNCEOPS_WRITERS`), each committing batches on its own
    /// connection; at most half of `spec.database.maxConnections`.
    pub writers: usize,
    /// Every HTTP request is answered within it (`BOUNCEOPS_REQUEST_TIMEOUT`, seconds).
    pub request_timeout: Duration,
    /// Bytes of provider bodies read but not yet verified, across all requests of this
    /// worker (`BOUNCEOPS_UNVERIFIED_BODY_BYTES`).
    pub unverified_body_bytes: usize,
    /// The HTTP connections' timeouts and cap.
    pub connections: ConnectionLimits,
    /// The export's connections and timeouts.
    pub export: ExportLimits,
}

/// One writer: while it commits a batch, the next batch gathers, so batches grow by
/// themselves when the database is slow and stay small when it is fast. On 2 cores it
/// measured 1.09x the baseline against 0.82-0.88x with two writers (BENCHMARKS.md).
const WRITERS: usize = 1;

/// Beyond every provider's own timeout (SES 15 s, SendGrid 30 s...), so a sender that gives
/// up first retries anyway.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            writers: WRITERS,
            request_timeout: REQUEST_TIMEOUT,
            unverified_body_bytes: UNVERIFIED_BODY_BYTES,
            connections: ConnectionLimits::default(),
            export: ExportLimits::default(),
        }
    }
}

impl Tuning {
    /// The process's environment; `max_connections` is `spec.database.maxConnections`,
    /// which bounds the writers.
    pub fn from_env(max_connections: u32) -> Tuning {
        Tuning::from_lookup(|name| std::env::var(name).ok(), max_connections)
    }

    /// `lookup` gives a variable's value, as the environment would.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, max_connections: u32) -> Tuning {
        let number = |name: &str| {
            debug_assert!(VARIABLES.contains(&name), "{name} is not in VARIABLES");
            lookup(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        let seconds =
            |name: &str, default: Duration| number(name).map_or(default, Duration::from_secs);
        let d = Tuning::default();
        Tuning {
            writers: number("BOUNCEOPS_WRITERS")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(d.writers)
                .min(max_connections as usize / 2)
                .max(1),
            request_timeout: seconds("BOUNCEOPS_REQUEST_TIMEOUT", d.request_timeout),
            unverified_body_bytes: number("BOUNCEOPS_UNVERIFIED_BODY_BYTES")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(d.unverified_body_bytes),
            connections: ConnectionLimits {
                header_read_timeout: seconds(
                    "BOUNCEOPS_HEADER_READ_TIMEOUT",
                    d.connections.header_read_timeout,
                ),
                max_connections: number("BOUNCEOPS_MAX_CONNECTIONS")
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(d.connections.max_connections),
                shutdown_grace: seconds("BOUNCEOPS_SHUTDOWN_GRACE", d.connections.shutdown_grace),
            },
            export: ExportLimits {
                connections: number("BOUNCEOPS_EXPORT_CONNECTIONS")
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(d.export.connections),
                stall: seconds("BOUNCEOPS_EXPORT_STALL_TIMEOUT", d.export.stall),
                deadline: seconds("BOUNCEOPS_EXPORT_TIMEOUT", d.export.deadline),
                ..d.export
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)], max_connections: u32) -> Tuning {
        Tuning::from_lookup(
            |name| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            },
            max_connections,
        )
    }

    #[test]
    fn nothing_set_is_the_defaults() {
        assert_eq!(with(&[], 16), Tuning::default());
    }

    #[test]
    fn each_variable_sets_its_value() {
        let t = with(
            &[
                ("BOUNCEOPS_WRITERS", "3"),
                ("BOUNCEOPS_REQUEST_TIMEOUT", "5"),
                ("BOUNCEOPS_UNVERIFIED_BODY_BYTES", "1048576"),
                ("BOUNCEOPS_HEADER_READ_TIMEOUT", "2"),
                ("BOUNCEOPS_MAX_CONNECTIONS", "64"),
                ("BOUNCEOPS_SHUTDOWN_GRACE", "7"),
                ("BOUNCEOPS_EXPORT_CONNECTIONS", "4"),
                ("BOUNCEOPS_EXPORT_STALL_TIMEOUT", "9"),
                ("BOUNCEOPS_EXPORT_TIMEOUT", "60"),
            ],
            16,
        );
        assert_eq!(t.writers, 3);
        assert_eq!(t.request_timeout, Duration::from_secs(5));
        assert_eq!(t.unverified_body_bytes, 1 << 20);
        assert_eq!(t.connections.header_read_timeout, Duration::from_secs(2));
        assert_eq!(t.connections.max_connections, 64);
        assert_eq!(t.connections.shutdown_grace, Duration::from_secs(7));
        assert_eq!(t.export.connections, 4);
        assert_eq!(t.export.stall, Duration::from_secs(9));
        assert_eq!(t.export.deadline, Duration::from_secs(60));
    }

    #[test]
    fn typos_and_zeros_keep_the_defaults() {
        let t = with(
            &[
                ("BOUNCEOPS_REQUEST_TIMEOUT", "30s"),
                ("BOUNCEOPS_EXPORT_CONNECTIONS", "0"),
                ("BOUNCEOPS_WRITERS", "-1"),
            ],
            16,
        );
        assert_eq!(t, Tuning::default());
    }

    #[test]
    fn writers_leave_half_the_pool_to_the_rest() {
        assert_eq!(with(&[("BOUNCEOPS_WRITERS", "8")], 6).writers, 3);
        assert_eq!(with(&[("BOUNCEOPS_WRITERS", "8")], 2).writers, 1);
    }
}
