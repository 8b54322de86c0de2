//! Error groups and broken-link marks (SPEC §8): the SQL behind de-duplicated reports and
//! `/admin/errors`.
//!
//! The decisions several instances must agree on are single conditional statements, so two
//! instances never both e-mail the same fingerprint inside its cooldown, nor the same broken
//! link twice a day: whoever's `UPDATE … WHERE` (or upsert) changes the row has the right.

use anyhow::Context as _;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::db::Db;

/// What a group collects; stored as `error_groups.kind` (`error` or `broken_link`) and parsed
/// once, where a row is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// Unhandled errors and panics.
    Error,
    /// Broken links (404s with a referer from this site).
    BrokenLink,
}

impl GroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::Error => "error",
            GroupKind::BrokenLink => "broken_link",
        }
    }

    fn parse(stored: &str) -> Option<Self> {
        match stored {
            "error" => Some(GroupKind::Error),
            "broken_link" => Some(GroupKind::BrokenLink),
            _ => None,
        }
    }

    /// How the admin page names it.
    pub fn label(self) -> &'static str {
        match self {
            GroupKind::Error => "error",
            GroupKind::BrokenLink => "broken link",
        }
    }
}

/// Stored messages are cut to this many characters (the e-mail has the whole text).
const MAX_MESSAGE_CHARS: usize = 1000;

/// One occurrence, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Occurrence<'a> {
    pub fingerprint: &'a str,
    pub kind: GroupKind,
    pub error_type: &'a str,
    pub message: &'a str,
    pub route: &'a str,
    pub request_id: &'a str,
}

/// A group as `/admin/errors` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorGroup {
    pub id: i64,
    pub fingerprint: String,
    pub kind: GroupKind,
    pub error_type: String,
    pub message: String,
    pub route: String,
    pub occurrences: i64,
    /// Repeats not e-mailed since the last e-mail.
    pub suppressed: i64,
    pub first_seen_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub last_emailed_at: Option<OffsetDateTime>,
    pub last_request_id: String,
    pub resolved_at: Option<OffsetDateTime>,
}

/// The right to e-mail a fingerprint now, and what happened since its last e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailClaim {
    /// When it was last e-mailed before this claim (`None`: first time, or reopened).
    pub previous_emailed_at: Option<i64>,
    /// Repeats not e-mailed since then; taken off the group's count by the claim.
    pub suppressed: i64,
    /// The `last_emailed_at` this claim wrote.
    pub claimed_at: i64,
}

fn cut_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

pub use crate::domain::instant::from_ms;

/// Counts one occurrence: creates the group or bumps it. With `reopen`, a resolved group is
/// reopened as new: `resolved_at`, `last_emailed_at` and `suppressed` are cleared, so it is
/// e-mailed again like a first occurrence (whether it is, is the notifier policy's call).
/// Returns the number of occurrences so far.
#[tracing::instrument(skip_all, fields(fingerprint = %occ.fingerprint))]
pub async fn record(
    db: &Db,
    occ: &Occurrence<'_>,
    now_ms: i64,
    reopen: bool,
) -> anyhow::Result<i64> {
    // Every right-hand side reads the row as it was before the update (both dialects).
    let (occurrences,): (i64,) = sqlx::query_as(
        "INSERT INTO error_groups (fingerprint, kind, error_type, message, route, occurrences, \
             suppressed, first_seen_at, last_seen_at, last_request_id) \
         VALUES ($1, $2, $3, $4, $5, 1, 0, $6, $6, $7) \
         ON CONFLICT (fingerprint) DO UPDATE SET \
             occurrences = error_groups.occurrences + 1, \
             error_type = excluded.error_type, \
             message = excluded.message, \
             last_seen_at = excluded.last_seen_at, \
             last_request_id = excluded.last_request_id, \
             last_emailed_at = CASE WHEN error_groups.resolved_at IS NOT NULL AND $8 = 1 \
                 THEN NULL ELSE error_groups.last_emailed_at END, \
             suppressed = CASE WHEN error_groups.resolved_at IS NOT NULL AND $8 = 1 \
                 THEN 0 ELSE error_groups.suppressed END, \
             resolved_at = CASE WHEN $8 = 1 THEN NULL ELSE error_groups.resolved_at END \
         RETURNING occurrences",
    )
    .bind(occ.fingerprint)
    .bind(occ.kind.as_str())
    .bind(cut_chars(occ.error_type, 200))
    .bind(cut_chars(occ.message, MAX_MESSAGE_CHARS))
    .bind(cut_chars(occ.route, 200))
    .bind(now_ms)
    .bind(occ.request_id)
    .bind(i64::from(reopen))
    .fetch_one(&db.pool)
    .await
    .context("Failed to record an error occurrence")?;
    Ok(occurrences)
}

