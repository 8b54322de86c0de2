//! Masking of sensitive values (SPEC §8), shared by error reports, the DEBUG page and logs:
//! the rules for names, URLs, paths and free text, and [`Masker`], which applies them to
//! everything a report is built from.

use std::sync::OnceLock;

use crate::config::Settings;
use crate::reporting::report::{RawRequest, RequestInfo};
use crate::reporting::subject;

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

/// The masking rules of SPEC §8 applied to a report's inputs, with what they need from the
/// settings: [`crate::reporting::ErrorReport`]'s constructors run everything through it.
pub(crate) struct Masker {
    secrets: Vec<String>,
    extra: Vec<String>,
}

impl Masker {
    pub(crate) fn new(settings: &Settings) -> Self {
        Self {
            secrets: settings.secret_values(),
            extra: settings.sensitive_fields.clone(),
        }
    }

    /// Free text: secrets and `user:pass@` scrubbed.
    pub(crate) fn text(&self, text: &str) -> String {
        scrub(text, &self.secrets)
    }

    /// A (name, value) pair: the value masked when the name is sensitive or `all` is set.
    pub(crate) fn pair(&self, name: &str, value: &str, all: bool) -> (String, String) {
        let value = if all || is_sensitive(name, &self.extra) {
            MASK.to_string()
        } else {
            self.text(value)
        };
        (self.text(name), value)
    }

    pub(crate) fn url(&self, url: &str) -> String {
        mask_url(url, &self.extra, &self.secrets)
    }

    pub(crate) fn request(&self, raw: &RawRequest, settings: &Settings) -> RequestInfo {
        let (path, query) = split_url(&raw.url);
        let query = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| self.pair(&k, &v, false))
            .collect();
        let account = is_account_route(&path);
        let form = raw
            .form
            .iter()
            .map(|(k, v)| self.pair(k, v, account))
            .collect();
        let headers = raw
            .headers
            .iter()
            .map(|(name, value)| {
                if is_url_header(name) && !is_sensitive(name, &self.extra) {
                    (self.text(name), self.url(value))
                } else {
                    self.pair(name, value, false)
                }
            })
            .collect();
        let cookie_names = raw
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, value)| value.split(';'))
            .filter_map(|pair| {
                let name = pair.split('=').next().unwrap_or_default().trim();
                (!name.is_empty()).then(|| self.text(name))
            })
            .collect();
        let client_ip = raw.peer.map(|peer| {
            subject::client_ip(
                peer,
                raw.header("x-forwarded-for").as_deref(),
                &settings.trusted_proxies,
            )
        });
        RequestInfo {
            method: self.text(&raw.method),
            url: self.url(&raw.url),
            path: self.text(&mask_path(&path)),
            route: self.text(&raw.route),
            query,
            form,
            cookie_names,
            headers,
            user: raw
                .user
                .as_deref()
                .map(|u| self.text(u))
                .unwrap_or_else(|| "-".to_string()),
            client_ip,
            request_id: self.text(&raw.request_id),
        }
    }
}

