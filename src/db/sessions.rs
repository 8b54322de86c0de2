//! Server-side sessions kept in the database (when Redis is not configured).
//!
//! Rows are keyed by a SHA-256 of the session id, so a copy of the table cannot be replayed
//! as cookies.

use anyhow::Context as _;

use super::{Db, now_ms};

pub async fn load(db: &Db, key: &str) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar::<_, String>(
        "SELECT entries FROM sessions WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(key)
    .bind(now_ms())
    .fetch_optional(&db.pool)
    .await
    .context("cannot load session")
}

pub async fn store(
    db: &Db,
    key: &str,
    user_id: Option<i64>,
    entries: &str,
    expires_at: Option<i64>,
) -> anyhow::Result<()> {
    let now = now_ms();
    let _turn = db.write_turn().await;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, entries, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, entries = excluded.entries, \
         expires_at = excluded.expires_at, updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(user_id)
    .bind(entries)
    .bind(expires_at)
    .bind(now)
    .execute(&db.pool)
    .await
    .context("cannot store session")?;
    Ok(())
}

pub async fn remove(db: &Db, key: &str) -> anyhow::Result<()> {
    let _turn = db.write_turn().await;
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(key)
        .execute(&db.pool)
        .await
        .context("cannot remove session")?;
    Ok(())
}

/// Ends every session of a user (password change, deactivation).
pub async fn remove_for_user(db: &Db, user_id: i64) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&db.pool)
        .await
        .context("cannot end the user's sessions")?;
    Ok(())
}

/// Housekeeping: drops expired rows.
pub async fn purge_expired(db: &Db) -> anyhow::Result<u64> {
    let done =
        sqlx::query("DELETE FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now_ms())
            .execute(&db.pool)
            .await
            .context("cannot purge expired sessions")?;
    Ok(done.rows_affected())
}