/// Takes the right to e-mail `fingerprint` now, when its last e-mail is still `expected` (the
/// time the notifier policy decided on; `None`: never e-mailed). `None`: another e-mail
/// (maybe another instance's) came first; the caller counts the occurrence with
/// [`add_suppressed`]. The cooldown itself is the policy's (`reporting::policy`).
#[tracing::instrument(skip_all, fields(fingerprint = %fingerprint))]
pub async fn claim_email(
    db: &Db,
    fingerprint: &str,
    expected: Option<i64>,
    now_ms: i64,
) -> anyhow::Result<Option<EmailClaim>> {
    let before: Option<(Option<i64>, i64)> = sqlx::query_as(
        "SELECT last_emailed_at, suppressed FROM error_groups WHERE fingerprint = $1",
    )
    .bind(fingerprint)
    .fetch_optional(&db.pool)
    .await
    .context("Failed to read an error group")?;
    let Some((previous_emailed_at, suppressed)) = before else {
        return Ok(None);
    };
    if previous_emailed_at != expected {
        return Ok(None);
    }
    // The atomic step: of several instances, only one changes the row.
    let update = match expected {
        None => sqlx::query(
            "UPDATE error_groups SET last_emailed_at = $2 \
             WHERE fingerprint = $1 AND last_emailed_at IS NULL",
        )
        .bind(fingerprint)
        .bind(now_ms),
        Some(last) => sqlx::query(
            "UPDATE error_groups SET last_emailed_at = $2 \
             WHERE fingerprint = $1 AND last_emailed_at = $3",
        )
        .bind(fingerprint)
        .bind(now_ms)
        .bind(last),
    };
    let claimed = update
        .execute(&db.pool)
        .await
        .context("Failed to claim an error e-mail")?
        .rows_affected()
        == 1;
    if !claimed {
        return Ok(None);
    }
    // Had someone else claimed between the read and the update, ours would have found their
    // fresh `last_emailed_at` and changed nothing: the values read are the ones replaced.
    // Repeats counted meanwhile stay for the next e-mail.
    if suppressed > 0 {
        sqlx::query(
            "UPDATE error_groups SET suppressed = \
                 CASE WHEN suppressed > $2 THEN suppressed - $2 ELSE 0 END \
             WHERE fingerprint = $1",
        )
        .bind(fingerprint)
        .bind(suppressed)
        .execute(&db.pool)
        .await
        .context("Failed to reset the suppressed count")?;
    }
    Ok(Some(EmailClaim {
        previous_emailed_at,
        suppressed,
        claimed_at: now_ms,
    }))
}

/// Gives a claim back after its e-mail failed: the previous `last_emailed_at` returns (so the
/// next occurrence may e-mail again) and the repeats, plus the failed one, count as suppressed.
pub async fn release_email(db: &Db, fingerprint: &str, claim: &EmailClaim) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE error_groups SET last_emailed_at = $2, suppressed = suppressed + $3 \
         WHERE fingerprint = $1 AND last_emailed_at = $4",
    )
    .bind(fingerprint)
    .bind(claim.previous_emailed_at)
    .bind(claim.suppressed + 1)
    .bind(claim.claimed_at)
    .execute(&db.pool)
    .await
    .context("Failed to release an error e-mail claim")?;
    Ok(())
}

