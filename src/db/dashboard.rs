//! The dashboard's counters (SPEC §6 `GET /`).

use anyhow::Context as _;

use super::Db;
use super::mailings::{NOT_ARCHIVED, RUNNING};
use crate::domain::Scope;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub mailings: i64,
    pub running: i64,
    pub recipients: i64,
}

/// Mailings, running mailings and distinct recipient addresses the viewer may see. An
/// archived mailing counts in neither: `/mailings/` hides it and it is never sent (its
/// history stays in stats and reports).
pub async fn counters(db: &Db, scope: &Scope) -> anyhow::Result<Counters> {
    let (mailings_where, recipients) = match scope.owner_filter() {
        // An owner's addresses are unique (`UNIQUE (owner_id, email)`): counting rows is
        // counting addresses, from the index alone. COUNT(DISTINCT) sorted all of them
        // (over a second on PostgreSQL at 100 000 under load).
        Some(_) => (
            "WHERE owner_id = $1",
            "SELECT CAST(COUNT(*) AS BIGINT) FROM recipients WHERE owner_id = $1",
        ),
        // Across owners the same address may appear more than once. `$1 = $1` keeps one bind
        // for both shapes of the query.
        None => (
            "WHERE $1 = $1",
            "SELECT CAST(COUNT(DISTINCT email) AS BIGINT) FROM recipients WHERE $1 = $1",
        ),
    };
    let owner = scope.owner_filter().unwrap_or(0);
    let sql = format!(
        "SELECT \
           (SELECT CAST(COUNT(*) AS BIGINT) FROM mailings {mailings_where} AND {NOT_ARCHIVED}), \
           (SELECT CAST(COUNT(*) AS BIGINT) FROM mailings {mailings_where} AND {RUNNING}), \
           ({recipients})"
    );
    let (mailings, running, recipients): (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .fetch_one(&db.pool)
        .await
        .context("cannot count dashboard figures")?;
    Ok(Counters {
        mailings,
        running,
        recipients,
    })
}
