//! The scheduler (SPEC §7): one testable [`tick`] and the loop that runs it every
//! `SCHEDULER_INTERVAL_SECS`, in `serve` beside the web server or alone in
//! `autosend scheduler`.
//!
//! A tick: windows that opened make their mailings `running`; windows that closed finish
//! theirs; each due mailing is claimed and its run started in one transaction (so with several
//! instances each due run starts exactly once); then deliveries are sent — new runs and
//! unfinished ones alike, which is how a killed process resumes — until nothing is claimable
//! or the tick's budget is spent.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::db::mailings;
use crate::db::runs::{self, Claim, NewRun, StartRunError};
use crate::delivery::Delivery;
use crate::delivery::engine::{self, DriveLimits, DriveOutcome};
use crate::domain::TimeZone;
use crate::domain::instant::{from_ms, to_ms};
use crate::domain::{Period, Trigger};
use crate::telemetry::SCHEDULER_TARGET;

/// Due mailings started per tick at most; the rest start on the next tick.
const DUE_PER_TICK: i64 = 100;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Mailings whose window opened (now `running`).
    pub opened: Vec<i64>,
    /// Mailings whose window closed (now `finished`).
    pub closed: Vec<i64>,
    /// Runs this tick started.
    pub started: Vec<i64>,
    /// Runs that were already going when the tick began (resumed).
    pub resumed: Vec<i64>,
    /// Runs that finished during the tick.
    pub finished: Vec<i64>,
    pub sent: DriveOutcome,
    /// The budget ran out (or shutdown began) with work left: tick again at once.
    pub more_work: bool,
    /// When rows of running runs next become claimable (a dead sender's lease ends, a retry
    /// falls due), Unix ms; the loop wakes then if it is sooner than the next interval.
    pub wake_at: Option<i64>,
}

/// A tick with the default budget and no shutdown signal (tests, `send-due`).
pub async fn tick(state: &Delivery, clock: &Clock) -> anyhow::Result<TickOutcome> {
    let budget = tick_budget(state.settings.scheduler_interval_secs);
    tick_with(
        state,
        clock,
        DriveLimits {
            deadline: Some(Instant::now() + budget),
            ..DriveLimits::default()
        },
    )
    .await
}

/// How long a tick may send: most of the interval, so ticks do not pile up, and a minute
/// when there is no interval (one-off `send-due`).
fn tick_budget(interval_secs: u64) -> Duration {
    if interval_secs == 0 {
        Duration::from_secs(60)
    } else {
        Duration::from_millis(interval_secs * 900).max(Duration::from_secs(1))
    }
}

/// One tick within `limits` (deadline and shutdown; `run_id` is ignored).
pub async fn tick_with(
    state: &Delivery,
    clock: &Clock,
    limits: DriveLimits,
) -> anyhow::Result<TickOutcome> {
    let db = &state.db;
    // SMTP sessions left idle since the last tick end politely before the server drops them.
    state.mailer.close_idle().await;
    let mut outcome = TickOutcome {
        resumed: runs::running_ids(db).await?,
        ..TickOutcome::default()
    };
    let now = clock.now_ms();
    outcome.closed = mailings::finish_expired(db, now).await?;
    for id in &outcome.closed {
        tracing::info!(target: SCHEDULER_TARGET, mailing_id = id, "window closed: mailing finished");
    }
    outcome.opened = mailings::open_windows(db, now).await?;
    for id in &outcome.opened {
        tracing::info!(target: SCHEDULER_TARGET, mailing_id = id, "window opened: mailing running");
    }
    // A run whose last delivery finished just before a crash is finished here.
    let finished = engine::finish_runs(state, clock, None).await?;
    outcome.finished.extend(finished.iter().map(|r| r.run_id));
    outcome.resumed.retain(|id| !outcome.finished.contains(id));

    for due in mailings::due(db, now, DUE_PER_TICK).await? {
        let tz = TimeZone::for_user(due.owner_time_zone.as_deref(), &state.settings.time_zone);
        // The next occurrence after now: missed ones (the scheduler was down) are not
        // sent in a burst; `once` has none.
        let next = match due.period {
            Period::Once => None,
            period => period
                .next_after(from_ms(due.start_at), from_ms(now), tz.tz())
                .map(to_ms),
        };
        let new = NewRun {
            mailing_id: due.id,
            trigger: Trigger::Scheduler,
            dry_run: false,
            claim: Some(Claim {
                expected_next_run_at: due.next_run_at,
                next_run_at: next,
            }),
        };
        match runs::start(db, &new, now).await {
            Ok(started) => {
                engine::log_started(&started, &new);
                outcome.started.push(started.run_id);
            }
            // Another instance claimed it first, or a manual run started meanwhile: both
            // fine, the claim was rolled back with the failed start.
            Err(StartRunError::NotClaimed | StartRunError::AlreadyActive) => {
                tracing::debug!(mailing_id = due.id, "due run started elsewhere");
            }
            // A paused owner's mailing is not due; this is the race with a deactivation.
            Err(
                StartRunError::Finished
                | StartRunError::Archived
                | StartRunError::NotFound
                | StartRunError::OwnerInactive,
            ) => {}
            // One mailing's failure must not keep the others (or the sending) from going on.
            Err(StartRunError::Unexpected(err)) => tracing::error!(
                target: SCHEDULER_TARGET,
                mailing_id = due.id,
                error = %format!("{err:#}"),
                "cannot start the due run; it stays due"
            ),
        }
    }

    let limits = DriveLimits {
        run_id: None,
        ..limits
    };
    outcome.sent = engine::drive(state, clock, &limits).await?;
    outcome.more_work = outcome.sent.interrupted;
    outcome.wake_at = crate::db::deliveries::next_claimable_at(db, clock.now_ms()).await?;
    let now_running = runs::running_ids(db).await?;
    outcome.finished.extend(
        outcome
            .resumed
            .iter()
            .chain(&outcome.started)
            .filter(|id| !now_running.contains(id) && !outcome.finished.contains(id))
            .copied()
            .collect::<Vec<_>>(),
    );
    Ok(outcome)
}

