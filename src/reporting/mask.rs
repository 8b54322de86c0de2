//! Masking of sensitive values (SPEC §8), shared by error reports, the DEBUG page and logs.

use std::sync::OnceLock;

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use regex::Regex;

pub use crate::config::MASK;

/// What browsers (and the `url` crate) percent-encode in each part of a URL (the WHATWG URL
/// standard's sets): a secret typed into a path, query, fragment or userinfo arrives encoded
/// this way, with its `@`, `/` or `:` left as they are.
const FRAGMENT_SET: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');
const QUERY_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\'');
const PATH_SET: &AsciiSet = &QUERY_SET
    .remove(b'\'')
    .add(b'?')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'}');
const USERINFO_SET: &AsciiSet = &PATH_SET
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'=')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'|');

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
/// Scrubbing twice changes nothing more (but the length of masks side by side).
///
/// Longer secrets go first, so a secret that contains another is not left half-shown; each
/// secret is also looked for in its percent-encoded forms, the ways it travels inside URLs
/// (everything but letters and digits encoded, form-encoded, and as browsers encode each part).
pub fn scrub(text: &str, secrets: &[String]) -> String {
    static USERINFO: OnceLock<Regex> = OnceLock::new();
    let userinfo = USERINFO.get_or_init(|| {
        Regex::new(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pass>[^@/\s]+)@")
            .expect("static regex")
    });
    let mut out = text.to_string();
    let mut needles: Vec<String> = Vec::with_capacity(secrets.len() * 7);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        needles.push(secret.clone());
        needles.push(utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string());
        needles.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
        for set in [PATH_SET, QUERY_SET, FRAGMENT_SET, USERINFO_SET] {
            needles.push(utf8_percent_encode(secret, set).to_string());
        }
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    for needle in &needles {
        if out.contains(needle.as_str()) {
            out = out.replace(needle.as_str(), MASK);
        }
    }
    // After the secrets: a password that holds a secret with an `@`, `/` or space in it is
    // then one run the pattern masks whole, not cut at that character with its tail shown.
    userinfo
        .replace_all(&out, format!("${{scheme}}${{user}}:{MASK}@").as_str())
        .into_owned()
}

/// Routes whose every form field is masked (login, sign-up, password reset and change).
const ACCOUNT_ROUTES: &[&str] = &[
    "/users/login",
    "/users/signup",
    "/users/password-reset",
    "/users/password-change",
];

/// Routes whose next path segment is a capability token (reset, activation, unsubscribe).
const TOKEN_ROUTES: &[&str] = &["/users/password-reset/", "/users/activate/", "/u/"];

/// Whether every form field of a request to `path` must be masked.
pub fn is_account_route(path: &str) -> bool {
    ACCOUNT_ROUTES.iter().any(|route| {
        path.strip_prefix(route)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
    })
}

/// `path` with any capability token in it (a reset, activation or unsubscribe link) masked:
/// whoever reads a report must not be able to use the link.
pub fn mask_path(path: &str) -> String {
    for prefix in TOKEN_ROUTES {
        if let Some(rest) = path.strip_prefix(prefix) {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            if end == 0 {
                return path.to_string();
            }
            return format!("{prefix}{MASK}{}", &rest[end..]);
        }
    }
    path.to_string()
}

