//! The cache: Redis when `REDIS_URL` is set, else an in-process map.
//!
//! A cache is an optimisation, never a dependency: every Redis failure or timeout is a miss
//! (or a dropped write), with one warning a minute at most, so pages keep answering while
//! Redis is down and recover by themselves when it returns.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use deadpool_redis::redis::AsyncCommands;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use moka::Expiry;

use crate::config::Secret;

/// Longest wait for one Redis command; past it the cache counts as down for that call.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// The time [`Cache::get_essential`] and [`Cache::set_essential`] may spend on a session.
const ESSENTIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound of the in-process cache, in bytes of keys and values. Bounded by size, not by
/// entries: a year-long report of 200 mailings is ~60 KB of HTML, and 10 000 entries of those
/// (the old bound) let a burst of distinct reports grow the process past 150 MB.
const MEMORY_BYTES: u64 = 32 << 20;

pub struct Cache {
    backend: Backend,
    /// Prefix of every Redis key (`REDIS_PREFIX`).
    prefix: String,
    outage_warnings: DefaultDirectRateLimiter,
}

enum Backend {
    Memory(moka::sync::Cache<String, MemoryEntry>),
    Redis(deadpool_redis::Pool),
}

#[derive(Clone)]
struct MemoryEntry {
    value: String,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, MemoryEntry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, entry: &MemoryEntry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

impl Cache {
    /// The in-process cache.
    pub fn memory() -> Self {
        let map = moka::sync::Cache::builder()
            .weigher(|key: &String, entry: &MemoryEntry| {
                u32::try_from(key.len() + entry.value.len()).unwrap_or(u32::MAX)
            })
            .max_capacity(MEMORY_BYTES)
            .expire_after(PerEntryTtl)
            .build();
        Self::with_backend(Backend::Memory(map), String::new())
    }

    /// A Redis cache. Connecting is lazy, so a Redis that is down at start is an outage like
    /// any other, not a reason to refuse to start.
    pub fn redis(url: &Secret, prefix: &str) -> anyhow::Result<Self> {
        let mut config = deadpool_redis::Config::from_url(url.expose());
        let mut pool = deadpool_redis::PoolConfig::new(16);
        pool.timeouts.wait = Some(REDIS_TIMEOUT);
        pool.timeouts.create = Some(REDIS_TIMEOUT);
        pool.timeouts.recycle = Some(REDIS_TIMEOUT);
        config.pool = Some(pool);
        let pool = config
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|err| anyhow::anyhow!("REDIS_URL is not usable: {err}"))?;
        Ok(Self::with_backend(Backend::Redis(pool), prefix.to_string()))
    }

    /// Redis when a URL is given, else in-process.
    pub fn from_settings(redis_url: Option<&Secret>, prefix: &str) -> anyhow::Result<Self> {
        match redis_url {
            Some(url) => Self::redis(url, prefix),
            None => Ok(Self::memory()),
        }
    }

    fn with_backend(backend: Backend, prefix: String) -> Self {
        Self {
            backend,
            prefix,
            outage_warnings: RateLimiter::direct(Quota::per_minute(NonZeroU32::MIN)),
        }
    }

    /// The key prefix for Redis keys made outside this module (sessions).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis pool, for sessions and cross-instance state.
    pub fn redis_pool(&self) -> Option<&deadpool_redis::Pool> {
        match &self.backend {
            Backend::Redis(pool) => Some(pool),
            Backend::Memory(_) => None,
        }
    }