/// Counts one occurrence that was not e-mailed.
pub async fn add_suppressed(db: &Db, fingerprint: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE error_groups SET suppressed = suppressed + 1 WHERE fingerprint = $1")
        .bind(fingerprint)
        .execute(&db.pool)
        .await
        .context("Failed to count a suppressed error")?;
    Ok(())
}

/// Whether (path, referer) was e-mailed within `period_ms` (a read: repeats of a known link
/// neither write a row nor spend the per-minute cap).
pub async fn broken_link_reported(
    db: &Db,
    path: &str,
    referer: &str,
    now_ms: i64,
    period_ms: i64,
) -> anyhow::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM broken_links WHERE path = $1 AND referer = $2 AND last_reported_at > $3",
    )
    .bind(path)
    .bind(referer)
    .bind(now_ms - period_ms)
    .fetch_optional(&db.pool)
    .await
    .context("Failed to look up a broken-link report")?;
    Ok(found.is_some())
}

/// Takes the right to report the broken link (`path`, `referer`) now, when it was never
/// reported or last reported at least `period_ms` ago. One upsert: atomic on both backends.
#[tracing::instrument(skip_all, fields(path = %path))]
pub async fn claim_broken_link(
    db: &Db,
    path: &str,
    referer: &str,
    now_ms: i64,
    period_ms: i64,
) -> anyhow::Result<bool> {
    let changed = sqlx::query(
        "INSERT INTO broken_links (path, referer, last_reported_at) VALUES ($1, $2, $3) \
         ON CONFLICT (path, referer) DO UPDATE SET last_reported_at = excluded.last_reported_at \
         WHERE broken_links.last_reported_at <= $4",
    )
    .bind(path)
    .bind(referer)
    .bind(now_ms)
    .bind(now_ms - period_ms)
    .execute(&db.pool)
    .await
    .context("Failed to claim a broken-link report")?
    .rows_affected();
    Ok(changed == 1)
}

/// The columns [`group_from_row`] reads; a macro so queries stay static strings.
macro_rules! group_columns {
    () => {
        "id, fingerprint, kind, error_type, message, route, occurrences, suppressed, \
         first_seen_at, last_seen_at, last_emailed_at, last_request_id, resolved_at"
    };
}

fn group_from_row(row: &AnyRow) -> Result<ErrorGroup, sqlx::Error> {
    Ok(ErrorGroup {
        id: row.try_get("id")?,
        fingerprint: row.try_get("fingerprint")?,
        kind: {
            let stored: String = row.try_get("kind")?;
            GroupKind::parse(&stored).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "kind".into(),
                source: format!("unknown error group kind {stored:?}").into(),
            })?
        },
        error_type: row.try_get("error_type")?,
        message: row.try_get("message")?,
        route: row.try_get("route")?,
        occurrences: row.try_get("occurrences")?,
        suppressed: row.try_get("suppressed")?,
        first_seen_at: from_ms(row.try_get("first_seen_at")?),
        last_seen_at: from_ms(row.try_get("last_seen_at")?),
        last_emailed_at: row
            .try_get::<Option<i64>, _>("last_emailed_at")?
            .map(from_ms),
        last_request_id: row.try_get("last_request_id")?,
        resolved_at: row.try_get::<Option<i64>, _>("resolved_at")?.map(from_ms),
    })
}

/// Groups, most recently seen first, for `/admin/errors`.
#[tracing::instrument(skip_all)]
pub async fn list_groups(db: &Db, limit: i64, offset: i64) -> anyhow::Result<Vec<ErrorGroup>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        group_columns!(),
        " FROM error_groups ORDER BY last_seen_at DESC, id DESC LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await
    .context("Failed to list error groups")?;
    rows.iter()
        .map(group_from_row)
        .collect::<Result<_, _>>()
        .context("Failed to read error groups")
}

/// Number of groups, for paginating `/admin/errors`.
pub async fn count_groups(db: &Db) -> anyhow::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM error_groups")
        .fetch_one(&db.pool)
        .await
        .context("Failed to count error groups")?;
    Ok(n)
}

