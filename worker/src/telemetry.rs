//! Logging: tracing to stderr, as text for people or JSON for log collectors.
//! `RUST_LOG` filters (default `info`). Lines that outsiders can cause at will go through a
//! [`LogGate`] (`warn_throttled!`, `error_throttled!`): at most one per 10 s from each place.

use std::io::IsTerminal as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(std::io::stderr().is_terminal()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Colour codes only for a person at a terminal: `kubectl logs` and log collectors get plain
/// text. `NO_COLOR` (no-color.org) turns them off there too.
pub fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// An error and its causes on one line, `outer: cause: root`. A cause whose text the line
/// already holds is left out: sqlx's database error, for one, repeats its source's message
/// (`error returned from database: password authentication failed for user "x"`), which
/// anyhow's `{:#}` would print twice.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

/// How often a throttled line may be written: a sender retrying into an outage, or a
/// stranger trying forged return paths, then costs six lines a minute, not thousands.
pub const REPEATS_EVERY: Duration = Duration::from_secs(10);

/// At most one log line per interval from one place in the code that outsiders can make log
/// at will: a forged VERP token refused, a message answered 452, a request answered 503 while
/// the database is down. Without it a sender retrying a thousand times a second writes a
/// thousand lines a second, and a log collector pays for each. The metrics count every
/// occurrence; a line says that it happens, and `held_back` how many like it were not
/// written since the previous one.
///
/// Written here rather than with tracing-throttle, which groups lines by their text and
/// field values (a recipient's address makes every line distinct) and changed what it
/// compares between minor versions: this groups by call site, which a `static` is.
pub struct LogGate {
    every_ms: u64,
    /// Milliseconds from the first gate's use (see [`clock_ms`]) before which lines are
    /// held back.
    opens_at: AtomicU64,
    held_back: AtomicU64,
}

impl LogGate {
    pub const fn every(interval: Duration) -> LogGate {
        LogGate {
            every_ms: interval.as_millis() as u64,
            opens_at: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: write this line, saying that `n` were held back since the last one;
    /// `None`: hold it back.
    pub fn pass(&self) -> Option<u64> {
        self.pass_at(clock_ms())
    }

    fn pass_at(&self, now_ms: u64) -> Option<u64> {
        let opens_at = self.opens_at.load(Ordering::Relaxed);
        // Of the threads that find the gate open, the one whose exchange succeeds writes.
        if now_ms >= opens_at
            && self
                .opens_at
                .compare_exchange(
                    opens_at,
                    now_ms + self.every_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Milliseconds since the first call: a gate's first line is always written.
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// `tracing::event!` at `$level`, written at most once per [`REPEATS_EVERY`] from this call
/// site, with the count of lines held back since the last one as the field `held_back`.
#[macro_export]
macro_rules! log_throttled {
    ($level:expr, $($arg:tt)+) => {{
        static GATE: $crate::telemetry::LogGate =
            $crate::telemetry::LogGate::every($crate::telemetry::REPEATS_EVERY);
        if let Some(held_back) = GATE.pass() {
            ::tracing::event!($level, held_back, $($arg)+);
        }
    }};
}

/// `tracing::warn!` through [`log_throttled!`].
#[macro_export]
macro_rules! warn_throttled {
    ($($arg:tt)+) => { $crate::log_throttled!(::tracing::Level::WARN, $($arg)+) };
}

/// `tracing::error!` through [`log_throttled!`].
#[macro_export]
macro_rules! error_throttled {
    ($($arg:tt)+) => { $crate::log_throttled!(::tracing::Level::ERROR, $($arg)+) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_writes_the_first_line_then_one_per_interval_with_the_count_held_back() {
        let gate = LogGate::every(Duration::from_secs(10));
        assert_eq!(gate.pass_at(5), Some(0));
        assert_eq!(gate.pass_at(6), None);
        assert_eq!(gate.pass_at(10_004), None);
        assert_eq!(gate.pass_at(10_005), Some(2));
        assert_eq!(gate.pass_at(10_006), None);
        // Long quiet: the next line is written at once.
        assert_eq!(gate.pass_at(60_000), Some(1));
        assert_eq!(gate.pass_at(60_001), None);
    }

    #[test]
    fn of_threads_arriving_together_one_writes_and_the_rest_are_counted() {
        let gate = LogGate::every(Duration::from_secs(3600));
        let written: u64 = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..1000).filter(|_| gate.pass_at(7).is_some()).count()))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap() as u64).sum()
        });
        assert_eq!(written, 1);
        assert_eq!(gate.pass_at(3_600_007), Some(7999));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct E {
        text: &'static str,
        #[source]
        source: Option<Box<E>>,
    }

    fn e(text: &'static str, source: Option<E>) -> E {
        E {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn a_cause_already_said_is_not_said_again() {
        let auth = "password authentication failed for user \"x\"";
        let db = e(
            "error returned from database: password authentication failed for user \"x\"",
            Some(e(auth, None)),
        );
        let top = e("cannot connect", Some(db));
        assert_eq!(
            error_chain(&top),
            "cannot connect: error returned from database: password authentication failed for user \"x\""
        );
        let distinct = e("a", Some(e("b", Some(e("c", None)))));
        assert_eq!(error_chain(&distinct), "a: b: c");
    }

    #[test]
    fn colour_only_on_a_terminal() {
        assert!(!colour(false));
    }
}
