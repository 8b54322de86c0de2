//! Deliveries (the seed's MailingLog, SPEC §7): the per-recipient record of a run, and the
//! work queue the senders claim from.
//!
//! A sender claims rows with a lease (`sending`, `lease_until`, `leased_by`); only the lease
//! holder may record the outcome, each in its own small transaction that also moves the run's
//! counters, the day's statistics and the owner's data version. A lease that runs out (the
//! sender crashed or hung) makes the row claimable again, so nothing is skipped and at most
//! the messages in flight at a crash are sent twice.

use std::collections::BTreeMap;

use anyhow::Context as _;
use sqlx::FromRow;

use super::mailings::PAUSED_MAILING_IDS;
use super::{Db, versions};
use crate::config::DatabaseBackend;
use crate::domain::DeliveryStatus;
use crate::domain::mailing::epoch_day;

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub run_id: i64,
    pub mailing_id: i64,
    pub recipient_id: Option<i64>,
    pub email: String,
    pub full_name: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub detail: String,
    pub triggered_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(FromRow)]
struct DeliveryRow {
    id: i64,
    run_id: i64,
    mailing_id: i64,
    recipient_id: Option<i64>,
    email: String,
    full_name: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    detail: String,
    triggered_by: String,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = anyhow::Error;
    fn try_from(r: DeliveryRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: r.id,
            run_id: r.run_id,
            mailing_id: r.mailing_id,
            recipient_id: r.recipient_id,
            email: r.email,
            full_name: r.full_name,
            status: DeliveryStatus::parse(&r.status)?,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            detail: r.detail,
            triggered_by: r.triggered_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        })
    }
}

const COLUMNS: &str = "id, run_id, mailing_id, recipient_id, email, full_name, status, \
    attempts, next_attempt_at, detail, triggered_by, created_at, updated_at, finished_at";

/// A delivery a sender holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Claimed {
    pub id: i64,
    pub run_id: i64,
    pub mailing_id: i64,
    pub email: String,
    pub full_name: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// Which rows to claim, for whom, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub worker: &'a str,
    pub now: i64,
    pub lease_until: i64,
    pub limit: i64,
    /// Only this run's rows (a manual send drives its own run); `None`: any run.
    pub run_id: Option<i64>,
}

/// Claims up to `limit` rows that are due (`next_attempt_at ≤ now`) and pending, or being
/// sent under a lease that has run out. One statement: on PostgreSQL the pick locks its rows
/// `FOR UPDATE SKIP LOCKED`, so concurrent claimers take disjoint rows without waiting;
/// SQLite runs one writer at a time, and the guard repeated on the outer UPDATE makes the
/// statement correct on its own terms. Each claim counts as an attempt.
pub async fn claim(db: &Db, req: ClaimRequest<'_>) -> anyhow::Result<Vec<Claimed>> {
    const CLAIMABLE: &str = "status IN ('pending', 'sending') AND next_attempt_at <= $3 \
        AND (lease_until IS NULL OR lease_until <= $3)";
    // A deactivated owner's mailings pause: their rows stay pending, untouched.
    let pick = format!(
        "SELECT id FROM deliveries WHERE status IN ('pending', 'sending') \
        AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
        AND ($5 = 0 OR run_id = $5) AND mailing_id NOT IN ({PAUSED_MAILING_IDS}) \
        ORDER BY next_attempt_at, id LIMIT $4"
    );
    const SET: &str = "SET status = 'sending', attempts = attempts + 1, lease_until = $1, \
        leased_by = $2, updated_at = $3";
    let sql = match db.backend {
        // A materialised CTE runs the locking pick exactly once; as an `IN (subquery)` the
        // planner may re-run it per row and claim more than LIMIT.
        DatabaseBackend::Postgres => format!(
            "WITH picked AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) \
             UPDATE deliveries d {SET} FROM picked WHERE d.id = picked.id \
             RETURNING d.id, d.run_id, d.mailing_id, d.email, d.full_name, d.attempts"
        ),
        DatabaseBackend::Sqlite => format!(
            "UPDATE deliveries {SET} WHERE id IN ({pick}) AND {CLAIMABLE} \
             RETURNING id, run_id, mailing_id, email, full_name, attempts"
        ),
    };
    let query = sqlx::query_as::<_, Claimed>(sqlx::AssertSqlSafe(sql))
        .bind(req.lease_until)
        .bind(req.worker)
        .bind(req.now)
        .bind(req.limit)
        .bind(req.run_id.unwrap_or(0));
    let mut rows = match db.backend {
        // SQLite: one statement, committed on its own, in this process's write turn so a
        // claim is not starved by queued transactions.
        DatabaseBackend::Sqlite => {
            let _turn = db.write_turn().await;
            query
                .fetch_all(&db.pool)
                .await
                .context("cannot claim deliveries")?
        }
        DatabaseBackend::Postgres => {
            // A claim need not wait for its WAL flush: lost in a database crash, it leaves
            // the rows pending, as before the claim. Nothing is sent on its strength alone
            // that a durable record would have prevented — the outcome's commit (durable, and
            // later in the same WAL) is what records a send. At one commit per batch this was
            // the bound of PostgreSQL's sending rate.
            let mut tx = db.begin_write().await?;
            sqlx::query("SET LOCAL synchronous_commit TO OFF")
                .execute(&mut *tx)
                .await
                .context("cannot relax the claim's commit")?;
            let rows = query
                .fetch_all(&mut *tx)
                .await
                .context("cannot claim deliveries")?;
            tx.commit().await.context("cannot commit the claim")?;
            rows
        }
    };
    // RETURNING has no order; sending in id order keeps logs and tests readable.
    rows.sort_by_key(|c| c.id);
    Ok(rows)
}

