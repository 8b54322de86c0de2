//! Messages (SPEC §6 `/messages/…`): parsing, visibility, the rule that a message used by
//! a mailing cannot be deleted, and what the message pages load (the routes call this
//! module, never `db`). Placeholders are filled by `domain::template` alone, for the preview
//! here as for the sent mail.

use crate::db::Db;
use crate::db::messages::{self as db, DeleteError, ListedMessage, Message};
use crate::domain::template::{self, Values};
use crate::domain::{FieldErrors, PageRequest, Scope, one_line};
use crate::objects::{
    ObjectError, changeable, expected_version, stale_unless_gone, visible, with_total,
};

pub const MAX_SUBJECT: usize = 255;
/// Bodies are letters, not archives: generous caps that still bound a row.
pub const MAX_BODY: usize = 200_000;

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct MessageForm {
    pub subject: String,
    pub body: String,
    pub body_html: String,
    /// The version the edit form was loaded with (hidden field).
    #[serde(deserialize_with = "crate::objects::deserialize_version")]
    pub version: String,
}

impl MessageForm {
    pub fn from_message(m: &Message) -> Self {
        Self {
            subject: m.subject.clone(),
            body: m.body.clone(),
            body_html: m.body_html.clone().unwrap_or_default(),
            version: m.version.to_string(),
        }
    }
}

/// A message as it may be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub subject: String,
    pub body: String,
    pub body_html: Option<String>,
}

fn parse_subject(input: &str) -> Result<String, String> {
    if input.contains(['\r', '\n']) {
        return Err("The subject must be a single line.".into());
    }
    let subject = one_line(input, MAX_SUBJECT)
        .map_err(|_| format!("A subject has at most {MAX_SUBJECT} characters."))?;
    if subject.is_empty() {
        return Err("Enter a subject.".into());
    }
    placeholders_known(&subject)?;
    Ok(subject)
}

fn parse_body(input: &str, required: bool) -> Result<Option<String>, String> {
    let body = input.replace("\r\n", "\n");
    if body.contains('\0') {
        return Err("The text contains a NUL character.".into());
    }
    if body.chars().count() > MAX_BODY {
        return Err(format!("At most {MAX_BODY} characters."));
    }
    if body.trim().is_empty() {
        return if required {
            Err("Enter the text of the message.".into())
        } else {
            Ok(None)
        };
    }
    placeholders_known(&body)?;
    Ok(Some(body))
}

/// A typo like `{{first_name}}` would reach every recipient raw: refused at save, naming it.
fn placeholders_known(text: &str) -> Result<(), String> {
    template::check(text).map_err(|err| err.to_string())
}

impl TryFrom<&MessageForm> for NewMessage {
    type Error = FieldErrors;

    fn try_from(form: &MessageForm) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let subject = errors.check("subject", parse_subject(&form.subject));
        let body = errors.check("body", parse_body(&form.body, true)).flatten();
        let body_html = errors.check("body_html", parse_body(&form.body_html, false));
        match (subject, body, body_html) {
            (Some(subject), Some(body), Some(body_html)) if errors.is_empty() => Ok(Self {
                subject,
                body,
                body_html,
            }),
            _ => Err(errors),
        }
    }
}

pub async fn create(db: &Db, scope: &Scope, form: &MessageForm) -> Result<i64, ObjectError> {
    let new = NewMessage::try_from(form).map_err(ObjectError::Validation)?;
    Ok(db::insert(
        db,
        scope.user_id,
        &new.subject,
        &new.body,
        new.body_html.as_deref(),
    )
    .await?)
}

/// A page of the messages the viewer sees (their own, or everyone's) matching `search`, and
/// how many match in all.
pub async fn list(
    db: &Db,
    scope: &Scope,
    search: &str,
    page: PageRequest,
) -> anyhow::Result<(Vec<ListedMessage>, i64)> {
    let owner = scope.owner_filter();
    let rows = db::list(db, owner, search, page.per_page, page.offset()).await?;
    with_total(page, rows, || db::count(db, owner, search)).await
}

/// The mailings (id, subject line shown) that send this message: a message in use is not
/// deleted, and its pages say where it is used.
pub async fn used_by(db: &Db, id: i64) -> anyhow::Result<Vec<(i64, String)>> {
    db::used_by(db, id).await
}

/// The mailings sending this message right now (their runs keep the version they started
/// with; the edit page says so).
pub async fn sending_mailings(db: &Db, id: i64) -> anyhow::Result<Vec<i64>> {
    db::sending_mailings(db, id).await
}

pub async fn get(db: &Db, scope: &Scope, id: i64) -> Result<Message, ObjectError> {
    let message = db::get(db, id).await?.ok_or(ObjectError::NotFound)?;
    visible(scope, message.owner_id)?;
    Ok(message)
}

pub async fn get_for_change(db: &Db, scope: &Scope, id: i64) -> Result<Message, ObjectError> {
    let message = get(db, scope, id).await?;
    changeable(scope, message.owner_id)?;
    Ok(message)
}

pub async fn update(
    db: &Db,
    scope: &Scope,
    id: i64,
    form: &MessageForm,
) -> Result<(), ObjectError> {
    get_for_change(db, scope, id).await?;
    let new = NewMessage::try_from(form).map_err(ObjectError::Validation)?;
    let saved = db::update(
        db,
        id,
        expected_version(&form.version),
        &new.subject,
        &new.body,
        new.body_html.as_deref(),
    )
    .await?;
    if !saved {
        return Err(stale_unless_gone(get_for_change(db, scope, id)).await);
    }
    Ok(())
}

/// Deletes a message no mailing uses; otherwise says which mailings use it.
pub async fn delete(db: &Db, scope: &Scope, id: i64) -> Result<Message, ObjectError> {
    let message = get_for_change(db, scope, id).await?;
    if !db::used_by(db, id).await?.is_empty() {
        return Err(in_use(db, id).await);
    }
    // The foreign key still guards against a mailing created in between.
    match db::delete(db, id).await {
        Ok(()) => Ok(message),
        Err(DeleteError::InUse) => Err(in_use(db, id).await),
        Err(DeleteError::Unexpected(err)) => Err(err.into()),
    }
}

async fn in_use(db: &Db, id: i64) -> ObjectError {
    match db::used_by(db, id).await {
        Ok(mailings) => {
            let list = mailings
                .iter()
                .map(|(id, status)| format!("#{id} ({status})"))
                .collect::<Vec<_>>()
                .join(", ");
            ObjectError::Refused(format!(
                "This message cannot be deleted: it is used by mailing {list}. \
                 A mailing that never ran can be deleted first; one that ran keeps its message \
                 with its history."
            ))
        }
        Err(err) => ObjectError::Unexpected(err),
    }
}

/// The message as a sample recipient would receive it: (subject, text, html), filled by the
/// same function as the send.
pub fn preview(
    message: &Message,
    full_name: &str,
    email: &str,
) -> (String, String, Option<String>) {
    let values = Values { full_name, email };
    (
        template::fill_text(&message.subject, values),
        template::fill_text(&message.body, values),
        message
            .body_html
            .as_deref()
            .map(|h| template::fill_html(h, values)),
    )
}
