//! `autosend seed-demo`: a living app for a first look — demo users, their recipients and
//! messages, and mailings in every status with a history of runs and deliveries.
//!
//! The history is recorded through the engine's own bookkeeping (runs started and claimed,
//! outcomes recorded, runs finished, at past times on a manual [`Clock`]), so totals, daily
//! statistics and data versions are exactly what real sends would have left. Nothing is sent,
//! and no run is left active, so no scheduler picks demo work up. The demo addresses are at
//! `example.com`, which accepts no mail (RFC 2606), should a demo mailing's next run ever go
//! out for real.

use std::time::Duration;

use anyhow::Context as _;

use crate::accounts::passwords;
use crate::clock::Clock;
use crate::db::Db;
use crate::db::deliveries::{self, ClaimRequest, Outcome};
use crate::db::mailings::{self, NewMailing};
use crate::db::runs::{self, Claim, NewRun};
use crate::db::users::{self, NewUser};
use crate::db::{messages, recipients, unsubscribes};
use crate::domain::instant::{from_ms, to_ms};
use crate::domain::{DeliveryStatus, Period, Trigger};

/// The demo logins, printed by `seed-demo`: (e-mail, password).
pub const LOGINS: &[(&str, &str)] = &[
    ("demo@example.com", "demo-password-2026"),
    ("lena.demo@example.com", "lena-password-2026"),
    ("manager.demo@example.com", "manager-password-2026"),
];

const PEOPLE: &[(&str, &str)] = &[
    ("Ivan Petrov", "ivan.petrov"),
    ("Maria Ivanova", "maria.ivanova"),
    ("Li Wei", "li.wei"),
    ("Ana García", "ana.garcia"),
    ("John Smith", "john.smith"),
    ("Fatima Zahra", "fatima.zahra"),
    ("Kenji Sato", "kenji.sato"),
    ("Olga Smirnova", "olga.smirnova"),
    ("Pierre Martin", "pierre.martin"),
    ("Sara Cohen", "sara.cohen"),
    ("Noah Müller", "noah.mueller"),
    ("Aisha Bello", "aisha.bello"),
];

