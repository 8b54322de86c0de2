//! Runs (the seed's MailingAttempt, SPEC §7): starting one with its fixed audience, reading
//! them for progress and history, and finishing one once its deliveries are all final.
//!
//! The database keeps one run per mailing active (`runs_one_active`), so a second start —
//! from another click, the CLI or another instance — fails cleanly as [`StartRunError::AlreadyActive`].

use anyhow::Context as _;
use sqlx::{AnyConnection, FromRow};

use super::mailings::{NOT_ARCHIVED, PAUSED_MAILING_IDS};
use super::{Db, versions};
use crate::config::DatabaseBackend;
use crate::domain::mailing::epoch_day;
use crate::domain::{DeliveryStatus, Period, RunStatus, RunTotals, Trigger};

/// A run as stored; `totals` are its counters (kept in step with its deliveries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: i64,
    pub mailing_id: i64,
    pub triggered_by: String,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub totals: RunTotals,
    pub server_response: String,
}

#[derive(FromRow)]
struct RunRow {
    id: i64,
    mailing_id: i64,
    triggered_by: String,
    dry_run: i64,
    status: String,
    started_at: i64,
    finished_at: Option<i64>,
    total: i64,
    pending_count: i64,
    sent_count: i64,
    error_count: i64,
    dry_run_count: i64,
    skipped_count: i64,
    cancelled_count: i64,
    server_response: String,
}

impl TryFrom<RunRow> for Run {
    type Error = anyhow::Error;
    fn try_from(r: RunRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: r.id,
            mailing_id: r.mailing_id,
            triggered_by: r.triggered_by,
            dry_run: r.dry_run != 0,
            status: RunStatus::parse(&r.status)?,
            started_at: r.started_at,
            finished_at: r.finished_at,
            totals: RunTotals {
                total: r.total,
                pending: r.pending_count,
                sent: r.sent_count,
                errors: r.error_count,
                dry_run: r.dry_run_count,
                skipped: r.skipped_count,
                cancelled: r.cancelled_count,
            },
            server_response: r.server_response,
        })
    }
}

const COLUMNS: &str = "id, mailing_id, triggered_by, dry_run, status, started_at, finished_at, \
    total, pending_count, sent_count, error_count, dry_run_count, skipped_count, \
    cancelled_count, server_response";

/// The scheduler's claim on a due mailing: the run starts only if `next_run_at` still holds
/// the value the scheduler read, and moves it to the next occurrence in the same transaction,
/// so of several instances that saw the mailing due exactly one starts the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub expected_next_run_at: i64,
    pub next_run_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub mailing_id: i64,
    pub trigger: Trigger,
    pub dry_run: bool,
    pub claim: Option<Claim>,
}

/// A run just started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartedRun {
    pub run_id: i64,
    pub mailing_id: i64,
    pub owner_id: i64,
    pub totals: RunTotals,
}

