//! Masking of sensitive values (SPEC §8), shared by error reports, the DEBUG page and logs.

use std::sync::OnceLock;

use regex::Regex;

pub use crate::config::MASK;

/// Names whose values are never shown (case-insensitive), SPEC §8.
fn sensitive_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(
            r"(?i)API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|COOKIE|SESSION|CSRF|CREDENTIAL|PRIVATE",
        )
        .expect("static regex")
    })
}

/// Whether a field, header, cookie, parameter or setting called `name` must be masked.
pub fn is_sensitive(name: &str, extra: &[String]) -> bool {
    sensitive_pattern().is_match(name) || extra.iter().any(|e| e.eq_ignore_ascii_case(name))
}

/// `value`, or the mask when `name` is sensitive.
pub fn masked_value(name: &str, value: &str, extra: &[String]) -> String {
    if is_sensitive(name, extra) {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

/// Replaces every configured secret value, and any `user:pass@` in URLs, wherever it appears.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    static USERINFO: OnceLock<Regex> = OnceLock::new();
    let userinfo = USERINFO.get_or_init(|| {
        Regex::new(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pass>[^@/\s]+)@")
            .expect("static regex")
    });
    let mut out = userinfo
        .replace_all(text, format!("${{scheme}}${{user}}:{MASK}@").as_str())
        .into_owned();
    for secret in secrets {
        if !secret.is_empty() && out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_matching_the_pattern_are_sensitive() {
        for name in [
            "password",
            "X-Api-Key",
            "csrf_token",
            "sessionid",
            "Authorization",
            "SECRET_KEY",
        ] {
            assert!(is_sensitive(name, &[]), "{name}");
        }
        assert!(!is_sensitive("email", &[]));
        assert!(is_sensitive("iban", &["IBAN".to_string()]));
        assert_eq!(masked_value("password", "hunter2", &[]), MASK);
        assert_eq!(MASK.len(), 20);
    }

    #[test]
    fn scrub_removes_secrets_and_url_passwords() {
        let text = "connect postgres://app:s3cr3t@db/x failed; key=abcdefgh1234";
        let out = scrub(text, &["abcdefgh1234".to_string()]);
        assert_eq!(
            out,
            format!("connect postgres://app:{MASK}@db/x failed; key={MASK}")
        );
    }
}
