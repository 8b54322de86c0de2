//! A user's recipients ("clients", SPEC §6). Minimal for now: insert and load by id; the
//! recipients pages extend this file.

use anyhow::Context as _;
use sqlx::FromRow;

use super::{Db, now_ms};

/// A recipient as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Recipient {
    pub id: i64,
    pub owner_id: i64,
    pub email: String,
    pub full_name: String,
    pub comment: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Inserts a recipient; the e-mail is expected parsed and lowercased (`domain::Email`).
pub async fn insert(
    db: &Db,
    owner_id: i64,
    email: &str,
    full_name: &str,
    comment: &str,
) -> anyhow::Result<i64> {
    let now = now_ms();
    sqlx::query_scalar(
        "INSERT INTO recipients (owner_id, email, full_name, comment, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(owner_id)
    .bind(email)
    .bind(full_name)
    .bind(comment)
    .bind(now)
    .fetch_one(&db.pool)
    .await
    .context("cannot insert recipient")
}

pub async fn get(db: &Db, id: i64) -> anyhow::Result<Option<Recipient>> {
    sqlx::query_as::<_, Recipient>(
        "SELECT id, owner_id, email, full_name, comment, created_at, updated_at \
         FROM recipients WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await
    .context("cannot load recipient")
}
