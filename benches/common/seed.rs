//! Benchmark data, written straight into the database: recipients, a message, mailings with
//! audiences, and a history of finished runs with one delivery row per audience member and
//! the daily statistics the reports read — as the engine would have left them.

use std::collections::HashMap;

use autosend::db::bulk::{self, Value};

pub const DAY_MS: i64 = 86_400_000;

/// `count` recipients of `owner`: `user{i}@example.com`, "User {i}", oldest first.
pub async fn recipients(pool: &sqlx::AnyPool, owner: i64, count: usize, now: i64) -> Vec<i64> {
    let mut ids = Vec::with_capacity(count);
    let rows: Vec<Vec<Value>> = (0..count)
        .map(|i| {
            let at = now - (count - i) as i64;
            vec![
                owner.into(),
                format!("user{i}@example.com").into(),
                format!("User {i}").into(),
                "".into(),
                at.into(),
                at.into(),
            ]
        })
        .collect();
    // 6 binds a row: 5 000 rows stay under SQLite's 32 766 bind limit.
    for part in rows.chunks(5_000) {
        ids.extend(
            bulk::insert(
                pool,
                "INSERT INTO recipients (owner_id, email, full_name, comment, created_at, \
                   updated_at)",
                part,
                "RETURNING id",
            )
            .await
            .unwrap(),
        );
    }
    ids
}

/// `audiences.len()` mailings of one new message, running daily over `days` days either side
/// of `now`, each sent to its audience.
pub async fn mailings(
    pool: &sqlx::AnyPool,
    owner: i64,
    audiences: &[&[i64]],
    days: i64,
    now: i64,
) -> Vec<i64> {
    let message: i64 = sqlx::query_scalar(
        "INSERT INTO messages (owner_id, subject, body, created_at, updated_at) \
         VALUES ($1, 'Bench', 'Hello {{full_name}}', $2, $2) RETURNING id",
    )
    .bind(owner)
    .bind(now)
    .fetch_one(pool)
    .await
    .unwrap();
    let mut ids = Vec::with_capacity(audiences.len());
    for audience in audiences {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO mailings (owner_id, message_id, start_at, end_at, period, status, \
               created_at, updated_at) VALUES ($1, $2, $3, $4, 'daily', 'running', $3, $3) \
             RETURNING id",
        )
        .bind(owner)
        .bind(message)
        .bind(now - days * DAY_MS)
        .bind(now + days * DAY_MS)
        .fetch_one(pool)
        .await
        .unwrap();
        let links: Vec<Vec<Value>> = audience
            .iter()
            .map(|r| vec![id.into(), (*r).into()])
            .collect();
        for part in links.chunks(10_000) {
            bulk::insert(
                pool,
                "INSERT INTO mailing_recipients (mailing_id, recipient_id)",
                part,
                "",
            )
            .await
            .unwrap();
        }
        ids.push(id);
    }
    ids
}

/// Finished runs added so far, and the daily statistics they add up to.
#[derive(Default)]
pub struct History {
    pub runs: usize,
    /// (mailing, day) → (sent, errors, runs)
    pub daily: HashMap<(i64, i64), (i64, i64, i64)>,
}

/// How runs are spread: round-robin over `mailings` (each sent to `audience` recipients), one
/// a day per mailing going back from `today`, wrapping after `days`.
pub struct Schedule<'a> {
    pub mailings: &'a [i64],
    pub audience: usize,
    pub days: i64,
    pub today: i64,
}

