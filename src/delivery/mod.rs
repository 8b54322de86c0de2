//! Delivering mailings (SPEC §7): the engine that starts, sends and finishes runs, the
//! scheduler that ticks it, message composition and one-click unsubscribe (demo data is seeded by `crate::demo`).
//!
//! What the mailing pages call: [`engine::send_now`] (send now / dry run; refused with
//! [`StartRunError::AlreadyActive`] or [`StartRunError::Finished`]), [`engine::disable`],
//! [`progress`] for the progress fragment, and `db::runs::list_for_mailing` /
//! `db::deliveries::list` for the history and logs pages.

pub mod compose;
pub mod engine;
pub mod scheduler;
pub mod unsubscribe;

use std::sync::Arc;

use crate::config::Settings;
use crate::db::Db;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::reporting::ErrorNotifier;
use crate::signing::Signer;

pub use crate::clock::Clock;
pub use crate::db::runs::StartRunError;
pub use engine::SendGate;

/// What delivering uses, and nothing more: the database, the mailer, the settings (send
/// limits, base URL, zone), the signer (unsubscribe links), the metrics, this instance's
/// send gate and the error notifier (a failed background run is reported). Cheap to clone
/// (handles and `Arc`s); `AppState::delivery` lends it, so this module never sees the whole
/// state (no `delivery ↔ state` cycle).
#[derive(Clone)]
pub struct Delivery {
    pub db: Db,
    pub mailer: Mailer,
    pub settings: Arc<Settings>,
    pub signer: Signer,
    pub metrics: Arc<Metrics>,
    pub send_gate: Arc<SendGate>,
    pub reporter: ErrorNotifier,
}
pub use scheduler::{TickOutcome, tick};

use crate::db::runs::{self, Run};
use crate::domain::RunStatus;

/// A run's progress for the progress bar: counts, rate and time left.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub run: Run,
    /// Deliveries with a final status.
    pub done: i64,
    /// `done` out of `total`, 0–100.
    pub percent: u8,
    /// Final outcomes per second since the run started.
    pub rate_per_sec: f64,
    /// Seconds left at that rate, while the run is active and moving.
    pub eta_secs: Option<i64>,
}

impl Progress {
    pub fn of(run: Run, now: i64) -> Self {
        let t = run.totals;
        let done = t.total - t.pending;
        let percent = if t.total == 0 {
            100
        } else {
            (done * 100 / t.total).clamp(0, 100) as u8
        };
        let elapsed = (run.finished_at.unwrap_or(now) - run.started_at).max(1) as f64 / 1000.0;
        let rate_per_sec = done as f64 / elapsed;
        let eta_secs = (run.status == RunStatus::Running && rate_per_sec > 0.0)
            .then(|| (t.pending as f64 / rate_per_sec).ceil() as i64);
        Self {
            run,
            done,
            percent,
            rate_per_sec,
            eta_secs,
        }
    }

    pub fn active(&self) -> bool {
        self.run.status == RunStatus::Running
    }
}

/// The progress of the mailing's active run, else of its latest one; `None` before any run.
pub async fn progress(db: &Db, mailing_id: i64, now: i64) -> anyhow::Result<Option<Progress>> {
    let run = match runs::active(db, mailing_id).await? {
        Some(run) => Some(run),
        None => runs::list_for_mailing(db, mailing_id, 1, 0)
            .await?
            .0
            .into_iter()
            .next(),
    };
    Ok(run.map(|run| Progress::of(run, now)))
}
