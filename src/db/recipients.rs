//! Recipients (the seed's *clients*): an owner's address book.

use anyhow::Context as _;
use sqlx::FromRow;

use super::{Db, WRITE_CHUNK_ROWS, now_ms, search, versions};
use crate::config::DatabaseBackend;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Recipient {
    pub id: i64,
    pub owner_id: i64,
    pub email: String,
    pub full_name: String,
    pub comment: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

/// A row of the list page: the recipient, its owner's e-mail, and whether it unsubscribed.
#[derive(Debug, Clone, FromRow)]
pub struct ListedRecipient {
    pub id: i64,
    pub owner_id: i64,
    pub email: String,
    pub full_name: String,
    pub comment: String,
    pub created_at: i64,
    pub owner_email: String,
    pub unsubscribed: i64,
    /// Bumped by every save: the edit form's guard against lost updates.
    pub version: i64,
}

/// A recipient list's order (`?sort=name`, else newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Newest,
    Name,
}

impl crate::domain::choice::Choice for Sort {
    // The default's word is empty: its links carry no `sort=`.
    const WORDS: &'static [(Self, &'static str)] = &[(Sort::Newest, ""), (Sort::Name, "name")];
}

/// What a list shows: whose recipients, matching what, in which order.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `None`: every owner (viewers with `view_all_mailings`, superusers).
    pub owner: Option<i64>,
    pub search: String,
    pub sort: Sort,
}

impl ListQuery {
    /// The WHERE clause and its binds ($1 owner, $2 search), in one place for list, count and
    /// export. A search of three characters or more goes through the trigram index of
    /// [`super::search`] (on SQLite the FTS5 table, whose folding also covers non-ASCII case);
    /// a shorter one scans.
    fn filter(&self, backend: DatabaseBackend) -> (String, i64, String) {
        let owner = if self.owner.is_some() {
            "r.owner_id = $1"
        } else {
            "$1 = $1"
        };
        let text = &search::searchable(&self.search);
        let (search, bind) = if text.is_empty() {
            ("$2 = $2".to_string(), String::new())
        } else if backend == DatabaseBackend::Sqlite
            && text.chars().count() >= search::TRIGRAM_MIN_CHARS
        {
            (
                "r.id IN (SELECT rowid FROM recipients_fts WHERE recipients_fts MATCH $2)"
                    .to_string(),
                search::fts5_phrase(text),
            )
        } else {
            (
                search::contains_any(backend, &["r.email", "r.full_name", "r.comment"], "$2"),
                search::like_pattern(text),
            )
        };
        (
            format!("WHERE {owner} AND {search}"),
            self.owner.unwrap_or(0),
            bind,
        )
    }

    fn order(&self) -> &'static str {
        match self.sort {
            Sort::Newest => "ORDER BY r.created_at DESC, r.id DESC",
            Sort::Name => "ORDER BY r.full_name, r.id",
        }
    }
}

const LIST_COLUMNS: &str = "r.id, r.owner_id, r.email, r.full_name, r.comment, r.created_at, \
    o.email AS owner_email, \
    CASE WHEN u.id IS NULL THEN 0 ELSE 1 END AS unsubscribed, r.version";
const LIST_JOINS: &str = "JOIN users o ON o.id = r.owner_id \
    LEFT JOIN unsubscribes u ON u.owner_id = r.owner_id AND u.email = r.email";

