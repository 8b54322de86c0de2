//! Recipients (SPEC §6 `/clients/…`): parsing what users type, the visibility rules, the
//! list and CSV import and export (the routes call this module, never `db`).

pub mod csv_io;

use crate::db::Db;
use crate::db::recipients::{self as db, ListedRecipient, WriteError};
pub use crate::db::recipients::{ImportStopped, ListQuery, Sort};
use crate::domain::{Email, FieldErrors, PageRequest, Scope, one_line};
use crate::objects::{
    ObjectError, changeable, expected_version, stale_unless_gone, visible, with_total,
};

pub const MAX_NAME: usize = 200;
pub const MAX_COMMENT: usize = 2000;

/// What the recipient form sends.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct RecipientForm {
    pub email: String,
    pub full_name: String,
    pub comment: String,
    /// The version the edit form was loaded with (hidden field).
    #[serde(deserialize_with = "crate::objects::deserialize_version")]
    pub version: String,
}

impl RecipientForm {
    pub fn from_recipient(r: &ListedRecipient) -> Self {
        Self {
            email: r.email.clone(),
            full_name: r.full_name.clone(),
            comment: r.comment.clone(),
            version: r.version.to_string(),
        }
    }
}

/// A recipient as it may be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecipient {
    pub email: Email,
    pub full_name: String,
    pub comment: String,
}

pub fn parse_name(input: &str) -> Result<String, String> {
    let name = one_line(input, MAX_NAME)?;
    if name.chars().count() < 2 {
        return Err("Enter a name of at least 2 characters.".into());
    }
    Ok(name)
}

pub fn parse_comment(input: &str) -> Result<String, String> {
    let comment = input.trim();
    if comment.contains('\0') {
        return Err("The comment contains a NUL character.".into());
    }
    if comment.chars().count() > MAX_COMMENT {
        return Err(format!("A comment has at most {MAX_COMMENT} characters."));
    }
    Ok(comment.replace("\r\n", "\n"))
}

impl TryFrom<&RecipientForm> for NewRecipient {
    type Error = FieldErrors;

    fn try_from(form: &RecipientForm) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let email = errors.check("email", Email::parse(&form.email));
        let full_name = errors.check("full_name", parse_name(&form.full_name));
        let comment = errors.check("comment", parse_comment(&form.comment));
        match (email, full_name, comment) {
            (Some(email), Some(full_name), Some(comment)) if errors.is_empty() => Ok(Self {
                email,
                full_name,
                comment,
            }),
            _ => Err(errors),
        }
    }
}

fn duplicate() -> ObjectError {
    let mut errors = FieldErrors::new();
    errors.add("email", "This address is already in your recipients.");
    ObjectError::Validation(errors)
}

fn write_error(err: WriteError) -> ObjectError {
    match err {
        WriteError::Duplicate => duplicate(),
        WriteError::Stale => ObjectError::Stale,
        WriteError::Unexpected(err) => ObjectError::Unexpected(err),
    }
}

/// Creates a recipient owned by the viewer.
pub async fn create(db: &Db, scope: &Scope, form: &RecipientForm) -> Result<i64, ObjectError> {
    let new = NewRecipient::try_from(form).map_err(ObjectError::Validation)?;
    db::insert(
        db,
        scope.user_id,
        new.email.as_str(),
        &new.full_name,
        &new.comment,
    )
    .await
    .map_err(write_error)
}

/// A recipient the viewer may see.
/// A page of the recipients `query` selects, and how many it selects in all.
pub async fn list(
    db: &Db,
    query: &ListQuery,
    page: PageRequest,
) -> anyhow::Result<(Vec<ListedRecipient>, i64)> {
    let rows = db::list(db, query, page.per_page, page.offset()).await?;
    with_total(page, rows, || db::count(db, query)).await
}

/// Every recipient `query` selects (the CSV export).
pub async fn all(db: &Db, query: &ListQuery) -> anyhow::Result<Vec<ListedRecipient>> {
    db::all(db, query).await
}

/// Imports parsed CSV rows for `owner_id`: new addresses are added, known ones updated.
/// Returns (created, updated); a database that stops part-way says how far it got.
pub async fn import(
    db: &Db,
    owner_id: i64,
    rows: &[db::ImportRow],
) -> Result<(u64, u64), ImportStopped> {
    db::upsert_many(db, owner_id, rows).await
}

pub async fn get(db: &Db, scope: &Scope, id: i64) -> Result<ListedRecipient, ObjectError> {
    let recipient = db::get_listed(db, id).await?.ok_or(ObjectError::NotFound)?;
    visible(scope, recipient.owner_id)?;
    Ok(recipient)
}

/// A recipient the viewer may change.
pub async fn get_for_change(
    db: &Db,
    scope: &Scope,
    id: i64,
) -> Result<ListedRecipient, ObjectError> {
    let recipient = get(db, scope, id).await?;
    changeable(scope, recipient.owner_id)?;
    Ok(recipient)
}

pub async fn update(
    db: &Db,
    scope: &Scope,
    id: i64,
    form: &RecipientForm,
) -> Result<(), ObjectError> {
    get_for_change(db, scope, id).await?;
    let new = NewRecipient::try_from(form).map_err(ObjectError::Validation)?;
    let saved = db::update(
        db,
        id,
        expected_version(&form.version),
        new.email.as_str(),
        &new.full_name,
        &new.comment,
    )
    .await
    .map_err(write_error);
    if let Err(ObjectError::Stale) = saved {
        return Err(stale_unless_gone(get_for_change(db, scope, id)).await);
    }
    saved
}

pub async fn delete(db: &Db, scope: &Scope, id: i64) -> Result<ListedRecipient, ObjectError> {
    let recipient = get_for_change(db, scope, id).await?;
    db::delete(db, id).await?;
    Ok(recipient)
}
