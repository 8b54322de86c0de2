//! Message templates (SPEC §6). Minimal for now: insert and load by id; the messages pages
//! extend this file.

use anyhow::Context as _;
use sqlx::FromRow;

use super::{Db, now_ms};

/// A message as stored: subject and body with `{{full_name}}` / `{{email}}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Message {
    pub id: i64,
    pub owner_id: i64,
    pub subject: String,
    pub body: String,
    pub body_html: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn insert(
    db: &Db,
    owner_id: i64,
    subject: &str,
    body: &str,
    body_html: Option<&str>,
) -> anyhow::Result<i64> {
    let now = now_ms();
    sqlx::query_scalar(
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

pub async fn get(db: &Db, id: i64) -> anyhow::Result<Option<Message>> {
    sqlx::query_as::<_, Message>(
        "SELECT id, owner_id, subject, body, body_html, created_at, updated_at \
         FROM messages WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await
    .context("cannot load message")
}
