//! Statistics, period reports and the dashboard's counters (SPEC §6 `/`, §9): who may see
//! which figures, the report's parameters, and the server-side cache keyed by data version.
//!
//! Versions: a viewer limited to their own data follows `user:{id}`; a viewer who sees
//! everyone (`view_all_mailings`, superuser) follows [`versions::of_everyone`], derived from
//! every user's version. A report is about one user, so it always follows that user's
//! version. The version is read *before* the figures, so a cached entry may be newer than
//! its key but never older: a report is never stale after a send.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::Date;
use time::macros::format_description;

use crate::cache::Cache;
use crate::db::Db;
use crate::db::dashboard::{self, Counters};
use crate::db::stats::{self, MailingStats, PeriodFigures};
use crate::db::users;
use crate::db::versions::{self, DataVersion};
use crate::domain::choice::Choice;
use crate::domain::{FieldErrors, Scope, csv_cell};

/// Default length of a report: the last 30 days, today included.
pub const DEFAULT_DAYS: i64 = 30;
/// Longest period a report covers (a leap year).
pub const MAX_DAYS: i64 = 366;

/// What the cached figures use: the database, the cache and how long a value is kept
/// (`CACHE_TTL_SECS`); lent by [`crate::state::AppState::reports`].
#[derive(Clone, Copy)]
pub struct Reports<'a> {
    pub db: &'a Db,
    pub cache: &'a Cache,
    pub ttl: Duration,
}

/// The data version the viewer's figures follow.
pub async fn viewer_version(db: &Db, scope: &Scope) -> anyhow::Result<DataVersion> {
    match scope.owner_filter() {
        Some(owner) => versions::of_user(db, owner).await,
        None => versions::of_everyone(db).await,
    }
}

/// The data version of one user's figures (a report of that user follows it).
pub async fn user_version(db: &Db, user_id: i64) -> anyhow::Result<DataVersion> {
    versions::of_user(db, user_id).await
}

/// The cache key segment of a viewer's reach: their own data, or everyone's.
fn reach(scope: &Scope) -> String {
    match scope.owner_filter() {
        Some(owner) => format!("user:{owner}"),
        None => "all".to_string(),
    }
}

/// The dashboard's counters, cached under the viewer's version.
pub async fn dashboard(
    reports: Reports<'_>,
    scope: &Scope,
    version: &DataVersion,
) -> anyhow::Result<Counters> {
    let key = format!("dashboard:{}:v{}", reach(scope), version.token());
    cached(reports, &key, dashboard::counters(reports.db, scope)).await
}

/// The totals of `/mailings/stats/`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsTotals {
    pub mailings: i64,
    pub runs_ok: i64,
    pub runs_fail: i64,
    pub sent: i64,
    pub errors: i64,
    pub dry_run: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Stats {
    pub totals: StatsTotals,
    pub rows: Vec<MailingStats>,
}

/// Every visible mailing's figures and their totals, cached under the viewer's version.
pub async fn stats(
    reports: Reports<'_>,
    scope: &Scope,
    version: &DataVersion,
) -> anyhow::Result<Stats> {
    let key = format!("stats:{}:v{}", reach(scope), version.token());
    cached(reports, &key, async {
        let rows = stats::mailings(reports.db, scope.owner_filter()).await?;
        let mut totals = StatsTotals {
            mailings: rows.len() as i64,
            ..StatsTotals::default()
        };
        for r in &rows {
            totals.runs_ok += r.runs_ok;
            totals.runs_fail += r.runs_fail;
            totals.sent += r.sent;
            totals.errors += r.errors;
            totals.dry_run += r.dry_run;
        }
        Ok(Stats { totals, rows })
    })
    .await
}

/// How `/mailings/stats/` rows can be ordered (`?sort=`; anything else: most sent first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatsSort {
    #[default]
    Sent,
    Errors,
    Rate,
    LastSent,
    Recipients,
}

impl Choice for StatsSort {
    const WORDS: &'static [(Self, &'static str)] = &[
        (StatsSort::Sent, "sent"),
        (StatsSort::Errors, "errors"),
        (StatsSort::Rate, "rate"),
        (StatsSort::LastSent, "last_sent"),
        (StatsSort::Recipients, "recipients"),
    ];
}

/// What the report's CSV holds (`?rows=`): one line per mailing (default) or per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportRows {
    #[default]
    Mailings,
    Days,
}

impl Choice for ReportRows {
    const WORDS: &'static [(Self, &'static str)] = &[
        (ReportRows::Mailings, "mailings"),
        (ReportRows::Days, "days"),
    ];
}