/// Adds finished runs until there are `runs`, each with one delivery per audience member (the
/// lowest recipient id of each audience failed), and rewrites daily_stats to match.
pub async fn history(
    pool: &sqlx::AnyPool,
    owner: i64,
    schedule: &Schedule<'_>,
    runs: usize,
    history: &mut History,
) {
    let Schedule {
        mailings,
        audience,
        days,
        today,
    } = *schedule;
    for chunk in (history.runs..runs).collect::<Vec<_>>().chunks(2_000) {
        let plan: Vec<(i64, i64)> = chunk
            .iter()
            .map(|i| {
                let mailing = mailings[i % mailings.len()];
                let day = today - (*i as i64 / mailings.len() as i64) % days;
                (mailing, day)
            })
            .collect();
        let run_rows: Vec<Vec<Value>> = plan
            .iter()
            .map(|(mailing, day)| {
                let at = day * DAY_MS + 3_600_000;
                vec![
                    (*mailing).into(),
                    "scheduler".into(),
                    0i64.into(),
                    "partial".into(),
                    at.into(),
                    (at + 60_000).into(),
                    (audience as i64).into(),
                    0i64.into(),
                    (audience as i64 - 1).into(),
                    1i64.into(),
                ]
            })
            .collect();
        // 10 binds a row: 2 000 rows stay under SQLite's bind limit.
        let run_ids = bulk::insert(
            pool,
            "INSERT INTO runs (mailing_id, triggered_by, dry_run, status, started_at, \
               finished_at, total, pending_count, sent_count, error_count)",
            &run_rows,
            "RETURNING id",
        )
        .await
        .unwrap();
        for (mailing, day) in &plan {
            let entry = history.daily.entry((*mailing, *day)).or_default();
            entry.0 += audience as i64 - 1;
            entry.1 += 1;
            entry.2 += 1;
        }
        // The delivery rows are made by the database itself: one bound row at a time from
        // here took 16 s per 10 000.
        sqlx::query(
            "INSERT INTO deliveries (run_id, mailing_id, recipient_id, email, full_name, \
               status, attempts, next_attempt_at, detail, triggered_by, created_at, \
               updated_at, finished_at) \
             SELECT r.id, r.mailing_id, c.id, c.email, c.full_name, \
               CASE WHEN c.id = f.first THEN 'error' ELSE 'sent' END, 1, r.started_at, \
               CASE WHEN c.id = f.first THEN '550 no such user' ELSE '250 ok' END, \
               'scheduler', r.started_at, r.started_at, r.started_at \
             FROM runs r \
             JOIN (SELECT mailing_id, MIN(recipient_id) AS first FROM mailing_recipients \
                   GROUP BY mailing_id) f ON f.mailing_id = r.mailing_id \
             JOIN mailing_recipients mr ON mr.mailing_id = r.mailing_id \
             JOIN recipients c ON c.id = mr.recipient_id \
             WHERE r.id BETWEEN $1 AND $2",
        )
        .bind(*run_ids.iter().min().unwrap())
        .bind(*run_ids.iter().max().unwrap())
        .execute(pool)
        .await
        .unwrap();
    }
    history.runs = history.runs.max(runs);

    sqlx::query("DELETE FROM daily_stats WHERE owner_id = $1")
        .bind(owner)
        .execute(pool)
        .await
        .unwrap();
    let entries: Vec<_> = history.daily.iter().collect();
    for part in entries.chunks(2_000) {
        let stat_rows: Vec<Vec<Value>> = part
            .iter()
            .map(|((mailing, day), (sent, errors, runs))| {
                vec![
                    owner.into(),
                    (*mailing).into(),
                    (*day).into(),
                    (*sent).into(),
                    (*errors).into(),
                    0i64.into(),
                    (*runs).into(),
                    0i64.into(),
                ]
            })
            .collect();
        bulk::insert(
            pool,
            "INSERT INTO daily_stats (owner_id, mailing_id, day, sent, errors, dry_run, \
               runs_ok, runs_fail)",
            &stat_rows,
            "",
        )
        .await
        .unwrap();
    }
    // A new data version, as a finished run would leave: caches start cold.
    let mut conn = pool.acquire().await.unwrap();
    autosend::db::versions::bump(&mut conn, owner, autosend::db::now_ms())
        .await
        .unwrap();
}
