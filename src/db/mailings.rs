//! Mailings (SPEC §7): create and change them with their audience, load them, and the
//! scheduler's set-based updates (windows opening and closing, due mailings, disabling).

use anyhow::Context as _;
use sqlx::{AnyConnection, FromRow};
use time_tz::Tz;

use super::{Db, versions};
use crate::config::DatabaseBackend;
use crate::domain::instant::{from_ms, to_ms};
use crate::domain::{MailingStatus, Period};

/// A mailing as stored. Times are unix milliseconds UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailing {
    pub id: i64,
    pub owner_id: i64,
    pub message_id: i64,
    pub start_at: i64,
    pub end_at: i64,
    pub period: Period,
    pub status: MailingStatus,
    pub next_run_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set when a mailing with runs was deleted: hidden from lists and never sent, its
    /// history kept (SPEC §12); its owner may restore it.
    pub archived_at: Option<i64>,
    /// Bumped by every save of the form: the guard against lost updates.
    pub version: i64,
}

#[derive(FromRow)]
struct MailingRow {
    id: i64,
    owner_id: i64,
    message_id: i64,
    start_at: i64,
    end_at: i64,
    period: String,
    status: String,
    next_run_at: Option<i64>,
    last_sent_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    archived_at: Option<i64>,
    version: i64,
}

impl TryFrom<MailingRow> for Mailing {
    type Error = anyhow::Error;
    fn try_from(r: MailingRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: r.id,
            owner_id: r.owner_id,
            message_id: r.message_id,
            start_at: r.start_at,
            end_at: r.end_at,
            period: Period::parse(&r.period)?,
            status: MailingStatus::parse(&r.status)?,
            next_run_at: r.next_run_at,
            last_sent_at: r.last_sent_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
            version: r.version,
        })
    }
}

/// An archived mailing is not running and not listed: it is never sent and counts only in
/// the history (stats and reports). The one spelling of that rule (`archived_at` is a column
/// of `mailings` alone, so it needs no alias); a macro so `concat!` can build on it.
macro_rules! not_archived {
    () => {
        "archived_at IS NULL"
    };
}
pub(crate) use not_archived;

/// A running mailing, as the dashboard and reports count it: never an archived one.
macro_rules! running {
    () => {
        concat!(
            "status = 'running' AND ",
            $crate::db::mailings::not_archived!()
        )
    };
}
pub(crate) use running;

pub const NOT_ARCHIVED: &str = not_archived!();
pub const RUNNING: &str = running!();

const COLUMNS: &str = "id, owner_id, message_id, start_at, end_at, period, status, \
    next_run_at, last_sent_at, created_at, updated_at, archived_at, version";

/// A mailing to create, or the new values of one being changed. The message and recipients
/// must be the owner's: recipients of anyone else are left out, another's message is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMailing {
    pub owner_id: i64,
    pub message_id: i64,
    pub recipient_ids: Vec<i64>,
    pub start_at: i64,
    pub end_at: i64,
    pub period: Period,
}

#[derive(Debug, thiserror::Error)]
pub enum MailingError {
    #[error("no such mailing")]
    NotFound,
    #[error("the message does not exist or belongs to someone else")]
    ForeignMessage,
    #[error("the start must be before the end")]
    EmptyWindow,
    /// A run of the mailing is active: it must finish (or be disabled) first.
    #[error("a run of this mailing is active")]
    Busy,
    /// Someone saved the mailing after the form was loaded (its version moved on).
    #[error("the mailing was changed in the meantime")]
    Stale,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Creates a mailing (status `created`, first run at `start_at`) with its recipients.
pub async fn create_mailing(db: &Db, new: &NewMailing, now: i64) -> Result<i64, MailingError> {
    if new.start_at >= new.end_at {
        return Err(MailingError::EmptyWindow);
    }
    let mut tx = db.begin_write().await?;
    // INSERT … SELECT from the owner's messages: another user's message inserts nothing.
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO mailings (owner_id, message_id, start_at, end_at, period, status, \
           next_run_at, created_at, updated_at) \
         SELECT $1, id, $3, $4, $5, 'created', $3, $6, $6 FROM messages \
         WHERE id = $2 AND owner_id = $1 RETURNING id",
    )
    .bind(new.owner_id)
    .bind(new.message_id)
    .bind(new.start_at)
    .bind(new.end_at)
    .bind(new.period.as_str())
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .context("cannot insert mailing")?;
    let Some(id) = id else {
        return Err(MailingError::ForeignMessage);
    };
    link_recipients(&mut tx, id, new.owner_id, &new.recipient_ids).await?;
    versions::bump(&mut tx, new.owner_id, now).await?;
    tx.commit().await.context("cannot commit mailing")?;
    Ok(id)
}