/// What `seed` created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedCounts {
    pub users: usize,
    pub recipients: usize,
    pub messages: usize,
    pub mailings: usize,
    pub runs: usize,
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Creates the demo data; `None` when it is already there and `flush` is false.
/// With `flush`, the previous demo users and everything they own are deleted first.
pub async fn seed(db: &Db, flush: bool) -> anyhow::Result<Option<SeedCounts>> {
    let emails: Vec<&str> = LOGINS.iter().map(|(email, _)| *email).collect();
    if flush {
        let removed = users::delete_with_data(db, &emails).await?;
        tracing::info!(users = removed, "previous demo data deleted");
    } else if users::find_by_email(db, emails[0]).await?.is_some() {
        return Ok(None);
    }

    let mut counts = SeedCounts::default();
    let mut ids = Vec::new();
    for (i, (email, password)) in LOGINS.iter().enumerate() {
        let manager = i == 2;
        let new = NewUser {
            email: email.to_string(),
            password_hash: passwords::hash(password).await?,
            full_name: ["Demo Owner", "Lena Demo", "Demo Manager"][i].to_string(),
            is_active: true,
            view_all_mailings: manager,
            disable_mailing: manager,
            ..NewUser::default()
        };
        let id = users::create(db, &new)
            .await
            .map_err(|e| anyhow::anyhow!("cannot create demo user {email}: {e}"))?;
        ids.push(id);
        counts.users += 1;
    }
    let (demo, lena) = (ids[0], ids[1]);

    let now = crate::db::now_ms();
    let clock = Clock::manual(now);
    let mut audience = Vec::new();
    for (name, local) in PEOPLE {
        let comment = if audience.len() % 4 == 0 {
            "met at the spring fair"
        } else {
            ""
        };
        let id =
            recipients::insert(db, demo, &format!("{local}@example.com"), name, comment).await?;
        audience.push(id);
    }
    let mut lena_audience = Vec::new();
    for (name, local) in &PEOPLE[..5] {
        let id = recipients::insert(db, lena, &format!("{local}@example.com"), name, "").await?;
        lena_audience.push(id);
    }
    counts.recipients = audience.len() + lena_audience.len();
    // One recipient has opted out: their deliveries show as skipped.
    unsubscribes::add(db, demo, "olga.smirnova@example.com", None, now - 20 * DAY).await?;

    let digest = messages::insert(
        db,
        demo,
        "Your weekly digest, {{full_name}}",
        "Hello {{full_name}},\n\nHere is what happened this week.\n\nBest regards,\nThe demo team",
        Some(
            "<html><body><p>Hello <strong>{{full_name}}</strong>,</p>\
             <p>Here is what happened this week.</p><p>Best regards,<br>The demo team</p>\
             </body></html>",
        ),
    )
    .await?;
    let sale = messages::insert(
        db,
        demo,
        "Spring sale: 20% off for {{full_name}}",
        "Dear {{full_name}},\n\nOur spring sale starts today. This offer was sent to {{email}}.",
        None,
    )
    .await?;
    let notice = messages::insert(
        db,
        demo,
        "Scheduled maintenance",
        "Hello {{full_name}},\n\nThe service will be down for maintenance on Sunday night.",
        None,
    )
    .await?;
    let lena_news = messages::insert(
        db,
        lena,
        "News from Lena",
        "Hi {{full_name}}, a short note from Lena.",
        None,
    )
    .await?;
    counts.messages = 4;

    let mut history = History {
        db,
        clock: &clock,
        runs: 0,
    };

    // Created: its window opens in three days.
    mailings::create_mailing(
        db,
        &NewMailing {
            owner_id: demo,
            message_id: digest,
            recipient_ids: audience.clone(),
            start_at: now + 3 * DAY,
            end_at: now + 60 * DAY,
            period: Period::Weekly,
        },
        now,
    )
    .await?;

    // Running daily: three scheduled runs so far (one with a bounce), and a dry run.
    let daily = mailings::create_mailing(
        db,
        &NewMailing {
            owner_id: demo,
            message_id: digest,
            recipient_ids: audience.clone(),
            start_at: now - 2 * DAY - HOUR,
            end_at: now + 28 * DAY,
            period: Period::Daily,
        },
        now - 3 * DAY,
    )
    .await?;
    history.dry_run(daily, now - 2 * DAY - 2 * HOUR).await?;
    for (day, bounce) in [(2, false), (1, true), (0, false)] {
        let at = now - day * DAY - HOUR;
        history
            .scheduled(daily, Period::Daily, now - 2 * DAY - HOUR, at, bounce)
            .await?;
    }

    // Finished once: delivered ten days ago.
    let once = mailings::create_mailing(
        db,
        &NewMailing {
            owner_id: demo,
            message_id: sale,
            recipient_ids: audience[..8].to_vec(),
            start_at: now - 10 * DAY,
            end_at: now - 9 * DAY,
            period: Period::Once,
        },
        now - 12 * DAY,
    )
    .await?;
    history
        .scheduled(once, Period::Once, now - 10 * DAY, now - 10 * DAY, false)
        .await?;

    // Finished because its window closed: weekly, two runs, the second partly bounced.
    let weekly = mailings::create_mailing(
        db,
        &NewMailing {
            owner_id: demo,
            message_id: notice,
            recipient_ids: audience.clone(),
            start_at: now - 20 * DAY,
            end_at: now - 8 * DAY,
            period: Period::Weekly,
        },
        now - 21 * DAY,
    )
    .await?;
    history
        .scheduled(
            weekly,
            Period::Weekly,
            now - 20 * DAY,
            now - 20 * DAY,
            false,
        )
        .await?;
    history
        .scheduled(weekly, Period::Weekly, now - 20 * DAY, now - 13 * DAY, true)
        .await?;

    // Finished by a manager's disable in the middle of a run: the rest was cancelled.
    let disabled = mailings::create_mailing(
        db,
        &NewMailing {
            owner_id: demo,
            message_id: sale,
            recipient_ids: audience.clone(),
            start_at: now - 5 * DAY,
            end_at: now + 25 * DAY,
            period: Period::Monthly,
        },
        now - 6 * DAY,
    )
    .await?;
    history.disabled_midway(disabled, now - 5 * DAY).await?;

    // Lena's mailing: a manual run last week, still running monthly.
    let lena_monthly = mailings::create_mailing(
        db,
        &NewMailing {
            owner_id: lena,
            message_id: lena_news,
            recipient_ids: lena_audience,
            start_at: now + DAY,
            end_at: now + 90 * DAY,
            period: Period::Monthly,
        },
        now - 8 * DAY,
    )
    .await?;
    history
        .manual(lena_monthly, "lena.demo@example.com", now - 7 * DAY)
        .await?;

    clock.set(now);
    mailings::finish_expired(db, now).await?;
    counts.mailings = 6;
    counts.runs = history.runs;
    Ok(Some(counts))
}

/// Records past runs through the engine's bookkeeping.
struct History<'a> {
    db: &'a Db,
    clock: &'a Clock,
    runs: usize,
}

const WORKER: &str = "seed-demo";