#[derive(Debug, thiserror::Error)]
pub enum StartRunError {
    #[error("no such mailing")]
    NotFound,
    #[error("the mailing is finished")]
    Finished,
    #[error("a run is already active")]
    AlreadyActive,
    /// Archived (deleted after it ran) between the caller's look and the claim: never sent.
    #[error("the mailing is archived")]
    Archived,
    /// The scheduler's claim was taken by another instance (or the schedule changed).
    #[error("the run was already claimed")]
    NotClaimed,
    /// The mailing's owner is deactivated: its mailings are paused until reactivated.
    #[error("the mailing's owner is deactivated")]
    OwnerInactive,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Starts a run in one transaction: the mailing is checked (and claimed, for the scheduler)
/// and moved to `running` unless this is a dry run, the run row is inserted (the unique index
/// refuses a second active one), and one delivery per distinct lowercased e-mail of the
/// owner's recipients is created — `skipped` for addresses that unsubscribed, else `pending`.
pub async fn start(db: &Db, new: &NewRun, now: i64) -> Result<StartedRun, StartRunError> {
    let mut tx = db.begin_write().await?;
    // Writing first makes SQLite take its write lock at once (a read first could fail to
    // upgrade later); on PostgreSQL it locks the mailing row against a concurrent disable.
    let (claiming, expected, next) = match new.claim {
        Some(c) => (1i64, c.expected_next_run_at, c.next_run_at),
        None => (0, 0, None),
    };
    let sql = format!(
        "UPDATE mailings SET \
           status = CASE WHEN $2 = 1 THEN status ELSE 'running' END, \
           next_run_at = CASE WHEN $3 = 1 THEN $5 ELSE next_run_at END, \
           updated_at = $6 \
         WHERE id = $1 AND status <> 'finished' AND ($3 = 0 OR next_run_at = $4) \
           AND id NOT IN ({PAUSED_MAILING_IDS}) \
           AND {NOT_ARCHIVED} \
         RETURNING owner_id"
    );
    let owner: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(new.mailing_id)
        .bind(i64::from(new.dry_run))
        .bind(claiming)
        .bind(expected)
        .bind(next)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .context("cannot claim mailing")?;
    let Some(owner_id) = owner else {
        let sql = format!(
            "SELECT status, CAST(CASE WHEN id IN ({PAUSED_MAILING_IDS}) THEN 1 ELSE 0 END AS BIGINT), \
               archived_at FROM mailings WHERE id = $1"
        );
        let found: Option<(String, i64, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(new.mailing_id)
            .fetch_optional(&mut *tx)
            .await
            .context("cannot load mailing")?;
        return Err(match found {
            None => StartRunError::NotFound,
            // Archived since the caller looked: never claimed (nobody asked for this send).
            Some((status, _, _)) if status == "finished" => StartRunError::Finished,
            Some((_, _, Some(_))) => StartRunError::Archived,
            Some((_, 1, _)) => StartRunError::OwnerInactive,
            Some(_) => StartRunError::NotClaimed,
        });
    };

    let trigger = new.trigger.to_string();
    // The run copies its content now: whatever happens to the message (or the mailing's
    // choice of message) while it sends, every message of this run says the same thing.
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO runs (mailing_id, triggered_by, dry_run, status, started_at, \
           subject, body, body_html) \
         SELECT m.id, $2, $3, 'running', $4, msg.subject, msg.body, msg.body_html \
         FROM mailings m JOIN messages msg ON msg.id = m.message_id WHERE m.id = $1 \
         RETURNING id",
    )
    .bind(new.mailing_id)
    .bind(&trigger)
    .bind(i64::from(new.dry_run))
    .bind(now)
    .fetch_one(&mut *tx)
    .await;
    let run_id = match inserted {
        Ok(id) => id,
        // The transaction (and with it the claim) is rolled back when `tx` drops.
        Err(err) if is_unique_violation(&err) => return Err(StartRunError::AlreadyActive),
        Err(err) => return Err(anyhow::Error::new(err).context("cannot insert run").into()),
    };

    // One row per distinct address: the lowest recipient id stands for its duplicates.
    sqlx::query(
        "INSERT INTO deliveries (run_id, mailing_id, recipient_id, email, full_name, status, \
           attempts, next_attempt_at, detail, triggered_by, created_at, updated_at, finished_at) \
         SELECT $1, $2, r.id, lower(r.email), r.full_name, \
           CASE WHEN u.id IS NULL THEN 'pending' ELSE 'skipped' END, \
           0, $4, CASE WHEN u.id IS NULL THEN '' ELSE 'unsubscribed' END, $5, $4, $4, \
           CASE WHEN u.id IS NULL THEN NULL ELSE $4 END \
         FROM recipients r \
         LEFT JOIN unsubscribes u ON u.owner_id = $3 AND u.email = lower(r.email) \
         WHERE r.id IN ( \
           SELECT MIN(r2.id) FROM mailing_recipients mr \
           JOIN recipients r2 ON r2.id = mr.recipient_id \
           WHERE mr.mailing_id = $2 AND r2.owner_id = $3 \
           GROUP BY lower(r2.email))",
    )
    .bind(run_id)
    .bind(new.mailing_id)
    .bind(owner_id)
    .bind(now)
    .bind(&trigger)
    .execute(&mut *tx)
    .await
    .context("cannot create deliveries")?;
    let totals = recount(&mut tx, run_id).await?;
    versions::bump(&mut tx, owner_id, now).await?;
    tx.commit().await.context("cannot commit run start")?;
    refresh_statistics(db, totals.total).await;
    Ok(StartedRun {
        run_id,
        mailing_id: new.mailing_id,
        owner_id,
        totals,
    })
}

/// Audiences from this size on make PostgreSQL re-read the deliveries' statistics at once.
const ANALYZE_FROM_ROWS: i64 = 5_000;

/// A large run adds its rows faster than autovacuum notices: until it does, PostgreSQL
/// believes a run has a handful of pending rows, claims through the (run_id, status) index
/// and sorts all of them for every batch (measured: 64 ms a claim at 100 000 recipients, the
/// whole run at a third of its speed). ANALYZE samples a fixed number of rows, so it costs
/// about the same for any size. A failure only leaves the old statistics.
async fn refresh_statistics(db: &Db, added: i64) {
    if db.backend != DatabaseBackend::Postgres || added < ANALYZE_FROM_ROWS {
        return;
    }
    if let Err(err) = sqlx::query("ANALYZE deliveries").execute(&db.pool).await {
        tracing::warn!(error = %err, "cannot refresh the statistics of deliveries");
    }
}

/// The run's totals counted from its deliveries (the source of truth).
pub async fn count(conn: &mut AnyConnection, run_id: i64) -> anyhow::Result<RunTotals> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, CAST(COUNT(*) AS BIGINT) FROM deliveries WHERE run_id = $1 \
         GROUP BY status",
    )
    .bind(run_id)
    .fetch_all(conn)
    .await
    .context("cannot count deliveries")?;
    let mut totals = RunTotals::default();
    for (status, n) in rows {
        totals.add(DeliveryStatus::parse(&status)?, n);
    }
    Ok(totals)
}