/// Changes a mailing's message, audience, window and period. The next scheduled run follows
/// the new schedule: a mailing not yet started first runs at `start_at`; a running one at the
/// first occurrence of the new schedule from now on (in `tz`, the owner's zone). A finished
/// mailing keeps its (empty) schedule. Runs already started keep their fixed audience.
///
/// With `expected_version` the change lands only on that version ([`MailingError::Stale`]
/// otherwise): two browsers saving the same mailing cannot silently overwrite each other.
pub async fn update_mailing(
    db: &Db,
    id: i64,
    expected_version: Option<i64>,
    changes: &NewMailing,
    tz: &Tz,
    now: i64,
) -> Result<(), MailingError> {
    if changes.start_at >= changes.end_at {
        return Err(MailingError::EmptyWindow);
    }
    let current = get(db, id).await?.ok_or(MailingError::NotFound)?;
    if expected_version.is_some_and(|v| v != current.version) {
        return Err(MailingError::Stale);
    }
    let next_run_at = match current.status {
        MailingStatus::Finished => None,
        MailingStatus::Created => Some(changes.start_at),
        // A `once` mailing whose run was already claimed stays without a next run.
        MailingStatus::Running
            if changes.period == Period::Once && current.next_run_at.is_none() =>
        {
            None
        }
        MailingStatus::Running => changes
            .period
            .next_after(from_ms(changes.start_at), from_ms(now - 1), tz)
            .map(to_ms)
            .or(Some(changes.start_at).filter(|_| changes.period == Period::Once)),
    };
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE mailings SET message_id = m.id, start_at = $3, end_at = $4, period = $5, \
           next_run_at = $6, updated_at = $7, version = mailings.version + 1 \
         FROM (SELECT id FROM messages WHERE id = $2 AND owner_id = $8) AS m \
         WHERE mailings.id = $1 AND mailings.owner_id = $8 AND mailings.version = $9",
    )
    .bind(id)
    .bind(changes.message_id)
    .bind(changes.start_at)
    .bind(changes.end_at)
    .bind(changes.period.as_str())
    .bind(next_run_at)
    .bind(now)
    .bind(current.owner_id)
    .bind(current.version)
    .execute(&mut *tx)
    .await
    .context("cannot update mailing")?;
    if done.rows_affected() != 1 {
        // Either the message is not the owner's, or a save landed since `current` was read.
        // Read inside the transaction: on SQLite a read through the pool meanwhile is a
        // second connection beside this writer's, and the answer must be this snapshot's.
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM mailings WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("cannot read the mailing's version")?;
        return Err(if version == Some(current.version) {
            MailingError::ForeignMessage
        } else {
            MailingError::Stale
        });
    }
    sqlx::query("DELETE FROM mailing_recipients WHERE mailing_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("cannot replace mailing recipients")?;
    link_recipients(&mut tx, id, current.owner_id, &changes.recipient_ids).await?;
    versions::bump(&mut tx, current.owner_id, now).await?;
    tx.commit().await.context("cannot commit mailing")?;
    Ok(())
}

/// Links the owner's recipients among `ids` to the mailing, in chunks that stay far below
/// both backends' limits on bound parameters.
async fn link_recipients(
    conn: &mut AnyConnection,
    mailing_id: i64,
    owner_id: i64,
    ids: &[i64],
) -> anyhow::Result<()> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(500) {
        let placeholders = (0..chunk.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO mailing_recipients (mailing_id, recipient_id) \
             SELECT $1, id FROM recipients WHERE owner_id = $2 AND id IN ({placeholders})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(mailing_id)
            .bind(owner_id);
        for id in chunk {
            query = query.bind(*id);
        }
        query
            .execute(&mut *conn)
            .await
            .context("cannot link mailing recipients")?;
    }
    Ok(())
}

pub async fn get(db: &Db, id: i64) -> anyhow::Result<Option<Mailing>> {
    let sql = format!("SELECT {COLUMNS} FROM mailings WHERE id = $1");
    let row = sqlx::query_as::<_, MailingRow>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .context("cannot load mailing")?;
    row.map(Mailing::try_from).transpose()
}

