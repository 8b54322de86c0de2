//! The delivery engine: starting runs, sending their deliveries, finishing them.
//!
//! All state lives in the database (runs and deliveries), never in memory, so any instance
//! can pick up any run and a killed process loses nothing: its leases run out and the rows
//! are claimed again. Time comes from a [`Clock`] so tests can move it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::deliveries::{self, ClaimRequest, Claimed, Outcome};
use crate::db::mailings::{self, Disabled, MailingError};
use crate::db::runs::{self, FinishedRun, NewRun, SendContext, StartRunError, StartedRun};
use crate::db::unsubscribes;
use crate::delivery::Delivery;
use crate::delivery::compose::{self, Ids, Personal, Template};
use crate::delivery::unsubscribe;
use crate::domain::mailing::retry_delay;
use crate::domain::{DeliveryStatus, Trigger};
use crate::mail::SendError;
use crate::telemetry::JOBS_TARGET;

/// Deliveries one worker claims at a time. A claim is a write transaction (SQLite's one
/// writer, a commit on PostgreSQL), so one per 16 messages rather than per 4 leaves the
/// database to the outcomes (measured at 4: the claims were half the commits of a run). What
/// a crash leaves claimed but unsent is not sent twice, only delayed until the lease ends.
pub const CLAIM_BATCH: i64 = 16;
/// Most outcomes committed in one transaction. Workers wait for their outcome's commit, so a
/// batch holds at most one per worker (`SEND_CONCURRENCY`); this only bounds the channel.
const RECORD_BATCH: usize = 64;
/// Longest wait between two attempts.
pub const RETRY_CAP: Duration = Duration::from_secs(3600);

/// How long a claim holds its rows without a heartbeat. A live sender renews its leases every
/// [`heartbeat_every`], so a slow server or a long queue behind the rate limit never costs it
/// its rows, whatever the batch size; a killed sender's rows come back within this time (the
/// fault tests kill -9 and expect every recipient sent within 60 s of the restart). Sized
/// from the worst case instead (two SMTP timeouts per message of a batch) it was 337 s.
pub const LEASE: Duration = Duration::from_secs(30);

/// The lease a claim takes: [`LEASE`], or `SEND_LEASE_SECS` when set (fault tests shorten it).
pub fn lease_duration(settings: &Settings) -> Duration {
    if settings.send_lease_secs > 0 {
        return Duration::from_secs(settings.send_lease_secs);
    }
    LEASE
}

/// How often a sender renews the leases it holds: three times per lease, so one slow or
/// failed renewal (a busy database) does not lose the rows.
pub fn heartbeat_every(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(200))
}

/// What one instance shares between everything that sends: its identity in leases, the rate
/// limit (`SEND_RATE_PER_SECOND` per instance) and the cap on parallel SMTP sends
/// (`SEND_CONCURRENCY`), so a manual send and a scheduler tick together stay within both.
pub struct SendGate {
    pub instance_id: String,
    limiter: DefaultDirectRateLimiter,
    slots: Semaphore,
    /// `true` once the instance is stopping: every drive claims nothing more, gives back what
    /// it claimed but has not sent, and finishes what is in flight.
    stopping: watch::Sender<bool>,
    /// Drives going on (the scheduler's and manual sends'), so a stop can wait for them.
    drives: watch::Sender<usize>,
}

impl SendGate {
    pub fn from_settings(settings: &Settings) -> Self {
        let rate = NonZeroU32::new(settings.send_rate_per_second).unwrap_or(NonZeroU32::MIN);
        Self {
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
            limiter: RateLimiter::direct(Quota::per_second(rate)),
            slots: Semaphore::new(settings.send_concurrency.max(1)),
            stopping: watch::channel(false).0,
            drives: watch::channel(0).0,
        }
    }

    /// Begins a graceful stop of every drive of this instance (SIGTERM, SIGINT, SIGHUP).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Waits until no drive is going on, for at most `bound`; `false` if some still were.
    pub async fn wait_idle(&self, bound: Duration) -> bool {
        let mut drives = self.drives.subscribe();
        tokio::time::timeout(bound, drives.wait_for(|n| *n == 0))
            .await
            .is_ok()
    }

