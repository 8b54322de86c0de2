//! The error notifier (SPEC §8): reports leave the failing request through a bounded queue and
//! are e-mailed by one background task, de-duplicated and throttled.
//!
//! Owns: the queue ([`ErrorNotifier`], cheap to clone, never blocks, never fails), the worker
//! ([`ReportWorker`]) and its decisions:
//! - every report is counted in its group (`error_groups`), whatever happens next;
//! - nothing is e-mailed with `DEBUG=true` or without `ADMINS` (`MANAGERS` for broken links);
//! - a fingerprint is e-mailed when it is new (or reopened after being resolved), and then at
//!   most once per `ERROR_EMAIL_COOLDOWN_SECS`; repeats in between are counted and the next
//!   e-mail says "N more since …". The right to e-mail is one conditional `UPDATE`, so two
//!   instances never both send it;
//! - at most `ERROR_EMAIL_MAX_PER_MINUTE` error e-mails a minute: counted in Redis
//!   (`{prefix}errors:minute:{unix_minute}`) when there is one, so instances share it, else
//!   by governor in-process. Reports over the cap are gathered into one storm summary, sent
//!   when the cap allows again (at most one a minute). New broken links have a cap of the
//!   same size, counted apart (`{prefix}broken-links:minute:{unix_minute}`) so that a storm
//!   of 404s never holds back an error e-mail; past it they are counted into one summary
//!   ("N more broken links since …") and write no rows;
//! - a failure while reporting is logged (target `reporting`, at most once a minute per kind)
//!   and counted, never reported: reporting cannot loop on itself.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use lettre::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Db;
use crate::db::error_groups::{self, EmailClaim, KIND_BROKEN_LINK, KIND_ERROR, Occurrence};
use crate::mail::Mailer;
use crate::reporting::broken_links::{self, LinkStorm, MaskedLink, NotFound, Skip};
use crate::reporting::chunk::{MailHead, compose_parts};
use crate::reporting::report::{
    BackgroundTask, ErrorDetails, ErrorReport, RawRequest, format_time,
};
use crate::reporting::subject;

/// Reports waiting for the worker; past it new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 256;
/// How often a pending storm summary is retried.
const STORM_RETRY: Duration = Duration::from_secs(5);
/// Storm summaries are at least this far apart.
const SUMMARY_INTERVAL_MS: i64 = 60_000;
/// Longest wait for the shared per-minute counter in Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// Failures of one kind are logged at most once per this many milliseconds.
const WARN_INTERVAL_MS: i64 = 60_000;
/// Fingerprints remembered for the fallback used while the database fails.
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

/// What the notifier has done, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportingStats {
    /// Error reports e-mailed (a report split in parts counts once), storm summaries included.
    pub sent: u64,
    /// Reports not e-mailed on their own: repeats inside the cooldown, reports over the
    /// per-minute cap (they go into a storm summary), broken links already reported today.
    pub suppressed: u64,
    /// Reports dropped because the queue was full.
    pub dropped: u64,
    /// E-mails that could not be sent.
    pub failed: u64,
    /// Broken-link e-mails sent.
    pub broken_links_sent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    suppressed: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    broken_links_sent: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

enum Job {
    Error(Box<ErrorReport>),
    /// Built (masked, backtrace resolved) by the worker, not by the failing request.
    Request(Box<(ErrorDetails, RawRequest)>),
    Background(Box<(ErrorDetails, BackgroundTask)>),
    BrokenLink(Box<NotFound>),
    Flush(oneshot::Sender<()>),
}

struct Shared {
    tx: mpsc::Sender<Job>,
    counters: Arc<Counters>,
    settings: Arc<Settings>,
    last_drop_warning: AtomicI64,
    clock: Clock,
}

/// The sending side: hand it reports from anywhere. Cloning is cheap.
#[derive(Clone)]
pub struct ErrorNotifier {
    shared: Arc<Shared>,
}

/// Queue size and clock, for tests; the defaults are the production ones.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    pub capacity: usize,
    pub clock: Clock,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        Self {
            capacity: QUEUE_CAPACITY,
            clock: Clock::System,
        }
    }
}

