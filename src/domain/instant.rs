//! Instants as stored: unix milliseconds UTC in every timestamp column, `OffsetDateTime` in
//! code. This is the one home of the conversion both ways.

use time::OffsetDateTime;

/// Unix milliseconds, the form every timestamp is stored in.
pub fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The instant of `ms` unix milliseconds (clamped to the epoch when `time` cannot represent
/// it: a stored value is never that far off, and a page must not fail on one).
pub fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip() {
        for ms in [0, 1, 1_767_225_600_123, -86_400_000] {
            assert_eq!(to_ms(from_ms(ms)), ms);
        }
        assert_eq!(from_ms(i64::MAX), OffsetDateTime::UNIX_EPOCH);
    }
}