pub async fn list(
    db: &Db,
    query: &ListQuery,
    limit: i64,
    offset: i64,
) -> anyhow::Result<Vec<ListedRecipient>> {
    let (filter, owner, pattern) = query.filter(db.backend);
    let sql = format!(
        "SELECT {LIST_COLUMNS} FROM recipients r {LIST_JOINS} {filter} {} LIMIT $3 OFFSET $4",
        query.order()
    );
    sqlx::query_as::<_, ListedRecipient>(sqlx::AssertSqlSafe(sql))
        .persistent(search::keep_prepared(&query.search))
        .bind(owner)
        .bind(pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await
        .context("cannot list recipients")
}

/// How many recipients match, counted up to [`COUNT_CAP`] + 1 (so the cost of a page is
/// bounded however large the list grows).
pub async fn count(db: &Db, query: &ListQuery) -> anyhow::Result<i64> {
    let (filter, owner, pattern) = query.filter(db.backend);
    let sql = search::capped_count(&format!("SELECT 1 FROM recipients r {filter}"));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .persistent(search::keep_prepared(&query.search))
        .bind(owner)
        .bind(pattern)
        .fetch_one(&db.pool)
        .await
        .context("cannot count recipients")
}

/// Every matching recipient, for the CSV export (in list order).
pub async fn all(db: &Db, query: &ListQuery) -> anyhow::Result<Vec<ListedRecipient>> {
    list(db, query, i64::MAX, 0).await
}

/// One recipient with its list details, whoever owns it (the caller checks the scope).
pub async fn get_listed(db: &Db, id: i64) -> anyhow::Result<Option<ListedRecipient>> {
    let sql = format!("SELECT {LIST_COLUMNS} FROM recipients r {LIST_JOINS} WHERE r.id = $1");
    sqlx::query_as::<_, ListedRecipient>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .context("cannot load recipient")
}

pub async fn get(db: &Db, id: i64) -> anyhow::Result<Option<Recipient>> {
    sqlx::query_as::<_, Recipient>(
        "SELECT id, owner_id, email, full_name, comment, created_at, updated_at, version \
         FROM recipients WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await
    .context("cannot load recipient")
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("this e-mail address is already in the list")]
    Duplicate,
    /// Someone saved the recipient after the form was loaded (its version moved on).
    #[error("the recipient was changed in the meantime")]
    Stale,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

fn map_write(err: sqlx::Error, what: &'static str) -> WriteError {
    match &err {
        sqlx::Error::Database(e) if e.is_unique_violation() => WriteError::Duplicate,
        _ => WriteError::Unexpected(anyhow::Error::new(err).context(what)),
    }
}

/// Inserts a recipient (values already parsed and normalised), bumping the owner's data
/// version: the dashboard counts distinct recipients.
pub async fn insert(
    db: &Db,
    owner_id: i64,
    email: &str,
    full_name: &str,
    comment: &str,
) -> Result<i64, WriteError> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let id = sqlx::query_scalar::<_, i64>(
        "INSERT INTO recipients (owner_id, email, full_name, comment, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(owner_id)
    .bind(email)
    .bind(full_name)
    .bind(comment)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| map_write(e, "cannot insert recipient"))?;
    versions::bump(&mut tx, owner_id, now).await?;
    tx.commit().await.context("cannot commit recipient")?;
    Ok(id)
}

/// Changes a recipient; the owner's data version follows (its e-mail may join or leave the
/// distinct count, and its mailings' audiences change with it). With `expected_version`, the
/// change lands only on that version of the row ([`WriteError::Stale`] otherwise): two
/// browsers saving the same recipient cannot silently overwrite each other.
pub async fn update(
    db: &Db,
    id: i64,
    expected_version: Option<i64>,
    email: &str,
    full_name: &str,
    comment: &str,
) -> Result<(), WriteError> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let owner: Option<i64> = sqlx::query_scalar(
        "UPDATE recipients SET email = $1, full_name = $2, comment = $3, updated_at = $4, \
           version = version + 1 \
         WHERE id = $5 AND ($6 = 0 OR version = $6) RETURNING owner_id",
    )
    .bind(email)
    .bind(full_name)
    .bind(comment)
    .bind(now)
    .bind(id)
    .bind(expected_version.unwrap_or(0))
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| map_write(e, "cannot update recipient"))?;
    let Some(owner) = owner else {
        return Err(WriteError::Stale);
    };
    versions::bump(&mut tx, owner, now).await?;
    tx.commit().await.context("cannot commit recipient")?;
    Ok(())
}

/// Deletes a recipient (and with it its place in mailings' audiences), bumping the owner's
/// data version.
pub async fn delete(db: &Db, id: i64) -> anyhow::Result<()> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let owner: Option<i64> =
        sqlx::query_scalar("DELETE FROM recipients WHERE id = $1 RETURNING owner_id")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("cannot delete recipient")?;
    if let Some(owner) = owner {
        versions::bump(&mut tx, owner, now).await?;
    }
    tx.commit()
        .await
        .context("cannot commit recipient deletion")?;
    Ok(())
}