impl ErrorNotifier {
    /// The notifier and its worker; the caller spawns the worker ([`ReportWorker::spawn`]).
    /// `cache` provides Redis (when configured) for the cross-instance per-minute cap.
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        mailer: Mailer,
        cache: Option<Arc<Cache>>,
        options: NotifierOptions,
    ) -> (Self, ReportWorker) {
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let per_minute =
            NonZeroU32::new(settings.error_email_max_per_minute).unwrap_or(NonZeroU32::MIN);
        let limiter =
            RateLimiter::direct_with_clock(Quota::per_minute(per_minute), options.clock.clone());
        let link_limiter =
            RateLimiter::direct_with_clock(Quota::per_minute(per_minute), options.clock.clone());
        let worker = ReportWorker {
            rx,
            settings: settings.clone(),
            db,
            mailer,
            cache,
            counters: counters.clone(),
            clock: options.clock.clone(),
            limiter,
            link_limiter,
            storm: Storm::default(),
            last_summary_ms: None,
            link_storm: LinkStorm::default(),
            last_link_summary_ms: None,
            local: HashMap::new(),
            warnings: HashMap::new(),
        };
        let notifier = Self {
            shared: Arc::new(Shared {
                tx,
                counters,
                settings,
                last_drop_warning: AtomicI64::new(i64::MIN),
                clock: options.clock,
            }),
        };
        (notifier, worker)
    }

    /// [`new`](Self::new) with production options, the worker already running.
    pub fn start(
        settings: Arc<Settings>,
        db: Db,
        mailer: Mailer,
        cache: Option<Arc<Cache>>,
    ) -> (Self, JoinHandle<()>) {
        let (notifier, worker) = Self::new(settings, db, mailer, cache, NotifierOptions::default());
        (notifier, worker.spawn())
    }

    /// Queues a report; never waits, never fails. A full queue drops it (counted in `dropped`).
    pub fn report(&self, report: ErrorReport) {
        self.enqueue(Job::Error(Box::new(report)));
    }

    /// Queues the report of a failed request; the worker builds it (masking everything and
    /// resolving the backtrace), so the request pays only for the queueing.
    pub fn report_request(&self, details: ErrorDetails, request: RawRequest) {
        self.enqueue(Job::Request(Box::new((details, request))));
    }

    /// Builds and queues the report of a failed scheduler or delivery task. Without a
    /// backtrace in `details`, the caller's is taken, so the report shows where it was raised.
    pub fn report_background(
        &self,
        task: &str,
        run_id: Option<i64>,
        mailing_id: Option<i64>,
        mut details: ErrorDetails,
    ) {
        if details.backtrace.is_empty() && details.captured.is_none() {
            details.captured = Some(Arc::new(std::backtrace::Backtrace::force_capture()));
        }
        let task = BackgroundTask {
            task: task.to_string(),
            run_id,
            mailing_id,
        };
        self.enqueue(Job::Background(Box::new((details, task))));
    }

    /// Runs `fut`; if it panics, reports the panic as a background report and returns `None`,
    /// so a long-running loop can go on with its next round.
    pub async fn catch_task_panics<F: Future>(
        &self,
        task: &str,
        run_id: Option<i64>,
        mailing_id: Option<i64>,
        fut: F,
    ) -> Option<F::Output> {
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(output) => Some(output),
            Err(payload) => {
                let panic = crate::panics::take_panic(&*payload);
                tracing::error!(
                    task,
                    panic.message = %panic.message,
                    panic.location = %panic.location,
                    "background task panicked"
                );
                let details = ErrorDetails::from_panic_details(&panic);
                self.report_background(task, run_id, mailing_id, details);
                None
            }
        }
    }

    /// Queues a 404 for a broken-link report when [`broken_links::check`] says it deserves
    /// one; returns why not otherwise. Never waits.
    pub fn report_not_found(&self, not_found: NotFound) -> Result<(), Skip> {
        broken_links::check(&not_found, &self.shared.settings)?;
        self.enqueue(Job::BrokenLink(Box::new(not_found)));
        Ok(())
    }

    /// Waits until everything queued before this call is handled (and a due storm summary
    /// tried). Returns at once when the worker is gone.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.shared.tx.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub fn stats(&self) -> ReportingStats {
        let c = &self.shared.counters;
        ReportingStats {
            sent: c.sent.load(Ordering::Relaxed),
            suppressed: c.suppressed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            broken_links_sent: c.broken_links_sent.load(Ordering::Relaxed),
        }
    }

    fn enqueue(&self, job: Job) {
        if self.shared.tx.try_send(job).is_err() {
            Counters::bump(&self.shared.counters.dropped);
            let now = self.shared.clock.now_ms();
            let last = self.shared.last_drop_warning.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= WARN_INTERVAL_MS
                && self
                    .shared
                    .last_drop_warning
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    target: "reporting",
                    dropped = self.shared.counters.dropped.load(Ordering::Relaxed),
                    "error report queue full or closed; report dropped (warning at most once a minute)"
                );
            }
        }
    }
}

/// One group in a storm summary.
#[derive(Debug, Clone)]
struct StormGroup {
    fingerprint: String,
    error_type: String,
    message: String,
    route: String,
    count: u64,
    last_request_id: String,
}

/// Reports held back by the per-minute cap, waiting for their summary.
#[derive(Debug, Default)]
struct Storm {
    groups: Vec<StormGroup>,
    total: u64,
    since_ms: Option<i64>,
}

