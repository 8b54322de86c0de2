//! The viewer's time zone: the one home of "the user's zone, else the server's `TIME_ZONE`"
//! (SPEC §6) and of looking an IANA name up. Times are entered and shown in a [`TimeZone`];
//! they are stored as UTC milliseconds ([`super::instant`]).

use std::fmt;

use time::{Date, OffsetDateTime};
use time_tz::{OffsetDateTimeExt, TimeZone as _, Tz};

/// An IANA time zone that exists (so by construction one that times can be converted in).
#[derive(Clone, Copy)]
pub struct TimeZone(&'static Tz);

impl TimeZone {
    pub const UTC: TimeZone = TimeZone(time_tz::timezones::db::UTC);

    /// The zone of that IANA name, if it exists.
    pub fn parse(name: &str) -> Option<Self> {
        time_tz::timezones::get_by_name(name).map(Self)
    }

    /// The zone a user sees and enters times in: their profile's, else the server's
    /// `TIME_ZONE` (checked at startup), else UTC (a zone name an older build accepted and
    /// this one no longer knows must not make a page fail).
    pub fn for_user(user_zone: Option<&str>, server_zone: &str) -> Self {
        user_zone
            .and_then(Self::parse)
            .or_else(|| Self::parse(server_zone))
            .unwrap_or(Self::UTC)
    }

    /// Its IANA name, as users type it.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The `time-tz` zone, for calendar arithmetic.
    pub fn tz(self) -> &'static Tz {
        self.0
    }

    /// `at` as a wall-clock time in this zone.
    pub fn local(self, at: OffsetDateTime) -> OffsetDateTime {
        at.to_timezone(self.0)
    }

    /// The date it is in this zone at `ms` (unix milliseconds).
    pub fn date_at(self, ms: i64) -> Date {
        self.local(super::instant::from_ms(ms)).date()
    }
}

impl PartialEq for TimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for TimeZone {}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeZone({})", self.name())
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_zone_wins_then_the_servers_then_utc() {
        let berlin = TimeZone::parse("Europe/Berlin").unwrap();
        let tokyo = TimeZone::parse("Asia/Tokyo").unwrap();
        assert_eq!(
            TimeZone::for_user(Some("Asia/Tokyo"), "Europe/Berlin"),
            tokyo
        );
        assert_eq!(TimeZone::for_user(None, "Europe/Berlin"), berlin);
        assert_eq!(
            TimeZone::for_user(Some("Mars/Base"), "Europe/Berlin"),
            berlin
        );
        assert_eq!(TimeZone::for_user(None, "Mars/Base"), TimeZone::UTC);
        assert_eq!(tokyo.name(), "Asia/Tokyo");
        assert!(TimeZone::parse("Mars/Base").is_none());
    }

    #[test]
    fn the_date_depends_on_the_zone() {
        // 2026-01-01 23:30 UTC is already 2 January in Tokyo.
        let ms = 1_767_310_200_000;
        assert_eq!(TimeZone::UTC.date_at(ms).day(), 1);
        assert_eq!(TimeZone::parse("Asia/Tokyo").unwrap().date_at(ms).day(), 2);
    }
}