/// Sets the run's counters from its deliveries, inside the caller's transaction.
pub async fn recount(conn: &mut AnyConnection, run_id: i64) -> anyhow::Result<RunTotals> {
    let t = count(conn, run_id).await?;
    sqlx::query(
        "UPDATE runs SET total = $2, pending_count = $3, sent_count = $4, error_count = $5, \
           dry_run_count = $6, skipped_count = $7, cancelled_count = $8 WHERE id = $1",
    )
    .bind(run_id)
    .bind(t.total)
    .bind(t.pending)
    .bind(t.sent)
    .bind(t.errors)
    .bind(t.dry_run)
    .bind(t.skipped)
    .bind(t.cancelled)
    .execute(conn)
    .await
    .context("cannot update run counters")?;
    Ok(t)
}

pub async fn get(db: &Db, id: i64) -> anyhow::Result<Option<Run>> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = $1");
    let row = sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .context("cannot load run")?;
    row.map(Run::try_from).transpose()
}

/// The mailing's active run, if one is going.
pub async fn active(db: &Db, mailing_id: i64) -> anyhow::Result<Option<Run>> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE mailing_id = $1 AND status = 'running'");
    let row = sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql))
        .bind(mailing_id)
        .fetch_optional(&db.pool)
        .await
        .context("cannot load active run")?;
    row.map(Run::try_from).transpose()
}

/// The mailing's runs, newest first (the detail page's history), and how many there are.
pub async fn list_for_mailing(
    db: &Db,
    mailing_id: i64,
    limit: i64,
    offset: i64,
) -> anyhow::Result<(Vec<Run>, i64)> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs WHERE mailing_id = $1 \
         ORDER BY started_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql))
        .bind(mailing_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await
        .context("cannot list runs")?;
    let total: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM runs WHERE mailing_id = $1")
            .bind(mailing_id)
            .fetch_one(&db.pool)
            .await
            .context("cannot count runs")?;
    let runs = rows
        .into_iter()
        .map(Run::try_from)
        .collect::<anyhow::Result<_>>()?;
    Ok((runs, total))
}

/// Ids of every run still `running`, oldest first (work to resume).
pub async fn running_ids(db: &Db) -> anyhow::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT id FROM runs WHERE status = 'running' ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .context("cannot list running runs")
}

/// What composing a run's messages needs, read once per run: the content the run fixed when
/// it started (runs older than that copy read their message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendContext {
    pub run_id: i64,
    pub mailing_id: i64,
    pub owner_id: i64,
    pub dry_run: bool,
    pub subject: String,
    pub body: String,
    pub body_html: Option<String>,
}

pub async fn send_context(db: &Db, run_id: i64) -> anyhow::Result<Option<SendContext>> {
    #[derive(FromRow)]
    struct Row {
        run_id: i64,
        mailing_id: i64,
        owner_id: i64,
        dry_run: i64,
        subject: String,
        body: String,
        body_html: Option<String>,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT r.id AS run_id, m.id AS mailing_id, m.owner_id, r.dry_run, \
           COALESCE(r.subject, msg.subject) AS subject, COALESCE(r.body, msg.body) AS body, \
           CASE WHEN r.subject IS NULL THEN msg.body_html ELSE r.body_html END AS body_html \
         FROM runs r JOIN mailings m ON m.id = r.mailing_id \
         JOIN messages msg ON msg.id = m.message_id WHERE r.id = $1",
    )
    .bind(run_id)
    .fetch_optional(&db.pool)
    .await
    .context("cannot load the run's message")?;
    Ok(row.map(|r| SendContext {
        run_id: r.run_id,
        mailing_id: r.mailing_id,
        owner_id: r.owner_id,
        dry_run: r.dry_run != 0,
        subject: r.subject,
        body: r.body,
        body_html: r.body_html,
    }))
}

/// A run that has just been finished, for the jobs log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRun {
    pub run_id: i64,
    pub mailing_id: i64,
    pub owner_id: i64,
    pub triggered_by: String,
    pub dry_run: bool,
    pub status: RunStatus,
    pub totals: RunTotals,
    pub started_at: i64,
    pub finished_at: i64,
    /// The mailing was a `once` mailing and is now finished.
    pub finished_mailing: bool,
}

