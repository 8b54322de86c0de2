//! One-click unsubscribe (SPEC §6 `/u/{token}`, RFC 8058).
//!
//! The token names the owner and the address, needs no database row to check, never expires
//! (an old newsletter's link must keep working), and cannot be altered to unsubscribe someone
//! else. It is sealed, not only signed: `base64url(nonce ‖ XChaCha20-Poly1305(owner_id ‖
//! email))` under a key derived from `SECRET_KEY`, so the URL — which travels in headers,
//! proxy and server logs and `Referer`s — does not give the address away (SPEC §12).
//!
//! Links mailed before that (`base64url(owner_id NUL email)` `.` `base64url(MAC)`, the
//! address readable) keep working: [`verify`] still accepts them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::db::unsubscribes;
use crate::delivery::Delivery;
use crate::signing::Signer;

/// The MAC purpose of the first, readable tokens.
const PURPOSE: &str = "unsubscribe";
/// The key purpose of sealed tokens.
const SEALED: &str = "unsubscribe/sealed";
/// Bound into every sealed token, so a ciphertext made for another use cannot pass as one.
const AAD: &[u8] = b"autosend unsubscribe v2";
const NONCE_LEN: usize = 24;

/// Whom a token unsubscribes, and from whose mailings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub owner_id: i64,
    pub email: String,
}

fn cipher(signer: &Signer) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&signer.key(SEALED).into())
}

/// A sealed token for (owner, address). A fresh random nonce each time: two mails to one
/// address carry different links, both valid.
pub fn token(signer: &Signer, owner_id: i64, email: &str) -> String {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut plain = owner_id.to_be_bytes().to_vec();
    plain.extend_from_slice(email.to_lowercase().as_bytes());
    let sealed = cipher(signer)
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plain,
                aad: AAD,
            },
        )
        .expect("XChaCha20-Poly1305 seals any message of this size");
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The subscriber a token names, if the token is genuine (sealed, or of the first format).
pub fn verify(signer: &Signer, token: &str) -> Option<Subscriber> {
    let token = token.trim();
    if token.contains('.') {
        return verify_readable(signer, token);
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let plain = cipher(signer)
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: sealed,
                aad: AAD,
            },
        )
        .ok()?;
    if plain.len() < 8 {
        return None;
    }
    let (owner, email) = plain.split_at(8);
    Some(Subscriber {
        owner_id: i64::from_be_bytes(owner.try_into().ok()?),
        email: String::from_utf8(email.to_vec()).ok()?,
    })
}

/// A token of the first format, `base64url(owner_id NUL email).base64url(MAC)`.
fn verify_readable(signer: &Signer, token: &str) -> Option<Subscriber> {
    let (payload, tag) = token.split_once('.')?;
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

/// A token of the first, readable format: what mails sent before sealed tokens carry (tests
/// prove those links keep working).
pub fn readable_token(signer: &Signer, owner_id: i64, email: &str) -> String {
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

#[derive(Debug, thiserror::Error)]
pub enum UnsubscribeError {
    #[error("This unsubscribe link is not valid. Copy the whole link from the e-mail.")]
    InvalidToken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Checks a token without changing anything (the confirmation page).
pub fn check(state: &Delivery, token: &str) -> Result<Subscriber, UnsubscribeError> {
    verify(&state.signer, token).ok_or(UnsubscribeError::InvalidToken)
}

/// Unsubscribes the token's address from its owner's mailings; doing it twice is harmless.
pub async fn unsubscribe(state: &Delivery, token: &str) -> Result<Subscriber, UnsubscribeError> {
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
        let ann = Some(Subscriber {
            owner_id: 12,
            email: "ann@example.com".into(),
        });
        for t in [
            token(&signer, 12, "Ann@Example.com"),
            readable_token(&signer, 12, "Ann@Example.com"),
        ] {
            assert_eq!(verify(&signer, &t), ann, "{t}");
            let other = Signer::new(Secret::new("v".repeat(40)));
            assert_eq!(verify(&other, &t), None);
        }
        let sealed = token(&signer, 12, "ann@example.com");
        assert!(!sealed.contains('.'));
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(verify(&signer, &URL_SAFE_NO_PAD.encode(bytes)), None);
        let t = readable_token(&signer, 12, "ann@example.com");
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("12\0bob@example.com"),
            t.split_once('.').unwrap().1
        );
        assert_eq!(verify(&signer, &forged), None);
        for bad in ["", ".", "abc", "abc.def", "!!.!!", "AAAA"] {
            assert_eq!(verify(&signer, bad), None, "{bad:?}");
        }
    }
}
