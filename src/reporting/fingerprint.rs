//! Error fingerprints (SPEC §8): one short id per bug, the same across runs and instances.
//!
//! A fingerprint hashes what stays the same when a bug recurs: the error type, the message
//! with its variable parts (numbers, ids, quoted values, addresses) replaced by placeholders,
//! the top frames of the backtrace that are autosend's own code (function names only, so an
//! unrelated edit that moves lines does not split a group), and the route template.

use std::sync::OnceLock;

use regex::{Captures, Regex};
use sha2::{Digest, Sha256};

/// Frames of autosend's own code that enter the fingerprint.
const TOP_FRAMES: usize = 3;

/// Frames of the machinery that captures errors: on every backtrace, so they tell nothing.
const CAPTURE_FRAMES: &[&str] = &[
    "autosend::web::error",
    "autosend::panics",
    "autosend::reporting",
];

/// 16 hex digits (64 bits) of SHA-256 over type, normalised message, top frames and route.
pub fn fingerprint(error_type: &str, message: &str, backtrace: &str, route: &str) -> String {
    let mut hasher = Sha256::new();
    let frames = top_frames(backtrace, TOP_FRAMES).join("\n");
    for part in [error_type, &normalise(message), &frames, route] {
        hasher.update(part.as_bytes());
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        hasher.update([0u8]);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// The message with its variable parts replaced: quoted strings → `<str>`, e-mail addresses
/// → `<email>`, UUIDs → `<uuid>`, hex ids (8+ hex digits with a digit, or `0x…`) → `<hex>`,
/// numbers → `<n>`.
pub fn normalise(message: &str) -> String {
    struct Rules {
        quoted: Regex,
        email: Regex,
        uuid: Regex,
        hex: Regex,
        number: Regex,
    }
    static RULES: OnceLock<Rules> = OnceLock::new();
    let rules = RULES.get_or_init(|| Rules {
        // A quote opens only at the start or after a non-word character, so the apostrophe
        // of "can't" is not taken for one.
        quoted: Regex::new(r#"(^|[^\w])(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"#)
            .expect("static regex"),
        email: Regex::new(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+").expect("static regex"),
        uuid: Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
            .expect("static regex"),
        hex: Regex::new(r"(?i)\b(?:0x[0-9a-f]+|[0-9a-f]{8,})\b").expect("static regex"),
        number: Regex::new(r"\d+(?:\.\d+)?").expect("static regex"),
    });
    let text = rules.quoted.replace_all(message, "${1}<str>");
    let text = rules.email.replace_all(&text, "<email>");
    let text = rules.uuid.replace_all(&text, "<uuid>");
    let text = rules.hex.replace_all(&text, |caps: &Captures<'_>| {
        let m = &caps[0];
        let is_id = m.len() > 2 && m[..2].eq_ignore_ascii_case("0x")
            || m.bytes().any(|b| b.is_ascii_digit());
        if is_id {
            "<hex>".to_string()
        } else {
            m.to_string()
        }
    });
    rules.number.replace_all(&text, "<n>").into_owned()
}

/// The function names of the first `n` frames in autosend's code, capture machinery skipped,
/// without frame numbers and symbol hashes.
pub fn top_frames(backtrace: &str, n: usize) -> Vec<String> {
    static HASH: OnceLock<Regex> = OnceLock::new();
    let hash = HASH.get_or_init(|| Regex::new(r"::h[0-9a-f]{16}$").expect("static regex"));
    backtrace
        .lines()
        .map(str::trim)
        .filter(|line| line.contains("autosend::") && !line.starts_with("at "))
        .filter(|line| !CAPTURE_FRAMES.iter().any(|skip| line.contains(skip)))
        .map(|line| {
            // "12: autosend::x::y" → "autosend::x::y"
            let name = match line.split_once(": ") {
                Some((num, rest)) if num.chars().all(|c| c.is_ascii_digit()) => rest,
                _ => line,
            };
            hash.replace(name, "").into_owned()
        })
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKTRACE: &str = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/abc/library/std/src/backtrace.rs:312:13
   1: autosend::web::error::InternalError::new
             at ./src/web/error.rs:55:24
   2: <autosend::web::error::AppError as core::convert::From<anyhow::Error>>::from
             at ./src/web/error.rs:28:30
   3: autosend::web::routes::clients::show::{{closure}}
             at ./src/web/routes/clients.rs:40:9
   4: autosend::db::recipients::find::h0123456789abcdef
             at ./src/db/recipients.rs:12:5
   5: autosend::web::middleware::edge::{{closure}}
             at ./src/web/middleware.rs:80:9
   6: autosend::web::middleware::csrf::{{closure}}
             at ./src/web/middleware.rs:300:9
   7: tokio::runtime::task::core::Core<T,S>::poll
";

    #[test]
    fn variable_parts_of_messages_become_placeholders() {
        assert_eq!(
            normalise("recipient 42 not found for user bob@example.com"),
            "recipient <n> not found for user <email>"
        );
        assert_eq!(
            normalise("run 6f1c2b9e-3d4a-4b5c-8d7e-9f0a1b2c3d4e failed"),
            "run <uuid> failed"
        );
        assert_eq!(
            normalise("object deadbeef1234 at 0x7ffd5e8c missing"),
            "object <hex> at <hex> missing"
        );
        assert_eq!(
            normalise(r#"column "email" of relation 'users' can't be `null`"#),
            "column <str> of relation <str> can't be <str>"
        );
        assert_eq!(normalise("took 1.25s, retry 3"), "took <n>s, retry <n>");
        // Ordinary words made of hex letters stay.
        assert_eq!(normalise("accepted a deadbeef"), "accepted a deadbeef");
    }

    #[test]
    fn frames_are_autosend_code_without_capture_machinery() {
        assert_eq!(
            top_frames(BACKTRACE, 3),
            vec![
                "autosend::web::routes::clients::show::{{closure}}",
                "autosend::db::recipients::find",
                "autosend::web::middleware::edge::{{closure}}",
            ]
        );
        assert!(top_frames("", 3).is_empty());
    }

    #[test]
    fn same_bug_same_fingerprint() {
        let a = fingerprint(
            "sqlx::Error::RowNotFound",
            "recipient 42 missing",
            BACKTRACE,
            "/clients/{id}",
        );
        let b = fingerprint(
            "sqlx::Error::RowNotFound",
            "recipient 97 missing",
            BACKTRACE,
            "/clients/{id}",
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        // Line numbers moved by an unrelated edit do not matter.
        let moved = BACKTRACE.replace(":40:9", ":44:9");
        assert_eq!(
            a,
            fingerprint(
                "sqlx::Error::RowNotFound",
                "recipient 1 missing",
                &moved,
                "/clients/{id}"
            )
        );
    }

    #[test]
    fn different_bugs_different_fingerprints() {
        let base = fingerprint("E", "recipient 42 missing", BACKTRACE, "/clients/{id}");
        let others = [
            fingerprint("F", "recipient 42 missing", BACKTRACE, "/clients/{id}"),
            fingerprint("E", "mailing 42 missing", BACKTRACE, "/clients/{id}"),
            fingerprint("E", "recipient 42 missing", "", "/clients/{id}"),
            fingerprint("E", "recipient 42 missing", BACKTRACE, "/mailings/{id}"),
            fingerprint(
                "E",
                "recipient 42 missing",
                &BACKTRACE.replace("recipients::find", "recipients::list"),
                "/clients/{id}",
            ),
        ];
        for other in others {
            assert_ne!(base, other);
        }
        // The separator keeps field boundaries apart.
        assert_ne!(
            fingerprint("ab", "c", "", ""),
            fingerprint("a", "bc", "", "")
        );
    }
}