/// Orders rows by `sort`, descending unless `ascending`; ties by mailing id.
pub fn sort_rows(rows: &mut [MailingStats], sort: StatsSort, ascending: bool) {
    rows.sort_by(|a, b| {
        let order = match sort {
            StatsSort::Sent => a.sent.cmp(&b.sent),
            StatsSort::Errors => a.errors.cmp(&b.errors),
            StatsSort::Rate => a
                .success_rate()
                .unwrap_or(-1.0)
                .total_cmp(&b.success_rate().unwrap_or(-1.0)),
            StatsSort::LastSent => a.last_sent_at.cmp(&b.last_sent_at),
            StatsSort::Recipients => a.recipients.cmp(&b.recipients),
        };
        let order = if ascending { order } else { order.reverse() };
        order.then(a.id.cmp(&b.id))
    });
}

/// The query string of `/mailings/reports/` as typed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ReportParams {
    pub from: String,
    pub to: String,
    pub user: String,
    pub format: String,
    #[serde(deserialize_with = "crate::domain::choice::choice")]
    pub rows: ReportRows,
}

/// A report request that parsed: whose, and which days (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportQuery {
    pub user_id: i64,
    pub from: Date,
    pub to: Date,
}

impl ReportQuery {
    pub fn from_day(&self) -> i64 {
        epoch_day(self.from)
    }
    pub fn to_day(&self) -> i64 {
        epoch_day(self.to)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No such user, or not the viewer's to see: 404 either way (SPEC §5).
    #[error("not found")]
    NotFound,
    /// The dates did not parse or make no period; the form is shown again with these.
    #[error("invalid report parameters")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Days since the unix epoch of a calendar date (the `daily_stats` key).
pub fn epoch_day(date: Date) -> i64 {
    i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY
}

/// The calendar date of an epoch day.
pub fn day_date(day: i64) -> Date {
    i32::try_from(day + UNIX_EPOCH_JULIAN_DAY)
        .ok()
        .and_then(|j| Date::from_julian_day(j).ok())
        .unwrap_or(Date::MIN)
}

/// `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

fn parse_date(field: &str, raw: &str) -> Result<Option<Date>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    Date::parse(raw, format_description!("[year]-[month]-[day]"))
        .map(Some)
        .map_err(|_| {
            let shown: String = raw.chars().take(40).collect();
            format!("{shown:?} is not a date like 2026-12-24 (the {field} date).")
        })
}

/// Resolves whose report and which days; `today` is the viewer's today in their zone.
///
/// A user id the viewer may not see, or that names nobody, is [`ReportError::NotFound`];
/// that is checked before the dates, so a bad date never reveals whether a user exists.
pub async fn resolve(
    db: &Db,
    scope: &Scope,
    params: &ReportParams,
    today: Date,
) -> Result<ReportQuery, ReportError> {
    let user_id = match params.user.trim() {
        "" => scope.user_id,
        raw => raw
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or(ReportError::NotFound)?,
    };
    if !scope.can_view(user_id) {
        return Err(ReportError::NotFound);
    }
    if user_id != scope.user_id && users::find_by_id(db, user_id).await?.is_none() {
        return Err(ReportError::NotFound);
    }
    let (from, to) = parse_period(params, today).map_err(ReportError::Invalid)?;
    Ok(ReportQuery { user_id, from, to })
}

/// The period of `from`/`to` (each defaulting from the other, else the last 30 days).
pub fn parse_period(params: &ReportParams, today: Date) -> Result<(Date, Date), FieldErrors> {
    let mut errors = FieldErrors::new();
    let from = errors
        .check("from", parse_date("from", &params.from))
        .flatten();
    let to = errors.check("to", parse_date("to", &params.to)).flatten();
    if !errors.is_empty() {
        return Err(errors);
    }
    let span = time::Duration::days(DEFAULT_DAYS - 1);
    let (from, to) = match (from, to) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, f.saturating_add(span).min(today.max(f))),
        (None, Some(t)) => (t.saturating_sub(span), t),
        (None, None) => (today.saturating_sub(span), today),
    };
    if from > to {
        errors.add("from", "The start date must not be after the end date.");
        return Err(errors);
    }
    let days = epoch_day(to) - epoch_day(from) + 1;
    if days > MAX_DAYS {
        errors.add(
            "to",
            format!("A report covers at most {MAX_DAYS} days; this period has {days}."),
        );
        return Err(errors);
    }
    Ok((from, to))
}

/// A period report, ready to render or export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Report {
    pub user_id: i64,
    pub user_email: String,
    pub from: String,
    pub to: String,
    pub figures: PeriodFigures,
    pub runs_ok: i64,
    pub runs_fail: i64,
    pub sent: i64,
    pub errors: i64,
    pub dry_run: i64,
}

