//! What can go wrong with an owned object (a recipient, a message, a mailing), whatever it is.

use crate::domain::{FieldErrors, PageRequest, Scope};

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Absent, or not the viewer's to see: both answer 404 (SPEC §5).
    #[error("not found")]
    NotFound,
    /// Visible to the viewer (`view_all_mailings`) but not theirs to change.
    #[error("You can see this, but it belongs to another user: you cannot change it.")]
    ReadOnly,
    /// The input did not parse; the form is shown again with these messages.
    #[error("invalid input")]
    Validation(FieldErrors),
    /// The form was made from an older version of the object: someone saved it since. The
    /// handler shows both versions (409) instead of overwriting theirs.
    #[error("Someone else saved this in the meantime.")]
    Stale,
    /// The request is understood but refused for a reason the user should read.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// `Ok` when the viewer may see an object of `owner_id`.
pub fn visible(scope: &Scope, owner_id: i64) -> Result<(), ObjectError> {
    if scope.can_view(owner_id) {
        Ok(())
    } else {
        Err(ObjectError::NotFound)
    }
}

/// `Ok` when the viewer may change an object of `owner_id`; a visible but foreign object is
/// read-only, an invisible one does not exist.
pub fn changeable(scope: &Scope, owner_id: i64) -> Result<(), ObjectError> {
    visible(scope, owner_id)?;
    if scope.can_change(owner_id) {
        Ok(())
    } else {
        Err(ObjectError::ReadOnly)
    }
}

/// A path id as users may type it: anything that is not a positive integer names nothing.
pub fn parse_id(raw: &str) -> Result<i64, ObjectError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ObjectError::NotFound)
}

/// The longest `version` field kept: a version is a counter (at most 19 digits); anything
/// longer is garbage that must not be echoed back into the 409 page it causes.
pub const MAX_VERSION: usize = 20;

/// The `version` field as forms keep it: cut to [`MAX_VERSION`] characters.
pub fn cap_version(raw: &str) -> String {
    raw.chars().take(MAX_VERSION).collect()
}

/// `#[serde(deserialize_with)]` for the `version` field of an edit form: [`cap_version`].
pub fn deserialize_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    Ok(cap_version(&raw))
}

/// A save refused as stale: if the object was deleted in between (`still_there` fails),
/// that is what the user is told ("not found"), not a conflict.
pub async fn stale_unless_gone<T>(
    still_there: impl std::future::Future<Output = Result<T, ObjectError>>,
) -> ObjectError {
    match still_there.await {
        Ok(_) => ObjectError::Stale,
        Err(err) => err,
    }
}

/// The version an edit form was loaded with (its hidden `version` field). Absent: the client
/// did not ask for the check (a script), the save applies as before. Not a version number:
/// it matches no version, so the save is refused as stale rather than applied blindly.
pub fn expected_version(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Some(raw.parse::<i64>().ok().filter(|v| *v > 0).unwrap_or(-1))
}

/// A page of a list and the total the pager shows: the count query runs only when the page
/// itself does not tell it ([`PageRequest::known_total`]), the same way for every list.
pub async fn with_total<T, F>(
    page: PageRequest,
    rows: Vec<T>,
    count: impl FnOnce() -> F,
) -> anyhow::Result<(Vec<T>, i64)>
where
    F: std::future::Future<Output = anyhow::Result<i64>>,
{
    let total = match page.known_total(rows.len()) {
        Some(total) => total,
        None => count().await?,
    };
    Ok((rows, total))
}
