//! Times as users enter and read them: `YYYY-MM-DDTHH:MM` in their zone, stored as UTC
//! milliseconds (SPEC §6).

use time::PrimitiveDateTime;
use time::macros::format_description;
use time_tz::PrimitiveDateTimeExt;

use super::TimeZone;
use super::instant::{from_ms, to_ms};

/// Parses `YYYY-MM-DDTHH:MM` (what `<input type="datetime-local">` sends; seconds allowed)
/// as a local time in `zone`, to UTC milliseconds.
pub fn parse_local(input: &str, zone: TimeZone) -> Result<i64, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("Enter a date and time.".into());
    }
    let with_minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let with_seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let local = PrimitiveDateTime::parse(input, with_minutes)
        .or_else(|_| PrimitiveDateTime::parse(input, with_seconds))
        .map_err(|_| format!("{input:?} is not a date and time like 2026-12-24T18:30."))?;
    // A time in a DST gap does not exist; in an overlap, the first occurrence is meant.
    let instant = local
        .assume_timezone(zone.tz())
        .take_first()
        .ok_or_else(|| format!("{input} does not exist in {zone} (the clocks skip it)."))?;
    Ok(to_ms(instant))
}

/// UTC milliseconds as the `YYYY-MM-DDTHH:MM` a `datetime-local` input shows, in `zone`.
pub fn format_local(ms: i64, zone: TimeZone) -> String {
    zone.local(from_ms(ms))
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::parse(name).unwrap()
    }

    #[test]
    fn local_times_round_trip_through_utc() {
        let ms = parse_local("2026-07-01T12:30", zone("Europe/Berlin")).unwrap();
        assert_eq!(format_local(ms, zone("UTC")), "2026-07-01T10:30");
        assert_eq!(format_local(ms, zone("Europe/Berlin")), "2026-07-01T12:30");
        assert_eq!(parse_local("2026-07-01T10:30:00", zone("UTC")).unwrap(), ms);
    }

    #[test]
    fn nonsense_and_dst_gaps_are_refused() {
        for bad in [
            "",
            "tomorrow",
            "2026-13-01T00:00",
            "2026-02-30T10:00",
            "2026-01-01 10:00",
        ] {
            assert!(parse_local(bad, zone("UTC")).is_err(), "{bad}");
        }
        assert!(
            parse_local("2026-03-29T02:30", zone("Europe/Berlin"))
                .unwrap_err()
                .contains("does not exist")
        );
    }
}
