//! The durations a spec writes as text (`rules.window`, `mailboxes[].scanInterval`), parsed
//! once here for both `validate` and the worker that uses them, so the two cannot disagree
//! about what `30d` or `1h30m` means.

use std::time::Duration;

/// `rules.window`: how far back bounces count, e.g. `720h`, `30d`, `1h30m`.
pub fn window(text: &str) -> Result<Duration, &'static str> {
    let d = humantime::parse_duration(text).map_err(|_| "not a duration such as 720h or 30d")?;
    // A zero window would count no bounce at all: no rule would ever act.
    if d.is_zero() {
        return Err("must be longer than zero");
    }
    Ok(d)
}

/// The shortest `scanInterval`: below a second a failing server would be hammered.
pub const MIN_SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// `mailboxes[].scanInterval`: the pause between two scans of a mailbox, e.g. `15m`.
pub fn scan_interval(text: &str) -> Result<Duration, &'static str> {
    let d = humantime::parse_duration(text).map_err(|_| "not a duration such as 15m or 1h")?;
    if d < MIN_SCAN_INTERVAL {
        return Err("must be at least 1s");
    }
    Ok(d)
}

/// `smtp.commandTimeout` and `smtp.dataTimeout`: from a second (a test server) to an
/// hour (beyond it a silent peer holds a session slot for nothing).
pub fn smtp_timeout(text: &str) -> Result<Duration, &'static str> {
    let d = humantime::parse_duration(text).map_err(|_| "not a duration such as 5m or 30s")?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err("must be between 1s and 1h");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_positive_durations() {
        assert_eq!(window("720h"), Ok(Duration::from_secs(720 * 3600)));
        assert_eq!(window("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(window("0s"), Err("must be longer than zero"));
        assert_eq!(
            window("a fortnight"),
            Err("not a duration such as 720h or 30d")
        );
    }

    #[test]
    fn scan_intervals_are_a_second_or_more() {
        assert_eq!(scan_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(scan_interval("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(scan_interval("999ms"), Err("must be at least 1s"));
        assert_eq!(
            scan_interval("soon"),
            Err("not a duration such as 15m or 1h")
        );
    }
}