    fn enter(&self) -> DriveGuard<'_> {
        self.drives.send_modify(|n| *n += 1);
        DriveGuard(self)
    }
}

/// Counts a drive as going on while it lives.
struct DriveGuard<'a>(&'a SendGate);

impl Drop for DriveGuard<'_> {
    fn drop(&mut self) {
        self.0.drives.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl std::fmt::Debug for SendGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGate")
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

/// Starts a run now (send now, dry run, CLI): allowed any time until the mailing is
/// finished, inside or outside its window. A run with nothing to send (an empty audience,
/// everyone unsubscribed) finishes at once.
pub async fn start_run(
    state: &Delivery,
    clock: &Clock,
    mailing_id: i64,
    trigger: Trigger,
    dry_run: bool,
) -> Result<StartedRun, StartRunError> {
    let new = NewRun {
        mailing_id,
        trigger,
        dry_run,
        claim: None,
    };
    let started = runs::start(&state.db, &new, clock.now_ms()).await?;
    log_started(&started, &new);
    if started.totals.pending == 0 {
        finish_runs(state, clock, Some(started.run_id)).await?;
    }
    Ok(started)
}

pub(crate) fn log_started(started: &StartedRun, new: &NewRun) {
    tracing::info!(
        target: JOBS_TARGET,
        mailing_id = started.mailing_id,
        run_id = started.run_id,
        triggered_by = %new.trigger,
        dry_run = new.dry_run,
        total = started.totals.total,
        skipped = started.totals.skipped,
        "run started"
    );
}

/// Starts a run and sends it in the background at once (the mailing page's "send now" and
/// "dry run"): the request returns while the messages go out; temporary failures are left
/// for the scheduler to retry.
pub async fn send_now(
    state: &Delivery,
    mailing_id: i64,
    trigger: Trigger,
    dry_run: bool,
) -> Result<StartedRun, StartRunError> {
    let started = start_run(state, &Clock::System, mailing_id, trigger, dry_run).await?;
    let state = state.clone();
    let run_id = started.run_id;
    crate::telemetry::spawn(async move {
        let limits = DriveLimits {
            run_id: Some(run_id),
            ..DriveLimits::default()
        };
        if let Err(err) = drive(&state, &Clock::System, &limits).await {
            tracing::error!(run_id, error = %format!("{err:#}"), "sending the run failed");
        }
    });
    Ok(started)
}

/// Finishes the mailing and cancels its active run's pending deliveries (SPEC §7 disable).
/// The run ends `cancelled` as soon as what was in flight has finished.
pub async fn disable(
    state: &Delivery,
    clock: &Clock,
    mailing_id: i64,
) -> Result<Disabled, MailingError> {
    let disabled = mailings::disable(&state.db, mailing_id, clock.now_ms()).await?;
    tracing::info!(
        mailing_id,
        cancelled = disabled.cancelled,
        run_id = disabled.active_run,
        "mailing disabled"
    );
    if let Some(run_id) = disabled.active_run {
        finish_runs(state, clock, Some(run_id)).await?;
    }
    Ok(disabled)
}

/// Finishes every running run (or only `run_id`) whose deliveries are all final, logging
/// each to the jobs log.
pub async fn finish_runs(
    state: &Delivery,
    clock: &Clock,
    run_id: Option<i64>,
) -> anyhow::Result<Vec<FinishedRun>> {
    let ids = match run_id {
        Some(id) => vec![id],
        None => runs::running_ids(&state.db).await?,
    };
    let mut finished = Vec::new();
    for id in ids {
        if let Some(run) = runs::finish_if_done(&state.db, id, clock.now_ms()).await? {
            let t = &run.totals;
            tracing::info!(
                target: JOBS_TARGET,
                mailing_id = run.mailing_id,
                run_id = run.run_id,
                triggered_by = %run.triggered_by,
                dry_run = run.dry_run,
                total = t.total,
                sent = t.sent,
                errors = t.errors,
                skipped = t.skipped,
                cancelled = t.cancelled,
                duration_ms = run.finished_at - run.started_at,
                outcome = run.status.as_str(),
                "run finished"
            );
            if run.finished_mailing {
                tracing::info!(
                    mailing_id = run.mailing_id,
                    "once mailing delivered and finished"
                );
            }
            finished.push(run);
        }
    }
    Ok(finished)
}

/// How far one call of [`drive`] may go.
#[derive(Debug, Clone, Default)]
pub struct DriveLimits {
    /// Only this run's deliveries; `None`: any run's.
    pub run_id: Option<i64>,
    /// Claim nothing new after this instant (a scheduler tick's budget).
    pub deadline: Option<Instant>,
    /// Claim nothing new once this turns `true` (shutdown); what is in flight finishes.
    pub stop: Option<watch::Receiver<bool>>,
}

impl DriveLimits {
    fn reached(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.stop.as_ref().is_some_and(|s| *s.borrow())
    }
}

/// What a call of [`drive`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveOutcome {
    pub sent: u64,
    pub errors: u64,
    pub dry_run: u64,
    pub skipped: u64,
    /// Temporary failures put back for a later attempt.
    pub retried: u64,
    /// Outcomes not recorded because the lease had been lost.
    pub lost: u64,
    /// Stopped by the deadline or shutdown while work may remain.
    pub interrupted: bool,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    errors: AtomicU64,
    dry_run: AtomicU64,
    skipped: AtomicU64,
    retried: AtomicU64,
    lost: AtomicU64,
}

