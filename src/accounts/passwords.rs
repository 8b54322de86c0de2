//! Password hashing with argon2id, off the async threads (it is deliberately slow).

use std::sync::OnceLock;

use anyhow::Context as _;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

pub async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))
    })
    .await
    .context("password hashing task failed")?
}

/// Whether `password` matches `stored`. A malformed stored hash never matches.
pub async fn verify(password: &str, stored: &str) -> anyhow::Result<bool> {
    let password = password.to_string();
    let stored = stored.to_string();
    tokio::task::spawn_blocking(move || match PasswordHash::new(&stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    })
    .await
    .context("password verification task failed")
}

/// Spends the time of one verification without an account, so an unknown e-mail answers as
/// slowly as a wrong password (no account enumeration by timing).
pub async fn verify_dummy(password: &str) -> anyhow::Result<()> {
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
