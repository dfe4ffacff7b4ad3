//! Signed timestamps: a signature is accepted only within a tolerance of the worker's
//! clock, so that a captured request cannot be replayed later.

use chrono::{DateTime, Utc};

use super::Rejection;

/// Refuses a signed timestamp (Unix seconds) further than `tolerance` from `now`, either
/// way: a clock skewed into the future is as suspicious as a replay from the past.
pub fn check_timestamp(
    timestamp: &str,
    now: DateTime<Utc>,
    tolerance_seconds: u32,
) -> Result<(), Rejection> {
    let t: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Rejection::Unauthorized("signature timestamp is not a number"))?;
    check_age(t, now, tolerance_seconds)
}

/// [`check_timestamp`] for an RFC 3339 time (SNS's `Timestamp`).
pub fn check_rfc3339_timestamp(
    timestamp: &str,
    now: DateTime<Utc>,
    tolerance_seconds: u32,
) -> Result<(), Rejection> {
    let t = DateTime::parse_from_rfc3339(timestamp.trim())
        .map_err(|_| Rejection::Unauthorized("signature timestamp is not a time"))?;
    check_age(t.timestamp(), now, tolerance_seconds)
}

/// Refuses a time (Unix seconds) further than `tolerance` from `now`.
fn check_age(t: i64, now: DateTime<Utc>, tolerance_seconds: u32) -> Result<(), Rejection> {
    // abs_diff: the timestamp is the sender's, any i64 at all; `(now - t).abs()` overflows
    // (a panic in a debug build) for t near i64::MIN or MAX.
    if now.timestamp().abs_diff(t) > u64::from(tolerance_seconds) {
        return Err(Rejection::Unauthorized(
            "signature timestamp outside the tolerance",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamp_tolerance_both_ways() {
        let now = Utc.timestamp_opt(1_000_000, 0).unwrap();
        assert!(check_timestamp("1000000", now, 300).is_ok());
        assert!(check_timestamp("999700", now, 300).is_ok());
        assert!(check_timestamp("999699", now, 300).is_err());
        assert!(check_timestamp("1000301", now, 300).is_err());
        assert!(check_timestamp("soon", now, 300).is_err());
        // Any i64 a sender puts there is refused, never an overflow.
        for extreme in [i64::MIN, i64::MIN + 1, i64::MAX] {
            assert!(check_timestamp(&extreme.to_string(), now, u32::MAX).is_err());
        }
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
        assert!(check_rfc3339_timestamp("2026-12-04T11:00:00.123Z", now, 3900).is_ok());
        for refused in [
            "2001-01-01T00:00:00Z",
            "2099-01-01T00:00:00Z",
            "not a time",
            "",
        ] {
            assert!(
                check_rfc3339_timestamp(refused, now, 3900).is_err(),
                "{refused}"
            );
        }
    }
}