/// One group by fingerprint.
pub async fn find(db: &Db, fingerprint: &str) -> anyhow::Result<Option<ErrorGroup>> {
    let query = sqlx::query(concat!(
        "SELECT ",
        group_columns!(),
        " FROM error_groups WHERE fingerprint = $1"
    ))
    .bind(fingerprint);
    fetch_group(db, query).await
}

/// One group by id.
pub async fn find_by_id(db: &Db, id: i64) -> anyhow::Result<Option<ErrorGroup>> {
    let query = sqlx::query(concat!(
        "SELECT ",
        group_columns!(),
        " FROM error_groups WHERE id = $1"
    ))
    .bind(id);
    fetch_group(db, query).await
}

async fn fetch_group(
    db: &Db,
    query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
) -> anyhow::Result<Option<ErrorGroup>> {
    let row = query
        .fetch_optional(&db.pool)
        .await
        .context("Failed to load an error group")?;
    row.as_ref()
        .map(group_from_row)
        .transpose()
        .context("Failed to read an error group")
}

/// Marks a group resolved; its next occurrence is e-mailed as a new one. `false` when there
/// is no such group.
#[tracing::instrument(skip_all, fields(group_id = id))]
pub async fn resolve(db: &Db, id: i64) -> anyhow::Result<bool> {
    let changed = sqlx::query("UPDATE error_groups SET resolved_at = $2 WHERE id = $1")
        .bind(id)
        .bind(crate::db::now_ms())
        .execute(&db.pool)
        .await
        .context("Failed to resolve an error group")?
        .rows_affected();
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::testing::test_db;

    fn occ<'a>(fingerprint: &'a str, request_id: &'a str) -> Occurrence<'a> {
        Occurrence {
            fingerprint,
            kind: GroupKind::Error,
            error_type: "anyhow::Error",
            message: "boom",
            route: "/clients/{id}",
            request_id,
        }
    }

    #[tokio::test]
    async fn occurrences_are_counted_per_fingerprint() {
        let (_dir, db) = test_db().await;
        assert_eq!(record(&db, &occ("a", "r1"), 1_000, true).await.unwrap(), 1);
        assert_eq!(record(&db, &occ("a", "r2"), 2_000, true).await.unwrap(), 2);
        assert_eq!(record(&db, &occ("b", "r3"), 3_000, true).await.unwrap(), 1);
        let a = find(&db, "a").await.unwrap().unwrap();
        assert_eq!(a.occurrences, 2);
        assert_eq!(a.first_seen_at, from_ms(1_000));
        assert_eq!(a.last_seen_at, from_ms(2_000));
        assert_eq!(a.last_request_id, "r2");
        assert_eq!(a.kind, GroupKind::Error);
        let groups = list_groups(&db, 10, 0).await.unwrap();
        assert_eq!(
            groups
                .iter()
                .map(|g| g.fingerprint.as_str())
                .collect::<Vec<_>>(),
            vec!["b", "a"]
        );
        assert_eq!(list_groups(&db, 1, 1).await.unwrap()[0].fingerprint, "a");
        assert_eq!(count_groups(&db).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_claim_wins_only_against_the_last_e_mail_it_expected() {
        let (_dir, db) = test_db().await;
        record(&db, &occ("a", "r"), 0, true).await.unwrap();
        let first = claim_email(&db, "a", None, 1_000).await.unwrap().unwrap();
        assert_eq!(first.previous_emailed_at, None);
        assert_eq!(first.suppressed, 0);
        // A second instance, a moment later: refused.
        assert!(claim_email(&db, "a", None, 1_001).await.unwrap().is_none());
        add_suppressed(&db, "a").await.unwrap();
        add_suppressed(&db, "a").await.unwrap();
        // After the cooldown: granted, with the repeats and the time of the last e-mail.
        let next = claim_email(&db, "a", Some(1_000), 61_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.previous_emailed_at, Some(1_000));
        assert_eq!(next.suppressed, 2);
        assert_eq!(find(&db, "a").await.unwrap().unwrap().suppressed, 0);
        // Unknown fingerprints are never claimed.
        assert!(claim_email(&db, "zzz", None, 0).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn concurrent_claims_grant_exactly_one() {
        let (_dir, db) = test_db().await;
        record(&db, &occ("a", "r"), 0, true).await.unwrap();
        let claims = futures_util::future::join_all((0..8).map(|i| {
            let db = db.clone();
            async move { claim_email(&db, "a", None, 10_000 + i).await.unwrap() }
        }))
        .await;
        assert_eq!(claims.iter().filter(|c| c.is_some()).count(), 1);
    }

    #[tokio::test]
    async fn a_released_claim_can_be_taken_again() {
        let (_dir, db) = test_db().await;
        record(&db, &occ("a", "r"), 0, true).await.unwrap();
        let claim = claim_email(&db, "a", None, 1_000).await.unwrap().unwrap();
        release_email(&db, "a", &claim).await.unwrap();
        let group = find(&db, "a").await.unwrap().unwrap();
        assert_eq!(group.last_emailed_at, None);
        assert_eq!(group.suppressed, 1);
        assert!(claim_email(&db, "a", None, 1_001).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_resolved_group_that_recurs_is_new_again() {
        let (_dir, db) = test_db().await;
        record(&db, &occ("a", "r"), 0, true).await.unwrap();
        claim_email(&db, "a", None, 1_000).await.unwrap().unwrap();
        add_suppressed(&db, "a").await.unwrap();
        let id = find(&db, "a").await.unwrap().unwrap().id;
        assert!(resolve(&db, id).await.unwrap());
        assert!(find(&db, "a").await.unwrap().unwrap().resolved_at.is_some());
        assert!(!resolve(&db, id + 100).await.unwrap());
        // Counted without reopening (the policy's call): still resolved, e-mail state kept.
        assert_eq!(record(&db, &occ("a", "r2"), 1_500, false).await.unwrap(), 2);
        let kept = find(&db, "a").await.unwrap().unwrap();
        assert!(kept.resolved_at.is_some());
        assert_eq!(
            (kept.last_emailed_at, kept.suppressed),
            (Some(from_ms(1_000)), 1)
        );
        assert_eq!(record(&db, &occ("a", "r3"), 2_000, true).await.unwrap(), 3);
        let group = find(&db, "a").await.unwrap().unwrap();
        assert_eq!(group.resolved_at, None);
        assert_eq!(group.last_emailed_at, None);
        assert_eq!(group.suppressed, 0);
        // Inside the old cooldown, yet claimable: it is a first occurrence again.
        let claim = claim_email(&db, "a", None, 2_000).await.unwrap().unwrap();
        assert_eq!(claim.previous_emailed_at, None);
    }

    #[tokio::test]
    async fn broken_links_are_claimed_once_per_period() {
        let (_dir, db) = test_db().await;
        let day = 86_400_000;
        assert!(
            claim_broken_link(&db, "/x", "https://a/", 1_000, day)
                .await
                .unwrap()
        );
        assert!(
            !claim_broken_link(&db, "/x", "https://a/", 2_000, day)
                .await
                .unwrap()
        );
        // Another referer, another path: their own marks.
        assert!(
            claim_broken_link(&db, "/x", "https://b/", 2_000, day)
                .await
                .unwrap()
        );
        assert!(
            claim_broken_link(&db, "/y", "https://a/", 2_000, day)
                .await
                .unwrap()
        );
        assert!(
            !claim_broken_link(&db, "/x", "https://a/", 1_000 + day - 1, day)
                .await
                .unwrap()
        );
        assert!(
            claim_broken_link(&db, "/x", "https://a/", 1_000 + day, day)
                .await
                .unwrap()
        );
    }

    #[test]
    fn long_messages_are_cut() {
        assert_eq!(cut_chars("абв", 2), "аб…");
        assert_eq!(cut_chars("аб", 2), "аб");
    }
}
