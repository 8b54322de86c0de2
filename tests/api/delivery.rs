//! Mailings and the delivery engine (SPEC §7): status transitions and the due rule driven
//! through `tick()` on a hand-moved clock, runs and their deliveries, retries, crash
//! recovery, two instances, disable, unsubscribe, and the messages themselves — some through
//! a real SMTP server (tests/support/delivery_sink.py, aiosmtpd).

use std::time::Duration;

use autosend::db::deliveries::{self, ClaimRequest, Delivery};
use autosend::db::mailings::{self, Mailing, NewMailing};
use autosend::db::runs::{self, Run};
use autosend::db::{messages, recipients, unsubscribes};
use autosend::delivery::engine::{self, DriveLimits};
use autosend::delivery::{Clock, StartRunError, TickOutcome, scheduler};
use autosend::domain::{DeliveryStatus, MailingStatus, Period, RunStatus, Trigger};

use crate::helpers::{ACTIVE, Page, SUPERUSER, TestApp, spawn_app, spawn_app_with};
use crate::sink::{Sink, free_port, python_with_aiosmtpd};

/// 2030-01-01T09:00:00Z: far from the real clock, so only the test's clock matters.
const T0: i64 = 1_893_488_400_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// An app, a clock, an owner and a message to mail.
struct World {
    app: TestApp,
    clock: Clock,
    owner: i64,
    message: i64,
}

async fn world() -> World {
    world_on(spawn_app().await).await
}

async fn world_on(app: TestApp) -> World {
    let owner = app.create_user("owner@example.com", ACTIVE).await;
    let message = messages::insert(
        &app.state.db,
        owner,
        "Hello {{full_name}}",
        "Dear {{ full_name }}, this goes to {{email}}.",
        None,
    )
    .await
    .unwrap();
    World {
        app,
        clock: Clock::manual(T0),
        owner,
        message,
    }
}

impl World {
    async fn recipient(&self, email: &str, name: &str) -> i64 {
        recipients::insert(&self.app.state.db, self.owner, email, name, "")
            .await
            .unwrap()
    }

    async fn recipients(&self, emails: &[&str]) -> Vec<i64> {
        let mut ids = Vec::new();
        for email in emails {
            ids.push(self.recipient(email, "Some One").await);
        }
        ids
    }

    async fn mailing(&self, recipient_ids: &[i64], start: i64, end: i64, period: Period) -> i64 {
        self.mailing_of(self.message, recipient_ids, start, end, period)
            .await
    }

    async fn mailing_of(
        &self,
        message_id: i64,
        recipient_ids: &[i64],
        start: i64,
        end: i64,
        period: Period,
    ) -> i64 {
        mailings::create_mailing(
            &self.app.state.db,
            &NewMailing {
                owner_id: self.owner,
                message_id,
                recipient_ids: recipient_ids.to_vec(),
                start_at: start,
                end_at: end,
                period,
            },
            self.clock.now_ms(),
        )
        .await
        .unwrap()
    }

    /// A `once` mailing to `emails` (new recipients), sent by a tick at T0: what went out.
    async fn mail_once(&self, emails: &[&str]) -> Vec<autosend::mail::SentEmail> {
        let ids = self.recipients(emails).await;
        self.mailing(&ids, T0, T0 + DAY, Period::Once).await;
        self.tick_at(T0).await;
        self.app.outbox.messages()
    }

    async fn tick_at(&self, at: i64) -> TickOutcome {
        self.clock.set(at);
        scheduler::tick(&self.app.state.delivery(), &self.clock)
            .await
            .unwrap()
    }

