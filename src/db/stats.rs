//! Statistics and period reports (SPEC §9), read from the per-run and per-day totals the
//! delivery engine keeps (`runs`, `daily_stats`) and from audiences — never by scanning
//! `deliveries`, so their cost does not grow with the delivery log.

use anyhow::Context as _;
use sqlx::FromRow;

use super::Db;

/// One mailing's lifetime figures on `/mailings/stats/`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, serde::Deserialize)]
pub struct MailingStats {
    pub id: i64,
    pub owner_id: i64,
    pub owner_email: String,
    pub subject: String,
    pub status: String,
    pub recipients: i64,
    pub runs_ok: i64,
    pub runs_fail: i64,
    pub sent: i64,
    pub errors: i64,
    pub dry_run: i64,
    pub last_sent_at: Option<i64>,
}

impl MailingStats {
    /// Sent out of sent + errors, in percent; `None` before anything was attempted.
    pub fn success_rate(&self) -> Option<f64> {
        rate(self.sent, self.errors)
    }
}

/// `sent / (sent + errors)` in percent.
pub fn rate(sent: i64, errors: i64) -> Option<f64> {
    let attempted = sent + errors;
    (attempted > 0).then(|| sent as f64 * 100.0 / attempted as f64)
}

/// A mailing's status as stats and reports show it: an archived mailing keeps its figures
/// there, marked `archived` (SPEC §12).
const STATUS: &str = concat!(
    "CASE WHEN m.archived_at IS NULL THEN m.status ELSE '",
    crate::domain::mailing::archived_word!(),
    "' END"
);

/// `WHERE` of a query restricted to one owner or to none (`$1 = $1` keeps the bind).
fn owner_where(owner: Option<i64>, column: &str) -> String {
    match owner {
        Some(_) => format!("{column} = $1"),
        None => "$1 = $1".to_string(),
    }
}

/// Every visible mailing with its lifetime figures, by id. Runs counted are real runs that
/// finished (dry runs are not counted as runs; their messages are in `dry_run`).
#[tracing::instrument(skip_all)]
pub async fn mailings(db: &Db, owner: Option<i64>) -> anyhow::Result<Vec<MailingStats>> {
    let filter = owner_where(owner, "m.owner_id");
    let sql = format!(
        "SELECT m.id, m.owner_id, u.email AS owner_email, msg.subject, {STATUS} AS status, \
           CAST((SELECT COUNT(*) FROM mailing_recipients mr WHERE mr.mailing_id = m.id) \
             AS BIGINT) AS recipients, \
           CAST(COALESCE(s.runs_ok, 0) AS BIGINT) AS runs_ok, \
           CAST(COALESCE(s.runs_fail, 0) AS BIGINT) AS runs_fail, \
           CAST(COALESCE(s.sent, 0) AS BIGINT) AS sent, \
           CAST(COALESCE(s.errors, 0) AS BIGINT) AS errors, \
           CAST(COALESCE(s.dry_run, 0) AS BIGINT) AS dry_run, \
           m.last_sent_at \
         FROM mailings m \
         JOIN users u ON u.id = m.owner_id \
         JOIN messages msg ON msg.id = m.message_id \
         LEFT JOIN ( \
           SELECT mailing_id, SUM(runs_ok) AS runs_ok, SUM(runs_fail) AS runs_fail, \
             SUM(sent) AS sent, SUM(errors) AS errors, SUM(dry_run) AS dry_run \
           FROM daily_stats GROUP BY mailing_id) s ON s.mailing_id = m.id \
         WHERE {filter} ORDER BY m.id"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner.unwrap_or(0))
        .fetch_all(&db.pool)
        .await
        .context("cannot read mailing statistics")
}

/// A user's mailings by status, now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailingCounts {
    pub total: i64,
    pub running: i64,
    pub finished: i64,
}

/// One day of a period (days since the unix epoch, UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DayTotals {
    pub day: i64,
    pub sent: i64,
    pub errors: i64,
    pub dry_run: i64,
    pub runs_ok: i64,
    pub runs_fail: i64,
}