impl History<'_> {
    async fn start(&mut self, new: NewRun, at: i64) -> anyhow::Result<i64> {
        self.clock.set(at);
        let started = runs::start(self.db, &new, at)
            .await
            .with_context(|| format!("cannot start demo run of mailing {}", new.mailing_id))?;
        self.runs += 1;
        Ok(started.run_id)
    }

    /// Claims up to `limit` of the run's deliveries and records an outcome for each, one
    /// every 400 ms of demo time.
    async fn record(
        &mut self,
        run_id: i64,
        limit: i64,
        outcome: impl Fn(usize, &str) -> (DeliveryStatus, String),
    ) -> anyhow::Result<Vec<i64>> {
        let db = self.db;
        let now = self.clock.now_ms();
        let claimed = deliveries::claim(
            db,
            ClaimRequest {
                worker: WORKER,
                now,
                lease_until: now + HOUR,
                limit,
                run_id: Some(run_id),
            },
        )
        .await?;
        let context = runs::send_context(db, run_id)
            .await?
            .context("demo run has a message")?;
        for (i, c) in claimed.iter().enumerate() {
            self.clock.advance(Duration::from_millis(400));
            let (status, detail) = outcome(i, &c.email);
            deliveries::finish(
                db,
                Outcome {
                    delivery_id: c.id,
                    run_id,
                    mailing_id: c.mailing_id,
                    owner_id: context.owner_id,
                    worker: WORKER,
                    status,
                    detail: &detail,
                    now: self.clock.now_ms(),
                },
            )
            .await?;
        }
        Ok(claimed.iter().map(|c| c.id).collect())
    }

    async fn finish(&mut self, run_id: i64) -> anyhow::Result<()> {
        self.clock.advance(Duration::from_secs(1));
        runs::finish_if_done(self.db, run_id, self.clock.now_ms()).await?;
        Ok(())
    }

    fn delivered(i: usize, _email: &str) -> (DeliveryStatus, String) {
        (
            DeliveryStatus::Sent,
            format!("250 2.0.0 Ok: queued as DEMO{:04}", i + 1),
        )
    }

    /// A run as the scheduler starts it (claiming the occurrence), then delivered;
    /// with `bounce`, one address is refused.
    async fn scheduled(
        &mut self,
        mailing_id: i64,
        period: Period,
        start_at: i64,
        at: i64,
        bounce: bool,
    ) -> anyhow::Result<()> {
        let expected = mailings::get(self.db, mailing_id)
            .await?
            .and_then(|m| m.next_run_at)
            .unwrap_or(start_at);
        let utc = crate::domain::TimeZone::UTC.tz();
        let next = match period {
            Period::Once => None,
            p => p.next_after(from_ms(start_at), from_ms(at), utc).map(to_ms),
        };
        let new = NewRun {
            mailing_id,
            trigger: Trigger::Scheduler,
            dry_run: false,
            claim: Some(Claim {
                expected_next_run_at: expected,
                next_run_at: next,
            }),
        };
        let run_id = self.start(new, at).await?;
        self.record(run_id, 1000, |i, email| {
            if bounce && i == 2 {
                (
                    DeliveryStatus::Error,
                    format!(
                        "permanent failure: 550 5.1.1 <{email}>: Recipient address rejected: \
                         User unknown"
                    ),
                )
            } else {
                Self::delivered(i, email)
            }
        })
        .await?;
        self.finish(run_id).await
    }

    async fn dry_run(&mut self, mailing_id: i64, at: i64) -> anyhow::Result<()> {
        let new = NewRun {
            mailing_id,
            trigger: Trigger::Manual("demo@example.com".into()),
            dry_run: true,
            claim: None,
        };
        let run_id = self.start(new, at).await?;
        self.record(run_id, 1000, |_, _| {
            (
                DeliveryStatus::DryRun,
                "dry run: rendered, not sent".to_string(),
            )
        })
        .await?;
        self.finish(run_id).await
    }

    async fn manual(&mut self, mailing_id: i64, by: &str, at: i64) -> anyhow::Result<()> {
        let new = NewRun {
            mailing_id,
            trigger: Trigger::Manual(by.to_string()),
            dry_run: false,
            claim: None,
        };
        let run_id = self.start(new, at).await?;
        self.record(run_id, 1000, Self::delivered).await?;
        self.finish(run_id).await
    }

    /// Four messages go out, then the manager disables the mailing: the rest is cancelled.
    async fn disabled_midway(&mut self, mailing_id: i64, at: i64) -> anyhow::Result<()> {
        let new = NewRun {
            mailing_id,
            trigger: Trigger::Scheduler,
            dry_run: false,
            claim: None,
        };
        let run_id = self.start(new, at).await?;
        self.record(run_id, 4, Self::delivered).await?;
        self.clock.advance(Duration::from_secs(30));
        mailings::disable(self.db, mailing_id, self.clock.now_ms()).await?;
        self.finish(run_id).await
    }
}
