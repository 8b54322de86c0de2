//! One-click unsubscribe (SPEC §6 `/u/{token}`, RFC 8058).
//!
//! The token names the owner and the address and is signed with the `unsubscribe` key: it
//! needs no database row to check, never expires (an old newsletter's link must keep working),
//! and cannot be altered to unsubscribe someone else. Format: `base64url(owner_id NUL email)`
//! `.` `base64url(MAC)`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::db::unsubscribes;
use crate::signing::Signer;
use crate::state::AppState;

const PURPOSE: &str = "unsubscribe";

/// Whom a token unsubscribes, and from whose mailings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub owner_id: i64,
    pub email: String,
}

pub fn token(signer: &Signer, owner_id: i64, email: &str) -> String {
    let owner = owner_id.to_string();
    let email = email.to_lowercase();
    let tag = signer.mac(PURPOSE, &[owner.as_bytes(), email.as_bytes()]);
    let payload = format!("{owner}\0{email}");
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The subscriber a token names, if the token is genuine.
pub fn verify(signer: &Signer, token: &str) -> Option<Subscriber> {
    let (payload, tag) = token.trim().split_once('.')?;
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let (owner, email) = payload.split_once('\0')?;
    if !signer.verify(PURPOSE, &[owner.as_bytes(), email.as_bytes()], &tag) {
        return None;
    }
    Some(Subscriber {
        owner_id: owner.parse().ok()?,
        email: email.to_string(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum UnsubscribeError {
    #[error("This unsubscribe link is not valid. Copy the whole link from the e-mail.")]
    InvalidToken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Checks a token without changing anything (the confirmation page).
pub fn check(state: &AppState, token: &str) -> Result<Subscriber, UnsubscribeError> {
    verify(&state.signer, token).ok_or(UnsubscribeError::InvalidToken)
}

/// Unsubscribes the token's address from its owner's mailings; doing it twice is harmless.
pub async fn unsubscribe(state: &AppState, token: &str) -> Result<Subscriber, UnsubscribeError> {
    let subscriber = check(state, token)?;
    let added = unsubscribes::add(
        &state.db,
        subscriber.owner_id,
        &subscriber.email,
        None,
        crate::db::now_ms(),
    )
    .await?;
    if added {
        tracing::info!(owner_id = subscriber.owner_id, "recipient unsubscribed");
    }
    Ok(subscriber)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn tokens_round_trip_and_resist_tampering() {
        let signer = Signer::new(Secret::new("u".repeat(40)));
        let t = token(&signer, 12, "Ann@Example.com");
        assert_eq!(
            verify(&signer, &t),
            Some(Subscriber {
                owner_id: 12,
                email: "ann@example.com".into()
            })
        );
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("12\0bob@example.com"),
            t.split_once('.').unwrap().1
        );
        assert_eq!(verify(&signer, &forged), None);
        let other = Signer::new(Secret::new("v".repeat(40)));
        assert_eq!(verify(&other, &t), None);
        for bad in ["", ".", "abc", "abc.def", "!!.!!"] {
            assert_eq!(verify(&signer, bad), None, "{bad:?}");
        }
    }
}
