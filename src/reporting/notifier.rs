//! The error notifier (SPEC §8): reports leave the failing request through a bounded queue and
//! are e-mailed by one background task, de-duplicated and throttled.
//!
//! Owns: the queue ([`ErrorNotifier`], cheap to clone, never blocks, never fails), what it
//! has counted ([`ReportingStats`]) and the notifier's [`Clock`]. What happens to a report is
//! [`crate::reporting::policy`]'s decision, carried out by [`crate::reporting::worker`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use futures_util::FutureExt as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cache::Cache;
pub use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Db;
use crate::mail::Mailer;
use crate::reporting::broken_links::{self, NotFound, Skip};
use crate::reporting::report::{BackgroundTask, ErrorDetails, ErrorReport, RawRequest};
use crate::reporting::worker::ReportWorker;

/// Reports waiting for the worker; past it new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 256;
/// A full queue is logged at most once per this many milliseconds.
const WARN_INTERVAL_MS: i64 = 60_000;

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
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) suppressed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) broken_links_sent: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the queue carries to the worker.
pub(crate) enum Job {
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
        let worker = ReportWorker::new(
            rx,
            settings.clone(),
            db,
            mailer,
            cache,
            counters.clone(),
            options.clock.clone(),
        );
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use std::collections::HashMap;

    use crate::db::error_groups;
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
        assert_eq!(
            groups[0].kind,
            crate::db::error_groups::GroupKind::BrokenLink
        );
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
