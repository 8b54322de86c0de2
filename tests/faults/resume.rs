//! Resuming after a stop (issue 12, SPEC §12): a sender killed with SIGKILL loses its claimed
//! rows only for one short lease (heartbeat-renewed while it lives), so every recipient is
//! sent within 60 s of the restart; SIGTERM gives back what was claimed and not sent, so no row
//! is left `sending`; SIGHUP is a graceful stop, not a crash.
//!
//! The product's own SMTP timeout (10 s) and lease are used: no `SEND_LEASE_SECS` here. The
//! figures each test prints are what RELIABILITY.md reports (`AUTOSEND_BIN` runs an older
//! build through the same scenario).

use std::time::{Duration, Instant};

use autosend::domain::RunStatus;

use crate::sink::{Sink, free_port, python_with_aiosmtpd};
use crate::world::{Autosend, World, csrf_token_of, http_client, login, wait_until};

const RECIPIENTS: usize = 1_500;
const CONCURRENCY: usize = 4;
/// The engine's lease without a heartbeat (`delivery::engine::LEASE`).
const LEASE_MS: i64 = 30_000;

#[tokio::test]
async fn after_kill_9_on_sqlite_every_recipient_is_sent_within_a_minute_of_the_restart() {
    kill_and_restart(World::sqlite().await, "sqlite").await;
}

#[tokio::test]
async fn after_kill_9_on_postgres_every_recipient_is_sent_within_a_minute_of_the_restart() {
    if let Some(world) = World::postgres("resume on PostgreSQL").await {
        kill_and_restart(world, "postgres").await;
    }
}

/// A world sending to a fresh sink at 150 messages a second over 4 connections.
async fn sending_world(mut w: World) -> Option<(World, Sink)> {
    let Some(python) = python_with_aiosmtpd() else {
        eprintln!("skipped: python3-aiosmtpd is not installed (.ci/run installs it)");
        return None;
    };
    let sink = Sink::start(python, free_port(), w.dir.path(), 0).await;
    w.smtp(sink.port);
    // The product's default, which the old lease was sized from (2 × 10 s + 1 per message).
    w.set("SMTP_TIMEOUT_SECS", "10");
    w.set("SEND_CONCURRENCY", CONCURRENCY.to_string());
    w.set("SEND_RATE_PER_SECOND", "150");
    Some((w, sink))
}

/// Deliveries of the mailing now `sending`, and the latest end of their leases.
async fn sending(w: &World, mailing: i64) -> (i64, Option<i64>) {
    sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), MAX(lease_until) FROM deliveries \
         WHERE mailing_id = $1 AND status = 'sending'",
    )
    .bind(mailing)
    .fetch_one(&w.db.pool)
    .await
    .unwrap()
}

async fn kill_and_restart(w: World, label: &str) {
    let Some((w, sink)) = sending_world(w).await else {
        return;
    };
    let owner = w.owner().await;
    let (mailing, emails) = w.due_mailing(owner, RECIPIENTS, "resume").await;

    let mut serve = w.serve().await;
    wait_until(
        &format!("the sink has 500 messages ({label})"),
        Duration::from_secs(60),
        || async { sink.count() >= 500 },
    )
    .await;
    serve.kill().await;
    let killed_at = autosend::db::now_ms();
    let (held, lease_end) = sending(&w, mailing).await;
    let received_at_kill = sink.per_recipient().len();
    assert!(received_at_kill < RECIPIENTS, "the kill came after the run");

    let restarted_at = autosend::db::now_ms();
    let started = Instant::now();
    let serve = w.serve().await;
    // Sampled, not asserted: the figure the issue reported (unsent some time after restart).
    let mut unsent_at_60s = None;
    while started.elapsed() < Duration::from_secs(60) {
        let runs = w.runs(mailing).await;
        if runs.len() == 1 && runs[0].status != RunStatus::Running {
            unsent_at_60s = Some(RECIPIENTS - sink.per_recipient().len());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unsent_at_60s = unsent_at_60s.unwrap_or_else(|| RECIPIENTS - sink.per_recipient().len());
    eprintln!(
        "{label}: kill -9 at {received_at_kill}/{RECIPIENTS} received; {held} rows held, \
         lease ending {} ms after the kill; {unsent_at_60s} unsent 60 s after the restart",
        lease_end.map_or(0, |end| end - killed_at)
    );

    let run = w
        .finished_run(mailing, Duration::from_secs(150), "the run finished")
        .await;
    let last_sent: i64 =
        sqlx::query_scalar("SELECT MAX(finished_at) FROM deliveries WHERE mailing_id = $1")
            .bind(mailing)
            .fetch_one(&w.db.pool)
            .await
            .unwrap();
    let counts = sink.per_recipient();
    let received: usize = counts.values().sum();
    let duplicates = received - counts.len();
    eprintln!(
        "{label}: last recipient sent {:.1} s after the restart; {duplicates} duplicates \
         (bound {CONCURRENCY})",
        (last_sent - restarted_at) as f64 / 1000.0
    );

    // The bound, from the database: a killed sender's rows are held at most one lease (the
    // heartbeat renews them to now + LEASE, never further), whatever the batch size.
    assert!(
        held > 0,
        "the kill left claimed rows (else this proves nothing)"
    );
    let lease_end = lease_end.unwrap();
    assert!(
        lease_end - killed_at <= LEASE_MS + 1_000,
        "claimed rows were held {} ms past the kill",
        lease_end - killed_at
    );
    let missing: Vec<&String> = emails.iter().filter(|e| !counts.contains_key(*e)).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    assert!(
        last_sent - restarted_at < 60_000,
        "the last recipient was sent {} ms after the restart",
        last_sent - restarted_at
    );
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicates, more than the {CONCURRENCY} in flight at the kill"
    );
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.totals.sent, RECIPIENTS as i64);
    drop(serve);
}