    async fn get(&self, mailing_id: i64) -> Mailing {
        mailings::get(&self.app.state.db, mailing_id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn runs(&self, mailing_id: i64) -> Vec<Run> {
        let (mut runs, _) = runs::list_for_mailing(&self.app.state.db, mailing_id, 100, 0)
            .await
            .unwrap();
        runs.reverse();
        runs
    }

    async fn run(&self, run_id: i64) -> Run {
        runs::get(&self.app.state.db, run_id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn deliveries(&self, run_id: i64) -> Vec<Delivery> {
        deliveries::for_run(&self.app.state.db, run_id)
            .await
            .unwrap()
    }

    async fn start(&self, mailing_id: i64, dry_run: bool) -> Result<i64, StartRunError> {
        engine::start_run(
            &self.app.state.delivery(),
            &self.clock,
            mailing_id,
            Trigger::Manual("owner@example.com".into()),
            dry_run,
        )
        .await
        .map(|s| s.run_id)
    }

    async fn drive(&self) -> engine::DriveOutcome {
        engine::drive(
            &self.app.state.delivery(),
            &self.clock,
            &DriveLimits::default(),
        )
        .await
        .unwrap()
    }

    /// Addresses the memory mailer sent to, sorted.
    fn sent_to(&self) -> Vec<String> {
        let mut to: Vec<String> = self
            .app
            .outbox
            .messages()
            .into_iter()
            .flat_map(|m| m.to)
            .collect();
        to.sort();
        to
    }
}

/// A header of a raw message, unfolded and decoded.
fn header(raw: &str, name: &str) -> String {
    use mailparse::MailHeaderMap;
    mailparse::parse_mail(raw.as_bytes())
        .unwrap()
        .headers
        .get_first_value(name)
        .unwrap_or_else(|| panic!("{name} header in {raw}"))
}

fn statuses(deliveries: &[Delivery]) -> Vec<(String, DeliveryStatus)> {
    deliveries
        .iter()
        .map(|d| (d.email.clone(), d.status))
        .collect()
}

#[tokio::test]
async fn a_once_mailing_is_created_then_runs_at_its_start_and_finishes() {
    let w = world().await;
    let ids = w.recipients(&["a@example.com", "b@example.com"]).await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;
    let m = w.get(id).await;
    assert_eq!(m.status, MailingStatus::Created);
    assert_eq!(m.next_run_at, Some(T0));

    let before = w.tick_at(T0 - 1).await;
    assert!(before.started.is_empty());
    assert_eq!(w.get(id).await.status, MailingStatus::Created);

    let at_start = w.tick_at(T0).await;
    assert_eq!(at_start.started.len(), 1, "{at_start:?}");
    assert_eq!(at_start.sent.sent, 2);
    let m = w.get(id).await;
    assert_eq!(
        m.status,
        MailingStatus::Finished,
        "a delivered once mailing"
    );
    assert_eq!(m.next_run_at, None);
    assert_eq!(m.last_sent_at, Some(T0));
    let runs = w.runs(id).await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(run.triggered_by, "scheduler");
    assert_eq!((run.totals.total, run.totals.sent), (2, 2));
    assert_eq!(run.server_response, "2 of 2 sent");
    assert_eq!(run.finished_at, Some(T0));
    assert_eq!(w.sent_to(), ["a@example.com", "b@example.com"]);

    assert!(
        w.tick_at(T0 + HOUR).await.started.is_empty(),
        "once is once"
    );
}

#[tokio::test]
async fn a_daily_mailing_follows_the_due_rule_at_its_edges_and_finishes_at_end_at() {
    let w = world().await;
    let ids = w.recipients(&["a@example.com"]).await;
    let end = T0 + 2 * DAY;
    let id = w.mailing(&ids, T0, end, Period::Daily).await;

    assert!(
        w.tick_at(T0 - 1).await.started.is_empty(),
        "before start_at"
    );
    assert_eq!(w.get(id).await.status, MailingStatus::Created);

    let first = w.tick_at(T0).await;
    assert_eq!(first.started.len(), 1, "at start_at exactly");
    let m = w.get(id).await;
    assert_eq!(m.status, MailingStatus::Running);
    assert_eq!(m.next_run_at, Some(T0 + DAY), "advanced by the period");

    assert!(
        w.tick_at(T0 + DAY - 1).await.started.is_empty(),
        "just before next_run_at"
    );
    let second = w.tick_at(T0 + DAY).await;
    assert_eq!(second.started.len(), 1, "at next_run_at exactly");
    assert_eq!(w.get(id).await.next_run_at, Some(T0 + 2 * DAY));

    // next_run_at == end_at: not due (now < end_at fails), and the window closes.
    let last = w.tick_at(end).await;
    assert!(last.started.is_empty());
    assert_eq!(last.closed, vec![id]);
    let m = w.get(id).await;
    assert_eq!(m.status, MailingStatus::Finished);
    assert_eq!(m.next_run_at, None);
    assert_eq!(w.runs(id).await.len(), 2);
    assert_eq!(w.app.outbox.messages().len(), 2);
}

#[tokio::test]
async fn missed_occurrences_start_one_run_and_move_to_the_next_occurrence() {
    let w = world().await;
    let ids = w.recipients(&["a@example.com"]).await;
    let id = w.mailing(&ids, T0, T0 + 30 * DAY, Period::Weekly).await;
    // The scheduler was down for two and a half weeks.
    let late = T0 + 17 * DAY + 12 * HOUR;
    assert_eq!(w.tick_at(late).await.started.len(), 1);
    assert_eq!(w.get(id).await.next_run_at, Some(T0 + 21 * DAY));
    assert!(w.tick_at(late + HOUR).await.started.is_empty());
}

#[tokio::test]
async fn a_window_that_closed_before_any_tick_finishes_the_mailing_unsent() {
    let w = world().await;
    let ids = w.recipients(&["a@example.com"]).await;
    let id = w.mailing(&ids, T0, T0 + HOUR, Period::Daily).await;
    let outcome = w.tick_at(T0 + HOUR).await;
    assert_eq!(outcome.closed, vec![id]);
    assert!(outcome.started.is_empty());
    assert_eq!(w.get(id).await.status, MailingStatus::Finished);
    assert!(w.app.outbox.messages().is_empty());
}

#[tokio::test]
async fn manual_runs_work_outside_the_window_and_dry_runs_send_nothing() {
    let w = world().await;
    let ids = w
        .recipients(&["a@example.com", "b@example.com", "c@example.com"])
        .await;
    let id = w.mailing(&ids, T0 + DAY, T0 + 2 * DAY, Period::Daily).await;

    let dry = w.start(id, true).await.unwrap();
    let drove = w.drive().await;
    assert_eq!(drove.dry_run, 3);
    assert!(
        w.app.outbox.messages().is_empty(),
        "nothing leaves the machine"
    );
    let run = w.run(dry).await;
    assert!(run.dry_run);
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(run.totals.dry_run, 3);
    assert!(
        w.deliveries(dry)
            .await
            .iter()
            .all(|d| d.status == DeliveryStatus::DryRun)
    );
    let m = w.get(id).await;
    assert_eq!(
        m.status,
        MailingStatus::Created,
        "a dry run changes nothing"
    );
    assert_eq!(m.last_sent_at, None);

    // Before the window: a manual send is allowed and makes the mailing running.
    let real = w.start(id, false).await.unwrap();
    w.drive().await;
    assert_eq!(w.run(real).await.status, RunStatus::Success);
    let m = w.get(id).await;
    assert_eq!(m.status, MailingStatus::Running);
    assert_eq!(m.next_run_at, Some(T0 + DAY), "the schedule stands");
    assert_eq!(w.sent_to().len(), 3);
}

#[tokio::test]
async fn only_one_run_is_active_at_a_time_and_finished_mailings_refuse_runs() {
    let w = world().await;
    let ids = w.recipients(&["a@example.com"]).await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Daily).await;
    let first = w.start(id, false).await.unwrap();
    assert!(matches!(
        w.start(id, false).await,
        Err(StartRunError::AlreadyActive)
    ));
    assert!(matches!(
        w.start(id, true).await,
        Err(StartRunError::AlreadyActive)
    ));
    // The scheduler leaves a mailing with an active run alone (it stays due).
    assert!(w.tick_at(T0).await.started.is_empty());
    assert_eq!(w.run(first).await.status, RunStatus::Success);

    let again = w.start(id, false).await.unwrap();
    assert_ne!(again, first);
    w.drive().await;
    engine::disable(&w.app.state.delivery(), &w.clock, id)
        .await
        .unwrap();
    assert!(matches!(
        w.start(id, false).await,
        Err(StartRunError::Finished)
    ));
    assert!(matches!(
        w.start(999_999, false).await,
        Err(StartRunError::NotFound)
    ));
}

#[tokio::test]
async fn a_due_run_waits_while_a_manual_run_is_active() {
    let w = world().await;
    let ids = w.recipients(&["a@example.com"]).await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;
    w.clock.set(T0 - MINUTE);
    let manual = w.start(id, false).await.unwrap();
    // Hold the manual run's only delivery in flight with a live lease.
    let lease_until = T0 + HOUR;
    let held = deliveries::claim(
        &w.app.state.db,
        ClaimRequest {
            worker: "elsewhere",
            now: T0 - MINUTE,
            lease_until,
            limit: 10,
            run_id: Some(manual),
        },
    )
    .await
    .unwrap();
    assert_eq!(held.len(), 1);
    let outcome = w.tick_at(T0).await;
    assert!(outcome.started.is_empty(), "{outcome:?}");
    assert_eq!(
        w.get(id).await.next_run_at,
        Some(T0),
        "not claimed: still due"
    );
}

#[tokio::test]
async fn changing_a_mailing_replaces_its_audience_and_follows_the_new_schedule() {
    let w = world().await;
    let db = &w.app.state.db;
    let utc = autosend::domain::TimeZone::UTC.tz();
    let a = w.recipient("a@example.com", "Ann").await;
    let b = w.recipient("b@example.com", "Bob").await;
    let stranger = w.app.create_user("stranger@example.com", ACTIVE).await;
    let theirs = recipients::insert(db, stranger, "x@example.com", "Xavier", "")
        .await
        .unwrap();
    let id = w
        .mailing(&[a, theirs], T0, T0 + 10 * DAY, Period::Daily)
        .await;
    assert_eq!(
        mailings::recipient_ids(db, id).await.unwrap(),
        vec![a],
        "another user's recipient is left out"
    );

    let change = |recipient_ids: Vec<i64>, start_at: i64, period: Period| NewMailing {
        owner_id: w.owner,
        message_id: w.message,
        recipient_ids,
        start_at,
        end_at: T0 + 10 * DAY,
        period,
    };
    // Not started: the first run moves with start_at.
    mailings::update_mailing(
        db,
        id,
        None,
        &change(vec![b], T0 + HOUR, Period::Daily),
        utc,
        T0,
    )
    .await
    .unwrap();
    let m = w.get(id).await;
    assert_eq!((m.start_at, m.next_run_at), (T0 + HOUR, Some(T0 + HOUR)));
    assert_eq!(mailings::recipient_ids(db, id).await.unwrap(), vec![b]);

    // Running: the next occurrence of the new schedule from now on.
    w.tick_at(T0 + HOUR).await;
    assert_eq!(w.sent_to(), ["b@example.com"]);
    mailings::update_mailing(
        db,
        id,
        None,
        &change(vec![a, b], T0, Period::Weekly),
        utc,
        T0 + 2 * HOUR,
    )
    .await
    .unwrap();
    assert_eq!(w.get(id).await.next_run_at, Some(T0 + 7 * DAY));

    let foreign_message = messages::insert(db, stranger, "s", "b", None)
        .await
        .unwrap();
    let refused = mailings::update_mailing(
        db,
        id,
        None,
        &NewMailing {
            message_id: foreign_message,
            ..change(vec![a], T0, Period::Weekly)
        },
        utc,
        T0,
    )
    .await;
    assert!(matches!(
        refused,
        Err(mailings::MailingError::ForeignMessage)
    ));
    let empty_window = mailings::create_mailing(
        db,
        &NewMailing {
            end_at: T0,
            ..change(vec![a], T0, Period::Once)
        },
        T0,
    )
    .await;
    assert!(matches!(
        empty_window,
        Err(mailings::MailingError::EmptyWindow)
    ));
}

#[tokio::test]
async fn send_now_sends_in_the_background_and_progress_follows_the_run() {
    let w = world().await;
    let ids = w
        .recipients(&["a@example.com", "b@example.com", "c@example.com"])
        .await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Weekly).await;
    assert!(
        autosend::delivery::progress(&w.app.state.db, id, T0)
            .await
            .unwrap()
            .is_none()
    );
    let started = engine::send_now(
        &w.app.state.delivery(),
        id,
        Trigger::Manual("owner@example.com".into()),
        false,
    )
    .await
    .unwrap();
    assert_eq!(started.totals.total, 3);
    let mut progress = None;
    for _ in 0..200 {
        let now = autosend::db::now_ms();
        let p = autosend::delivery::progress(&w.app.state.db, id, now)
            .await
            .unwrap()
            .unwrap();
        if !p.active() {
            progress = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let progress = progress.expect("the run finished");
    assert_eq!(progress.run.id, started.run_id);
    assert_eq!((progress.done, progress.percent), (3, 100));
    assert_eq!(progress.eta_secs, None);
    assert_eq!(w.sent_to().len(), 3);
    assert_eq!(progress.run.triggered_by, "manual:owner@example.com");
}

#[tokio::test]
async fn the_audience_is_deduplicated_and_unsubscribed_addresses_are_skipped() {
    let w = world().await;
    let a = w.recipient("a@example.com", "Ann").await;
    let dup = w.recipient("A@Example.com", "Ann again").await;
    let gone = w.recipient("gone@example.com", "Gone").await;
    unsubscribes::add(&w.app.state.db, w.owner, "gone@example.com", None, T0)
        .await
        .unwrap();
    let id = w.mailing(&[a, dup, gone], T0, T0 + DAY, Period::Once).await;
    w.tick_at(T0).await;
    let run = &w.runs(id).await[0];
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(
        (run.totals.total, run.totals.sent, run.totals.skipped),
        (2, 1, 1)
    );
    assert_eq!(
        statuses(&w.deliveries(run.id).await),
        [
            ("a@example.com".to_string(), DeliveryStatus::Sent),
            ("gone@example.com".to_string(), DeliveryStatus::Skipped),
        ]
    );
    assert_eq!(w.sent_to(), ["a@example.com"]);
}

#[tokio::test]
async fn an_address_that_unsubscribes_during_a_run_is_skipped() {
    let w = world().await;
    let ids = w.recipients(&["a@example.com", "b@example.com"]).await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;
    let run = w.start(id, false).await.unwrap();
    unsubscribes::add(&w.app.state.db, w.owner, "b@example.com", None, T0)
        .await
        .unwrap();
    w.drive().await;
    let run = w.run(run).await;
    assert_eq!((run.totals.sent, run.totals.skipped), (1, 1));
    assert_eq!(w.sent_to(), ["a@example.com"]);
}

#[tokio::test]
async fn disable_finishes_the_mailing_and_cancels_pending_deliveries() {
    let w = world().await;
    let ids = w
        .recipients(&["a@example.com", "b@example.com", "c@example.com"])
        .await;
    let id = w.mailing(&ids, T0, T0 + 10 * DAY, Period::Daily).await;
    let run = w.start(id, false).await.unwrap();
    // One message is in flight on another instance when the mailing is disabled.
    let in_flight = deliveries::claim(
        &w.app.state.db,
        ClaimRequest {
            worker: "other",
            now: T0,
            lease_until: T0 + HOUR,
            limit: 1,
            run_id: Some(run),
        },
    )
    .await
    .unwrap();
    let disabled = engine::disable(&w.app.state.delivery(), &w.clock, id)
        .await
        .unwrap();
    assert!(disabled.finished_now);
    assert_eq!(disabled.cancelled, 2);
    let m = w.get(id).await;
    assert_eq!(m.status, MailingStatus::Finished);
    assert_eq!(m.next_run_at, None);
    assert_eq!(
        w.run(run).await.status,
        RunStatus::Running,
        "the in-flight one finishes first"
    );

    // The other instance records its send; then the run ends cancelled.
    let recorded = deliveries::finish(
        &w.app.state.db,
        deliveries::Outcome {
            delivery_id: in_flight[0].id,
            run_id: run,
            mailing_id: id,
            owner_id: w.owner,
            worker: "other",
            status: DeliveryStatus::Sent,
            detail: "250 OK",
            now: T0 + 1,
        },
    )
    .await
    .unwrap();
    assert!(recorded);
    w.tick_at(T0 + MINUTE).await;
    let run = w.run(run).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!((run.totals.sent, run.totals.cancelled), (1, 2));
    assert!(w.app.outbox.messages().is_empty(), "nothing more was sent");

    // Disabling a run with nothing in flight cancels it at once.
    let other = w.mailing(&ids, T0, T0 + 10 * DAY, Period::Weekly).await;
    let run = w.start(other, false).await.unwrap();
    engine::disable(&w.app.state.delivery(), &w.clock, other)
        .await
        .unwrap();
    assert_eq!(w.run(run).await.status, RunStatus::Cancelled);
    assert_eq!(w.run(run).await.totals.cancelled, 3);
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_after_a_crash_and_nobody_is_skipped() {
    let w = world().await;
    let emails: Vec<String> = (0..6).map(|i| format!("r{i}@example.com")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let ids = w.recipients(&refs).await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;
    w.clock.set(T0 - MINUTE);
    let run = w.start(id, false).await.unwrap();
    // A process claimed two deliveries and was killed before sending them.
    let lease = engine::lease_duration(&w.app.state.settings).as_millis() as i64;
    let crashed = deliveries::claim(
        &w.app.state.db,
        ClaimRequest {
            worker: "crashed-instance",
            now: T0 - 1_000,
            lease_until: T0 - 1_000 + lease,
            limit: 2,
            run_id: Some(run),
        },
    )
    .await
    .unwrap();
    assert_eq!(crashed.len(), 2);

    // On the next start the rest goes out; the crashed rows wait for their lease.
    let outcome = w.tick_at(T0).await;
    assert_eq!(outcome.resumed, vec![run]);
    assert_eq!(outcome.sent.sent, 4);
    assert_eq!(w.run(run).await.status, RunStatus::Running);
    // The loop wakes when that lease ends, not a whole SCHEDULER_INTERVAL_SECS later.
    assert_eq!(outcome.wake_at, Some(T0 - 1_000 + lease));
    assert_eq!(
        scheduler::sleep_after_tick(T0, outcome.wake_at, Duration::from_secs(60)),
        Duration::from_millis((lease - 1_000) as u64)
    );

    let outcome = w.tick_at(T0 - 1_000 + lease).await;
    assert_eq!(outcome.sent.sent, 2, "reclaimed when the lease ran out");
    let run = w.run(run).await;
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(run.totals.sent, 6);
    assert_eq!(w.sent_to(), emails, "each exactly once");
    for d in w.deliveries(run.id).await {
        let expected = if crashed.iter().any(|c| c.id == d.id) {
            2
        } else {
            1
        };
        assert_eq!(d.attempts, expected, "{}", d.email);
    }
}

#[tokio::test]
async fn a_renewal_says_which_leases_it_kept_so_a_lost_row_is_not_sent_twice() {
    let w = world().await;
    let ids = w
        .recipients(&["a@example.com", "b@example.com", "c@example.com"])
        .await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;
    w.clock.set(T0 - MINUTE);
    let run = w.start(id, false).await.unwrap();
    let db = &w.app.state.db;
    let claim = |worker, now, limit| {
        deliveries::claim(
            db,
            ClaimRequest {
                worker,
                now,
                lease_until: now + 30_000,
                limit,
                run_id: Some(run),
            },
        )
    };
    // A sender claims two rows and then stalls past its lease (no heartbeat got through).
    let stalled: Vec<i64> = claim("stalled/drive/0", T0, 2)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(stalled.len(), 2);
    // Another sender takes what has run out, and the rest.
    let other = claim("other/drive/0", T0 + 31_000, 16).await.unwrap();
    assert_eq!(other.len(), 3);
    // The stalled sender's renewal now keeps nothing: it must not send those rows.
    let kept = deliveries::renew(db, &stalled, "stalled/drive/", T0 + 62_000)
        .await
        .unwrap();
    assert!(kept.is_empty(), "{kept:?}");
    // The live holder's renewal keeps each of its rows, by id.
    let mine: Vec<i64> = other.iter().map(|c| c.id).collect();
    let kept = deliveries::renew(db, &mine, "other/drive/", T0 + 62_000)
        .await
        .unwrap();
    assert_eq!(kept.len(), 3);
    assert!(mine.iter().all(|id| kept.contains(id)));
}

#[tokio::test]
async fn totals_daily_stats_and_data_versions_follow_the_deliveries() {
    let w = world().await;
    let ids = w.recipients(&["a@example.com", "b@example.com"]).await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;
    let before = autosend::db::versions::get(&w.app.state.db, &format!("user:{}", w.owner))
        .await
        .unwrap()
        .map(|(v, _)| v)
        .unwrap_or(0);
    w.tick_at(T0).await;
    let after = autosend::db::versions::get(&w.app.state.db, &format!("user:{}", w.owner))
        .await
        .unwrap()
        .unwrap();
    assert!(after.0 >= before + 4, "start, two sends, finish: {after:?}");
    let (sent, runs_ok): (i64, i64) = sqlx::query_as(
        "SELECT CAST(SUM(sent) AS BIGINT), CAST(SUM(runs_ok) AS BIGINT) FROM daily_stats \
         WHERE mailing_id = $1",
    )
    .bind(id)
    .fetch_one(&w.app.state.db.pool)
    .await
    .unwrap();
    assert_eq!((sent, runs_ok), (2, 1));
}

#[tokio::test]
async fn messages_are_personalised_and_carry_the_delivery_headers() {
    let w = world().await;
    let html_message = messages::insert(
        &w.app.state.db,
        w.owner,
        "Hi {{full_name}}",
        "Dear {{full_name}}, your address is {{email}}.",
        Some("<html><body><p>Dear {{full_name}} &lt;{{email}}&gt;</p></body></html>"),
    )
    .await
    .unwrap();
    let zoe = w.recipient("zoe@example.com", "Zoë <&> Co").await;
    let id = w
        .mailing_of(html_message, &[zoe], T0, T0 + DAY, Period::Once)
        .await;
    w.tick_at(T0).await;
    let run = &w.runs(id).await[0];
    let delivery = &w.deliveries(run.id).await[0];
    let sent = w.app.outbox.messages();
    assert_eq!(sent.len(), 1);
    let raw = &sent[0].raw;
    let header = |name: &str| header(raw, name);
    assert_eq!(header("From"), "autosend@localhost");
    assert!(header("To").contains("zoe@example.com"));
    assert_eq!(header("Subject"), "Hi Zoë <&> Co");
    let install = &w.app.state.mailer.identity().install;
    assert_eq!(
        header("Message-ID"),
        format!("<delivery-{}.{}.{install}@127.0.0.1>", delivery.id, run.id)
    );
    assert!(mailparse::dateparse(&header("Date")).is_ok());
    assert_eq!(header("List-Id"), format!("<mailing-{id}.127.0.0.1>"));
    assert_eq!(header("Precedence"), "bulk");
    let unsubscribe = header("List-Unsubscribe");
    assert!(
        unsubscribe.starts_with("<http://127.0.0.1:0/u/") && unsubscribe.ends_with('>'),
        "{unsubscribe}"
    );
    assert!(
        !raw.contains("List-Unsubscribe-Post"),
        "RFC 8058 one-click is for https links only: {raw}"
    );
    assert_eq!(header("X-Autosend-Mailing"), id.to_string());
    assert_eq!(header("X-Autosend-Run"), run.id.to_string());

    let mail = crate::helpers::Mail::parse(raw);
    assert!(
        mail.text
            .contains("Dear Zoë <&> Co, your address is zoe@example.com."),
        "{}",
        mail.text
    );
    assert!(
        mail.html
            .contains("Dear Zoë &lt;&amp;&gt; Co &lt;zoe@example.com&gt;"),
        "{}",
        mail.html
    );
    let url = unsubscribe.trim_matches(['<', '>']);
    assert!(mail.text.contains(url), "the text carries the link too");
    assert!(mail.html.contains(url));
}

#[tokio::test]
async fn the_unsubscribe_page_asks_on_get_and_unsubscribes_on_post() {
    let w = world().await;
    let ids = w.recipients(&["ann@example.com"]).await;
    let id = w.mailing(&ids, T0, T0 + 10 * DAY, Period::Daily).await;
    w.tick_at(T0).await;
    let raw = w.app.outbox.messages()[0].raw.clone();
    let link = header(&raw, "List-Unsubscribe")
        .trim_matches(['<', '>'])
        .to_string();
    let path = url::Url::parse(&link).unwrap().path().to_string();
    let db = &w.app.state.db;

    let page = w.app.get_page(&path).await;
    assert_eq!(page.status, 200);
    let html = page.text;
    assert!(html.contains("ann@example.com"), "{html}");
    assert!(html.contains(r#"method="post""#), "{html}");
    assert!(
        !unsubscribes::is_unsubscribed(db, w.owner, "ann@example.com")
            .await
            .unwrap(),
        "GET changes nothing"
    );

    let provider = crate::helpers::client();
    for _ in 0..2 {
        Page::read(w.app.one_click(&path).await)
            .await
            .assert_status(200)
            .assert_contains("You are unsubscribed");
    }
    assert!(
        unsubscribes::is_unsubscribed(db, w.owner, "ann@example.com")
            .await
            .unwrap()
    );

    for bad in ["/u/garbage", "/u/YWJj.ZGVm"] {
        let resp = w.app.get(bad).await;
        assert_eq!(resp.status(), 400, "{bad}");
        Page::read(resp)
            .await
            .assert_contains("Invalid unsubscribe link");
        let resp = provider.post(w.app.url(bad)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }

    // The next run skips the address.
    w.tick_at(T0 + DAY).await;
    let runs = w.runs(id).await;
    assert_eq!(runs[1].totals.skipped, 1);
    assert_eq!(w.app.outbox.messages().len(), 1);
}

#[tokio::test]
async fn the_scheduler_loop_sends_due_mailings_and_stops_on_the_signal() {
    // With an interval the app runs its own loop beside the web server too; either sends,
    // and only once.
    let w = world_on(
        spawn_app_with(|v| {
            v.insert("SCHEDULER_INTERVAL_SECS".into(), "1".into());
        })
        .await,
    )
    .await;
    let ids = w.recipients(&["loop@example.com"]).await;
    let now = autosend::db::now_ms();
    w.mailing(&ids, now - MINUTE, now + DAY, Period::Once).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(scheduler::run(w.app.state.delivery(), stop_rx));
    for _ in 0..100 {
        if !w.app.outbox.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(w.sent_to(), ["loop@example.com"]);
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the loop stops on the signal")
        .unwrap();
}

#[tokio::test]
async fn two_instances_send_each_message_once() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: two instances are tested on PostgreSQL (set TEST_DATABASE_URL)");
        return;
    }
    let w = world().await;
    let other = w.app.another_instance().await;
    let other_outbox = other.mailer.outbox().unwrap();
    let (mine, theirs) = (w.app.state.delivery(), other.delivery());
    let emails: Vec<String> = (0..60).map(|i| format!("p{i:02}@example.com")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let ids = w.recipients(&refs).await;

    // Both schedulers see the mailing due at the same moment: one run starts.
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;
    w.clock.set(T0);
    let (a, b) = tokio::join!(
        scheduler::tick(&mine, &w.clock),
        scheduler::tick(&theirs, &w.clock)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.started.len() + b.started.len(), 1, "{a:?} {b:?}");
    let runs = w.runs(id).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Success);
    assert_eq!(a.sent.sent + b.sent.sent, 60);

    // Two engines draining one manual run between them.
    let second = w.mailing(&ids, T0, T0 + DAY, Period::Daily).await;
    let run = w.start(second, false).await.unwrap();
    let limits = DriveLimits::default();
    let (x, y) = tokio::join!(
        engine::drive(&mine, &w.clock, &limits),
        engine::drive(&theirs, &w.clock, &limits)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.sent + y.sent, 60);
    eprintln!("the two engines sent {} + {}", x.sent, y.sent);
    assert_eq!(w.run(run).await.status, RunStatus::Success);

    let mut all: Vec<String> = w
        .app
        .outbox
        .messages()
        .into_iter()
        .chain(other_outbox.messages())
        .flat_map(|m| m.to)
        .collect();
    all.sort();
    let mut expected: Vec<String> = emails.iter().chain(&emails).cloned().collect();
    expected.sort();
    assert_eq!(all, expected, "every recipient exactly once per run");
}

#[tokio::test]
async fn seed_demo_creates_every_status_and_is_idempotent() {
    let app = spawn_app().await;
    let counts = autosend::demo::seed(&app.state.db, false)
        .await
        .unwrap()
        .expect("seeded");
    assert_eq!(counts.mailings, 6);
    assert!(counts.runs >= 7);
    assert!(
        autosend::demo::seed(&app.state.db, false)
            .await
            .unwrap()
            .is_none(),
        "a second seed leaves the data alone"
    );
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, CAST(COUNT(*) AS BIGINT) FROM mailings GROUP BY status ORDER BY status",
    )
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    let names: Vec<&str> = statuses.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["created", "finished", "running"]);
    let run_statuses: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT status FROM runs ORDER BY status")
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(run_statuses, ["cancelled", "partial", "success"]);
    let active: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM runs WHERE status = 'running'")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(active, 0, "no demo run is left for a scheduler to send");

    let again = autosend::demo::seed(&app.state.db, true)
        .await
        .unwrap()
        .expect("flushed and seeded again");
    assert_eq!(again, counts);
    let mailings: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM mailings")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(mailings, 6, "the old demo data is gone");
    // Nothing of the demo was sent anywhere.
    assert!(app.outbox.messages().is_empty());
}

// ---- Through a real SMTP server ----------------------------------------------------------

async fn smtp_world(port: u16, max_attempts: u32) -> World {
    smtp_world_with(port, max_attempts, &[]).await
}

async fn smtp_world_with(port: u16, max_attempts: u32, extra: &[(&str, &str)]) -> World {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    world_on(
        spawn_app_with(move |v| {
            v.insert("EMAIL_BACKEND".into(), "smtp".into());
            v.insert("SMTP_HOST".into(), "127.0.0.1".into());
            v.insert("SMTP_PORT".into(), port.to_string());
            v.insert("SMTP_TIMEOUT_SECS".into(), "5".into());
            v.insert("SEND_MAX_ATTEMPTS".into(), max_attempts.to_string());
            v.extend(extra);
        })
        .await,
    )
    .await
}

#[tokio::test]
async fn through_smtp_a_5xx_fails_at_once_and_a_4xx_is_retried_until_sent() {
    let Some(python) = python_with_aiosmtpd() else {
        eprintln!("skipped: python3-aiosmtpd is not installed (.ci/run installs it)");
        return;
    };
    let port = free_port();
    let w = smtp_world(port, 5).await;
    let sink = Sink::start(python, port, w.app.dir.path(), 1).await;
    let ids = w
        .recipients(&[
            "ok@example.com",
            "reject@example.com",
            "tempfail@example.com",
        ])
        .await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;

    let first = w.tick_at(T0).await;
    assert_eq!(
        (first.sent.sent, first.sent.errors, first.sent.retried),
        (1, 1, 1),
        "{first:?}"
    );
    let run = &w.runs(id).await[0];
    assert_eq!(run.status, RunStatus::Running, "a retry is pending");
    let by_email = |ds: &[Delivery], e: &str| ds.iter().find(|d| d.email == e).unwrap().clone();
    let ds = w.deliveries(run.id).await;
    let rejected = by_email(&ds, "reject@example.com");
    assert_eq!(rejected.status, DeliveryStatus::Error);
    assert!(
        rejected.detail.contains("550") && rejected.detail.contains("no such user"),
        "the server's reply is kept: {}",
        rejected.detail
    );
    let waiting = by_email(&ds, "tempfail@example.com");
    assert_eq!(waiting.status, DeliveryStatus::Pending);
    assert_eq!(waiting.attempts, 1);
    assert!(waiting.detail.contains("451"), "{}", waiting.detail);
    assert!(waiting.next_attempt_at > T0, "backed off");
    assert!(
        w.tick_at(T0 + 1000).await.sent.sent == 0,
        "not before its time"
    );

    let second = w.tick_at(waiting.next_attempt_at).await;
    assert_eq!(second.sent.sent, 1);
    let run = w.run(run.id).await;
    assert_eq!(run.status, RunStatus::Partial);
    assert_eq!((run.totals.sent, run.totals.errors), (2, 1));
    let ok = by_email(&w.deliveries(run.id).await, "ok@example.com");
    assert!(ok.detail.starts_with("250"), "{}", ok.detail);

    let mut received: Vec<String> = sink.received().into_iter().map(|(to, _)| to).collect();
    received.sort();
    assert_eq!(received, ["ok@example.com", "tempfail@example.com"]);
    let (_, raw) = &sink.received()[0];
    assert!(raw.contains("List-Unsubscribe: <http://"), "{raw}");
    assert!(
        !raw.contains("List-Unsubscribe-Post"),
        "no one-click over http"
    );
    assert!(raw.contains("Subject: Hello Some One"), "{raw}");
}

#[tokio::test]
async fn through_smtp_a_refused_connection_is_retried_and_temporary_failures_give_up_at_the_limit()
{
    let Some(python) = python_with_aiosmtpd() else {
        eprintln!("skipped: python3-aiosmtpd is not installed (.ci/run installs it)");
        return;
    };
    let port = free_port();
    let w = smtp_world(port, 2).await;
    let ids = w
        .recipients(&["first@example.com", "tempfail-always@example.com"])
        .await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;

    // Nobody listens yet: connection refused is a temporary failure.
    let down = w.tick_at(T0).await;
    assert_eq!(down.sent.retried, 2, "{down:?}");
    let run = w.runs(id).await[0].id;
    for d in w.deliveries(run).await {
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert!(!d.detail.is_empty());
    }

    // The server comes up; tempfail-always keeps failing and gives up at attempt 2.
    let sink = Sink::start(python, port, w.app.dir.path(), 100).await;
    let up = w.tick_at(T0 + 2 * HOUR).await;
    assert_eq!((up.sent.sent, up.sent.errors), (1, 1), "{up:?}");
    let run = w.run(run).await;
    assert_eq!(run.status, RunStatus::Partial);
    let ds = w.deliveries(run.id).await;
    let gave_up = ds
        .iter()
        .find(|d| d.email == "tempfail-always@example.com")
        .unwrap();
    assert_eq!(gave_up.status, DeliveryStatus::Error);
    assert_eq!(gave_up.attempts, 2);
    assert!(
        gave_up.detail.starts_with("gave up after 2 attempts") && gave_up.detail.contains("451"),
        "{}",
        gave_up.detail
    );
    let received: Vec<String> = sink.received().into_iter().map(|(to, _)| to).collect();
    assert_eq!(received, ["first@example.com"]);
    assert_eq!(w.get(id).await.status, MailingStatus::Finished);
}

// ---- The command line ----------------------------------------------------------------------

#[tokio::test]
async fn cli_send_due_seed_demo_and_send_mailing() {
    use crate::cli::{autosend, output};
    let dir = tempfile::tempdir().unwrap();
    let env = [("EMAIL_BACKEND", "memory")];

    let (code, stdout, stderr) = output(autosend(dir.path(), &["send-due"], &env)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("started 0 run(s)"), "{stdout}");
    let logs = std::fs::read_dir(dir.path().join("logs/scheduler"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(logs.contains(" INFO scheduler "), "{logs}");
    assert!(logs.contains("tick"), "{logs}");

    let (code, stdout, stderr) = output(autosend(dir.path(), &["seed-demo"], &env)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("demo@example.com demo-password-2026"),
        "{stdout}"
    );
    let (code, stdout, _) = output(autosend(dir.path(), &["seed-demo"], &env)).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("already there"), "{stdout}");
    let (code, stdout, _) = output(autosend(dir.path(), &["seed-demo", "--flush"], &env)).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("Demo data created"), "{stdout}");

    let (code, _, stderr) =
        output(autosend(dir.path(), &["send-mailing", "--id", "999"], &env)).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("there is no mailing 999"), "{stderr}");

    // The demo's finished mailings refuse; its running one takes a dry run (plain lines,
    // since stdout is not a terminal here).
    let finished: i64 = 9; // the third demo mailing of the second seed (ids 1–6, then 7–12)
    let (code, _, stderr) = output(autosend(
        dir.path(),
        &["send-mailing", "--id", &finished.to_string()],
        &env,
    ))
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is finished"), "{stderr}");
    let (code, stdout, stderr) = output(autosend(
        dir.path(),
        &["send-mailing", "--id", "8", "--dry-run"],
        &env,
    ))
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(dry run)"), "{stdout}");
    assert!(stdout.contains("finished: Success"), "{stdout}");
    let jobs = std::fs::read_dir(dir.path().join("logs/scheduler"))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            path.file_name()?
                .to_str()?
                .starts_with("jobs")
                .then(|| std::fs::read_to_string(path).unwrap())
        })
        .collect::<String>();
    assert!(jobs.contains("run finished"), "{jobs}");
    assert!(jobs.contains("outcome=success"), "{jobs}");
}

#[tokio::test]
async fn over_https_mailings_offer_one_click_unsubscribe() {
    let w = world_on(
        spawn_app_with(|v| {
            v.insert("BASE_URL".into(), "https://mail.example.org".into());
        })
        .await,
    )
    .await;
    let raw = &w.mail_once(&["ann@example.com"]).await[0].raw;
    assert_eq!(
        header(raw, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    assert!(header(raw, "List-Unsubscribe").starts_with("<https://mail.example.org/u/"));
    assert!(header(raw, "Message-ID").ends_with("@mail.example.org>"));
}

#[tokio::test]
async fn two_installs_never_share_a_message_id_and_instances_of_one_do() {
    let one = world().await;
    let other = world_on(
        spawn_app_with(|v| {
            v.insert(
                "SECRET_KEY".into(),
                "another-install-secret-key-0123456789abcdef".into(),
            );
        })
        .await,
    )
    .await;
    let mut ids = Vec::new();
    for w in [&one, &other] {
        let sent = w.mail_once(&["ann@example.com"]).await;
        ids.push(header(&sent[0].raw, "Message-ID"));
    }
    // Same delivery and run ids on both (fresh databases), different installs.
    assert!(ids[0].starts_with("<delivery-1.1."), "{ids:?}");
    assert!(ids[1].starts_with("<delivery-1.1."), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    let second = one.app.another_instance().await;
    assert_eq!(
        second.mailer.identity().install,
        one.app.state.mailer.identity().install,
        "instances of one install (one SECRET_KEY) share it"
    );
}

#[tokio::test]
async fn encoded_words_typed_into_a_subject_or_a_name_arrive_as_typed() {
    let w = world().await;
    let typed_subject = "=?utf-8?b?SGFja2Vk?= for {{full_name}}";
    let typed_name = "=?utf-8?q?Admin?=";
    let message = messages::insert(&w.app.state.db, w.owner, typed_subject, "Body", None)
        .await
        .unwrap();
    let ann = w.recipient("ann@example.com", typed_name).await;
    w.mailing_of(message, &[ann], T0, T0 + DAY, Period::Once)
        .await;
    w.tick_at(T0).await;
    let raw = &w.app.outbox.messages()[0].raw;
    assert_eq!(
        header(raw, "Subject"),
        format!("=?utf-8?b?SGFja2Vk?= for {typed_name}"),
        "{raw}"
    );
    let to = mailparse::addrparse(&header(raw, "To")).unwrap();
    match &to[0] {
        mailparse::MailAddr::Single(info) => {
            assert_eq!(info.display_name.as_deref(), Some(typed_name), "{raw}");
            assert_eq!(info.addr, "ann@example.com");
        }
        other => panic!("{other:?}"),
    }
}

/// Every encoding in which `text` could be read back out of a URL.
fn encodings_of(text: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut out = vec![
        text.to_string(),
        hex::encode(text),
        hex::encode(text).to_uppercase(),
        text.replace('@', "%40"),
    ];
    // Base64 of the text at each of the three offsets it can start at in a longer payload,
    // without the characters its neighbours share.
    for pad in 0..3 {
        let padded = format!("{}{text}", "\0".repeat(pad));
        for engine in [&URL_SAFE_NO_PAD, &STANDARD_NO_PAD] {
            let encoded = engine.encode(&padded);
            let skip = if pad == 0 { 0 } else { 4 };
            out.push(encoded[skip..encoded.len() - 4].to_string());
        }
    }
    out
}

#[tokio::test]
async fn unsubscribe_links_do_not_show_the_address_and_old_links_still_work() {
    let w = world().await;
    let sent = w
        .mail_once(&["anna.karenina@example.com", "levin@example.com"])
        .await;
    assert_eq!(sent.len(), 2);
    for mail in &sent {
        let email = &mail.to[0];
        let link = header(&mail.raw, "List-Unsubscribe")
            .trim_matches(['<', '>'])
            .to_string();
        let text = crate::helpers::Mail::parse(&mail.raw).text;
        assert!(text.contains(&link), "the body carries the same link");
        for form in encodings_of(email)
            .into_iter()
            .chain(encodings_of(&format!("{}\0{email}", w.owner)))
        {
            assert!(!link.contains(&form), "{link} shows {email} as {form:?}");
        }
        // Nor can the token be decoded back into it.
        let token = link.rsplit('/').next().unwrap();
        use base64::Engine as _;
        for engine in [
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
        ] {
            if let Ok(bytes) = engine.decode(token) {
                let decoded = String::from_utf8_lossy(&bytes).to_lowercase();
                assert!(!decoded.contains("karenina") && !decoded.contains("levin"));
            }
        }
        let path = url::Url::parse(&link).unwrap().path().to_string();
        let page = w.app.get_html(&path).await;
        assert!(
            page.contains(email.as_str()),
            "the page (not the URL) names it"
        );
        if email == "anna.karenina@example.com" {
            let resp = Page::read(w.app.one_click(&path).await).await;
            assert_eq!(resp.status, 200);
        }
    }
    let db = &w.app.state.db;
    assert!(
        unsubscribes::is_unsubscribed(db, w.owner, "anna.karenina@example.com")
            .await
            .unwrap()
    );

    // A link mailed before the change (the address readable in it) keeps working.
    let old = autosend::delivery::unsubscribe::readable_token(
        &w.app.state.signer,
        w.owner,
        "levin@example.com",
    );
    let resp = Page::read(w.app.one_click(&format!("/u/{old}")).await).await;
    assert_eq!(resp.status, 200);
    assert!(
        unsubscribes::is_unsubscribed(db, w.owner, "levin@example.com")
            .await
            .unwrap()
    );
}

/// The owner's `is_active` set over HTTP by a logged-in superuser, as on `/admin/users`.
async fn set_owner_active(w: &World, active: bool) {
    let fields: &[(&str, &str)] = if active { &[("is_active", "1")] } else { &[] };
    let resp = w
        .app
        .post_form(&format!("/admin/users/{}", w.owner), fields)
        .await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
}

#[tokio::test]
async fn a_deactivated_owners_mailings_wait_until_the_owner_is_active_again() {
    let w = world().await;
    w.app.create_user("root@example.com", SUPERUSER).await;
    w.app.login_as("root@example.com").await;
    let ids = w.recipients(&["a@example.com", "b@example.com"]).await;
    // One mailing becomes due at T0; another already has a run going (started by hand).
    let due = w.mailing(&ids, T0, T0 + 10 * DAY, Period::Daily).await;
    let going = w
        .mailing(&ids, T0 + 5 * DAY, T0 + 10 * DAY, Period::Once)
        .await;
    w.clock.set(T0 - MINUTE);
    let started = engine::start_run(
        &w.app.state.delivery(),
        &w.clock,
        going,
        Trigger::Cli,
        false,
    )
    .await
    .unwrap();

    set_owner_active(&w, false).await;
    let tick = w.tick_at(T0).await;
    assert!(tick.started.is_empty(), "{tick:?}");
    assert_eq!(tick.sent.sent, 0, "{tick:?}");
    assert!(w.app.outbox.messages().is_empty(), "nothing is sent");
    assert!(w.runs(due).await.is_empty(), "no run starts");
    assert_eq!(
        statuses(&w.deliveries(started.run_id).await),
        vec![
            ("a@example.com".to_string(), DeliveryStatus::Pending),
            ("b@example.com".to_string(), DeliveryStatus::Pending),
        ],
        "the running run's rows stay pending, not cancelled"
    );
    for id in [due, going] {
        let page = w.app.get_html(&format!("/mailings/{id}")).await;
        assert!(page.contains("Paused:"), "{page}");
        assert!(page.contains("deactivated"));
        assert!(
            !page.contains("Send now") && !page.contains("Dry run"),
            "no button that would start a run: {page}"
        );
    }
    // Starting a run by hand is refused with the reason, and starts nothing that would then
    // sit `running` and block later sends.
    for fields in [&[][..], &[("dry_run", "1")][..]] {
        let resp = w
            .app
            .post_form(&format!("/mailings/{due}/send"), fields)
            .await;
        assert_eq!(resp.status(), 409);
        let body = resp.text().await.unwrap();
        assert!(body.contains("paused"), "{body}");
        assert!(body.contains("deactivated"), "{body}");
    }
    assert!(
        matches!(
            engine::start_run(&w.app.state.delivery(), &w.clock, due, Trigger::Cli, false).await,
            Err(StartRunError::OwnerInactive)
        ),
        "the CLI's start is refused too"
    );
    assert!(w.runs(due).await.is_empty(), "no run starts");

    set_owner_active(&w, true).await;
    let tick = w.tick_at(T0 + MINUTE).await;
    assert_eq!(
        tick.started.len(),
        1,
        "the due mailing starts now: {tick:?}"
    );
    assert_eq!(tick.sent.sent, 4, "{tick:?}");
    assert_eq!(w.app.outbox.messages().len(), 4);
    assert_eq!(w.run(started.run_id).await.status, RunStatus::Success);
    let page = w.app.get_html(&format!("/mailings/{due}")).await;
    assert!(!page.contains("Paused:"));
    assert!(page.contains("Send now") && page.contains("Dry run"));
}

#[tokio::test]
async fn through_smtp_a_refused_ehlo_is_retried_and_every_session_ends_with_quit() {
    let Some(python) = python_with_aiosmtpd() else {
        eprintln!("skipped: python3-aiosmtpd is not installed (.ci/run installs it)");
        return;
    };
    let port = free_port();
    let mut w = smtp_world_with(port, 5, &[("SMTP_HELO_NAME", "client.example.net")]).await;
    let sink = Sink::start(python, port, w.app.dir.path(), 1).await;
    let ids = w.recipients(&["ann@example.com", "bob@example.com"]).await;
    let id = w.mailing(&ids, T0, T0 + DAY, Period::Once).await;

    // A strict relay refusing the greeting is the relay's failure: retried, not an error.
    sink.set_strict(true);
    let refused = w.tick_at(T0).await;
    assert_eq!(
        (refused.sent.sent, refused.sent.errors, refused.sent.retried),
        (0, 0, 2),
        "{refused:?}"
    );
    let run = w.runs(id).await[0].clone();
    for d in w.deliveries(run.id).await {
        assert_eq!(d.status, DeliveryStatus::Pending, "{d:?}");
        assert!(d.detail.contains("504"), "{}", d.detail);
    }

    sink.set_strict(false);
    let later = w.tick_at(T0 + 2 * HOUR).await;
    assert_eq!((later.sent.sent, later.sent.errors), (2, 0), "{later:?}");
    for (_, raw) in sink.received() {
        assert!(mailparse::dateparse(&header(&raw, "Date")).is_ok());
        assert!(header(&raw, "Message-ID").starts_with("<delivery-"));
        assert_eq!(header(&raw, "Precedence"), "bulk");
    }

    // Stopping the app closes its pooled connections with QUIT.
    w.app.stop();
    let sessions = || sink.sessions();
    let mut waited = 0;
    loop {
        let log = sessions();
        let ehlo = log.iter().filter(|l| l.starts_with("EHLO ")).count();
        let quit = log.iter().filter(|l| *l == "QUIT").count();
        if ehlo > 0 && quit >= ehlo {
            break;
        }
        waited += 1;
        assert!(waited < 100, "a session ended without QUIT: {log:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = sessions();
    assert!(
        log.iter()
            .filter(|l| l.starts_with("EHLO") || l.starts_with("HELO"))
            .all(|l| l == "EHLO client.example.net"),
        "{log:?}"
    );
}