/// The report of `query`, cached under its user's version and the viewer's reach.
pub async fn report(
    reports: Reports<'_>,
    scope: &Scope,
    query: &ReportQuery,
    version: &DataVersion,
) -> anyhow::Result<Report> {
    let key = format!(
        "report:{}:{}:{}:{}:v{}",
        reach(scope),
        query.user_id,
        query.from_day(),
        query.to_day(),
        version.token()
    );
    cached(reports, &key, async {
        let user_email = users::find_by_id(reports.db, query.user_id)
            .await?
            .map(|u| u.email)
            .unwrap_or_default();
        let figures =
            stats::period(reports.db, query.user_id, query.from_day(), query.to_day()).await?;
        let sum = |f: fn(&stats::DayTotals) -> i64| figures.days.iter().map(f).sum::<i64>();
        Ok(Report {
            user_id: query.user_id,
            user_email,
            from: format_date(query.from),
            to: format_date(query.to),
            runs_ok: sum(|d| d.runs_ok),
            runs_fail: sum(|d| d.runs_fail),
            sent: sum(|d| d.sent),
            errors: sum(|d| d.errors),
            dry_run: sum(|d| d.dry_run),
            figures,
        })
    })
    .await
}

/// The report's per-mailing rows (or, with `days`, its per-day rows) as CSV with a header;
/// every cell is safe to open in a spreadsheet (a subject is anyone's text).
pub fn to_csv(report: &Report, days: bool) -> anyhow::Result<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    if days {
        out.write_record(["date", "sent", "errors", "dry_run", "runs_ok", "runs_fail"])?;
        for d in &report.figures.days {
            out.write_record(csv_cell::safe_record(&[
                format_date(day_date(d.day)),
                d.sent.to_string(),
                d.errors.to_string(),
                d.dry_run.to_string(),
                d.runs_ok.to_string(),
                d.runs_fail.to_string(),
            ]))?;
        }
    } else {
        out.write_record([
            "mailing_id",
            "subject",
            "status",
            "runs_ok",
            "runs_fail",
            "sent",
            "errors",
            "dry_run",
        ])?;
        for m in &report.figures.per_mailing {
            out.write_record(csv_cell::safe_record(&[
                m.id.to_string(),
                m.subject.clone(),
                m.status.clone(),
                m.runs_ok.to_string(),
                m.runs_fail.to_string(),
                m.sent.to_string(),
                m.errors.to_string(),
                m.dry_run.to_string(),
            ]))?;
        }
    }
    let bytes = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot finish CSV: {e}"))?;
    Ok(String::from_utf8(bytes)?)
}

/// The value under `key` if cached, else computed and stored for `CACHE_TTL_SECS`. A value
/// that no longer decodes (another version of the program wrote it) counts as a miss.
async fn cached<T: Serialize + DeserializeOwned>(
    reports: Reports<'_>,
    key: &str,
    compute: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    if let Some(hit) = reports.cache.get(key).await
        && let Ok(value) = serde_json::from_str(&hit)
    {
        return Ok(value);
    }
    let value = compute.await?;
    let ttl = reports.ttl;
    if !ttl.is_zero()
        && let Ok(json) = serde_json::to_string(&value)
    {
        reports.cache.set(key, &json, ttl).await;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn params(from: &str, to: &str) -> ReportParams {
        ReportParams {
            from: from.into(),
            to: to.into(),
            ..ReportParams::default()
        }
    }

    #[test]
    fn epoch_days_round_trip() {
        assert_eq!(epoch_day(date!(1970 - 01 - 01)), 0);
        assert_eq!(
            epoch_day(date!(2030 - 01 - 01)),
            1_893_456_000_000 / 86_400_000
        );
        assert_eq!(
            day_date(epoch_day(date!(2026 - 02 - 28))),
            date!(2026 - 02 - 28)
        );
    }

    #[test]
    fn periods_default_and_refuse_nonsense() {
        let today = date!(2026 - 11 - 30);
        assert_eq!(
            parse_period(&params("", ""), today).unwrap(),
            (date!(2026 - 11 - 01), today)
        );
        assert_eq!(
            parse_period(&params("2026-01-01", "2026-01-31"), today).unwrap(),
            (date!(2026 - 01 - 01), date!(2026 - 01 - 31))
        );
        assert!(
            parse_period(&params("2026-13-01", ""), today)
                .unwrap_err()
                .get("from")
                .is_some()
        );
        assert!(
            parse_period(&params("", "yesterday"), today)
                .unwrap_err()
                .get("to")
                .is_some()
        );
        let after = parse_period(&params("2026-02-02", "2026-02-01"), today).unwrap_err();
        assert!(after.get("from").unwrap().contains("after"));
        let long = parse_period(&params("2024-01-01", "2026-01-01"), today).unwrap_err();
        assert!(long.get("to").unwrap().contains("366"));
        assert!(parse_period(&params("2024-01-01", "2024-12-31"), today).is_ok());
    }

    #[test]
    fn stats_sort_words() {
        for &(sort, word) in StatsSort::WORDS {
            assert_eq!(StatsSort::parse(word), sort);
            assert_eq!(sort.word(), word);
        }
        assert_eq!(StatsSort::parse("nonsense"), StatsSort::Sent);
    }
}
