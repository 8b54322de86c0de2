//! Messages: the subject and bodies a mailing sends.

use anyhow::Context as _;
use sqlx::FromRow;

use super::{Db, now_ms, search};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Message {
    pub id: i64,
    pub owner_id: i64,
    pub subject: String,
    pub body: String,
    pub body_html: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Bumped by every save: the edit form's guard against lost updates.
    pub version: i64,
}

/// A row of the list page, with its owner's e-mail and how many mailings use it.
#[derive(Debug, Clone, FromRow)]
pub struct ListedMessage {
    pub id: i64,
    pub owner_id: i64,
    pub subject: String,
    pub created_at: i64,
    pub owner_email: String,
    pub mailings: i64,
}

/// The WHERE clause and its binds ($1 owner, $2 pattern) for list and count.
fn filter(db: &Db, owner: Option<i64>, search: &str) -> (String, i64, String) {
    let owner_clause = if owner.is_some() {
        "m.owner_id = $1"
    } else {
        "$1 = $1"
    };
    let search = &search::searchable(search);
    let search_clause = if search.is_empty() {
        "$2 = $2".to_string()
    } else {
        search::contains_any(db.backend, &["m.subject", "m.body"], "$2")
    };
    (
        format!("WHERE {owner_clause} AND {search_clause}"),
        owner.unwrap_or(0),
        search::like_pattern(search),
    )
}

pub async fn list(
    db: &Db,
    owner: Option<i64>,
    search: &str,
    limit: i64,
    offset: i64,
) -> anyhow::Result<Vec<ListedMessage>> {
    let (clause, owner, pattern) = filter(db, owner, search);
    let sql = format!(
        "SELECT m.id, m.owner_id, m.subject, m.created_at, o.email AS owner_email, \
         (SELECT CAST(COUNT(*) AS BIGINT) FROM mailings g WHERE g.message_id = m.id) AS mailings \
         FROM messages m JOIN users o ON o.id = m.owner_id {clause} \
         ORDER BY m.created_at DESC, m.id DESC LIMIT $3 OFFSET $4"
    );
    sqlx::query_as::<_, ListedMessage>(sqlx::AssertSqlSafe(sql))
        .persistent(search::keep_prepared(search))
        .bind(owner)
        .bind(pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await
        .context("cannot list messages")
}

/// How many messages match, counted up to [`crate::domain::COUNT_CAP`] + 1.
pub async fn count(db: &Db, owner: Option<i64>, search: &str) -> anyhow::Result<i64> {
    let (clause, owner, pattern) = filter(db, owner, search);
    let sql = search::capped_count(&format!("SELECT 1 FROM messages m {clause}"));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .persistent(search::keep_prepared(search))
        .bind(owner)
        .bind(pattern)
        .fetch_one(&db.pool)
        .await
        .context("cannot count messages")
}

pub async fn get(db: &Db, id: i64) -> anyhow::Result<Option<Message>> {
    sqlx::query_as::<_, Message>(
        "SELECT id, owner_id, subject, body, body_html, created_at, updated_at, version \
         FROM messages WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await
    .context("cannot load message")
}

pub async fn insert(
    db: &Db,
    owner_id: i64,
    subject: &str,
    body: &str,
    body_html: Option<&str>,
) -> anyhow::Result<i64> {
    let now = now_ms();
    sqlx::query_scalar::<_, i64>(
        "INSERT INTO messages (owner_id, subject, body, body_html, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(owner_id)
    .bind(subject)
    .bind(body)
    .bind(body_html)
    .bind(now)
    .fetch_one(&db.pool)
    .await
    .context("cannot insert message")
}

/// Changes a message. With `expected_version` the change lands only on that version of the
/// row: `Ok(false)` when someone saved it since (or it is gone), so nothing is overwritten.
pub async fn update(
    db: &Db,
    id: i64,
    expected_version: Option<i64>,
    subject: &str,
    body: &str,
    body_html: Option<&str>,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE messages SET subject = $1, body = $2, body_html = $3, updated_at = $4, \
           version = version + 1 \
         WHERE id = $5 AND ($6 = 0 OR version = $6)",
    )
    .bind(subject)
    .bind(body)
    .bind(body_html)
    .bind(now_ms())
    .bind(id)
    .bind(expected_version.unwrap_or(0))
    .execute(&db.pool)
    .await
    .context("cannot update message")?;
    Ok(done.rows_affected() == 1)
}

/// Mailings using the message that have a run sending now: an edit reaches their next run,
/// not this one (runs fix their content when they start).
pub async fn sending_mailings(db: &Db, id: i64) -> anyhow::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT DISTINCT m.id FROM mailings m JOIN runs r ON r.mailing_id = m.id \
         WHERE m.message_id = $1 AND r.status = 'running' ORDER BY m.id",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await
    .context("cannot find the sending mailings of a message")
}

/// (id, label) of the mailings that use a message: what blocks its deletion.
pub async fn used_by(db: &Db, id: i64) -> anyhow::Result<Vec<(i64, String)>> {
    sqlx::query_as::<_, (i64, String)>(
        "SELECT id, status FROM mailings WHERE message_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await
    .context("cannot find the mailings of a message")
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// Mailings still use the message (the foreign key refused the delete).
    #[error("the message is used by mailings")]
    InUse,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

pub async fn delete(db: &Db, id: i64) -> Result<(), DeleteError> {
    match sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
    {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(DeleteError::InUse),
        Err(e) => Err(anyhow::Error::new(e)
            .context("cannot delete message")
            .into()),
    }
}
