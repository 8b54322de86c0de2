//! Password hashing with argon2id, off the async threads (it is deliberately slow) and a
//! few at a time: each hash holds about 19 MiB, so a hundred concurrent sign-ups or logins
//! would otherwise take gigabytes. Past a bounded wait the caller is told the server is
//! busy (503 + `Retry-After`) instead of queueing without end.

use std::sync::OnceLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a request waits for a hashing slot before it is answered "busy".
const MAX_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed taken for [`MAX_WAIT`].
    #[error("the server is busy checking passwords")]
    Busy,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// One slot per core: hashing is CPU-bound, more at once only adds memory.
fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Semaphore::new(cores)
    })
}

async fn slot() -> Result<SemaphorePermit<'static>, HashError> {
    match tokio::time::timeout(MAX_WAIT, slots().acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(anyhow::anyhow!("password hashing slots closed").into()),
        Err(_) => {
            tracing::warn!(
                waited_secs = MAX_WAIT.as_secs(),
                "password hashing is saturated; answering busy"
            );
            Err(HashError::Busy)
        }
    }
}

/// Runs `work` on the blocking pool while holding a hashing slot.
async fn in_slot<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    let _slot = slot().await?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| anyhow::anyhow!("password hashing task failed: {e}").into())
}

pub async fn hash(password: &str) -> Result<String, HashError> {
    let password = password.to_string();
    in_slot(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))
    })
    .await?
    .map_err(HashError::from)
}

/// Whether `password` matches `stored`. A malformed stored hash never matches.
pub async fn verify(password: &str, stored: &str) -> Result<bool, HashError> {
    let password = password.to_string();
    let stored = stored.to_string();
    in_slot(move || match PasswordHash::new(&stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    })
    .await
}

/// Spends the time of one verification without an account, so an unknown e-mail answers as
/// slowly as a wrong password (no account enumeration by timing).
pub async fn verify_dummy(password: &str) -> Result<(), HashError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = match DUMMY.get() {
        Some(hash) => hash.clone(),
        None => {
            let hash = hash(&hex::encode(rand::random::<[u8; 16]>())).await?;
            DUMMY.get_or_init(|| hash).clone()
        }
    };
    verify(password, &stored).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hash_and_verify() {
        let stored = super::hash("correct horse").await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &stored).await.unwrap());
        assert!(!super::verify("wrong horse", &stored).await.unwrap());
        assert!(!super::verify("x", "not a hash").await.unwrap());
    }
}