impl Storm {
    fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn add(&mut self, report: &ErrorReport, now_ms: i64) {
        self.total += 1;
        self.since_ms.get_or_insert(now_ms);
        match self
            .groups
            .iter_mut()
            .find(|g| g.fingerprint == report.fingerprint)
        {
            Some(group) => {
                group.count += 1;
                group.last_request_id = report.request_id().to_string();
            }
            None => self.groups.push(StormGroup {
                fingerprint: report.fingerprint.clone(),
                error_type: report.error_type.clone(),
                message: subject::cut(report.message.lines().next().unwrap_or_default(), 200),
                route: report.route(),
                count: 1,
                last_request_id: report.request_id().to_string(),
            }),
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
    storm: Storm,
    last_summary_ms: Option<i64>,
    link_storm: LinkStorm,
    last_link_summary_ms: Option<i64>,
    /// Last e-mail and repeats per fingerprint, used only while the database fails.
    local: HashMap<String, (i64, i64)>,
    /// Last warning time and warnings skipped since, per kind of failure.
    warnings: HashMap<&'static str, (i64, u64)>,
}

impl ReportWorker {
    /// Runs the worker on the runtime. It ends when every [`ErrorNotifier`] clone is dropped.
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
                _ = retry.tick(), if !self.storm.is_empty() || !self.link_storm.is_empty() => {
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

    fn error_mail_enabled(&self) -> bool {
        !self.settings.debug && !self.settings.admins.is_empty()
    }

    async fn handle_error(&mut self, report: ErrorReport) {
        let now = self.clock.now_ms();
        let route = report.route();
        let occurrence = Occurrence {
            fingerprint: &report.fingerprint,
            kind: KIND_ERROR,
            error_type: &report.error_type,
            message: &report.message,
            route: &route,
            request_id: report.request_id(),
        };
        let occurrences = match error_groups::record(&self.db, &occurrence, now).await {
            Ok(n) => Some(n),
            Err(err) => {
                self.fail("database", "cannot record an error group", &err);
                None
            }
        };
        if !self.error_mail_enabled() {
            return;
        }

        let cooldown_ms = self.settings.error_email_cooldown_secs as i64 * 1000;
        let claim = match occurrences {
            Some(_) => {
                match error_groups::claim_email(&self.db, &report.fingerprint, now, cooldown_ms)
                    .await
                {
                    Ok(claim) => claim.map(|c| (c, true)),
                    Err(err) => {
                        self.fail("database", "cannot claim an error e-mail", &err);
                        self.local_claim(&report.fingerprint, now, cooldown_ms)
                    }
                }
            }
            None => self.local_claim(&report.fingerprint, now, cooldown_ms),
        };
        let Some((claim, in_db)) = claim else {
            Counters::bump(&self.counters.suppressed);
            if occurrences.is_some()
                && let Err(err) = error_groups::add_suppressed(&self.db, &report.fingerprint).await
            {
                self.fail("database", "cannot count a suppressed error", &err);
            }
            return;
        };

        // Over the cap, or a storm already gathering: into the summary. The claim stays
        // taken, so the group's repeats wait for its cooldown like after an e-mail.
        if !self.storm.is_empty() || !self.allow_email(Cap::Errors).await {
            Counters::bump(&self.counters.suppressed);
            self.storm.add(&report, now);
            return;
        }

        let mut notes = Vec::new();
        if claim.suppressed > 0 {
            let since = claim
                .previous_emailed_at
                .map(|ms| format_time(error_groups::from_ms(ms)))
                .unwrap_or_else(|| "the last e-mail".to_string());
            notes.push(format!(
                "{} more since {since} (repeats inside ERROR_EMAIL_COOLDOWN_SECS={} are \
                 counted, not e-mailed).",
                claim.suppressed, self.settings.error_email_cooldown_secs
            ));
        }
        if let Some(n) = occurrences.filter(|n| *n > 1) {
            notes.push(format!("Occurrences of this error so far: {n}."));
        }
        let head = MailHead {
            from: self.settings.server_email.clone(),
            to: self.settings.admins.clone(),
            subject: report.subject(&self.settings),
            notes,
        };
        let sent = match compose_parts(&report, &head, self.settings.error_email_chunk_size) {
            Ok(messages) => self.send_all(messages).await,
            Err(err) => Err(err),
        };
        match sent {
            Ok(()) => Counters::bump(&self.counters.sent),
            Err(err) => {
                Counters::bump(&self.counters.failed);
                self.fail("send", "cannot send an error report", &err);
                if in_db
                    && let Err(err) =
                        error_groups::release_email(&self.db, &report.fingerprint, &claim).await
                {
                    self.fail("database", "cannot release an error e-mail claim", &err);
                }
            }
        }
    }

    /// The per-instance stand-in for [`error_groups::claim_email`] while the database fails.
    fn local_claim(
        &mut self,
        fingerprint: &str,
        now: i64,
        cooldown_ms: i64,
    ) -> Option<(EmailClaim, bool)> {
        if self.local.len() >= LOCAL_MEMORY {
            self.local.clear();
        }
        match self.local.get_mut(fingerprint) {
            Some((last, suppressed)) if now - *last < cooldown_ms => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                let claim = EmailClaim {
                    previous_emailed_at: Some(*last),
                    suppressed: *suppressed,
                    claimed_at: now,
                };
                *last = now;
                *suppressed = 0;
                Some((claim, false))
            }
            None => {
                self.local.insert(fingerprint.to_string(), (now, 0));
                Some((
                    EmailClaim {
                        previous_emailed_at: None,
                        suppressed: 0,
                        claimed_at: now,
                    },
                    false,
                ))
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

    /// Sends the storm summary when one is pending, the last was a minute ago or more, and
    /// the cap allows.
    async fn try_summary(&mut self) {
        if self.storm.is_empty() || !self.error_mail_enabled() {
            return;
        }
        let Some(now) = self.summary_due(Cap::Errors).await else {
            return;
        };
        let storm = std::mem::take(&mut self.storm);
        let sent = match self.storm_message(&storm, now) {
            Ok(message) => self.send_all(vec![message]).await,
            Err(err) => Err(err),
        };
        match sent {
            Ok(()) => Counters::bump(&self.counters.sent),
            Err(err) => {
                Counters::bump(&self.counters.failed);
                self.fail("send", "cannot send an error storm summary", &err);
            }
        }
    }

    /// `Some(now)` when a summary counted against `cap` may go now — the last one went a
    /// minute ago or more and the cap allows — and records it as sent now.
    async fn summary_due(&mut self, cap: Cap) -> Option<i64> {
        let now = self.clock.now_ms();
        let last = match cap {
            Cap::Errors => self.last_summary_ms,
            Cap::BrokenLinks => self.last_link_summary_ms,
        };
        if last.is_some_and(|last| now - last < SUMMARY_INTERVAL_MS) || !self.allow_email(cap).await
        {
            return None;
        }
        match cap {
            Cap::Errors => self.last_summary_ms = Some(now),
            Cap::BrokenLinks => self.last_link_summary_ms = Some(now),
        }
        Some(now)
    }

    fn storm_message(&self, storm: &Storm, now: i64) -> anyhow::Result<Message> {
        let settings = &self.settings;
        let groups = storm.groups.len();
        let subject = subject::cut(
            &subject::escape(&format!(
                "{}Error storm: {} errors in {groups} groups suppressed",
                settings.email_subject_prefix, storm.total
            )),
            subject::MAX_SUBJECT_CHARS,
        );
        let since = format_time(error_groups::from_ms(storm.since_ms.unwrap_or(now)));
        let mut body = format!(
            "Error storm: {} errors in {groups} groups suppressed between {since} and {}: \
             more than ERROR_EMAIL_MAX_PER_MINUTE={} error e-mails a minute were due, so they \
             were not sent one by one.\nHost: {}\nEvery group is listed at /admin/errors.\n\n",
            storm.total,
            format_time(error_groups::from_ms(now)),
            settings.error_email_max_per_minute,
            crate::reporting::report::host_name(),
        );
        // The summary stays one e-mail of at most ERROR_EMAIL_CHUNK_SIZE characters.
        let budget = settings.error_email_chunk_size.saturating_sub(100);
        for (i, group) in storm.groups.iter().enumerate() {
            let entry = format!(
                "{:>5} × {}: {}\n        route {}, fingerprint {}, last request {}\n",
                group.count,
                group.error_type,
                group.message,
                group.route,
                group.fingerprint,
                group.last_request_id
            );
            if body.chars().count() + entry.chars().count() > budget {
                body.push_str(&format!("… and {} more groups\n", groups - i));
                break;
            }
            body.push_str(&entry);
        }
        let mut builder = Message::builder()
            .from(settings.server_email.clone())
            .subject(subject)
            .raw_header(crate::mail::auto_submitted());
        for admin in &settings.admins {
            builder = builder.to(admin.clone());
        }
        Ok(crate::mail::plain_text(builder, body)?)
    }

    /// The broken-link storm's summary, on the same terms as the error storm's.
    async fn try_link_summary(&mut self) {
        if self.link_storm.is_empty() || self.settings.managers.is_empty() {
            return;
        }
        let Some(now) = self.summary_due(Cap::BrokenLinks).await else {
            return;
        };
        let storm = std::mem::take(&mut self.link_storm);
        let since = format_time(error_groups::from_ms(storm.since_ms.unwrap_or(now)));
        let until = format_time(error_groups::from_ms(now));
        // Sent here, not through a shared helper: one more async frame on this path made the
        // worker outgrow a 2 MiB stack in debug builds.
        let sent = match broken_links::compose_summary(&storm, &self.settings, &since, &until) {
            Ok(message) => self.send_all(vec![message]).await,
            Err(err) => Err(err),
        };
        match sent {
            Ok(()) => Counters::bump(&self.counters.broken_links_sent),
            Err(err) => {
                Counters::bump(&self.counters.failed);
                self.fail("send", "cannot send a broken-link summary", &err);
            }
        }
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
            kind: KIND_BROKEN_LINK,
            error_type: "404 Not Found",
            message: &message,
            route: &link.path,
            request_id: &link.request_id,
        };
        if let Err(err) = error_groups::record(&self.db, &occurrence, now).await {
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
                self.local_claim(&key, now, broken_links::REPORT_PERIOD_MS)
                    .is_some()
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
        match sent {
            Ok(()) => Counters::bump(&self.counters.broken_links_sent),
            Err(err) => {
                Counters::bump(&self.counters.failed);
                self.fail("send", "cannot send a broken-link report", &err);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::report::{RawRequest, format_time};
    use crate::reporting::testing::{TestEnv, body_text, test_env};

    const T0: i64 = 1_800_000_000_000;

    fn build(
        env: &TestEnv,
        mailer: Mailer,
        cache: Option<Arc<Cache>>,
        capacity: usize,
        clock: &Clock,
    ) -> (ErrorNotifier, ReportWorker) {
        let options = NotifierOptions {
            capacity,
            clock: clock.clone(),
        };
        ErrorNotifier::new(env.settings.clone(), env.db.clone(), mailer, cache, options)
    }

    /// A running notifier on the test's database and memory mailer.
    fn start(env: &TestEnv, clock: &Clock) -> ErrorNotifier {
        let (notifier, worker) = build(env, env.mailer.clone(), None, 64, clock);
        worker.spawn();
        notifier
    }

    fn details(message: &str) -> ErrorDetails {
        ErrorDetails {
            error_type: "anyhow::Error".into(),
            message: message.into(),
            chain: vec![message.into()],
            backtrace: "  0: autosend::web::routes::clients::show\n".into(),
            ..ErrorDetails::default()
        }
    }

    fn request(path: &str) -> RawRequest {
        RawRequest {
            method: "GET".into(),
            url: format!("https://example.com{path}"),
            route: "/clients/{id}".into(),
            peer: Some("203.0.113.5".parse().unwrap()),
            request_id: format!("rid{}", path.len()),
            ..Default::default()
        }
    }

    fn report(env: &TestEnv, message: &str) -> ErrorReport {
        ErrorReport::for_request(details(message), request("/clients/7"), &env.settings)
    }

    struct Mail {
        subject: String,
        to: String,
        from: String,
        body: String,
        headers: HashMap<String, String>,
    }

    fn mails(env: &TestEnv) -> Vec<Mail> {
        use mailparse::MailHeaderMap;
        env.outbox
            .messages()
            .iter()
            .map(|sent| {
                let parsed = mailparse::parse_mail(sent.raw.as_bytes()).unwrap();
                let get = |h: &str| parsed.headers.get_first_value(h).unwrap_or_default();
                Mail {
                    subject: get("Subject"),
                    to: get("To"),
                    from: get("From"),
                    body: body_text(&parsed),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| (h.get_key().to_ascii_lowercase(), h.get_value()))
                        .collect(),
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn the_first_occurrence_is_mailed_at_once() {
        let env = test_env(&[]).await;
        let clock = Clock::manual(T0);
        let notifier = start(&env, &clock);
        let report = report(&env, "recipient 7 missing");
        let fingerprint = report.fingerprint.clone();
        notifier.report(report);
        notifier.flush().await;
        let mails = mails(&env);
        assert_eq!(mails.len(), 1);
        assert_eq!(
            mails[0].subject,
            "[autosend] ERROR (EXTERNAL IP): Internal Server Error: /clients/7"
        );
        assert!(mails[0].to.contains("ops@example.com"));
        assert!(mails[0].from.contains("server@example.com"));
        assert_eq!(mails[0].headers["x-autosend-fingerprint"], fingerprint);
        assert!(
            mails[0]
                .body
                .contains("Message:        recipient 7 missing")
        );
        assert_eq!(
            notifier.stats(),
            ReportingStats {
                sent: 1,
                ..Default::default()
            }
        );
        let group = error_groups::find(&env.db, &fingerprint)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(group.occurrences, 1);
        assert_eq!(group.last_emailed_at, Some(error_groups::from_ms(T0)));
        assert_eq!(group.route, "/clients/{id}");
    }

    #[tokio::test]
    async fn repeats_inside_the_cooldown_are_counted_then_summarised() {
        let env = test_env(&[("ERROR_EMAIL_COOLDOWN_SECS", "600")]).await;
        let clock = Clock::manual(T0);
        let notifier = start(&env, &clock);
        for id in [7, 8, 9] {
            notifier.report(report(&env, &format!("recipient {id} missing")));
        }
        // The worker reads the clock when it handles a report: let it finish before moving it.
        notifier.flush().await;
        clock.advance(Duration::from_secs(599));
        notifier.report(report(&env, "recipient 10 missing"));
        notifier.flush().await;
        assert_eq!(mails(&env).len(), 1);
        assert_eq!(notifier.stats().suppressed, 3);
        let fingerprint = report(&env, "x 1").fingerprint;
        let group = error_groups::find(&env.db, &report(&env, "recipient 1 missing").fingerprint)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(group.fingerprint, fingerprint);
        assert_eq!((group.occurrences, group.suppressed), (4, 3));

        clock.advance(Duration::from_secs(1));
        notifier.report(report(&env, "recipient 11 missing"));
        notifier.flush().await;
        let mails = mails(&env);
        assert_eq!(mails.len(), 2);
        let since = format_time(error_groups::from_ms(T0));
        assert!(
            mails[1].body.contains(&format!("3 more since {since}")),
            "{}",
            mails[1].body
        );
        assert!(
            mails[1]
                .body
                .contains("Occurrences of this error so far: 5.")
        );
        let group = error_groups::find(&env.db, &group.fingerprint)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(group.suppressed, 0);
        assert_eq!(notifier.stats().sent, 2);
    }

    #[tokio::test]
    async fn a_zero_cooldown_mails_every_occurrence() {
        let env = test_env(&[("ERROR_EMAIL_COOLDOWN_SECS", "0")]).await;
        let notifier = start(&env, &Clock::manual(T0));
        for _ in 0..3 {
            notifier.report(report(&env, "same"));
        }
        notifier.flush().await;
        assert_eq!(mails(&env).len(), 3);
    }

    #[tokio::test]
    async fn a_storm_over_the_cap_becomes_one_summary() {
        let env = test_env(&[("ERROR_EMAIL_MAX_PER_MINUTE", "2")]).await;
        let clock = Clock::manual(T0);
        let notifier = start(&env, &clock);
        let words = ["alpha", "beta", "gamma", "delta", "epsilon"];
        for word in words {
            notifier.report(report(&env, &format!("{word} failed")));
        }
        // A repeat of a held-back group joins its line in the summary, not a new one.
        notifier.flush().await;
        assert_eq!(mails(&env).len(), 2, "two individual e-mails fit the cap");
        assert_eq!(notifier.stats().suppressed, 3);

        // The cap's window has not moved: still no summary.
        notifier.flush().await;
        assert_eq!(mails(&env).len(), 2);

        clock.advance(Duration::from_secs(61));
        notifier.flush().await;
        let mails = mails(&env);
        assert_eq!(mails.len(), 3);
        let summary = &mails[2];
        assert_eq!(
            summary.subject,
            "[autosend] Error storm: 3 errors in 3 groups suppressed"
        );
        for word in &words[2..] {
            assert!(
                summary.body.contains(&format!("{word} failed")),
                "{}",
                summary.body
            );
        }
        assert!(!summary.body.contains("alpha failed"));
        assert!(summary.body.contains("ERROR_EMAIL_MAX_PER_MINUTE=2"));
        assert_eq!(notifier.stats().sent, 3);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let env = test_env(&[]).await;
        let (notifier, worker) = build(&env, env.mailer.clone(), None, 2, &Clock::manual(T0));
        for _ in 0..5 {
            notifier.report(report(&env, "boom"));
        }
        assert_eq!(notifier.stats().dropped, 3);
        // What was queued is still handled once the worker runs.
        worker.spawn();
        notifier.flush().await;
        assert_eq!(mails(&env).len(), 1);
        let stats = notifier.stats();
        assert_eq!((stats.sent, stats.suppressed, stats.dropped), (1, 1, 3));
    }

    #[tokio::test]
    async fn debug_or_no_admins_mail_nothing_but_groups_are_recorded() {
        for pairs in [[("DEBUG", "true")], [("ADMINS", "")]] {
            let env = test_env(&pairs).await;
            let notifier = start(&env, &Clock::manual(T0));
            let report = report(&env, "boom");
            let fingerprint = report.fingerprint.clone();
            notifier.report(report);
            notifier.flush().await;
            assert!(mails(&env).is_empty(), "{pairs:?}");
            assert_eq!(notifier.stats(), ReportingStats::default());
            let group = error_groups::find(&env.db, &fingerprint)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(group.occurrences, 1);
            assert_eq!(group.last_emailed_at, None);
        }
    }

    #[tokio::test]
    async fn a_resolved_group_that_recurs_alerts_again() {
        let env = test_env(&[("ERROR_EMAIL_COOLDOWN_SECS", "600")]).await;
        let clock = Clock::manual(T0);
        let notifier = start(&env, &clock);
        let first = report(&env, "boom");
        let fingerprint = first.fingerprint.clone();
        notifier.report(first);
        notifier.report(report(&env, "boom"));
        notifier.flush().await;
        assert_eq!(mails(&env).len(), 1);
        let group = error_groups::find(&env.db, &fingerprint)
            .await
            .unwrap()
            .unwrap();
        assert!(error_groups::resolve(&env.db, group.id).await.unwrap());
        clock.advance(Duration::from_secs(10));
        notifier.report(report(&env, "boom"));
        notifier.flush().await;
        let mails = mails(&env);
        assert_eq!(
            mails.len(),
            2,
            "inside the cooldown, yet a regression is news"
        );
        assert!(!mails[1].body.contains("more since"));
    }

    #[tokio::test]
    async fn two_instances_never_both_mail_one_fingerprint() {
        let env = test_env(&[]).await;
        let clock = Clock::manual(T0);
        let a = start(&env, &clock);
        let b = start(&env, &clock);
        a.report(report(&env, "boom"));
        b.report(report(&env, "boom"));
        a.flush().await;
        b.flush().await;
        assert_eq!(mails(&env).len(), 1);
        assert_eq!(a.stats().sent + b.stats().sent, 1);
        assert_eq!(a.stats().suppressed + b.stats().suppressed, 1);
    }

    #[tokio::test]
    async fn a_long_report_goes_out_in_ordered_parts() {
        let env = test_env(&[("ERROR_EMAIL_CHUNK_SIZE", "500")]).await;
        let notifier = start(&env, &Clock::manual(T0));
        let mut details = details("boom");
        details.backtrace = (0..100)
            .map(|i| format!("  {i}: autosend::frame{i}\n"))
            .collect();
        let report = ErrorReport::for_request(details, request("/clients/7"), &env.settings);
        let text = crate::reporting::render_text(&report);
        notifier.report(report);
        notifier.flush().await;
        let mails = mails(&env);
        assert!(mails.len() > 3);
        let total = mails.len();
        let mut rebuilt = String::new();
        for (i, mail) in mails.iter().enumerate() {
            assert!(mail.subject.ends_with(&format!("(part {}/{total})", i + 1)));
            assert_eq!(
                mail.headers["x-autosend-part"],
                format!("{}/{total}", i + 1)
            );
            rebuilt.push_str(
                mail.body
                    .split_once(&format!("{}\n", "-".repeat(72)))
                    .unwrap()
                    .1,
            );
        }
        assert_eq!(rebuilt, text);
        assert_eq!(notifier.stats().sent, 1);
    }

    #[tokio::test]
    async fn a_failed_send_is_counted_logged_and_released() {
        let env = test_env(&[("EMAIL_BACKEND", "file")]).await;
        let mailer = Mailer::from_settings(&env.settings).unwrap();
        // The outbox becomes a file: every write below it fails.
        let outbox = env.settings.data_dir.join("outbox");
        std::fs::remove_dir_all(&outbox).unwrap();
        std::fs::write(&outbox, "not a directory").unwrap();
        let (notifier, worker) = build(&env, mailer, None, 8, &Clock::manual(T0));
        worker.spawn();
        let report = report(&env, "boom");
        let fingerprint = report.fingerprint.clone();
        notifier.report(report);
        notifier.flush().await;
        let stats = notifier.stats();
        assert_eq!((stats.sent, stats.failed), (0, 1));
        // The claim was given back: the next occurrence may try again.
        let group = error_groups::find(&env.db, &fingerprint)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(group.last_emailed_at, None);
        assert_eq!(group.suppressed, 1);
        notifier.report(ErrorReport::for_request(
            details("boom"),
            request("/clients/7"),
            &env.settings,
        ));
        notifier.flush().await;
        assert_eq!(notifier.stats().failed, 2, "tried again, not suppressed");
    }

    fn not_found(referer: &str) -> NotFound {
        NotFound {
            status: 404,
            path: "/clients/404".into(),
            url: "https://example.com/clients/404".into(),
            host: "example.com".into(),
            referer: Some(referer.into()),
            user_agent: Some("Mozilla/5.0".into()),
            client_ip: Some("198.51.100.4".parse().unwrap()),
            request_id: "rid-nf".into(),
        }
    }

    #[tokio::test]
    async fn a_storm_of_new_broken_links_becomes_one_summary_and_no_rows() {
        let env = test_env(&[("ERROR_EMAIL_MAX_PER_MINUTE", "2")]).await;
        let clock = Clock::manual(T0);
        let notifier = start(&env, &clock);
        for i in 0..50 {
            let mut nf = not_found("https://other.example/");
            nf.path = format!("/gone/{i}");
            nf.url = format!("https://example.com/gone/{i}");
            notifier.report_not_found(nf).unwrap();
        }
        // An error report keeps its own allowance: a 404 storm does not hold it back.
        notifier.report(report(&env, "boom"));
        notifier.flush().await;
        let sent = mails(&env);
        assert_eq!(sent.len(), 3, "two links fit the cap, and the error");
        let rows: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM broken_links")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
        assert_eq!(rows, 2, "held-back links write no rows");

        clock.advance(Duration::from_secs(61));
        notifier.flush().await;
        let sent = mails(&env);
        assert_eq!(sent.len(), 4);
        let summary = &sent[3];
        assert!(
            summary
                .subject
                .starts_with("[autosend] 48 more broken links since "),
            "{}",
            summary.subject
        );
        assert!(summary.to.contains("pm@example.com"));
        assert!(
            summary
                .body
                .contains("/gone/2 (from https://other.example/)")
        );
        assert!(summary.body.contains("… and 28 more"), "{}", summary.body);
        assert_eq!(notifier.stats().broken_links_sent, 3);
    }

    #[tokio::test]
    async fn broken_links_are_mailed_to_managers_once_a_day() {
        let env = test_env(&[]).await;
        let clock = Clock::manual(T0);
        let notifier = start(&env, &clock);
        assert_eq!(
            notifier.report_not_found(not_found("https://example.com/clients/")),
            Ok(())
        );
        assert_eq!(
            notifier.report_not_found(not_found("https://example.com/clients/")),
            Ok(())
        );
        notifier
            .report_not_found(not_found("https://other.example/"))
            .unwrap();
        notifier.flush().await;
        let sent = mails(&env);
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[0].subject,
            "[autosend] Broken INTERNAL link on example.com"
        );
        assert_eq!(sent[1].subject, "[autosend] Broken link on example.com");
        assert!(sent[0].to.contains("pm@example.com") && !sent[0].to.contains("ops@"));
        assert!(
            sent[0]
                .body
                .contains("Referrer: https://example.com/clients/\n")
        );
        assert!(
            sent[0]
                .body
                .contains("Requested URL: https://example.com/clients/404\n")
        );
        assert!(sent[0].body.contains("User agent: Mozilla/5.0\n"));
        assert!(sent[0].body.contains("IP address: 198.51.100.4\n"));
        let stats = notifier.stats();
        assert_eq!(
            (stats.broken_links_sent, stats.suppressed, stats.sent),
            (2, 1, 0)
        );

        clock.advance(Duration::from_millis(
            broken_links::REPORT_PERIOD_MS as u64 - 1,
        ));
        notifier
            .report_not_found(not_found("https://example.com/clients/"))
            .unwrap();
        notifier.flush().await;
        assert_eq!(mails(&env).len(), 2);
        clock.advance(Duration::from_millis(1));
        notifier
            .report_not_found(not_found("https://example.com/clients/"))
            .unwrap();
        notifier.flush().await;
        assert_eq!(mails(&env).len(), 3);

        let groups = error_groups::list_groups(&env.db, 10, 0).await.unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].kind, "broken_link");
        assert_eq!(groups[0].occurrences, 5);

        // A 404 without a referer never reaches the queue.
        let mut no_referer = not_found("");
        no_referer.referer = None;
        assert_eq!(notifier.report_not_found(no_referer), Err(Skip::NoReferer));
    }

    #[tokio::test]
    async fn background_failures_and_task_panics_are_reported() {
        let env = test_env(&[]).await;
        let notifier = start(&env, &Clock::manual(T0));
        notifier.report_background(
            "delivery.send",
            Some(17),
            Some(3),
            ErrorDetails::from_anyhow(&anyhow::anyhow!("smtp down")),
        );
        let survived = notifier
            .catch_task_panics("scheduler.tick", None, None, async {
                if T0 > 0 {
                    panic!("tick exploded");
                }
                1
            })
            .await;
        assert_eq!(survived, None);
        let fine = notifier
            .catch_task_panics("scheduler.tick", None, None, async { 2 })
            .await;
        assert_eq!(fine, Some(2));
        notifier.flush().await;
        // Background reports carry the reporter's backtrace, long enough to be split: keep
        // the first part of each.
        let mails: Vec<Mail> = mails(&env)
            .into_iter()
            .filter(|m| m.headers["x-autosend-part"].starts_with("1/"))
            .collect();
        assert_eq!(mails.len(), 2);
        assert!(
            mails[0]
                .subject
                .starts_with("[autosend] ERROR (background task): delivery.send"),
            "{}",
            mails[0].subject
        );
        assert!(mails[0].body.contains("Mailing ID:     3\n"));
        assert!(mails[0].body.contains("Run ID:         17\n"));
        assert_eq!(mails[0].headers["x-autosend-request-id"], "-");
        assert!(
            mails[1]
                .subject
                .starts_with("[autosend] ERROR (background task): scheduler.tick")
        );
        assert!(
            mails[1].body.contains("panic: tick exploded"),
            "{}",
            mails[1].body
        );
    }

    fn start_with_cache(env: &TestEnv, clock: &Clock, cache: &Arc<Cache>) -> ErrorNotifier {
        let (notifier, worker) = build(env, env.mailer.clone(), Some(cache.clone()), 64, clock);
        worker.spawn();
        notifier
    }

    #[tokio::test]
    async fn the_per_minute_cap_is_shared_through_redis() {
        let Some(redis_url) = std::env::var("TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("TEST_REDIS_URL unset: shared cap not tested");
            return;
        };
        let env = test_env(&[("ERROR_EMAIL_MAX_PER_MINUTE", "2")]).await;
        let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
        let cache =
            Arc::new(Cache::redis(&crate::config::Secret::new(redis_url), &prefix).unwrap());
        let clock = Clock::manual(T0);
        let a = start_with_cache(&env, &clock, &cache);
        let b = start_with_cache(&env, &clock, &cache);
        a.report(report(&env, "alpha failed"));
        a.report(report(&env, "beta failed"));
        a.flush().await;
        b.report(report(&env, "gamma failed"));
        b.report(report(&env, "delta failed"));
        b.flush().await;
        // Alone, each instance's own cap would have let all four through.
        assert_eq!(mails(&env).len(), 2);
        assert_eq!(b.stats().suppressed, 2);
        clock.advance(Duration::from_secs(61));
        b.flush().await;
        let mails = mails(&env);
        assert_eq!(mails.len(), 3);
        assert!(
            mails[2]
                .subject
                .contains("Error storm: 2 errors in 2 groups")
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_to_the_instance_cap() {
        let env = test_env(&[("ERROR_EMAIL_MAX_PER_MINUTE", "2")]).await;
        // Port 1 on loopback refuses at once.
        let cache = Arc::new(
            Cache::redis(&crate::config::Secret::new("redis://127.0.0.1:1/0"), "t:").unwrap(),
        );
        let notifier = start_with_cache(&env, &Clock::manual(T0), &cache);
        for word in ["alpha", "beta", "gamma"] {
            notifier.report(report(&env, &format!("{word} failed")));
        }
        notifier.flush().await;
        assert_eq!(mails(&env).len(), 2);
        assert_eq!(notifier.stats().suppressed, 1);
    }

    #[tokio::test]
    async fn flush_returns_when_the_worker_is_gone() {
        let env = test_env(&[]).await;
        let (notifier, worker) = build(&env, env.mailer.clone(), None, 8, &Clock::System);
        drop(worker);
        notifier.flush().await;
        notifier.report(report(&env, "boom"));
        assert_eq!(notifier.stats().dropped, 1);
    }
}