/// Finishes the run if none of its deliveries is pending or being sent, in one transaction
/// with what follows from it: its status and totals from its deliveries, the day's run
/// counters, the mailing's `last_sent_at`, and a delivered `once` mailing finished. Returns
/// `None` when the run still has work, or was already finished (by another instance).
pub async fn finish_if_done(db: &Db, run_id: i64, now: i64) -> anyhow::Result<Option<FinishedRun>> {
    let mut conn = db.pool.acquire().await.context("cannot get a connection")?;
    // Once nothing is open, nothing in the run can change any more, so counting outside the
    // transaction is safe; the guard in the UPDATE makes sure of it.
    let totals = count(&mut conn, run_id).await?;
    drop(conn);
    let status = totals.outcome();
    if status == RunStatus::Running {
        return Ok(None);
    }
    let mut tx = db.begin_write().await?;
    if db.backend == DatabaseBackend::Postgres {
        // The mailing's row first, then the run's — the order of a disable (which finishes
        // the mailing, then recounts the run). The other way round the two deadlocked on
        // PostgreSQL (seen in the server log; the disable answered 500).
        sqlx::query(
            "SELECT m.id FROM mailings m JOIN runs r ON r.mailing_id = m.id WHERE r.id = $1 \
             FOR UPDATE OF m",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await
        .context("cannot lock the run's mailing")?;
    }
    let row: Option<(i64, String, i64, i64)> = sqlx::query_as(
        "UPDATE runs SET status = $2, finished_at = $3, server_response = $4, total = $5, \
           pending_count = 0, sent_count = $6, error_count = $7, dry_run_count = $8, \
           skipped_count = $9, cancelled_count = $10 \
         WHERE id = $1 AND status = 'running' AND NOT EXISTS ( \
           SELECT 1 FROM deliveries d WHERE d.run_id = $1 AND d.status IN ('pending', 'sending')) \
         RETURNING mailing_id, triggered_by, dry_run, started_at",
    )
    .bind(run_id)
    .bind(status.as_str())
    .bind(now)
    .bind(totals.summary())
    .bind(totals.total)
    .bind(totals.sent)
    .bind(totals.errors)
    .bind(totals.dry_run)
    .bind(totals.skipped)
    .bind(totals.cancelled)
    .fetch_optional(&mut *tx)
    .await
    .context("cannot finish run")?;
    let Some((mailing_id, triggered_by, dry_run, started_at)) = row else {
        return Ok(None);
    };
    let dry_run = dry_run != 0;
    let (owner_id, period): (i64, String) =
        sqlx::query_as("SELECT owner_id, period FROM mailings WHERE id = $1")
            .bind(mailing_id)
            .fetch_one(&mut *tx)
            .await
            .context("cannot load the run's mailing")?;
    let mut finished_mailing = false;
    // A dry run changes nothing about the mailing itself: nothing was delivered.
    if !dry_run {
        let (ok, fail) = match status {
            RunStatus::Success | RunStatus::Partial => (1, 0),
            RunStatus::Fail => (0, 1),
            _ => (0, 0),
        };
        if ok + fail > 0 {
            sqlx::query(
                "INSERT INTO daily_stats (owner_id, mailing_id, day, runs_ok, runs_fail) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mailing_id, day) DO UPDATE SET \
                 runs_ok = daily_stats.runs_ok + excluded.runs_ok, \
                 runs_fail = daily_stats.runs_fail + excluded.runs_fail",
            )
            .bind(owner_id)
            .bind(mailing_id)
            .bind(epoch_day(now))
            .bind(ok)
            .bind(fail)
            .execute(&mut *tx)
            .await
            .context("cannot count the run in daily stats")?;
        }
        let once = Period::parse(&period)? == Period::Once;
        let done = sqlx::query(
            "UPDATE mailings SET \
               last_sent_at = CASE WHEN $3 > 0 THEN $2 ELSE last_sent_at END, \
               status = CASE WHEN $4 = 1 THEN 'finished' ELSE status END, \
               next_run_at = CASE WHEN $4 = 1 THEN NULL ELSE next_run_at END, \
               updated_at = $2 \
             WHERE id = $1",
        )
        .bind(mailing_id)
        .bind(now)
        .bind(totals.sent)
        .bind(i64::from(once))
        .execute(&mut *tx)
        .await
        .context("cannot update the run's mailing")?;
        finished_mailing = once && done.rows_affected() == 1;
    }
    versions::bump(&mut tx, owner_id, now).await?;
    tx.commit().await.context("cannot commit run finish")?;
    Ok(Some(FinishedRun {
        run_id,
        mailing_id,
        owner_id,
        triggered_by,
        dry_run,
        status,
        totals,
        started_at,
        finished_at: now,
        finished_mailing,
    }))
}