/// Extends the leases `holder` (a drive: every worker's id starts with it) holds on `ids` to
/// `lease_until`: the heartbeat of a live sender. Rows finished, given back or taken over by
/// another sender meanwhile are left alone. The ids are integers, written into the statement.
/// Returns the ids renewed: any other is no longer the holder's to send.
pub async fn renew(
    db: &Db,
    ids: &[i64],
    holder: &str,
    lease_until: i64,
) -> anyhow::Result<Vec<i64>> {
    let mut renewed = Vec::with_capacity(ids.len());
    // A few hundred ids per statement keep it well under either backend's limits.
    for chunk in ids.chunks(500) {
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "UPDATE deliveries SET lease_until = $1 \
             WHERE id IN ({list}) AND status = 'sending' AND leased_by LIKE $2 RETURNING id"
        );
        let _turn = db.write_turn().await;
        let done: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(lease_until)
            .bind(format!("{holder}%"))
            .fetch_all(&db.pool)
            .await
            .context("cannot renew delivery leases")?;
        renewed.extend(done);
    }
    Ok(renewed)
}

/// The final outcome of a claimed delivery.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub delivery_id: i64,
    pub run_id: i64,
    pub mailing_id: i64,
    pub owner_id: i64,
    pub worker: &'a str,
    pub status: DeliveryStatus,
    pub detail: &'a str,
    pub now: i64,
}

/// Records a final outcome (`sent`, `error`, `dry_run`, `skipped`) if `worker` still holds
/// the lease, together with the run's counters, the day's statistics and the owner's data
/// version. `false` when the lease was lost (it ran out and another sender took the row, or
/// the mailing was disabled): the other party's record stands.
pub async fn finish(db: &Db, outcome: Outcome<'_>) -> anyhow::Result<bool> {
    Ok(finish_many(db, &[outcome]).await?[0])
}