/// The ids of the mailing's recipients, in id order.
pub async fn recipient_ids(db: &Db, mailing_id: i64) -> anyhow::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT recipient_id FROM mailing_recipients WHERE mailing_id = $1 ORDER BY recipient_id",
    )
    .bind(mailing_id)
    .fetch_all(&db.pool)
    .await
    .context("cannot load mailing recipients")
}

/// How many recipients the mailing has (its detail page shows the number, not the list).
pub async fn count_recipients(db: &Db, mailing_id: i64) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM mailing_recipients WHERE mailing_id = $1",
    )
    .bind(mailing_id)
    .fetch_one(&db.pool)
    .await
    .context("cannot count mailing recipients")
}

/// The owner's own time zone (profile), if set.
pub async fn owner_time_zone(db: &Db, mailing_id: i64) -> anyhow::Result<Option<String>> {
    let zone: Option<Option<String>> = sqlx::query_scalar(
        "SELECT u.time_zone FROM mailings m JOIN users u ON u.id = m.owner_id WHERE m.id = $1",
    )
    .bind(mailing_id)
    .fetch_optional(&db.pool)
    .await
    .context("cannot load the owner's time zone")?;
    Ok(zone.flatten())
}

/// Mailings whose window has opened become `running` (SPEC §7); returns their ids.
pub async fn open_windows(db: &Db, now: i64) -> anyhow::Result<Vec<i64>> {
    set_status_where(
        db,
        "running",
        concat!(
            "status = 'created' AND start_at <= $2 AND end_at > $2 AND ",
            not_archived!()
        ),
        false,
        now,
    )
    .await
}

/// Mailings whose window has closed become `finished`, with no next run; returns their ids.
/// A run still going keeps going: its audience was fixed when it started.
pub async fn finish_expired(db: &Db, now: i64) -> anyhow::Result<Vec<i64>> {
    set_status_where(
        db,
        "finished",
        "status <> 'finished' AND end_at <= $2",
        true,
        now,
    )
    .await
}

async fn set_status_where(
    db: &Db,
    status: &'static str,
    condition: &'static str,
    clear_next: bool,
    now: i64,
) -> anyhow::Result<Vec<i64>> {
    let next = if clear_next {
        ", next_run_at = NULL"
    } else {
        ""
    };
    let mut tx = db.begin_write().await?;
    let sql = format!(
        "UPDATE mailings SET status = $1{next}, updated_at = $2 WHERE {condition} \
         RETURNING id, owner_id"
    );
    let rows: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(status)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .context("cannot update mailing statuses")?;
    let mut owners: Vec<i64> = rows.iter().map(|(_, owner)| *owner).collect();
    owners.sort_unstable();
    owners.dedup();
    for owner in owners {
        versions::bump(&mut tx, owner, now).await?;
    }
    tx.commit()
        .await
        .context("cannot commit mailing statuses")?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}

/// A mailing whose scheduled run is due, with what the scheduler needs to claim it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueMailing {
    pub id: i64,
    pub owner_id: i64,
    pub start_at: i64,
    pub end_at: i64,
    pub period: Period,
    pub next_run_at: i64,
    pub owner_time_zone: Option<String>,
}

/// The ids of mailings paused because their owner is deactivated (issue 12): the one home
/// of that rule. They do not become due ([`due`]), no run of them starts
/// ([`crate::db::runs::start`]) and their runs' rows are not claimed
/// ([`crate::db::deliveries::claim`]) until the owner is active again; what is pending stays
/// pending. Uncorrelated, so it runs once per statement, over the few deactivated owners.
pub const PAUSED_MAILING_IDS: &str = "SELECT pm.id FROM mailings pm \
    JOIN users pu ON pu.id = pm.owner_id WHERE pu.is_active = 0";