/// One drive: workers sharing the run contexts and the counters.
struct Driver<'a> {
    state: &'a Delivery,
    clock: &'a Clock,
    limits: &'a DriveLimits,
    lease: Duration,
    contexts: Mutex<HashMap<i64, Option<Arc<SendContext>>>>,
    counters: Counters,
    interrupted: std::sync::atomic::AtomicBool,
    /// Rows the workers have claimed and not yet finished — what the heartbeat renews — each
    /// with the lease this drive last set on it (claim or successful renewal), Unix ms.
    held: std::sync::Mutex<BTreeMap<i64, i64>>,
}

/// Sends due deliveries with `SEND_CONCURRENCY` workers until none is claimable (the rest
/// wait for their retry time) or a limit is reached, then finishes the runs that are done.
pub async fn drive(
    state: &Delivery,
    clock: &Clock,
    limits: &DriveLimits,
) -> anyhow::Result<DriveOutcome> {
    let _going = state.send_gate.enter();
    let driver = Driver {
        state,
        clock,
        limits,
        lease: lease_duration(&state.settings),
        contexts: Mutex::new(HashMap::new()),
        counters: Counters::default(),
        interrupted: false.into(),
        held: std::sync::Mutex::new(BTreeMap::new()),
    };
    let drive_id = uuid::Uuid::new_v4().simple().to_string();
    let holder = format!("{}/{}/", state.send_gate.instance_id, &drive_id[..8]);
    let (recorder, outcomes) = mpsc::channel(RECORD_BATCH);
    let workers: Vec<_> = (0..state.settings.send_concurrency.max(1))
        .map(|n| {
            let worker = format!("{holder}{n}");
            let driver = &driver;
            let recorder = recorder.clone();
            async move { driver.work(&worker, &recorder).await }
        })
        .collect();
    // The recorder stops when the last worker has finished and dropped its sender.
    drop(recorder);
    let work = async {
        tokio::join!(
            futures_util::future::join_all(workers),
            record_outcomes(&state.db, outcomes)
        )
    };
    // The heartbeat lives exactly as long as the workers: when they are done it is dropped.
    let (results, ()) = tokio::select! {
        done = work => done,
        () = driver.heartbeat(&holder) => unreachable!("the heartbeat never ends"),
    };
    finish_runs(state, clock, limits.run_id).await?;
    for result in results {
        result?;
    }
    let c = &driver.counters;
    Ok(DriveOutcome {
        sent: c.sent.load(Ordering::Relaxed),
        errors: c.errors.load(Ordering::Relaxed),
        dry_run: c.dry_run.load(Ordering::Relaxed),
        skipped: c.skipped.load(Ordering::Relaxed),
        retried: c.retried.load(Ordering::Relaxed),
        lost: c.lost.load(Ordering::Relaxed),
        interrupted: driver.interrupted.load(Ordering::Relaxed),
    })
}

