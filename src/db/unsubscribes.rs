//! Per-owner opt-outs from the List-Unsubscribe link (SPEC §7): deliveries to these addresses
//! are `skipped`.

use anyhow::Context as _;

use super::{Db, versions};

/// Records that `email` wants no more mail from `owner_id`; `false` when it already had (or
/// the owner no longer exists, so nothing of theirs can be sent anyway).
pub async fn add(
    db: &Db,
    owner_id: i64,
    email: &str,
    delivery_id: Option<i64>,
    now: i64,
) -> anyhow::Result<bool> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "INSERT INTO unsubscribes (owner_id, email, delivery_id, created_at) \
         SELECT id, $2, $3, $4 FROM users WHERE id = $1 \
         ON CONFLICT (owner_id, email) DO NOTHING",
    )
    .bind(owner_id)
    .bind(email.to_lowercase())
    .bind(delivery_id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("cannot record unsubscribe")?;
    let added = done.rows_affected() == 1;
    if added {
        versions::bump(&mut tx, owner_id, now).await?;
    }
    tx.commit().await.context("cannot commit unsubscribe")?;
    Ok(added)
}

pub async fn is_unsubscribed(db: &Db, owner_id: i64, email: &str) -> anyhow::Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM unsubscribes WHERE owner_id = $1 AND email = $2")
            .bind(owner_id)
            .bind(email.to_lowercase())
            .fetch_optional(&db.pool)
            .await
            .context("cannot look up unsubscribe")?;
    Ok(found.is_some())
}

/// Which of `emails` (lowercase) have unsubscribed from `owner_id`: one query per batch.
pub async fn among(db: &Db, owner_id: i64, emails: &[&str]) -> anyhow::Result<Vec<String>> {
    if emails.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = (0..emails.len())
        .map(|i| format!("${}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let sql =
        format!("SELECT email FROM unsubscribes WHERE owner_id = $1 AND email IN ({placeholders})");
    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(owner_id);
    for email in emails {
        query = query.bind(*email);
    }
    query
        .fetch_all(&db.pool)
        .await
        .context("cannot look up unsubscribes")
}
