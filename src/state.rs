//! What every handler and background task shares: settings, database, cache, mailer, keys,
//! the error notifier and the metrics.
//!
//! [`AppState`] is one allocation behind an `Arc`: a clone (each middleware layer, each
//! handler, each background task takes one) costs a reference count, not a copy per field.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::accounts::sessions::SessionStore;
use crate::accounts::throttle::Throttle;
use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;
use crate::delivery::SendGate;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::reporting::ErrorNotifier;
use crate::signing::Signer;

/// The shared state: a handle to one [`Shared`]; its fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub cache: Arc<Cache>,
    pub mailer: Mailer,
    pub signer: Signer,
    pub sessions: SessionStore,
    /// Login, sign-up and reset limits (SPEC §5, §12).
    pub throttle: Arc<Throttle>,
    /// Error and broken-link reports: queued here, e-mailed by its background worker.
    pub reporter: ErrorNotifier,
    pub metrics: Arc<Metrics>,
    /// The notifier's worker, kept so that shutdown can stop it if it cannot finish in time.
    reporter_worker: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// This instance's identity in delivery leases, its send rate limit and SMTP slots.
    pub send_gate: Arc<SendGate>,
}

impl AppState {
    /// Connects the database (migrating it) and the cache, builds the mailer, and starts the
    /// error notifier's worker (on the current tokio runtime).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = Db::connect(&settings.database, settings.log_sql).await?;
        db.migrate().await?;
        let cache = Cache::from_settings(settings.redis_url.as_ref(), &settings.redis_prefix)?;
        let mailer = Mailer::from_settings(&settings)?;
        let signer = Signer::new(settings.secret_key.clone());
        let cache = Arc::new(cache);
        let send_gate = Arc::new(SendGate::from_settings(&settings));
        let sessions = SessionStore::for_state(&db, &cache);
        let settings = Arc::new(settings);
        let (reporter, worker) = ErrorNotifier::start(
            settings.clone(),
            db.clone(),
            mailer.clone(),
            Some(cache.clone()),
        );
        Ok(Self(Arc::new(Shared {
            settings,
            db,
            cache,
            mailer,
            signer,
            sessions,
            throttle: Arc::new(Throttle::default()),
            metrics: Arc::new(Metrics::new(reporter.clone())),
            reporter,
            reporter_worker: Arc::new(Mutex::new(Some(worker))),
            send_gate,
        })))
    }

    /// What the account functions use (`crate::accounts` never sees the whole state).
    pub fn accounts(&self) -> crate::accounts::Accounts<'_> {
        crate::accounts::Accounts {
            db: &self.db,
            cache: &self.cache,
            mailer: &self.mailer,
            signer: &self.signer,
            settings: &self.settings,
            throttle: &self.throttle,
        }
    }

    /// What the cached dashboard, stats and reports use (`crate::reports` never sees the
    /// whole state).
    pub fn reports(&self) -> crate::reports::Reports<'_> {
        crate::reports::Reports {
            db: &self.db,
            cache: &self.cache,
            ttl: Duration::from_secs(self.settings.cache_ttl_secs),
        }
    }

    /// What the delivery engine and scheduler use (`crate::delivery` never sees the whole
    /// state).
    pub fn delivery(&self) -> crate::delivery::Delivery {
        crate::delivery::Delivery {
            db: self.db.clone(),
            mailer: self.mailer.clone(),
            settings: self.settings.clone(),
            signer: self.signer.clone(),
            metrics: self.metrics.clone(),
            send_gate: self.send_gate.clone(),
            reporter: self.reporter.clone(),
        }
    }

    /// Lets the error notifier send what is queued, for at most `bound`; past it the worker
    /// is stopped (what it still held is logged as lost, not waited for).
    pub async fn finish_reporting(&self, bound: Duration) {
        if tokio::time::timeout(bound, self.reporter.flush())
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!(
            target: "reporting",
            waited_secs = bound.as_secs(),
            "error reports still queued at shutdown were not sent"
        );
        let worker = self.reporter_worker.lock().ok().and_then(|mut w| w.take());
        if let Some(worker) = worker {
            worker.abort();
        }
    }
}
