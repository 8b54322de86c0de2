//! What every handler and background task shares: settings, database, cache, mailer, keys.

use std::sync::Arc;

use crate::accounts::sessions::SessionStore;
use crate::accounts::throttle::LoginLimiter;
use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;
use crate::delivery::SendGate;
use crate::mail::Mailer;
use crate::signing::Signer;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub cache: Arc<Cache>,
    pub mailer: Mailer,
    pub signer: Signer,
    pub sessions: SessionStore,
    pub login_limiter: Arc<LoginLimiter>,
    /// This instance's identity in delivery leases, its send rate limit and SMTP slots.
    pub send_gate: Arc<SendGate>,
}

impl AppState {
    /// Connects the database (migrating it) and the cache, and builds the mailer.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = Db::connect(&settings.database, settings.log_sql).await?;
        db.migrate().await?;
        let cache = Cache::from_settings(settings.redis_url.as_ref(), &settings.redis_prefix)?;
        let mailer = Mailer::from_settings(&settings)?;
        let signer = Signer::new(settings.secret_key.clone());
        let cache = Arc::new(cache);
        let send_gate = Arc::new(SendGate::from_settings(&settings));
        let sessions = SessionStore::for_state(&db, &cache);
        Ok(Self {
            settings: Arc::new(settings),
            db,
            cache,
            mailer,
            signer,
            sessions,
            login_limiter: Arc::new(LoginLimiter::default()),
            send_gate,
        })
    }
}
