//! The notifier's worker (SPEC §8): one task that takes reports off the queue, records them
//! in their groups, asks [`policy::decide`] what to do and does it (database, per-minute cap,
//! SMTP), and handles broken links.
//!
//! - The per-minute cap is counted in Redis (`{prefix}errors:minute:{unix_minute}`) when there
//!   is one, so instances share it, else by governor in-process.
//! - Broken links go to MANAGERS, once a day per (path, referer). New ones have a cap of the
//!   same size, counted apart (`{prefix}broken-links:minute:{unix_minute}`) so that a storm of
//!   404s never holds back an error e-mail; past it they are counted into one summary ("N more
//!   broken links since …") and write no rows.
//! - A failure while reporting is logged (target `reporting`, at most once a minute per kind)
//!   and counted, never reported: reporting cannot loop on itself.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use futures_util::FutureExt as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use lettre::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;
use crate::db::error_groups::{self, EmailClaim, GroupKind, Occurrence};
use crate::mail::Mailer;
use crate::reporting::broken_links::{self, LinkStorm, MaskedLink, NotFound};
use crate::reporting::compose::{self, MailHead, compose_parts};
use crate::reporting::notifier::{Clock, Counters, Job};
use crate::reporting::policy::{
    self, Action, Event, GroupState, Lookup, Rules, SUMMARY_INTERVAL_MS, State, Storm, StormGroup,
};
use crate::reporting::report::{ErrorReport, format_time};

/// How often a pending storm summary is retried.
const STORM_RETRY: Duration = Duration::from_secs(5);
/// Longest wait for the shared per-minute counter in Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// Failures of one kind are logged at most once per this many milliseconds.
const WARN_INTERVAL_MS: i64 = 60_000;
/// Broken links remembered for the fallback used while the database fails.
const LOCAL_MEMORY: usize = 10_000;

type MinuteLimiter = RateLimiter<NotKeyed, InMemoryState, Clock, NoOpMiddleware<Duration>>;

/// Which per-minute cap an e-mail counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    Errors,
    BrokenLinks,
}

impl Cap {
    /// The shared counter's key part in Redis.
    fn key(self) -> &'static str {
        match self {
            Cap::Errors => "errors",
            Cap::BrokenLinks => "broken-links",
        }
    }
}

/// The receiving side: one task that records, decides and sends.
pub struct ReportWorker {
    rx: mpsc::Receiver<Job>,
    settings: Arc<Settings>,
    db: Db,
    mailer: Mailer,
    cache: Option<Arc<Cache>>,
    counters: Arc<Counters>,
    clock: Clock,
    limiter: MinuteLimiter,
    link_limiter: MinuteLimiter,
    /// What the error path decides with ([`policy::decide`]).
    policy: State,
    link_storm: LinkStorm,
    last_link_summary_ms: Option<i64>,
    /// Last broken-link e-mail per (path, referer), used only while the database fails.
    local_links: HashMap<String, i64>,
    /// Last warning time and warnings skipped since, per kind of failure.
    warnings: HashMap<&'static str, (i64, u64)>,
}

impl ReportWorker {
    /// The worker behind a notifier's queue.
    pub(crate) fn new(
        rx: mpsc::Receiver<Job>,
        settings: Arc<Settings>,
        db: Db,
        mailer: Mailer,
        cache: Option<Arc<Cache>>,
        counters: Arc<Counters>,
        clock: Clock,
    ) -> Self {
        let per_minute =
            NonZeroU32::new(settings.error_email_max_per_minute).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::direct_with_clock(Quota::per_minute(per_minute), clock.clone());
        let link_limiter =
            RateLimiter::direct_with_clock(Quota::per_minute(per_minute), clock.clone());
        Self {
            rx,
            policy: State::new(Rules::from_settings(&settings)),
            settings,
            db,
            mailer,
            cache,
            counters,
            clock,
            limiter,
            link_limiter,
            link_storm: LinkStorm::default(),
            last_link_summary_ms: None,
            local_links: HashMap::new(),
            warnings: HashMap::new(),
        }
    }