/// One mailing's figures within a period.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, serde::Deserialize)]
pub struct PeriodMailing {
    pub id: i64,
    pub subject: String,
    pub status: String,
    pub runs_ok: i64,
    pub runs_fail: i64,
    pub sent: i64,
    pub errors: i64,
    pub dry_run: i64,
}

/// The raw material of a period report for one user and the days `[from, to]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeriodFigures {
    pub mailings: MailingCounts,
    /// Distinct addresses in the audiences of the user's mailings.
    pub recipients: i64,
    /// Every day of the period, oldest first, zeros included.
    pub days: Vec<DayTotals>,
    /// Mailings with any activity in the period, most sent first.
    pub per_mailing: Vec<PeriodMailing>,
}

#[tracing::instrument(skip_all, fields(owner_id, from, to))]
pub async fn period(db: &Db, owner_id: i64, from: i64, to: i64) -> anyhow::Result<PeriodFigures> {
    let (total, running, finished, recipients): (i64, i64, i64, i64) = sqlx::query_as(concat!(
        "SELECT \
           (SELECT CAST(COUNT(*) AS BIGINT) FROM mailings WHERE owner_id = $1), \
           (SELECT CAST(COUNT(*) AS BIGINT) FROM mailings WHERE owner_id = $1 AND ",
        super::mailings::running!(),
        "), \
           (SELECT CAST(COUNT(*) AS BIGINT) FROM mailings WHERE owner_id = $1 \
              AND status = 'finished'), \
           (SELECT CAST(COUNT(DISTINCT lower(r.email)) AS BIGINT) \
              FROM mailings m \
              JOIN mailing_recipients mr ON mr.mailing_id = m.id \
              JOIN recipients r ON r.id = mr.recipient_id \
              WHERE m.owner_id = $1)",
    ))
    .bind(owner_id)
    .fetch_one(&db.pool)
    .await
    .context("cannot count the user's mailings")?;

    // daily_stats_owner_day (owner_id, day) serves both range reads.
    let rows: Vec<(i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT day, CAST(SUM(sent) AS BIGINT), CAST(SUM(errors) AS BIGINT), \
           CAST(SUM(dry_run) AS BIGINT), CAST(SUM(runs_ok) AS BIGINT), \
           CAST(SUM(runs_fail) AS BIGINT) \
         FROM daily_stats WHERE owner_id = $1 AND day BETWEEN $2 AND $3 \
         GROUP BY day ORDER BY day",
    )
    .bind(owner_id)
    .bind(from)
    .bind(to)
    .fetch_all(&db.pool)
    .await
    .context("cannot read daily statistics")?;
    let mut days: Vec<DayTotals> = (from..=to)
        .map(|day| DayTotals {
            day,
            ..DayTotals::default()
        })
        .collect();
    for (day, sent, errors, dry_run, runs_ok, runs_fail) in rows {
        if let Some(slot) = usize::try_from(day - from)
            .ok()
            .and_then(|i| days.get_mut(i))
        {
            *slot = DayTotals {
                day,
                sent,
                errors,
                dry_run,
                runs_ok,
                runs_fail,
            };
        }
    }

    let per_mailing: Vec<PeriodMailing> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT m.id, msg.subject, {STATUS} AS status, \
           CAST(SUM(s.runs_ok) AS BIGINT) AS runs_ok, \
           CAST(SUM(s.runs_fail) AS BIGINT) AS runs_fail, \
           CAST(SUM(s.sent) AS BIGINT) AS sent, \
           CAST(SUM(s.errors) AS BIGINT) AS errors, \
           CAST(SUM(s.dry_run) AS BIGINT) AS dry_run \
         FROM daily_stats s \
         JOIN mailings m ON m.id = s.mailing_id \
         JOIN messages msg ON msg.id = m.message_id \
         WHERE s.owner_id = $1 AND s.day BETWEEN $2 AND $3 \
         GROUP BY m.id, msg.subject, m.status, m.archived_at \
         ORDER BY sent DESC, m.id"
    )))
    .bind(owner_id)
    .bind(from)
    .bind(to)
    .fetch_all(&db.pool)
    .await
    .context("cannot read per-mailing statistics")?;

    Ok(PeriodFigures {
        mailings: MailingCounts {
            total,
            running,
            finished,
        },
        recipients,
        days,
        per_mailing,
    })
}