impl Driver<'_> {
    /// Whether to claim nothing more: the drive's limits, or the instance stopping.
    fn stopped(&self) -> bool {
        self.limits.reached() || self.state.send_gate.is_stopping()
    }

    /// Renews the leases of the rows this drive holds every [`heartbeat_every`], forever (the
    /// drive drops it when its workers are done). A failed renewal is logged and tried again
    /// at the next beat; the lease outlasts two missed beats.
    async fn heartbeat(&self, holder: &str) {
        let every = heartbeat_every(self.lease);
        loop {
            tokio::time::sleep(every).await;
            let ids: Vec<i64> = self
                .held
                .lock()
                .map(|held| held.keys().copied().collect())
                .unwrap_or_default();
            if ids.is_empty() {
                continue;
            }
            let until = self.clock.now_ms() + self.lease.as_millis() as i64;
            match deliveries::renew(&self.state.db, &ids, holder, until).await {
                Ok(renewed) => self.renewed(&ids, &renewed, until),
                // The rows keep the lease they had: once it is nearly over, workers stop
                // sending them (see `holds`).
                Err(err) => tracing::warn!(
                    error = %format!("{err:#}"),
                    held = ids.len(),
                    "cannot renew the leases of claimed deliveries; retrying at the next beat"
                ),
            }
        }
    }

    fn hold(&self, ids: impl IntoIterator<Item = i64>, lease_until: i64) {
        if let Ok(mut held) = self.held.lock() {
            held.extend(ids.into_iter().map(|id| (id, lease_until)));
        }
    }

    /// After a renewal of `asked`: the `renewed` rows hold until `until`; the others were
    /// finished, given back or taken over by another sender (their lease had run out), and
    /// are no longer this drive's to send.
    fn renewed(&self, asked: &[i64], renewed: &[i64], until: i64) {
        let renewed: HashSet<i64> = renewed.iter().copied().collect();
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        let mut lost = 0;
        for id in asked {
            if renewed.contains(id) {
                if let Some(lease) = held.get_mut(id) {
                    *lease = until;
                }
            } else if held.remove(id).is_some() {
                lost += 1;
            }
        }
        if lost > 0 {
            tracing::warn!(
                lost,
                "leases lost: those deliveries are left to their new holder"
            );
        }
    }

    /// Whether this drive may still send `id`: it holds the row and its lease lasts beyond a
    /// margin (one heartbeat) — a send begun on a lease about to end could go out twice when
    /// another sender takes the row meanwhile.
    fn holds(&self, id: i64) -> bool {
        let margin = heartbeat_every(self.lease).as_millis() as i64;
        let now = self.clock.now_ms();
        self.held
            .lock()
            .map(|held| held.get(&id).is_some_and(|until| until - margin > now))
            .unwrap_or(false)
    }

    fn let_go(&self, ids: &[i64]) {
        if let Ok(mut held) = self.held.lock() {
            for id in ids {
                held.remove(id);
            }
        }
    }

    async fn work(&self, worker: &str, recorder: &Recorder) -> anyhow::Result<()> {
        loop {
            if self.stopped() {
                self.interrupted.store(true, Ordering::Relaxed);
                return Ok(());
            }
            let now = self.clock.now_ms();
            let batch = deliveries::claim(
                &self.state.db,
                ClaimRequest {
                    worker,
                    now,
                    lease_until: now + self.lease.as_millis() as i64,
                    limit: CLAIM_BATCH,
                    run_id: self.limits.run_id,
                },
            )
            .await?;
            if batch.is_empty() {
                return Ok(());
            }
            self.hold(
                batch.iter().map(|c| c.id),
                now + self.lease.as_millis() as i64,
            );
            // The row being handled, so a failure gives back the ones after it.
            let mut current = None;
            match self
                .send_batch(worker, recorder, &batch, &mut current)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(err) => {
                    // A failure after the claim (unsubscribe lookup, retry_later, record)
                    // must not leave the rest of the batch held — renewed by the heartbeat
                    // for as long as the drive lives, never sent. The failed row itself is
                    // only let go: it may have been sent, so it waits out its lease.
                    let rest = match current {
                        Some(i) => {
                            self.let_go(&[batch[i].id]);
                            &batch[i + 1..]
                        }
                        None => &batch[..],
                    };
                    self.give_back(worker, rest, "after a failure").await;
                    return Err(err);
                }
            }
        }
    }

    /// Sends a claimed batch in order; `Ok(false)` when the drive stops (the rest given back).
    async fn send_batch(
        &self,
        worker: &str,
        recorder: &Recorder,
        batch: &[Claimed],
        current: &mut Option<usize>,
    ) -> anyhow::Result<bool> {
        let unsubscribed = self.unsubscribed(batch).await?;
        for (i, claimed) in batch.iter().enumerate() {
            if self.stopped() {
                // Given back untried, attempt count as before the claim: another sender
                // (or this one after a restart) takes them at once, not after the lease.
                self.interrupted.store(true, Ordering::Relaxed);
                self.give_back(worker, &batch[i..], "stopping").await;
                return Ok(false);
            }
            if !self.holds(claimed.id) {
                self.lost(claimed);
                continue;
            }
            let skip = unsubscribed.contains(&(claimed.run_id, claimed.email.clone()));
            *current = Some(i);
            let delivered = self.deliver(worker, recorder, claimed, skip).await;
            self.let_go(&[claimed.id]);
            delivered?;
        }
        Ok(true)
    }

    /// Gives claimed rows back untried (pending at once, the attempt taken back) and stops
    /// renewing them. A failed release is logged: the rows then come back when their lease
    /// ends, as after a crash.
    async fn give_back(&self, worker: &str, rows: &[Claimed], why: &str) {
        if rows.is_empty() {
            return;
        }
        let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
        self.let_go(&ids);
        match deliveries::release(&self.state.db, &ids, worker, self.clock.now_ms()).await {
            Ok(released) => {
                tracing::info!(released, why, "claimed deliveries given back unsent");
            }
            Err(err) => tracing::warn!(
                error = %format!("{err:#}"),
                held = ids.len(),
                why,
                "cannot give back claimed deliveries; they return when their lease ends"
            ),
        }
    }

    /// The run's message and owner, read once per drive; `None` if the run is gone.
    async fn context(&self, run_id: i64) -> anyhow::Result<Option<Arc<SendContext>>> {
        let mut contexts = self.contexts.lock().await;
        if let Some(ctx) = contexts.get(&run_id) {
            return Ok(ctx.clone());
        }
        let ctx = runs::send_context(&self.state.db, run_id)
            .await?
            .map(Arc::new);
        contexts.insert(run_id, ctx.clone());
        Ok(ctx)
    }

    /// (run, e-mail) pairs of the batch whose address unsubscribed after the run started:
    /// the audience is fixed at the start, but an opt-out is honoured as soon as it is known.
    async fn unsubscribed(&self, batch: &[Claimed]) -> anyhow::Result<HashSet<(i64, String)>> {
        let mut by_owner: HashMap<i64, Vec<&Claimed>> = HashMap::new();
        for claimed in batch {
            if let Some(ctx) = self.context(claimed.run_id).await? {
                by_owner.entry(ctx.owner_id).or_default().push(claimed);
            }
        }
        let mut out = HashSet::new();
        for (owner, claims) in by_owner {
            let emails: Vec<&str> = claims.iter().map(|c| c.email.as_str()).collect();
            let found = unsubscribes::among(&self.state.db, owner, &emails).await?;
            for claimed in claims {
                if found.contains(&claimed.email) {
                    out.insert((claimed.run_id, claimed.email.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Hands the outcome to the recorder and waits until it is committed: a worker sends its
    /// next message only once the last one is on record, so a crash leaves at most one sent
    /// but unrecorded message per worker.
    async fn record(
        &self,
        worker: &str,
        recorder: &Recorder,
        claimed: &Claimed,
        ctx: &SendContext,
        status: DeliveryStatus,
        detail: String,
    ) -> anyhow::Result<()> {
        let (done, committed) = oneshot::channel();
        recorder
            .send(PendingOutcome {
                delivery_id: claimed.id,
                run_id: claimed.run_id,
                mailing_id: claimed.mailing_id,
                owner_id: ctx.owner_id,
                worker: worker.to_string(),
                status,
                detail,
                now: self.clock.now_ms(),
                done,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the outcome recorder stopped"))?;
        let recorded = committed
            .await
            .map_err(|_| anyhow::anyhow!("the outcome recorder stopped"))??;
        if recorded {
            self.state.metrics.delivery(status.as_str());
        }
        let c = &self.counters;
        let counter = if !recorded {
            tracing::warn!(
                delivery_id = claimed.id,
                run_id = claimed.run_id,
                "lease lost before the outcome was recorded; another sender owns the delivery"
            );
            &c.lost
        } else {
            match status {
                DeliveryStatus::Sent => &c.sent,
                DeliveryStatus::Error => &c.errors,
                DeliveryStatus::DryRun => &c.dry_run,
                _ => &c.skipped,
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A claimed row this drive no longer holds: not sent, left to whoever holds it now.
    fn lost(&self, claimed: &Claimed) {
        tracing::warn!(
            delivery_id = claimed.id,
            run_id = claimed.run_id,
            "lease lost before sending; the delivery is left to its new holder"
        );
        // Not renewed any more: if nobody took it yet, it is claimable when its lease ends.
        self.let_go(&[claimed.id]);
        self.counters.lost.fetch_add(1, Ordering::Relaxed);
    }

    async fn deliver(
        &self,
        worker: &str,
        recorder: &Recorder,
        claimed: &Claimed,
        skip: bool,
    ) -> anyhow::Result<()> {
        let Some(ctx) = self.context(claimed.run_id).await? else {
            // The run went away (its mailing was deleted) between claim and send.
            return Ok(());
        };
        if let Some((status, detail)) = self.attempt(worker, claimed, &ctx, skip).await? {
            self.record(worker, recorder, claimed, &ctx, status, detail)
                .await?;
        }
        Ok(())
    }

    /// Sends (or skips, or dry-runs) one claimed delivery: its final outcome, or `None` when
    /// a temporary failure put it back for a later attempt.
    async fn attempt(
        &self,
        worker: &str,
        claimed: &Claimed,
        ctx: &SendContext,
        skip: bool,
    ) -> anyhow::Result<Option<(DeliveryStatus, String)>> {
        if skip {
            return Ok(Some((DeliveryStatus::Skipped, "unsubscribed".to_string())));
        }
        let settings = &self.state.settings;
        let token = unsubscribe::token(&self.state.signer, ctx.owner_id, &claimed.email);
        let url = compose::unsubscribe_url(&settings.base_url, &token);
        let built = compose::build(
            &settings.default_from_email,
            self.state.mailer.identity(),
            Template {
                subject: &ctx.subject,
                body: &ctx.body,
                body_html: ctx.body_html.as_deref(),
            },
            Personal {
                email: &claimed.email,
                full_name: &claimed.full_name,
            },
            Ids {
                delivery_id: claimed.id,
                run_id: claimed.run_id,
                mailing_id: claimed.mailing_id,
            },
            &url,
        );
        let message = match built {
            Ok(message) => message,
            Err(err) => {
                tracing::info!(
                    run_id = claimed.run_id,
                    recipient = %claimed.email,
                    error = %err,
                    "message cannot be composed"
                );
                let detail = err.to_string();
                return Ok(Some((DeliveryStatus::Error, detail)));
            }
        };
        if ctx.dry_run {
            return Ok(Some((
                DeliveryStatus::DryRun,
                "dry run: rendered, not sent".to_string(),
            )));
        }

        let gate = &self.state.send_gate;
        let sent = {
            let _slot = gate.slots.acquire().await?;
            gate.limiter.until_ready().await;
            // The wait for a slot and the rate can be long: the instance may be stopping by
            // now (the row goes back unsent), or the lease may be gone.
            if self.stopped() {
                self.interrupted.store(true, Ordering::Relaxed);
                self.give_back(worker, std::slice::from_ref(claimed), "stopping")
                    .await;
                return Ok(None);
            }
            if !self.holds(claimed.id) {
                self.lost(claimed);
                return Ok(None);
            }
            self.state.mailer.send(message).await
        };
        match sent {
            Ok(reply) => {
                tracing::debug!(run_id = claimed.run_id, recipient = %claimed.email, %reply, "sent");
                Ok(Some((DeliveryStatus::Sent, reply)))
            }
            Err(SendError::Permanent(reply)) => {
                tracing::info!(
                    run_id = claimed.run_id,
                    recipient = %claimed.email,
                    %reply,
                    "refused by the mail server"
                );
                Ok(Some((DeliveryStatus::Error, reply)))
            }
            Err(SendError::Temporary(reply)) => {
                let max = i64::from(settings.send_max_attempts);
                if claimed.attempts >= max {
                    tracing::info!(
                        run_id = claimed.run_id,
                        recipient = %claimed.email,
                        attempts = claimed.attempts,
                        %reply,
                        "giving up after temporary failures"
                    );
                    let detail = format!("gave up after {} attempts: {reply}", claimed.attempts);
                    return Ok(Some((DeliveryStatus::Error, detail)));
                }
                let delay = retry_delay(
                    claimed.attempts as u32,
                    Duration::from_secs(settings.send_retry_base_secs),
                    RETRY_CAP,
                    rand::random::<f64>(),
                );
                let now = self.clock.now_ms();
                let next = now + delay.as_millis() as i64;
                tracing::info!(
                    run_id = claimed.run_id,
                    recipient = %claimed.email,
                    attempts = claimed.attempts,
                    retry_in_secs = delay.as_secs(),
                    %reply,
                    "temporary failure; will retry"
                );
                let detail = format!("attempt {} failed: {reply}", claimed.attempts);
                if deliveries::retry_later(&self.state.db, claimed.id, worker, &detail, next, now)
                    .await?
                {
                    self.counters.retried.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.counters.lost.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None)
            }
        }
    }
}

/// A final outcome on its way to the recorder, with the channel its worker waits on.
struct PendingOutcome {
    delivery_id: i64,
    run_id: i64,
    mailing_id: i64,
    owner_id: i64,
    worker: String,
    status: DeliveryStatus,
    detail: String,
    now: i64,
    done: oneshot::Sender<anyhow::Result<bool>>,
}

type Recorder = mpsc::Sender<PendingOutcome>;

/// Group commit: whatever outcomes the workers have handed in by the time the last commit
/// ends go into the next transaction together. One transaction per message made the
/// database the bound of a run (the run's row, the day's statistics and the owner's data
/// version are written by every outcome); together they cost one write each per batch.
async fn record_outcomes(db: &crate::db::Db, mut outcomes: mpsc::Receiver<PendingOutcome>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while outcomes.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let rows: Vec<Outcome<'_>> = batch
            .iter()
            .map(|p| Outcome {
                delivery_id: p.delivery_id,
                run_id: p.run_id,
                mailing_id: p.mailing_id,
                owner_id: p.owner_id,
                worker: &p.worker,
                status: p.status,
                detail: &p.detail,
                now: p.now,
            })
            .collect();
        let result = deliveries::finish_many(db, &rows).await;
        drop(rows);
        match result {
            Ok(recorded) => {
                for (pending, recorded) in batch.drain(..).zip(recorded) {
                    let _ = pending.done.send(Ok(recorded));
                }
            }
            Err(err) => {
                for pending in batch.drain(..) {
                    let _ = pending.done.send(Err(anyhow::anyhow!("{err:#}")));
                }
            }
        }
    }
}