    /// Runs the worker on the runtime. It ends when every [`crate::reporting::ErrorNotifier`] clone
    /// is dropped.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    /// Handles jobs until every sender is gone; retries a pending storm summary meanwhile.
    pub async fn run(mut self) {
        let mut retry = tokio::time::interval(STORM_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                job = self.rx.recv() => match job {
                    Some(job) => self.handle_guarded(job).await,
                    None => break,
                },
                _ = retry.tick(), if self.policy.storm_pending() || !self.link_storm.is_empty() => {
                    if AssertUnwindSafe(Box::pin(self.try_summary())).catch_unwind().await.is_err() {
                        self.warn("panic", "panic while sending a storm summary");
                    }
                    if AssertUnwindSafe(Box::pin(self.try_link_summary())).catch_unwind().await.is_err() {
                        self.warn("panic", "panic while sending a broken-link summary");
                    }
                }
            }
        }
        Box::pin(self.try_summary()).await;
        Box::pin(self.try_link_summary()).await;
    }

    /// A bug in reporting must not end reporting: a panic is logged and the next job runs.
    async fn handle_guarded(&mut self, job: Job) {
        if AssertUnwindSafe(Box::pin(self.handle(job)))
            .catch_unwind()
            .await
            .is_err()
        {
            self.warn("panic", "panic while handling an error report");
        }
    }

    async fn handle(&mut self, job: Job) {
        match job {
            // Every job's future is boxed: inline, the nested frames of report building,
            // masking and the SMTP send made the worker outgrow a 2 MiB stack in debug builds
            // (a test thread's stack; a long report over a real SMTP server overflowed it).
            Job::Error(report) => Box::pin(self.handle_error(*report)).await,
            Job::Request(job) => {
                let (details, request) = *job;
                let report = ErrorReport::for_request(details, request, &self.settings);
                Box::pin(self.handle_error(report)).await;
            }
            Job::Background(job) => {
                let (details, task) = *job;
                let report = ErrorReport::for_background(details, task, &self.settings);
                Box::pin(self.handle_error(report)).await;
            }
            Job::BrokenLink(not_found) => Box::pin(self.handle_broken_link(*not_found)).await,
            Job::Flush(done) => {
                Box::pin(self.try_summary()).await;
                Box::pin(self.try_link_summary()).await;
                let _ = done.send(());
            }
        }
    }

    /// Records, decides and sends one error report: [`policy::decide`] says what to do and
    /// each answer goes back to it, until it is done.
    async fn handle_error(&mut self, report: ErrorReport) {
        let now = self.clock.now_ms();
        let group = match error_groups::find(&self.db, &report.fingerprint).await {
            Ok(Some(group)) => Lookup::Found(GroupState::from(&group)),
            Ok(None) => Lookup::New,
            Err(err) => {
                self.fail("database", "cannot read an error group", &err);
                Lookup::Failed
            }
        };
        let event = Event::Report {
            entry: StormGroup::of(&report),
            group,
        };
        let mut action = policy::decide(&mut self.policy, event, now);
        loop {
            let event = match action {
                Action::Done => return,
                Action::Record { reopen } => {
                    Event::Recorded(self.record(&report, now, reopen).await)
                }
                Action::Claim { expected } => Event::Claimed(
                    error_groups::claim_email(&self.db, &report.fingerprint, expected, now)
                        .await
                        .map_err(|err| self.fail("database", "cannot claim an error e-mail", &err)),
                ),
                Action::AskCap => Event::Cap(self.allow_email(Cap::Errors).await),
                Action::Suppress { in_db } => {
                    Counters::bump(&self.counters.suppressed);
                    if in_db
                        && let Err(err) =
                            error_groups::add_suppressed(&self.db, &report.fingerprint).await
                    {
                        self.fail("database", "cannot count a suppressed error", &err);
                    }
                    return;
                }
                Action::Held => {
                    Counters::bump(&self.counters.suppressed);
                    return;
                }
                Action::Mail { notes, claim } => {
                    return Box::pin(self.mail_report(&report, notes, claim)).await;
                }
                // A tick's answer; a report never gets it.
                Action::Summary(storm) => return Box::pin(self.send_summary(storm, now)).await,
            };
            action = policy::decide(&mut self.policy, event, now);
        }
    }

    /// Counts one occurrence in its group; the occurrences so far, `None` when it failed.
    async fn record(&mut self, report: &ErrorReport, now: i64, reopen: bool) -> Option<i64> {
        let route = report.route();
        let occurrence = Occurrence {
            fingerprint: &report.fingerprint,
            kind: GroupKind::Error,
            error_type: &report.error_type,
            message: &report.message,
            route: &route,
            request_id: report.request_id(),
        };
        match error_groups::record(&self.db, &occurrence, now, reopen).await {
            Ok(n) => Some(n),
            Err(err) => {
                self.fail("database", "cannot record an error group", &err);
                None
            }
        }
    }

    /// Sends a report; a failed send gives the database claim back.
    async fn mail_report(
        &mut self,
        report: &ErrorReport,
        notes: Vec<String>,
        claim: Option<EmailClaim>,
    ) {
        let head = MailHead {
            from: self.settings.server_email.clone(),
            to: self.settings.admins.clone(),
            subject: report.subject(&self.settings),
            notes,
        };
        let sent = match compose_parts(report, &head, self.settings.error_email_chunk_size) {
            Ok(messages) => self.send_all(messages).await,
            Err(err) => Err(err),
        };
        match sent {
            Ok(()) => Counters::bump(&self.counters.sent),
            Err(err) => {
                Counters::bump(&self.counters.failed);
                self.fail("send", "cannot send an error report", &err);
                if let Some(claim) = claim
                    && let Err(err) =
                        error_groups::release_email(&self.db, &report.fingerprint, &claim).await
                {
                    self.fail("database", "cannot release an error e-mail claim", &err);
                }
            }
        }
    }

    /// The per-instance stand-in for [`error_groups::claim_broken_link`] while the database
    /// fails: one e-mail per link and period.
    fn local_link_claim(&mut self, key: String, now: i64) -> bool {
        if self.local_links.len() >= LOCAL_MEMORY {
            self.local_links.clear();
        }
        match self.local_links.get_mut(&key) {
            Some(last) if now - *last < broken_links::REPORT_PERIOD_MS => false,
            Some(last) => {
                *last = now;
                true
            }
            None => {
                self.local_links.insert(key, now);
                true
            }
        }
    }

    /// One more e-mail of this kind this minute? Redis's shared counter when there is one
    /// (falling back to this instance's governor when Redis fails), else governor.
    async fn allow_email(&mut self, cap: Cap) -> bool {
        let max = i64::from(self.settings.error_email_max_per_minute);
        if let Some(cache) = self.cache.clone()
            && let Some(pool) = cache.redis_pool()
        {
            let minute = self.clock.now_ms().div_euclid(60_000);
            let key = format!("{}{}:minute:{minute}", cache.prefix(), cap.key());
            match tokio::time::timeout(REDIS_TIMEOUT, count_in_redis(pool, &key)).await {
                Ok(Ok(count)) => return count <= max,
                Ok(Err(err)) => self.warn_with(
                    "redis",
                    "shared error e-mail cap unavailable; using this instance's",
                    &err,
                ),
                Err(_) => self.warn_with(
                    "redis",
                    "shared error e-mail cap unavailable; using this instance's",
                    &"timed out",
                ),
            }
        }
        match cap {
            Cap::Errors => self.limiter.check().is_ok(),
            Cap::BrokenLinks => self.link_limiter.check().is_ok(),
        }
    }

    /// Sends the storm summary when [`policy::decide`] says it is due and the cap allows.
    async fn try_summary(&mut self) {
        let now = self.clock.now_ms();
        let mut action = policy::decide(&mut self.policy, Event::Tick, now);
        if action == Action::AskCap {
            let allowed = self.allow_email(Cap::Errors).await;
            action = policy::decide(&mut self.policy, Event::Cap(allowed), now);
        }
        if let Action::Summary(storm) = action {
            Box::pin(self.send_summary(storm, now)).await;
        }
    }

    async fn send_summary(&mut self, storm: Storm, now: i64) {
        let sent = match compose::storm_summary(&storm, &self.settings, now) {
            Ok(message) => self.send_all(vec![message]).await,
            Err(err) => Err(err),
        };
        let counters = self.counters.clone();
        self.count_outcome(sent, &counters.sent, "cannot send an error storm summary");
    }

    /// Counts a sent mail's outcome (a summary or a broken-link report): sent, or failed with
    /// one warning. Synchronous on purpose: one more async frame on these paths made the worker
    /// outgrow a 2 MiB stack in debug builds.
    fn count_outcome(&mut self, sent: anyhow::Result<()>, on_sent: &AtomicU64, what: &str) {
        match sent {
            Ok(()) => Counters::bump(on_sent),
            Err(err) => {
                Counters::bump(&self.counters.failed);
                self.fail("send", what, &err);
            }
        }
    }

    /// The broken-link storm's summary, on the same terms as the error storm's.
    async fn try_link_summary(&mut self) {
        if self.link_storm.is_empty() || self.settings.managers.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        if self
            .last_link_summary_ms
            .is_some_and(|last| now - last < SUMMARY_INTERVAL_MS)
            || !self.allow_email(Cap::BrokenLinks).await
        {
            return;
        }
        self.last_link_summary_ms = Some(now);
        let storm = std::mem::take(&mut self.link_storm);
        let since = format_time(error_groups::from_ms(storm.since_ms.unwrap_or(now)));
        let until = format_time(error_groups::from_ms(now));
        // Sent here, not through a shared helper: one more async frame on this path made the
        // worker outgrow a 2 MiB stack in debug builds.
        let sent = match broken_links::compose_summary(&storm, &self.settings, &since, &until) {
            Ok(message) => self.send_all(vec![message]).await,
            Err(err) => Err(err),
        };
        let counters = self.counters.clone();
        self.count_outcome(
            sent,
            &counters.broken_links_sent,
            "cannot send a broken-link summary",
        );
    }

    async fn handle_broken_link(&mut self, not_found: NotFound) {
        let now = self.clock.now_ms();
        let link = MaskedLink::new(&not_found, &self.settings);
        // Reported today already: counted in its group (a row that exists), not e-mailed.
        let reported = error_groups::broken_link_reported(
            &self.db,
            &link.path,
            &link.referer,
            now,
            broken_links::REPORT_PERIOD_MS,
        )
        .await
        .unwrap_or_else(|err| {
            self.fail("database", "cannot look up a broken-link report", &err);
            false
        });
        // A new link over the cap (or a storm gathering): one count in the summary, no rows.
        if !reported && (!self.link_storm.is_empty() || !self.allow_email(Cap::BrokenLinks).await) {
            Counters::bump(&self.counters.suppressed);
            self.link_storm.add(&link, now);
            return;
        }
        let fingerprint = broken_links::group_fingerprint(&link.path);
        let message = format!("Broken link to {} from {}", link.path, link.referer);
        let occurrence = Occurrence {
            fingerprint: &fingerprint,
            kind: GroupKind::BrokenLink,
            error_type: "404 Not Found",
            message: &message,
            route: &link.path,
            request_id: &link.request_id,
        };
        if let Err(err) = error_groups::record(&self.db, &occurrence, now, true).await {
            self.fail("database", "cannot record a broken link", &err);
        }
        let claimed = match error_groups::claim_broken_link(
            &self.db,
            &link.path,
            &link.referer,
            now,
            broken_links::REPORT_PERIOD_MS,
        )
        .await
        {
            Ok(claimed) => claimed,
            Err(err) => {
                self.fail("database", "cannot claim a broken-link report", &err);
                let key = format!("broken-link {} {}", link.path, link.referer);
                self.local_link_claim(key, now)
            }
        };
        if !claimed {
            Counters::bump(&self.counters.suppressed);
            return;
        }
        let sent = match broken_links::compose(&link, &self.settings) {
            Ok(message) => self.send_all(vec![message]).await,
            Err(err) => Err(err),
        };
        let counters = self.counters.clone();
        self.count_outcome(
            sent,
            &counters.broken_links_sent,
            "cannot send a broken-link report",
        );
    }

    /// Sends parts in order over one connection; stops at the first failure.
    async fn send_all(&self, messages: Vec<Message>) -> anyhow::Result<()> {
        Box::pin(self.mailer.send_in_order(messages))
            .await
            .map_err(anyhow::Error::from)
    }

    fn fail(&mut self, kind: &'static str, what: &str, err: &anyhow::Error) {
        self.warn_with(kind, what, &format!("{err:#}"));
    }

    fn warn(&mut self, kind: &'static str, what: &str) {
        self.warn_with(kind, what, &"");
    }

    /// Logs a reporting failure, at most once a minute per kind; never reports it.
    fn warn_with(&mut self, kind: &'static str, what: &str, error: &dyn std::fmt::Display) {
        let now = self.clock.now_ms();
        let (last, skipped) = self.warnings.entry(kind).or_insert((i64::MIN, 0));
        if now.saturating_sub(*last) < WARN_INTERVAL_MS {
            *skipped += 1;
            return;
        }
        tracing::warn!(
            target: "reporting",
            error = %error,
            similar_skipped = *skipped,
            "{what} (not reported; similar warnings at most once a minute)"
        );
        *last = now;
        *skipped = 0;
    }
}

/// `INCR key` and `EXPIRE key 60` in one round trip; the count after this increment.
async fn count_in_redis(pool: &deadpool_redis::Pool, key: &str) -> Result<i64, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let (count,): (i64,) = deadpool_redis::redis::pipe()
        .atomic()
        .incr(key, 1)
        .expire(key, 60)
        .ignore()
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(count)
}
