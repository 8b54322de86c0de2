//! Data versions (SPEC §9): one counter per scope, bumped in the same transaction as every
//! change a cached page or report covers, so caches and ETags keyed by it are never stale.

use anyhow::Context as _;
use sqlx::AnyConnection;

use super::Db;

/// The scope of everything one user owns.
pub fn user_scope(owner_id: i64) -> String {
    format!("user:{owner_id}")
}

/// Bumps the owner's version (creating it at 1) inside the caller's transaction.
pub async fn bump(conn: &mut AnyConnection, owner_id: i64, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO data_versions (scope, version, updated_at) VALUES ($1, 1, $2) \
         ON CONFLICT (scope) DO UPDATE SET version = data_versions.version + 1, \
         updated_at = excluded.updated_at",
    )
    .bind(user_scope(owner_id))
    .bind(now)
    .execute(conn)
    .await
    .context("cannot bump data version")?;
    Ok(())
}

/// The scope's (version, updated_at), `None` before its first change.
pub async fn get(db: &Db, scope: &str) -> anyhow::Result<Option<(i64, i64)>> {
    sqlx::query_as("SELECT version, updated_at FROM data_versions WHERE scope = $1")
        .bind(scope)
        .fetch_optional(&db.pool)
        .await
        .context("cannot read data version")
}