/// How long the loop sleeps after a tick at `now`: until `wake_at` when that comes before the
/// next interval, so a killed sender's rows go out when its lease ends (≤ 30 s after a
/// restart) instead of an interval later; never less than a second, so rows that stay
/// unclaimable (a paused owner) cannot make it spin.
pub fn sleep_after_tick(now: i64, wake_at: Option<i64>, interval: Duration) -> Duration {
    let Some(at) = wake_at else {
        return interval;
    };
    let until = Duration::from_millis(at.saturating_sub(now).max(0) as u64);
    until.clamp(Duration::from_secs(1).min(interval), interval)
}

/// The scheduler loop: a tick every `SCHEDULER_INTERVAL_SECS` until `stop` turns `true`.
/// A tick that fails or panics is logged and the loop goes on; a tick that ran out of budget
/// with work left is followed by another at once.
pub async fn run(state: Delivery, mut stop: watch::Receiver<bool>) {
    let interval_secs = state.settings.scheduler_interval_secs.max(1);
    tracing::info!(
        target: SCHEDULER_TARGET,
        interval_secs,
        instance = %state.send_gate.instance_id,
        "scheduler started"
    );
    let mut interval = tokio::time::interval(Duration::from_secs(interval_secs));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let clock = Clock::System;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if *stop.borrow() {
            break;
        }
        let started = Instant::now();
        let limits = DriveLimits {
            deadline: Some(started + tick_budget(state.settings.scheduler_interval_secs)),
            stop: Some(stop.clone()),
            run_id: None,
        };
        let result = AssertUnwindSafe(tick_with(&state, &clock, limits))
            .catch_unwind()
            .await;
        match result {
            Ok(Ok(outcome)) => {
                log_tick(&outcome, started.elapsed());
                if outcome.more_work && !*stop.borrow() {
                    interval.reset_immediately();
                } else {
                    let period = Duration::from_secs(interval_secs);
                    let sleep = sleep_after_tick(clock.now_ms(), outcome.wake_at, period);
                    // Only ever sooner than the tick the interval would give anyway.
                    if Instant::now() + sleep < started + period {
                        interval.reset_after(sleep);
                    }
                }
            }
            Ok(Err(err)) => {
                tracing::error!(
                    target: SCHEDULER_TARGET,
                    error = %format!("{err:#}"),
                    "scheduler tick failed"
                );
                // Operators hear of it like of a 500 (SPEC §8), without a request section.
                state.reporter.report_background(
                    "scheduler tick",
                    None,
                    None,
                    crate::reporting::ErrorDetails::from_anyhow(&err),
                );
            }
            Err(payload) => {
                // The panic hook has logged where it happened; this says what it means.
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                tracing::error!(
                    target: SCHEDULER_TARGET,
                    panic = %message,
                    "scheduler tick panicked; the scheduler goes on"
                );
                let details = crate::panics::take_panic(&*payload);
                state.reporter.report_background(
                    "scheduler tick",
                    None,
                    None,
                    crate::reporting::ErrorDetails::from_panic_details(&details),
                );
            }
        }
    }
    tracing::info!(target: SCHEDULER_TARGET, "scheduler stopped");
}

fn log_tick(outcome: &TickOutcome, took: Duration) {
    let s = &outcome.sent;
    tracing::info!(
        target: SCHEDULER_TARGET,
        opened = outcome.opened.len(),
        closed = outcome.closed.len(),
        started = outcome.started.len(),
        resumed = outcome.resumed.len(),
        finished = outcome.finished.len(),
        sent = s.sent,
        errors = s.errors,
        retried = s.retried,
        dry_run = s.dry_run,
        skipped = s.skipped,
        more_work = outcome.more_work,
        duration_ms = took.as_millis() as u64,
        "tick"
    );
}

/// One tick logged like the loop's (`autosend send-due`).
pub async fn tick_once(state: &Delivery) -> anyhow::Result<TickOutcome> {
    let started = Instant::now();
    let outcome = tick(state, &Clock::System).await?;
    log_tick(&outcome, started.elapsed());
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_wakes_when_rows_come_back_but_never_spins_or_oversleeps() {
        let minute = Duration::from_secs(60);
        assert_eq!(sleep_after_tick(1_000, None, minute), minute);
        // A dead sender's lease ends in 25 s: wake then, not at +60 s.
        assert_eq!(
            sleep_after_tick(1_000, Some(26_000), minute),
            Duration::from_secs(25)
        );
        assert_eq!(sleep_after_tick(1_000, Some(500_000), minute), minute);
        assert_eq!(
            sleep_after_tick(1_000, Some(1_001), minute),
            Duration::from_secs(1)
        );
        assert_eq!(
            sleep_after_tick(1_000, Some(0), Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }
}