/// Due mailings (SPEC §7: not finished, `start_at ≤ now < end_at`, `next_run_at ≤ now`)
/// without an active run — one still going delays the next rather than losing it — oldest
/// due first. A deactivated owner's mailings are not due: they wait, still due, until the
/// owner is active again.
pub async fn due(db: &Db, now: i64, limit: i64) -> anyhow::Result<Vec<DueMailing>> {
    #[derive(FromRow)]
    struct Row {
        id: i64,
        owner_id: i64,
        start_at: i64,
        end_at: i64,
        period: String,
        next_run_at: i64,
        time_zone: Option<String>,
    }
    let sql = format!(
        "SELECT m.id, m.owner_id, m.start_at, m.end_at, m.period, m.next_run_at, u.time_zone \
         FROM mailings m JOIN users u ON u.id = m.owner_id \
         WHERE m.status <> 'finished' AND m.start_at <= $1 AND m.end_at > $1 \
           AND m.next_run_at <= $1 AND m.{NOT_ARCHIVED} \
           AND m.id NOT IN ({PAUSED_MAILING_IDS}) \
           AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.mailing_id = m.id AND r.status = 'running') \
         ORDER BY m.next_run_at, m.id LIMIT $2"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .fetch_all(&db.pool)
        .await
        .context("cannot find due mailings")?;
    rows.into_iter()
        .map(|r| {
            Ok(DueMailing {
                id: r.id,
                owner_id: r.owner_id,
                start_at: r.start_at,
                end_at: r.end_at,
                period: Period::parse(&r.period)?,
                next_run_at: r.next_run_at,
                owner_time_zone: r.time_zone,
            })
        })
        .collect()
}

/// What disabling a mailing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disabled {
    /// `false` when the mailing was already finished (nothing changed).
    pub finished_now: bool,
    /// The run that was active, if any.
    pub active_run: Option<i64>,
    /// Deliveries of that run that were cancelled.
    pub cancelled: u64,
}

