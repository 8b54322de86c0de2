//! Pure types of the product: no framework, no I/O.

use time_tz::Tz;

/// The IANA zone of that name, if it exists.
pub fn time_zone(name: &str) -> Option<&'static Tz> {
    time_tz::timezones::get_by_name(name)
}
