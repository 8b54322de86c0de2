//! Pure types of the product: no framework, no I/O. Parse, don't validate: a value of these
//! types is valid by construction.

pub mod choice;
pub mod csv_cell;
mod email;
mod fields;
pub mod instant;
pub mod local_time;
pub mod mailing;
mod page;
mod password;
mod scope;
pub mod template;
mod zone;

pub use email::{Email, MAX_LEN as MAX_EMAIL_LEN};
pub use fields::FieldErrors;
pub use mailing::{DeliveryStatus, MailingStatus, Period, RunStatus, RunTotals, Trigger};
pub use page::{COUNT_CAP, PER_PAGE, PageRequest, count_label};
pub use password::{MAX_LEN as MAX_PASSWORD_LEN, Password};
pub use scope::Scope;
pub use zone::TimeZone;

/// `value` quoted for an error message, cut to a few dozen characters: a message names
/// what was typed, it does not send megabytes of it back.
pub fn quoted(value: &str) -> String {
    const SHOWN: usize = 60;
    match value.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}…", &value[..end]),
        None => format!("{value:?}"),
    }
}

/// Trims `value` and checks it fits in `max` characters and one line.
pub fn one_line(value: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.contains(['\r', '\n', '\0']) {
        return Err("must be a single line".into());
    }
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(value.to_string())
}