/// [`finish`] for several outcomes in one transaction (the engine's group commit): each
/// delivery row on its own, then the counters summed once per run, per (mailing, day) and per
/// owner. One flag per outcome, in order.
pub async fn finish_many(db: &Db, outcomes: &[Outcome<'_>]) -> anyhow::Result<Vec<bool>> {
    #[derive(Default)]
    struct Sums {
        sent: i64,
        errors: i64,
        dry_run: i64,
        skipped: i64,
    }
    impl Sums {
        fn add(&mut self, status: DeliveryStatus) -> anyhow::Result<()> {
            match status {
                DeliveryStatus::Sent => self.sent += 1,
                DeliveryStatus::Error => self.errors += 1,
                DeliveryStatus::DryRun => self.dry_run += 1,
                DeliveryStatus::Skipped => self.skipped += 1,
                other => anyhow::bail!("{other} is not a final delivery outcome"),
            }
            Ok(())
        }
        fn total(&self) -> i64 {
            self.sent + self.errors + self.dry_run + self.skipped
        }
    }

    let mut recorded = vec![false; outcomes.len()];
    // Rows are locked in one order everywhere — deliveries by id (here and in a disable's
    // cancel), then runs, days and owners by key (the BTreeMaps) — so a batch cannot deadlock
    // on PostgreSQL with another batch or with a disable cancelling the same run's rows.
    let mut order: Vec<usize> = (0..outcomes.len()).collect();
    order.sort_by_key(|&i| outcomes[i].delivery_id);
    let mut per_run: BTreeMap<i64, Sums> = BTreeMap::new();
    let mut per_day: BTreeMap<(i64, i64), (i64, Sums)> = BTreeMap::new();
    let mut owners: BTreeMap<i64, i64> = BTreeMap::new();
    let mut tx = db.begin_write().await?;
    for i in order {
        let outcome = &outcomes[i];
        let done = sqlx::query(
            "UPDATE deliveries SET status = $3, detail = $4, lease_until = NULL, \
               leased_by = NULL, finished_at = $5, updated_at = $5 \
             WHERE id = $1 AND status = 'sending' AND leased_by = $2",
        )
        .bind(outcome.delivery_id)
        .bind(outcome.worker)
        .bind(outcome.status.as_str())
        .bind(outcome.detail)
        .bind(outcome.now)
        .execute(&mut *tx)
        .await
        .context("cannot record delivery outcome")?;
        let done = done.rows_affected() == 1;
        recorded[i] = done;
        if !done {
            continue;
        }
        per_run
            .entry(outcome.run_id)
            .or_default()
            .add(outcome.status)?;
        let day = per_day
            .entry((outcome.mailing_id, epoch_day(outcome.now)))
            .or_insert_with(|| (outcome.owner_id, Sums::default()));
        day.1.add(outcome.status)?;
        let latest = owners.entry(outcome.owner_id).or_insert(outcome.now);
        *latest = (*latest).max(outcome.now);
    }
    for (run_id, sums) in &per_run {
        sqlx::query(
            "UPDATE runs SET pending_count = pending_count - $2, sent_count = sent_count + $3, \
               error_count = error_count + $4, dry_run_count = dry_run_count + $5, \
               skipped_count = skipped_count + $6 \
             WHERE id = $1",
        )
        .bind(run_id)
        .bind(sums.total())
        .bind(sums.sent)
        .bind(sums.errors)
        .bind(sums.dry_run)
        .bind(sums.skipped)
        .execute(&mut *tx)
        .await
        .context("cannot update run counters")?;
    }
    for ((mailing_id, day), (owner_id, sums)) in &per_day {
        if sums.sent + sums.errors + sums.dry_run == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO daily_stats (owner_id, mailing_id, day, sent, errors, dry_run) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (mailing_id, day) DO UPDATE SET \
             sent = daily_stats.sent + excluded.sent, \
             errors = daily_stats.errors + excluded.errors, \
             dry_run = daily_stats.dry_run + excluded.dry_run",
        )
        .bind(owner_id)
        .bind(mailing_id)
        .bind(day)
        .bind(sums.sent)
        .bind(sums.errors)
        .bind(sums.dry_run)
        .execute(&mut *tx)
        .await
        .context("cannot update daily stats")?;
    }
    for (owner_id, now) in &owners {
        versions::bump(&mut tx, *owner_id, *now).await?;
    }
    tx.commit()
        .await
        .context("cannot commit delivery outcomes")?;
    Ok(recorded)
}

/// Puts a claimed delivery back to `pending` until `next_attempt_at`, keeping the temporary
/// failure in `detail`. `false` when the lease was lost.
pub async fn retry_later(
    db: &Db,
    delivery_id: i64,
    worker: &str,
    detail: &str,
    next_attempt_at: i64,
    now: i64,
) -> anyhow::Result<bool> {
    let _turn = db.write_turn().await;
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'pending', detail = $3, next_attempt_at = $4, \
           lease_until = NULL, leased_by = NULL, updated_at = $5 \
         WHERE id = $1 AND status = 'sending' AND leased_by = $2",
    )
    .bind(delivery_id)
    .bind(worker)
    .bind(detail)
    .bind(next_attempt_at)
    .bind(now)
    .execute(&db.pool)
    .await
    .context("cannot reschedule delivery")?;
    Ok(done.rows_affected() == 1)
}

