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

/// What a cached figure or an ETag is keyed by: a version and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataVersion {
    /// Grows with every change (for several users: the sum of their versions).
    pub version: i64,
    /// Unix ms of the latest change (0 before any).
    pub updated_at: i64,
    /// How many user scopes the version sums (1 for one user): a deleted user lowers the
    /// sum, and the count keeps that state from ever matching an earlier one.
    pub scopes: i64,
}

impl DataVersion {
    /// A short token for cache keys and ETag variants.
    pub fn token(&self) -> String {
        format!("{}.{}.{}", self.version, self.scopes, self.updated_at)
    }
}

/// The version of everything one user owns.
pub async fn of_user(db: &Db, owner_id: i64) -> anyhow::Result<DataVersion> {
    let found = get(db, &user_scope(owner_id)).await?;
    Ok(found
        .map(|(version, updated_at)| DataVersion {
            version,
            updated_at,
            scopes: 1,
        })
        .unwrap_or_default())
}

/// The version of every user's data together, for viewers who see all of it.
///
/// Derived from the per-user rows rather than kept in a row of its own: a shared `all` row
/// bumped by every delivery would serialise concurrent senders on one row lock, whereas
/// this sum reads one small row per user. Versions only grow, so the sum, the number of
/// users and the latest change together change whenever any user's data does.
pub async fn of_everyone(db: &Db) -> anyhow::Result<DataVersion> {
    let (version, scopes, updated_at): (Option<i64>, i64, Option<i64>) = sqlx::query_as(
        "SELECT CAST(SUM(version) AS BIGINT), CAST(COUNT(*) AS BIGINT), \
           CAST(MAX(updated_at) AS BIGINT) \
         FROM data_versions WHERE scope LIKE 'user:%'",
    )
    .fetch_one(&db.pool)
    .await
    .context("cannot read data versions")?;
    Ok(DataVersion {
        version: version.unwrap_or(0),
        updated_at: updated_at.unwrap_or(0),
        scopes,
    })
}
