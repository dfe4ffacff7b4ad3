//! Logging: tracing to stderr, as text for people or JSON for log collectors.
//! `RUST_LOG` filters (default `info`).

use std::io::IsTerminal as _;

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

#[cfg(test)]
mod tests {
    use super::*;

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