/// Gives claimed deliveries back untried (a sender stopping): pending again at once, and the
/// attempt the claim counted is taken back.
pub async fn release(db: &Db, ids: &[i64], worker: &str, now: i64) -> anyhow::Result<u64> {
    let mut released = 0;
    let _turn = db.write_turn().await;
    for id in ids {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = attempts - 1, \
               lease_until = NULL, leased_by = NULL, updated_at = $3 \
             WHERE id = $1 AND status = 'sending' AND leased_by = $2 AND attempts > 0",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .execute(&db.pool)
        .await
        .context("cannot release delivery")?;
        released += done.rows_affected();
    }
    Ok(released)
}

/// The earliest `next_attempt_at` of the run's (or every run's) pending rows: when there will
/// be work again.
pub async fn next_attempt_at(db: &Db, run_id: Option<i64>) -> anyhow::Result<Option<i64>> {
    let next: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT MIN(next_attempt_at) FROM deliveries \
         WHERE status IN ('pending', 'sending') AND ($1 = 0 OR run_id = $1)",
    )
    .bind(run_id.unwrap_or(0))
    .fetch_optional(&db.pool)
    .await
    .context("cannot find the next attempt")?;
    Ok(next.flatten())
}

/// When rows of running runs next become claimable after `now`: the earliest `lease_until`
/// of rows leased by a sender (a killed one's come back then) or `next_attempt_at` of pending
/// rows waiting for a retry. The scheduler wakes then rather than a whole interval later.
pub async fn next_claimable_at(db: &Db, now: i64) -> anyhow::Result<Option<i64>> {
    const AT: &str = "CASE WHEN d.status = 'sending' AND d.lease_until IS NOT NULL \
        THEN d.lease_until ELSE d.next_attempt_at END";
    let sql = format!(
        "SELECT MIN({AT}) FROM deliveries d JOIN runs r ON r.id = d.run_id \
         WHERE r.status = 'running' AND d.status IN ('pending', 'sending') AND {AT} > $1 \
           AND d.mailing_id NOT IN ({PAUSED_MAILING_IDS})"
    );
    let next: Option<Option<i64>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .fetch_optional(&db.pool)
        .await
        .context("cannot find when deliveries are next claimable")?;
    Ok(next.flatten())
}

pub async fn get(db: &Db, id: i64) -> anyhow::Result<Option<Delivery>> {
    let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE id = $1");
    let row = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .context("cannot load delivery")?;
    row.map(Delivery::try_from).transpose()
}

/// Every delivery of a run in id order (tests, CLI summaries; the pages use [`list`]).
pub async fn for_run(db: &Db, run_id: i64) -> anyhow::Result<Vec<Delivery>> {
    let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE run_id = $1 ORDER BY id");
    let rows = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
        .bind(run_id)
        .fetch_all(&db.pool)
        .await
        .context("cannot load deliveries")?;
    rows.into_iter().map(Delivery::try_from).collect()
}

/// A page of a mailing's delivery log (`/mailings/{id}/logs`), newest first, optionally of
/// one status, and how many rows match in all.
pub async fn list(
    db: &Db,
    mailing_id: i64,
    status: Option<DeliveryStatus>,
    limit: i64,
    offset: i64,
) -> anyhow::Result<(Vec<Delivery>, i64)> {
    let status = status.map(|s| s.as_str()).unwrap_or("");
    let filter = "WHERE mailing_id = $1 AND ($2 = '' OR status = $2)";
    let sql =
        format!("SELECT {COLUMNS} FROM deliveries {filter} ORDER BY id DESC LIMIT $3 OFFSET $4");
    let rows = sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
        .bind(mailing_id)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await
        .context("cannot list deliveries")?;
    let count_sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries {filter}");
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
        .bind(mailing_id)
        .bind(status)
        .fetch_one(&db.pool)
        .await
        .context("cannot count deliveries")?;
    let rows = rows
        .into_iter()
        .map(Delivery::try_from)
        .collect::<anyhow::Result<_>>()?;
    Ok((rows, total))
}
