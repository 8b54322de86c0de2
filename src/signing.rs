//! Keys derived from `SECRET_KEY`, one per purpose, and MACs made with them.
//!
//! Deriving a key per purpose means a token minted for one use (a CSRF token, say) can never
//! be replayed as another (an unsubscribe link).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Signer {
    secret: Secret,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(secret: Secret) -> Self {
        Self { secret }
    }

    /// The 32-byte key of `purpose` (for a MAC here, or a cipher elsewhere).
    pub fn key(&self, purpose: &str) -> [u8; 32] {
        let mut derive = HmacSha256::new_from_slice(self.secret.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        derive.update(b"autosend/");
        derive.update(purpose.as_bytes());
        derive.finalize().into_bytes().into()
    }

    fn keyed(&self, purpose: &str) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key(purpose)).expect("HMAC takes keys of any length")
    }

    /// The MAC of `parts` (length-prefixed, so `["ab","c"]` and `["a","bc"]` differ).
    pub fn mac(&self, purpose: &str, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = self.keyed(purpose);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// Constant-time check of a MAC made by [`Signer::mac`].
    pub fn verify(&self, purpose: &str, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut mac = self.keyed(purpose);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.verify_slice(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_bound_to_purpose_and_parts() {
        let s = Signer::new(Secret::new("k".repeat(40)));
        let tag = s.mac("csrf", &[b"ab", b"c"]);
        assert!(s.verify("csrf", &[b"ab", b"c"], &tag));
        assert!(!s.verify("csrf", &[b"a", b"bc"], &tag));
        assert!(!s.verify("unsubscribe", &[b"ab", b"c"], &tag));
    }
}