/// A URL (absolute, or a path with a query) safe to show: `user:pass@` masked, capability
/// tokens in the path masked, values of sensitive query (and fragment) parameters masked,
/// secrets scrubbed.
pub fn mask_url(url: &str, extra: &[String], secrets: &[String]) -> String {
    let (before_fragment, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let (base, query) = match before_fragment.find('?') {
        Some(i) => (&before_fragment[..i], Some(&before_fragment[i + 1..])),
        None => (before_fragment, None),
    };
    // The path starts at the first '/' after `scheme://authority`, or at once for a bare path.
    let path_start = match base.find("://") {
        Some(i) => base[i + 3..].find('/').map(|j| i + 3 + j),
        None => Some(0),
    };
    let mut out = match path_start {
        Some(start) => format!("{}{}", &base[..start], mask_path(&base[start..])),
        None => base.to_string(),
    };
    if let Some(query) = query {
        out.push('?');
        out.push_str(&mask_pairs(query, extra));
    }
    // A fragment can carry parameters too (`#access_token=…` of OAuth's implicit flow), and
    // htmx's `HX-Current-URL` sends it to the server.
    if let Some(fragment) = fragment.strip_prefix('#') {
        out.push('#');
        out.push_str(&mask_pairs(fragment, extra));
    }
    scrub(&out, secrets)
}

/// `name=value&…` with the values of sensitive names masked.
fn mask_pairs(pairs: &str, extra: &[String]) -> String {
    pairs
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_sensitive(&decode_component(name), extra) => {
                format!("{name}={MASK}")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A percent-encoded query component as text (`+` is a space in forms).
fn decode_component(raw: &str) -> String {
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
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

    #[test]
    fn scrub_prefers_longer_secrets_and_finds_encoded_forms() {
        let secrets = vec![
            "abcd".to_string(),
            "abcdefgh".to_string(),
            "p@ss word".to_string(),
        ];
        assert_eq!(scrub("xabcdefghx", &secrets), format!("x{MASK}x"));
        assert_eq!(scrub("?pw=p%40ss%20word", &secrets), format!("?pw={MASK}"));
        assert_eq!(scrub("?pw=p%40ss+word", &secrets), format!("?pw={MASK}"));
    }

    /// Found when the masking fuzz target learnt to plant secrets as browsers encode them: a
    /// browser leaves `@` as it is in a path or query and encodes the space, so none of the
    /// fully encoded forms matched, and the report's URL and subject showed the secret.
    #[test]
    fn secrets_are_found_as_browsers_encode_them_in_urls() {
        let secrets = vec!["p@ss wörd's".to_string()];
        let url =
            "https://example.com/a/p@ss%20w%C3%B6rd's?x=p@ss%20w%C3%B6rd%27s#p@ss%20w%C3%B6rd's";
        assert_eq!(
            scrub(url, &secrets),
            format!("https://example.com/a/{MASK}?x={MASK}#{MASK}")
        );
        let parsed = url::Url::parse(&format!("https://example.com/a/{}", secrets[0])).unwrap();
        assert_eq!(
            scrub(parsed.as_str(), &secrets),
            format!("https://example.com/a/{MASK}")
        );
    }

    /// Found by `cargo fuzz run masking` (scrub was not idempotent): `user:pass@` was masked
    /// before the secrets, so a password holding a secret with an `@` or a space was cut there.
    #[test]
    fn url_passwords_are_masked_after_secrets() {
        let secrets = vec!["p@ss".to_string(), "two words".to_string()];
        let once = scrub(
            "postgres://app:p@ss@db/x and ftp://u:two wordsX@h/",
            &secrets,
        );
        assert_eq!(
            once,
            format!("postgres://app:{MASK}@db/x and ftp://u:{MASK}@h/")
        );
        assert_eq!(scrub(&once, &secrets), once);
    }

    #[test]
    fn account_routes_are_recognised() {
        for path in [
            "/users/login",
            "/users/signup",
            "/users/password-reset",
            "/users/password-reset/abc.def",
            "/users/password-change",
            "/users/login?next=/",
        ] {
            assert!(is_account_route(path), "{path}");
        }
        for path in ["/users/profile", "/users/loginx", "/clients/", "/"] {
            assert!(!is_account_route(path), "{path}");
        }
    }

    #[test]
    fn capability_tokens_in_paths_are_masked() {
        assert_eq!(
            mask_path("/users/password-reset/tok.sig"),
            format!("/users/password-reset/{MASK}")
        );
        assert_eq!(
            mask_path("/users/activate/tok/extra"),
            format!("/users/activate/{MASK}/extra")
        );
        assert_eq!(mask_path("/u/tok"), format!("/u/{MASK}"));
        assert_eq!(
            mask_path("/users/password-reset/"),
            "/users/password-reset/"
        );
        assert_eq!(mask_path("/clients/42"), "/clients/42");
    }

    #[test]
    fn urls_lose_passwords_tokens_and_sensitive_parameters() {
        let extra = vec!["iban".to_string()];
        let secrets = vec!["topsecretvalue".to_string()];
        let url =
            "https://bob:hunter2@example.com/u/tok?q=a+b&api_key=k1&IBAN=DE1&x=topsecretvalue#frag";
        assert_eq!(
            mask_url(url, &extra, &secrets),
            format!(
                "https://bob:{MASK}@example.com/u/{MASK}?q=a+b&api_key={MASK}&IBAN={MASK}&x={MASK}#frag"
            )
        );
        assert_eq!(
            mask_url("/clients/?csrf%5Ftoken=z&page=2", &[], &[]),
            format!("/clients/?csrf%5Ftoken={MASK}&page=2")
        );
        assert_eq!(
            mask_url("https://example.com", &[], &[]),
            "https://example.com"
        );
    }

    /// Found by `cargo fuzz run masking`: a `?` after a `#` is part of the fragment, whose
    /// parameters were shown as they were.
    #[test]
    fn parameters_in_fragments_are_masked() {
        assert_eq!(
            mask_url("https://example.com/clie#nts/?api_key=k1&q=x", &[], &[]),
            format!("https://example.com/clie#nts/?api_key={MASK}&q=x")
        );
        assert_eq!(
            mask_url("/clients/?page=2#access_token=abc&state=1&x", &[], &[]),
            format!("/clients/?page=2#access_token={MASK}&state=1&x")
        );
        assert_eq!(mask_url("/docs#section-2", &[], &[]), "/docs#section-2");
    }
}