/// A row of an import, already validated.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub email: String,
    pub full_name: String,
    pub comment: String,
}

/// An import that stopped part-way: the rows before `landed` are saved, the rest are not.
/// Importing is by e-mail, so uploading the same file again finishes it (saved rows are
/// updated, not duplicated).
#[derive(Debug, thiserror::Error)]
#[error("the import stopped after {landed} of {total} rows")]
pub struct ImportStopped {
    pub landed: usize,
    pub total: usize,
    pub created: u64,
    pub updated: u64,
    #[source]
    pub error: anyhow::Error,
}

/// Creates or updates (by e-mail) every row for one owner. On SQLite [`WRITE_CHUNK_ROWS`]
/// rows per transaction: one transaction for a whole file held SQLite's only write lock for
/// seconds, and every other user's save in that time failed with "database is locked". Each
/// chunk lands whole or not at all; when one fails, the error says how far the import got.
/// PostgreSQL locks rows, not the database, so there the whole file stays one transaction
/// and an import lands whole or not at all. Returns (created, updated).
pub async fn upsert_many(
    db: &Db,
    owner_id: i64,
    rows: &[ImportRow],
) -> Result<(u64, u64), ImportStopped> {
    let chunk_rows = match db.backend {
        DatabaseBackend::Sqlite => WRITE_CHUNK_ROWS,
        DatabaseBackend::Postgres => rows.len().max(1),
    };
    let mut created = 0;
    let mut updated = 0;
    for (i, chunk) in rows.chunks(chunk_rows).enumerate() {
        match upsert_chunk(db, owner_id, chunk).await {
            Ok((c, u)) => {
                created += c;
                updated += u;
            }
            Err(error) => {
                return Err(ImportStopped {
                    landed: i * chunk_rows,
                    total: rows.len(),
                    created,
                    updated,
                    error,
                });
            }
        }
    }
    Ok((created, updated))
}

async fn upsert_chunk(db: &Db, owner_id: i64, rows: &[ImportRow]) -> anyhow::Result<(u64, u64)> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let mut created = 0;
    let mut updated = 0;
    for row in rows {
        let existed = sqlx::query(
            "UPDATE recipients SET full_name = $1, comment = $2, updated_at = $3, \
               version = version + 1 \
             WHERE owner_id = $4 AND email = $5",
        )
        .bind(&row.full_name)
        .bind(&row.comment)
        .bind(now)
        .bind(owner_id)
        .bind(&row.email)
        .execute(&mut *tx)
        .await
        .context("cannot update an imported recipient")?
        .rows_affected();
        if existed == 0 {
            sqlx::query(
                "INSERT INTO recipients (owner_id, email, full_name, comment, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(owner_id)
            .bind(&row.email)
            .bind(&row.full_name)
            .bind(&row.comment)
            .bind(now)
            .execute(&mut *tx)
            .await
            .context("cannot insert an imported recipient")?;
            created += 1;
        } else {
            updated += 1;
        }
    }
    if created + updated > 0 {
        versions::bump(&mut tx, owner_id, now).await?;
    }
    tx.commit().await.context("cannot commit the import")?;
    Ok((created, updated))
}

/// Which of `ids` are recipients of `owner_id` (others' ids are dropped, never linked).
pub async fn owned_ids(db: &Db, owner_id: i64, ids: &[i64]) -> anyhow::Result<Vec<i64>> {
    let mut owned = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        // `$n` placeholders written out: sqlx's QueryBuilder on the Any driver writes `?`,
        // which PostgreSQL refuses.
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT id FROM recipients WHERE owner_id = $1 AND id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(owner_id);
        for id in chunk {
            query = query.bind(*id);
        }
        owned.extend(
            query
                .fetch_all(&db.pool)
                .await
                .context("cannot check recipient ids")?,
        );
    }
    owned.sort_unstable();
    Ok(owned)
}