    /// `"redis"` or `"memory"`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Redis(_) => "redis",
            Backend::Memory(_) => "memory",
        }
    }

    pub async fn get(&self, key: &str) -> Option<String> {
        match &self.backend {
            Backend::Memory(map) => map.get(key).map(|e| e.value),
            Backend::Redis(pool) => {
                let key = format!("{}{key}", self.prefix);
                self.redis_call("GET", async {
                    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                    conn.get::<_, Option<String>>(&key)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                .flatten()
            }
        }
    }

    pub async fn set(&self, key: &str, value: &str, ttl: Duration) {
        self.set_checked(key, value, ttl).await;
    }

    /// Like [`Cache::set`], but says whether the value was stored.
    pub async fn set_checked(&self, key: &str, value: &str, ttl: Duration) -> bool {
        self.set_within(REDIS_TIMEOUT, key, value, ttl).await
    }

    /// [`Cache::set_checked`] for a value whose loss costs more than a recomputation (a
    /// session): tried like [`Cache::get_essential`].
    pub async fn set_essential(&self, key: &str, value: &str, ttl: Duration) -> bool {
        self.essentially(|deadline| async move {
            self.set_within(deadline, key, value, ttl)
                .await
                .then_some(())
        })
        .await
        .is_some()
    }

    async fn set_within(&self, deadline: Duration, key: &str, value: &str, ttl: Duration) -> bool {
        if ttl.is_zero() {
            return false;
        }
        match &self.backend {
            Backend::Memory(map) => {
                map.insert(
                    key.to_string(),
                    MemoryEntry {
                        value: value.to_string(),
                        ttl,
                    },
                );
                true
            }
            Backend::Redis(pool) => {
                let key = format!("{}{key}", self.prefix);
                self.redis_call_within(deadline, "SET", async {
                    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                    conn.set_ex::<_, _, ()>(&key, value, ttl.as_secs().max(1))
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                .is_some()
            }
        }
    }

    pub async fn delete(&self, key: &str) {
        match &self.backend {
            Backend::Memory(map) => map.invalidate(key),
            Backend::Redis(pool) => {
                let key = format!("{}{key}", self.prefix);
                self.redis_call("DEL", async {
                    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                    conn.del::<_, ()>(&key).await.map_err(|e| e.to_string())
                })
                .await;
            }
        }
    }

    /// Whether the cache answers; for `/healthz` and `check`.
    pub async fn ping(&self) -> Result<(), String> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(pool) => {
                let call = async {
                    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                    deadpool_redis::redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .map_err(|e| e.to_string())
                };
                match tokio::time::timeout(REDIS_TIMEOUT, call).await {
                    Ok(result) => result.map(|_| ()),
                    Err(_) => Err("timed out".to_string()),
                }
            }
        }
    }

    /// Reads a key whose miss costs more than a recomputation (a session: a miss is a
    /// logout), tried as [`Cache::essentially`] says.
    pub async fn get_essential(&self, key: &str) -> Option<String> {
        self.essentially(|deadline| self.try_get_within(key, deadline))
            .await
            .flatten()
    }

    /// Runs `attempt` (given its deadline) until it succeeds: up to three tries within
    /// [`ESSENTIAL_TIMEOUT`] instead of the cache's one of [`REDIS_TIMEOUT`]. Under load one
    /// 500 ms try logged users out in the middle of a save (2 of 18 822 saves during a big
    /// import) or refused the save with 503. A Redis that is down still fails within the
    /// pool's own 500 ms per try, so pages keep answering (SPEC §11). In process: one try.
    async fn essentially<T, F, Fut>(&self, attempt: F) -> Option<T>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let tries = match self.backend {
            Backend::Memory(_) => 1,
            Backend::Redis(_) => 3,
        };
        let began = tokio::time::Instant::now();
        for _ in 0..tries {
            let left = ESSENTIAL_TIMEOUT.saturating_sub(began.elapsed());
            if left.is_zero() {
                break;
            }
            if let Some(done) = attempt(left.min(REDIS_TIMEOUT * 2)).await {
                return Some(done);
            }
        }
        None
    }

    async fn try_get_within(&self, key: &str, deadline: Duration) -> Option<Option<String>> {
        let Backend::Redis(pool) = &self.backend else {
            return Some(self.get(key).await);
        };
        let key = format!("{}{key}", self.prefix);
        self.redis_call_within(deadline, "GET", async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            conn.get::<_, Option<String>>(&key)
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Runs one Redis command with a deadline; a failure is logged (rate-limited) and `None`.
    async fn redis_call<T>(
        &self,
        command: &str,
        call: impl Future<Output = Result<T, String>>,
    ) -> Option<T> {
        self.redis_call_within(REDIS_TIMEOUT, command, call).await
    }

    async fn redis_call_within<T>(
        &self,
        deadline: Duration,
        command: &str,
        call: impl Future<Output = Result<T, String>>,
    ) -> Option<T> {
        let outcome = match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err("timed out".to_string()),
        };
        match outcome {
            Ok(value) => Some(value),
            Err(err) => {
                if self.outage_warnings.check().is_ok() {
                    tracing::warn!(
                        command,
                        error = %err,
                        "Redis unavailable; serving uncached (warning at most once a minute)"
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_cache_round_trip_and_expiry() {
        let cache = Cache::memory();
        cache.set("a", "1", Duration::from_secs(60)).await;
        cache.set("b", "2", Duration::from_millis(30)).await;
        assert_eq!(cache.get("a").await.as_deref(), Some("1"));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(cache.get("b").await, None);
        cache.delete("a").await;
        assert_eq!(cache.get("a").await, None);
    }

    #[tokio::test]
    async fn unreachable_redis_is_a_miss_not_an_error() {
        // Port 1 on loopback refuses at once: an outage from the first call.
        let cache = Cache::redis(&Secret::new("redis://127.0.0.1:1/0"), "t:").unwrap();
        cache.set("k", "v", Duration::from_secs(5)).await;
        assert_eq!(cache.get("k").await, None);
        assert!(cache.ping().await.is_err());
    }
}
