//! CSRF protection for every state-changing request (SPEC §5, §11).
//!
//! A random secret lives in the `csrftoken` cookie; pages carry tokens made from it, each a
//! fresh nonce plus the MAC of (secret, nonce), so the token in a compressed page changes on
//! every render (no BREACH oracle) and cannot be forged without `SECRET_KEY`. Forms send it as
//! the `csrf_token` field, htmx as the `X-CSRF-Token` header (assets/app.js).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::signing::Signer;

pub const COOKIE_NAME: &str = "csrftoken";
pub const FORM_FIELD: &str = "csrf_token";
pub const HEADER: &str = "X-CSRF-Token";
const PURPOSE: &str = "csrf";
const NONCE_LEN: usize = 16;

/// The cookie's secret, put into the request by the CSRF middleware.
#[derive(Clone, Debug)]
pub struct CsrfSecret(pub [u8; 32]);

impl CsrfSecret {
    pub fn generate() -> Self {
        Self(rand::random())
    }

    pub fn from_cookie(value: &str) -> Option<Self> {
        let bytes = hex::decode(value).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn cookie_value(&self) -> String {
        hex::encode(self.0)
    }

    /// A new token for a form or the page's `<meta name="csrf-token">`.
    pub fn token(&self, signer: &Signer) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut raw = nonce.to_vec();
        raw.extend(signer.mac(PURPOSE, &[&self.0, &nonce]));
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn verify(&self, signer: &Signer, token: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        if raw.len() <= NONCE_LEN {
            return false;
        }
        let (nonce, tag) = raw.split_at(NONCE_LEN);
        signer.verify(PURPOSE, &[&self.0, nonce], tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn tokens_verify_only_against_their_cookie() {
        let signer = Signer::new(Secret::new("s".repeat(40)));
        let a = CsrfSecret::generate();
        let b = CsrfSecret::generate();
        let t1 = a.token(&signer);
        let t2 = a.token(&signer);
        assert_ne!(t1, t2, "tokens are randomised per render");
        assert!(a.verify(&signer, &t1) && a.verify(&signer, &t2));
        assert!(!b.verify(&signer, &t1));
        assert!(!a.verify(&signer, "garbage"));
        assert!(!a.verify(&signer, ""));
        let round = CsrfSecret::from_cookie(&a.cookie_value()).unwrap();
        assert!(round.verify(&signer, &t1));
    }
}
