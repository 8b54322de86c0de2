//! SIGKILL in the middle of a run (SPEC §7): `serve` sends a 2 000-recipient mailing to the
//! SMTP sink, is killed several times mid-run and restarted; the run completes, everyone got
//! the message, and only what was in flight at a kill was sent twice.

use std::time::{Duration, Instant};

use autosend::domain::RunStatus;

use crate::sink::{Sink, free_port, python_with_aiosmtpd};
use crate::world::{World, wait_until};

const RECIPIENTS: usize = 2_000;
const CONCURRENCY: usize = 4;
/// Kill when the sink has this many messages: early, middle and late in the run.
const KILL_AT: [usize; 3] = [300, 800, 1_300];

#[tokio::test]
async fn a_run_killed_three_times_on_sqlite_delivers_everyone_with_bounded_duplicates() {
    kill_and_resume(World::sqlite().await, "sqlite").await;
}

#[tokio::test]
async fn a_run_killed_three_times_on_postgres_delivers_everyone_with_bounded_duplicates() {
    if let Some(world) = World::postgres("crash on PostgreSQL").await {
        kill_and_resume(world, "postgres").await;
    }
}

async fn kill_and_resume(mut w: World, label: &str) {
    let Some(python) = python_with_aiosmtpd() else {
        eprintln!("skipped: python3-aiosmtpd is not installed (.ci/run installs it)");
        return;
    };
    let began = Instant::now();
    let sink = Sink::start(python, free_port(), w.dir.path(), 0).await;
    w.smtp(sink.port);
    w.set("SEND_CONCURRENCY", CONCURRENCY.to_string());
    // Slow enough that every kill lands mid-run, fast enough for a short test.
    w.set("SEND_RATE_PER_SECOND", "150");
    // A killed process's claimed rows come back after 3 s instead of two minutes.
    w.set("SEND_LEASE_SECS", "3");
    let owner = w.owner().await;
    let (mailing, emails) = w.due_mailing(owner, RECIPIENTS, "crash").await;

    let mut serve = w.serve().await;
    let mut kills = 0;
    for at in KILL_AT {
        wait_until(
            &format!("the sink has {at} messages ({label})"),
            Duration::from_secs(60),
            || async { sink.count() >= at },
        )
        .await;
        serve.kill().await;
        kills += 1;
        let seen = sink.count();
        assert!(
            seen < RECIPIENTS,
            "kill {kills} came after the run ({seen})"
        );
        eprintln!("{label}: kill {kills} at {seen} messages");
        serve = w.serve().await;
    }

    let run = w
        .finished_run(mailing, Duration::from_secs(90), "the run finished")
        .await;
    let counts = sink.per_recipient();
    let received: usize = counts.values().sum();
    let duplicates = received - counts.len();
    // The bound, from the engine: each of the SEND_CONCURRENCY workers sends one message at
    // a time and records its outcome before taking the next, so a kill can leave at most one
    // accepted-but-unrecorded message per worker; those rows' leases run out and they are
    // sent again. Claimed rows not yet sent are not duplicates (they were never sent).
    let bound = kills * CONCURRENCY;
    eprintln!(
        "{label}: {kills} kills survived; {received} messages for {} recipients; \
         {duplicates} duplicates (bound {bound}); {:.1} s",
        counts.len(),
        began.elapsed().as_secs_f64()
    );
    let missing: Vec<&String> = emails.iter().filter(|e| !counts.contains_key(*e)).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    assert_eq!(counts.len(), RECIPIENTS, "nobody else was mailed");
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than {kills} kills × {CONCURRENCY} in flight"
    );
    let twice: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 2).collect();
    assert!(twice.is_empty(), "sent three times or more: {twice:?}");

    // The database agrees with the sink: each recipient recorded sent once, whatever the
    // number of copies that left.
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.totals.total, RECIPIENTS as i64);
    assert_eq!(run.totals.sent, counts.len() as i64);
    assert_eq!(run.totals.pending + run.totals.errors, 0, "{run:?}");
    assert_eq!(
        w.delivery_statuses(mailing).await,
        [("sent".to_string(), RECIPIENTS as i64)]
    );
    drop(serve);
}