/// Headers whose values are URLs that may carry tokens or sensitive parameters.
fn is_url_header(name: &str) -> bool {
    ["referer", "origin", "location", "hx-current-url"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// (path, query) of an absolute URL or of a bare `/path?query`.
fn split_url(url: &str) -> (String, String) {
    if let Ok(parsed) = url::Url::parse(url) {
        return (
            parsed.path().to_string(),
            parsed.query().unwrap_or_default().to_string(),
        );
    }
    let without_fragment = url.split('#').next().unwrap_or_default();
    match without_fragment.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (without_fragment.to_string(), String::new()),
    }
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

/// The rules as a built report shows them (masking is applied when a report is built).
#[cfg(test)]
mod report_tests {
    use proptest::prelude::*;

    use super::MASK;
    use crate::reporting::testing::{details, raw, request_info, settings_with, value};
    use crate::reporting::{
        BackgroundTask, ErrorDetails, ErrorReport, RawRequest, render_html, render_text,
    };

    const KEY: &str = crate::reporting::testing::SECRET_KEY;

    #[test]
    fn sensitive_names_are_masked_everywhere() {
        let settings = settings_with(&[("SENSITIVE_FIELDS", "iban, X-Tenant")]);
        let mut req = raw("https://example.com/clients/7?q=bob&access_token=t0k&page=2");
        req.form = vec![
            ("full_name".into(), "Bob".into()),
            ("password".into(), "hunter2".into()),
            ("csrf_token".into(), "abc".into()),
            ("IBAN".into(), "DE00 1234".into()),
        ];
        req.headers = vec![
            ("Accept".into(), "text/html".into()),
            ("Authorization".into(), "Bearer xyz".into()),
            ("X-Api-Key".into(), "k".into()),
            ("X-Tenant".into(), "acme".into()),
            (
                "Cookie".into(),
                "sessionid=s3ss; csrftoken=c; theme=dark".into(),
            ),
        ];
        let report = ErrorReport::for_request(details("boom"), req, &settings);
        let info = request_info(&report);
        assert_eq!(value(&info.query, "q"), "bob");
        assert_eq!(value(&info.query, "access_token"), MASK);
        assert_eq!(value(&info.form, "full_name"), "Bob");
        assert_eq!(value(&info.form, "password"), MASK);
        assert_eq!(value(&info.form, "csrf_token"), MASK);
        assert_eq!(value(&info.form, "IBAN"), MASK);
        assert_eq!(value(&info.headers, "Accept"), "text/html");
        assert_eq!(value(&info.headers, "Authorization"), MASK);
        assert_eq!(value(&info.headers, "X-Api-Key"), MASK);
        assert_eq!(value(&info.headers, "X-Tenant"), MASK);
        // The cookie header's value is never shown; its names are.
        assert_eq!(value(&info.headers, "Cookie"), MASK);
        assert_eq!(info.cookie_names, vec!["sessionid", "csrftoken", "theme"]);
        assert_eq!(
            info.url,
            format!("https://example.com/clients/7?q=bob&access_token={MASK}&page=2")
        );
        assert_eq!(value(&report.settings, "SECRET_KEY"), MASK);
        let text = render_text(&report);
        for leaked in ["hunter2", "Bearer xyz", "s3ss", "t0k", "DE00", "acme"] {
            assert!(!text.contains(leaked), "{leaked} leaked:\n{text}");
        }
    }

    #[test]
    fn account_route_forms_are_masked_whole() {
        let settings = settings_with(&[]);
        for path in [
            "/users/login",
            "/users/signup",
            "/users/password-reset",
            "/users/password-change",
        ] {
            let mut req = raw(&format!("https://example.com{path}"));
            req.form = vec![
                ("email".into(), "bob@example.com".into()),
                ("full_name".into(), "Bob".into()),
            ];
            let report = ErrorReport::for_request(details("x"), req, &settings);
            let info = request_info(&report);
            assert_eq!(value(&info.form, "email"), MASK, "{path}");
            assert_eq!(value(&info.form, "full_name"), MASK, "{path}");
        }
        // Elsewhere only sensitive names are.
        let mut req = raw("https://example.com/users/profile/edit");
        req.form = vec![("full_name".into(), "Bob".into())];
        let report = ErrorReport::for_request(details("x"), req, &settings);
        assert_eq!(value(&request_info(&report).form, "full_name"), "Bob");
    }

    #[test]
    fn urls_lose_passwords_and_capability_tokens() {
        let settings = settings_with(&[]);
        let mut req = raw("https://bob:pa55w0rd@example.com/users/password-reset/abc.sig");
        req.headers = vec![(
            "Referer".into(),
            "https://example.com/u/unsub-token?secret=1".into(),
        )];
        let report = ErrorReport::for_request(details("x"), req, &settings);
        let info = request_info(&report);
        assert_eq!(
            info.url,
            format!("https://bob:{MASK}@example.com/users/password-reset/{MASK}")
        );
        assert_eq!(info.path, format!("/users/password-reset/{MASK}"));
        assert_eq!(
            value(&info.headers, "Referer"),
            format!("https://example.com/u/{MASK}?secret={MASK}")
        );
        let subject = report.subject(&settings);
        assert!(!subject.contains("abc.sig"), "{subject}");
    }

    #[test]
    fn configured_secrets_are_scrubbed_from_every_string() {
        let settings = settings_with(&[("SMTP_PASSWORD", "smtp-pass-value")]);
        let mut req = raw(&format!("https://example.com/clients/1?x={KEY}"));
        req.headers = vec![("X-Debug".into(), format!("v={KEY}"))];
        req.form = vec![("note".into(), "smtp-pass-value".into())];
        let details = ErrorDetails {
            error_type: "anyhow::Error".into(),
            message: format!("cannot sign with {KEY}"),
            chain: vec![
                format!("cannot sign with {KEY}"),
                "smtp-pass-value rejected".into(),
            ],
            backtrace: format!("frame {KEY}"),
            ..ErrorDetails::default()
        };
        let report = ErrorReport::for_request(details, req, &settings);
        for rendered in [render_text(&report), render_html(&report)] {
            assert!(!rendered.contains(KEY));
            assert!(!rendered.contains("smtp-pass-value"));
            assert!(rendered.contains(MASK));
        }
        // Mail-style text of an SMTP URL with a password is masked even when not configured.
        let bg = ErrorReport::for_background(
            ErrorDetails::from_panic("connect smtp://u:other@mx failed", "", ""),
            BackgroundTask {
                task: "delivery.send".into(),
                run_id: Some(3),
                mailing_id: Some(9),
            },
            &settings,
        );
        assert!(!render_text(&bg).contains("other@"));
    }

    #[test]
    fn client_ip_uses_trusted_proxies() {
        let settings = settings_with(&[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("INTERNAL_IPS", "10.0.0.0/8"),
        ]);
        let mut req = raw("https://example.com/clients/1");
        req.peer = Some("127.0.0.1".parse().unwrap());
        req.headers = vec![("X-Forwarded-For".into(), "10.2.3.4".into())];
        let report = ErrorReport::for_request(details("x"), req, &settings);
        assert_eq!(
            request_info(&report).client_ip,
            Some("10.2.3.4".parse().unwrap())
        );
        assert_eq!(
            report.subject(&settings),
            "[autosend] ERROR (internal IP): Internal Server Error: /clients/1"
        );
    }

    /// Text around a secret, so it sits anywhere inside a value.
    fn around() -> impl Strategy<Value = (String, String)> {
        ("[ -~]{0,12}", "[ -~]{0,12}")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn no_configured_secret_survives_rendering(
            secret in "[A-Za-z0-9]{12,24}",
            (pre, post) in around(),
            slot in 0usize..12,
        ) {
            let settings = settings_with(&[("SMTP_PASSWORD", secret.as_str())]);
            let planted = format!("{pre}{secret}{post}");
            // The secret goes into one field (or all, for slot 11); the rest stays ordinary.
            let pick = |n: usize| if slot == n || slot == 11 { planted.clone() } else { format!("v{n}") };
            let encoded: String = url::form_urlencoded::byte_serialize(planted.as_bytes()).collect();
            let url = if slot == 3 || slot == 11 {
                format!("https://example.com/x/{encoded}?p={encoded}")
            } else {
                "https://example.com/x".to_string()
            };
            let req = RawRequest {
                method: pick(0),
                url,
                route: pick(1),
                form: vec![(pick(2), pick(4))],
                headers: vec![
                    (pick(5), pick(6)),
                    ("Cookie".into(), format!("{}={}", pick(7), pick(7))),
                    ("Referer".into(), pick(8)),
                ],
                user: Some(pick(9)),
                peer: None,
                request_id: pick(10),
            };
            let details = ErrorDetails {
                error_type: pick(1),
                message: pick(2),
                chain: vec![pick(3), pick(4)],
                backtrace: pick(5),
                ..ErrorDetails::default()
            };
            let report = ErrorReport::for_request(details.clone(), req, &settings);
            let text = render_text(&report);
            let html = render_html(&report);
            prop_assert!(!text.contains(&secret), "text leaked the secret:\n{}", text);
            prop_assert!(!html.contains(&secret), "html leaked the secret");
            prop_assert!(!report.subject(&settings).contains(&secret));
            let background = ErrorReport::for_background(
                details,
                BackgroundTask { task: pick(6), run_id: None, mailing_id: None },
                &settings,
            );
            prop_assert!(!render_text(&background).contains(&secret));
            prop_assert!(!render_html(&background).contains(&secret));
        }
    }
}