/// Finishes a mailing and cancels what its active run has not started sending (pending rows
/// and rows whose lease expired). Rows being sent right now finish normally: cancelling them
/// could record as cancelled a message that did leave.
pub async fn disable(db: &Db, id: i64, now: i64) -> Result<Disabled, MailingError> {
    let mut tx = db.begin_write().await?;
    // The first statement writes, so SQLite takes the write lock at once.
    let owner: Option<i64> = sqlx::query_scalar(
        "UPDATE mailings SET status = 'finished', next_run_at = NULL, updated_at = $2 \
         WHERE id = $1 AND status <> 'finished' RETURNING owner_id",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .context("cannot finish mailing")?;
    let finished_now = owner.is_some();
    let owner_id = match owner {
        Some(owner_id) => owner_id,
        // Already finished (its window closed, say): a run may still be going; cancel it too.
        None => sqlx::query_scalar("SELECT owner_id FROM mailings WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("cannot load mailing")?
            .ok_or(MailingError::NotFound)?,
    };
    let active_run: Option<i64> =
        sqlx::query_scalar("SELECT id FROM runs WHERE mailing_id = $1 AND status = 'running'")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("cannot find the active run")?;
    let mut cancelled = 0;
    if let Some(run_id) = active_run {
        // Lock the rows in id order first, as the engine's outcome batches do: an UPDATE
        // takes them in whatever order it scans, and two transactions locking the same rows in
        // different orders deadlock on PostgreSQL (seen: a disable racing a batch, a 500).
        // SQLite has one writer and no row locks.
        if db.backend == DatabaseBackend::Postgres {
            sqlx::query(
                "SELECT id FROM deliveries WHERE run_id = $1 AND status IN ('pending', 'sending') \
                 ORDER BY id FOR UPDATE",
            )
            .bind(run_id)
            .fetch_all(&mut *tx)
            .await
            .context("cannot lock the run's deliveries")?;
        }
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'cancelled', detail = 'cancelled: mailing disabled', \
               lease_until = NULL, leased_by = NULL, finished_at = $2, updated_at = $2 \
             WHERE run_id = $1 AND (status = 'pending' \
               OR (status = 'sending' AND lease_until <= $2))",
        )
        .bind(run_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("cannot cancel deliveries")?;
        cancelled = done.rows_affected();
        super::runs::recount(&mut tx, run_id).await?;
    }
    versions::bump(&mut tx, owner_id, now).await?;
    tx.commit().await.context("cannot commit disable")?;
    Ok(Disabled {
        finished_now,
        active_run,
        cancelled,
    })
}

/// A row of the mailings list: the mailing with its message subject, owner and audience size.
#[derive(Debug, Clone, FromRow)]
pub struct ListedMailing {
    pub id: i64,
    pub owner_id: i64,
    pub status: String,
    pub period: String,
    pub start_at: i64,
    pub end_at: i64,
    pub next_run_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub subject: String,
    pub owner_email: String,
    pub recipients: i64,
}

fn list_filter(
    owner: Option<i64>,
    status: Option<MailingStatus>,
    archived: bool,
) -> (String, i64, &'static str) {
    let owner_clause = if owner.is_some() {
        "g.owner_id = $1"
    } else {
        "$1 = $1"
    };
    let status_clause = if status.is_some() {
        "g.status = $2"
    } else {
        "$2 = $2"
    };
    // Archived mailings are out of every list but their own (SPEC §12).
    let archived_clause = if archived {
        "g.archived_at IS NOT NULL"
    } else {
        "g.archived_at IS NULL"
    };
    (
        format!("WHERE {owner_clause} AND {status_clause} AND {archived_clause}"),
        owner.unwrap_or(0),
        status.map(|s| s.as_str()).unwrap_or(""),
    )
}

/// The visible mailings (all owners when `owner` is `None`), newest first: the archived ones
/// when `archived`, else the others.
pub async fn list(
    db: &Db,
    owner: Option<i64>,
    status: Option<MailingStatus>,
    archived: bool,
    limit: i64,
    offset: i64,
) -> anyhow::Result<(Vec<ListedMailing>, i64)> {
    let (clause, owner, status) = list_filter(owner, status, archived);
    let sql = format!(
        "SELECT g.id, g.owner_id, g.status, g.period, g.start_at, g.end_at, g.next_run_at, \
           g.last_sent_at, m.subject, o.email AS owner_email, \
           (SELECT CAST(COUNT(*) AS BIGINT) FROM mailing_recipients r WHERE r.mailing_id = g.id) AS recipients \
         FROM mailings g JOIN messages m ON m.id = g.message_id JOIN users o ON o.id = g.owner_id \
         {clause} ORDER BY g.created_at DESC, g.id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sqlx::query_as::<_, ListedMailing>(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await
        .context("cannot list mailings")?;
    let count_sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM mailings g {clause}");
    let total = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
        .bind(owner)
        .bind(status)
        .fetch_one(&db.pool)
        .await
        .context("cannot count mailings")?;
    Ok((rows, total))
}

/// What deleting a mailing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// It had no run: gone, with its audience.
    Deleted,
    /// It had runs: archived, so its runs, deliveries and figures stay (SPEC §12).
    Archived,
}

/// Deletes a mailing that never ran; archives one that did (its history is never rewritten).
/// Refused while a run is active.
pub async fn remove(db: &Db, id: i64, owner_id: i64, now: i64) -> Result<Removed, MailingError> {
    let mut tx = db.begin_write().await?;
    // Writing first takes SQLite's write lock at once; the conditions make the choice atomic.
    let archived = sqlx::query(
        "UPDATE mailings SET archived_at = $2, updated_at = $2 WHERE id = $1 \
         AND archived_at IS NULL \
         AND EXISTS (SELECT 1 FROM runs WHERE mailing_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM runs WHERE mailing_id = $1 AND status = 'running')",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("cannot archive mailing")?;
    let removed = if archived.rows_affected() == 1 {
        Removed::Archived
    } else {
        let deleted = sqlx::query(
            "DELETE FROM mailings WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM runs WHERE mailing_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("cannot delete mailing")?;
        if deleted.rows_affected() == 0 {
            // It has runs and was not archived: one is active (or it is archived already).
            return Err(MailingError::Busy);
        }
        Removed::Deleted
    };
    versions::bump(&mut tx, owner_id, now).await?;
    tx.commit()
        .await
        .context("cannot commit mailing deletion")?;
    Ok(removed)
}

/// Brings an archived mailing back into the lists (and the scheduler, if its window is open)
/// with `next_run_at` as its next run (a finished one keeps none); `false` when it was not
/// archived.
pub async fn restore(
    db: &Db,
    id: i64,
    owner_id: i64,
    next_run_at: Option<i64>,
    now: i64,
) -> anyhow::Result<bool> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE mailings SET archived_at = NULL, updated_at = $2, \
           next_run_at = CASE WHEN status = 'finished' THEN NULL ELSE $3 END \
         WHERE id = $1 AND archived_at IS NOT NULL",
    )
    .bind(id)
    .bind(now)
    .bind(next_run_at)
    .execute(&mut *tx)
    .await
    .context("cannot restore mailing")?;
    versions::bump(&mut tx, owner_id, now).await?;
    tx.commit().await.context("cannot commit mailing restore")?;
    Ok(done.rows_affected() == 1)
}
