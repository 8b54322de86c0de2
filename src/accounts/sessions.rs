//! Server-side session storage for poem's `ServerSession`: Redis when configured, else the
//! database. Both survive a restart.
//!
//! Stored keys are SHA-256 digests of the cookie's session id, so a leaked table or Redis dump
//! holds no usable cookie. A Redis outage reads as "no session" (pages keep working, the user
//! appears logged out; a merely busy Redis is tried harder first); a database that cannot be
//! read, and a write that cannot be stored, answer 503 instead of pretending.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::session::SessionStorage;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cache::Cache;
use crate::db::{self, Db, now_ms};

/// Session keys autosend uses.
pub const USER_ID: &str = "user_id";
pub const AUTH_VERSION: &str = "auth_version";
pub const FLASH: &str = "flash";

#[derive(Clone)]
pub enum SessionStore {
    Database(Db),
    Redis(Arc<Cache>),
}

impl SessionStore {
    pub fn for_state(db: &Db, cache: &Arc<Cache>) -> Self {
        match cache.redis_pool() {
            Some(_) => SessionStore::Redis(cache.clone()),
            None => SessionStore::Database(db.clone()),
        }
    }
}

fn digest(session_id: &str) -> String {
    hex::encode(Sha256::digest(session_id.as_bytes()))
}

fn unavailable() -> poem::Error {
    poem::Error::from_string(
        "Sessions are unavailable for a moment, so you cannot log in right now. Please try again shortly.",
        StatusCode::SERVICE_UNAVAILABLE,
    )
}

impl SessionStorage for SessionStore {
    async fn load_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> poem::Result<Option<BTreeMap<String, Value>>> {
        let key = digest(session_id);
        let stored = match self {
            SessionStore::Database(db) => match db::sessions::load(db, &key).await {
                Ok(stored) => stored,
                // Unlike Redis (a cache beside the database), the database holds the session
                // and everything a logged-in page shows: reading "no session" would send the
                // user to a login page that cannot work either, as if logged out. 503 instead.
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "session not loaded");
                    return Err(poem::Error::from_string(
                        "The service is unavailable for a moment. Please try again shortly.",
                        StatusCode::SERVICE_UNAVAILABLE,
                    ));
                }
            },
            // Tried harder than a cached figure: a miss here is a logout (SPEC §11 still holds:
            // a Redis that is down reads as no session, and pages keep answering).
            SessionStore::Redis(cache) => cache.get_essential(&format!("session:{key}")).await,
        };
        Ok(stored.and_then(|json| serde_json::from_str(&json).ok()))
    }

    async fn update_session<'a>(
        &'a self,
        session_id: &'a str,
        entries: &'a BTreeMap<String, Value>,
        expires: Option<Duration>,
    ) -> poem::Result<()> {
        let key = digest(session_id);
        let json = serde_json::to_string(entries).map_err(|_| unavailable())?;
        let ttl = expires.unwrap_or(Duration::from_secs(14 * 24 * 3600));
        match self {
            SessionStore::Database(db) => {
                let user_id = entries.get(USER_ID).and_then(Value::as_i64);
                let expires_at = now_ms() + ttl.as_millis() as i64;
                db::sessions::store(db, &key, user_id, &json, Some(expires_at))
                    .await
                    .map_err(|err| {
                        tracing::error!(error = %format!("{err:#}"), "session not stored");
                        unavailable()
                    })
            }
            SessionStore::Redis(cache) => {
                if cache
                    .set_essential(&format!("session:{key}"), &json, ttl)
                    .await
                {
                    Ok(())
                } else {
                    Err(unavailable())
                }
            }
        }
    }

    async fn remove_session<'a>(&'a self, session_id: &'a str) -> poem::Result<()> {
        let key = digest(session_id);
        match self {
            SessionStore::Database(db) => {
                if let Err(err) = db::sessions::remove(db, &key).await {
                    tracing::warn!(error = %format!("{err:#}"), "session not removed");
                }
            }
            SessionStore::Redis(cache) => cache.delete(&format!("session:{key}")).await,
        }
        Ok(())
    }
}

/// Ends every session of a user. The auth_version check refuses them in any case; this
/// removes the database rows too, so nothing stale lingers.
pub async fn end_all(state: super::Accounts<'_>, user_id: i64) {
    if state.cache.redis_pool().is_none()
        && let Err(err) = db::sessions::remove_for_user(state.db, user_id).await
    {
        tracing::warn!(user_id, error = %format!("{err:#}"), "sessions not removed");
    }
}
