//! Signed, expiring links for account activation and password reset.
//!
//! A token is `{user id}.{expiry, unix seconds}.{MAC}`; the MAC also covers the account state
//! the link is meant to change (Django's approach), so a link stops working once used:
//! activation covers `is_active`, the session version and the row's change stamp (so it
//! dies on first use and on any later change: a deactivation must not be undone by the old
//! link), reset covers the password hash and the last login.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::db::users::User;
use crate::signing::Signer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Activation,
    PasswordReset,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::Activation => "activation",
            Purpose::PasswordReset => "password-reset",
        }
    }

    /// How long a link stays valid.
    pub fn lifetime_secs(self) -> i64 {
        match self {
            Purpose::Activation => 3 * 24 * 3600,
            Purpose::PasswordReset => 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("This link is invalid or has already been used.")]
    Invalid,
    #[error("This link has expired. Ask for a new one.")]
    Expired,
}

fn state(purpose: Purpose, user: &User) -> String {
    match purpose {
        Purpose::Activation => format!(
            "{}|{}|{}",
            user.is_active, user.auth_version, user.updated_at
        ),
        Purpose::PasswordReset => {
            format!("{}|{}", user.password_hash, user.last_login_at.unwrap_or(0))
        }
    }
}

/// A token for `user` valid until `expires_at` (unix seconds).
pub fn make(signer: &Signer, purpose: Purpose, user: &User, expires_at: i64) -> String {
    let id = user.id.to_string();
    let exp = expires_at.to_string();
    let tag = signer.mac(
        purpose.label(),
        &[
            id.as_bytes(),
            exp.as_bytes(),
            state(purpose, user).as_bytes(),
        ],
    );
    format!("{id}.{exp}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// A token valid for the purpose's usual lifetime from now.
pub fn issue(signer: &Signer, purpose: Purpose, user: &User) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    make(signer, purpose, user, now + purpose.lifetime_secs())
}

/// The user id a token claims, before the user is loaded to check it.
pub fn claimed_user(token: &str) -> Result<i64, TokenError> {
    token
        .split('.')
        .next()
        .and_then(|id| id.parse().ok())
        .ok_or(TokenError::Invalid)
}

/// Checks a token against the user it names (loaded by the caller).
pub fn check(
    signer: &Signer,
    purpose: Purpose,
    token: &str,
    user: &User,
) -> Result<(), TokenError> {
    let mut parts = token.split('.');
    let (Some(id), Some(exp), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Invalid);
    };
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Invalid)?;
    if id != user.id.to_string() {
        return Err(TokenError::Invalid);
    }
    let valid = signer.verify(
        purpose.label(),
        &[
            id.as_bytes(),
            exp.as_bytes(),
            state(purpose, user).as_bytes(),
        ],
        &tag,
    );
    if !valid {
        return Err(TokenError::Invalid);
    }
    let exp: i64 = exp.parse().map_err(|_| TokenError::Invalid)?;
    if exp < time::OffsetDateTime::now_utc().unix_timestamp() {
        return Err(TokenError::Expired);
    }
    Ok(())
}