/// GETs `page` for its CSRF token and POSTs the form `action` with it.
async fn post_form(client: &reqwest::Client, app: &Autosend, page: &str, action: &str) -> u16 {
    let token = csrf_token_of(client, app, page).await;
    client
        .post(app.url(action))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sigterm_mid_run_leaves_no_row_sending_and_the_restart_resumes_at_once() {
    let Some((mut w, sink)) = sending_world(World::from_env().await).await else {
        return;
    };
    let owner = w.owner().await;
    let (mailing, emails) = w.due_mailing(owner, RECIPIENTS, "term").await;

    // "Send now" from the mailing page, with no scheduler: the manual send alone holds rows.
    w.set("SCHEDULER_INTERVAL_SECS", "0");
    let mut serve = w.serve().await;
    let browser = http_client();
    login(&browser, &serve).await;
    let page = format!("/mailings/{mailing}");
    let status = post_form(&browser, &serve, &page, &format!("{page}/send")).await;
    assert_eq!(status, 303, "send now");
    wait_until(
        "the sink has 300 messages",
        Duration::from_secs(60),
        || async { sink.count() >= 300 },
    )
    .await;
    serve.signal("TERM");
    let exit = serve.exited(Duration::from_secs(40)).await;
    let (held, _) = sending(&w, mailing).await;
    let (pending, tried): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(attempts), 0) AS BIGINT) \
         FROM deliveries WHERE mailing_id = $1 AND status = 'pending'",
    )
    .bind(mailing)
    .fetch_one(&w.db.pool)
    .await
    .unwrap();
    eprintln!(
        "SIGTERM at {} received: exit {exit}; {held} rows left sending, {pending} pending",
        sink.count()
    );
    assert!(
        exit.success(),
        "a graceful stop exits 0: {exit}\n{}",
        serve.output()
    );
    assert_eq!(held, 0, "rows left `sending` after SIGTERM");
    assert!(pending > 0, "the stop came after the run");
    assert_eq!(
        tried, 0,
        "given-back rows keep their attempt count (none was tried)"
    );

    // The restart resumes the run (the scheduler drives every running run) and nothing that
    // was sent before the stop goes out again.
    w.set("SCHEDULER_INTERVAL_SECS", "1");
    let _serve = w.serve().await;
    let run = w
        .finished_run(mailing, Duration::from_secs(90), "the run finished")
        .await;
    let counts = sink.per_recipient();
    let received: usize = counts.values().sum();
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert!(
        emails.iter().all(|e| counts.contains_key(e)),
        "everyone got it"
    );
    assert_eq!(received, RECIPIENTS, "a graceful stop sends nothing twice");
}

#[tokio::test]
async fn sighup_stops_gracefully_instead_of_killing_the_process() {
    let w = World::from_env().await;
    let mut serve = w.serve().await;
    serve.signal("HUP");
    let exit = serve.exited(Duration::from_secs(40)).await;
    assert!(
        exit.success(),
        "SIGHUP is a graceful stop: {exit}\n{}",
        serve.output()
    );
    assert!(
        serve.output().contains("SIGHUP received"),
        "{}",
        serve.output()
    );
}
