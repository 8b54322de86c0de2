//! Masking (SPEC §8): configured secrets, sensitive names and `user:pass@` never reach a report.
//!
//! The input is text (invalid UTF-8 is replaced). Its first line lists up to three secrets, by
//! tabs (one for each setting that holds one); each later line is one piece of a failed request:
//!   `@/path`          the URL path (the first such line; default `/clients/`)
//!   `?name=value`     a query parameter (form-encoded into the URL)
//!   `Name: value`     a header
//!   `name=value`      a form field
//!   anything else     a line of the error message (and of its cause chain and backtrace)
//! In any line, `\x01` stands for the next secret as it is, `\x02` for it percent-encoded,
//! `\x03` form-encoded, `\x04` and `\x05` as a browser writes it into a query and a fragment
//! (the ways a secret travels in URLs).
//!
//! Asserted:
//! - `scrub` and `mask_url` leave no secret (nor its encoded forms) anywhere in their output,
//!   and `scrub` is idempotent (up to the length of adjacent masks);
//! - `mask_url` masks the password of `scheme://user:password@` and keeps the rest;
//! - a name matching the SPEC pattern (or listed in SENSITIVE_FIELDS) is sensitive;
//! - in the whole report (text, HTML, subject) built from the request: no inserted secret
//!   survives, and no value of a sensitive field, header or query parameter (or of any field on
//!   an account route) appears. Both are judged against the same report built without the
//!   secret or value, so text that was there anyway (a secret `Time` in the template) is no
//!   finding.
//!
//! Secrets that contain `*` are scrubbed but not asserted on: the mask is made of asterisks, so
//! such a secret can appear next to a mask without ever having been in the input.
#![no_main]

use autosend::config::Secret;
use autosend::reporting::mask::{self, MASK};
use autosend::reporting::{ErrorDetails, ErrorReport, RawRequest, render_html, render_text};
use autosend_fuzz::{EXTRA_SENSITIVE as EXTRA, SETTINGS};
use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (first, rest) = text.split_once('\n').unwrap_or(("", &text));
    let secrets: Vec<String> = first
        .split('\t')
        .filter(|s| !s.is_empty())
        // As many as `render` has settings for.
        .take(3)
        .map(str::to_string)
        .collect();
    let lines: Vec<&str> = rest.split('\n').take(32).collect();

    check_scrub(rest, &secrets);
    check_userinfo(rest);
    for line in &lines {
        check_names(line);
    }
    check_report(&lines, &secrets);
});

/// The forms a secret travels in: as it is, percent-encoded, form-encoded, and as the `url`
/// crate (like a browser) writes it into a query and into a fragment.
fn forms(secret: &str) -> [String; 5] {
    let (mut query, mut fragment) = (secret.to_string(), secret.to_string());
    // A URL drops tabs and line ends anywhere and spaces and controls at its ends: what is
    // left is no longer the secret.
    if url_keeps(secret) {
        let mut url = url::Url::parse("https://example.com/").expect("a URL");
        url.set_query(Some(secret));
        query = url.query().unwrap_or_default().to_string();
        url.set_fragment(Some(secret));
        fragment = url.fragment().unwrap_or_default().to_string();
    }
    [
        secret.to_string(),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        query,
        fragment,
    ]
}

fn url_keeps(secret: &str) -> bool {
    !secret.contains(['\t', '\n', '\r']) && secret.trim_matches(|c: char| c <= ' ') == secret
}

/// The forms to look for in output: those of [`forms`], and the secret as the `url` crate
/// writes it into a path (when it is one path segment and no dot segment).
fn shown_forms(secret: &str) -> Vec<String> {
    let mut shown = forms(secret).to_vec();
    if url_keeps(secret)
        && !secret.contains(['/', '\\', '?', '#', '%'])
        && !secret.trim_matches('.').is_empty()
    {
        if let Ok(url) = url::Url::parse(&format!("https://example.com/{secret}")) {
            shown.push(url.path()[1..].to_string());
        }
    }
    shown
}

/// `text` with each marker replaced by the next secret, in the form the marker names; without
/// secrets (or for the control), markers vanish.
fn insert(text: &str, secrets: &[String], next: &mut usize) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let form = match c {
            '\x01' => 0,
            '\x02' => 1,
            '\x03' => 2,
            '\x04' => 3,
            '\x05' => 4,
            c => {
                out.push(c);
                continue;
            }
        };
        if !secrets.is_empty() {
            let secret = &secrets[*next % secrets.len()];
            *next += 1;
            out.push_str(&forms(secret)[form]);
        }
    }
    out
}

fn asserted(secret: &str) -> bool {
    !secret.is_empty() && !secret.contains('*')
}

fn check_scrub(text: &str, secrets: &[String]) {
    let input = insert(text, secrets, &mut 0);
    let out = mask::scrub(&input, secrets);
    let url = mask::mask_url(&input, &[], secrets);
    for secret in secrets.iter().filter(|s| asserted(s)) {
        for form in shown_forms(secret) {
            assert!(!out.contains(&form), "scrub left {form:?} in {out:?}");
            assert!(!url.contains(&form), "mask_url left {form:?} in {url:?}");
        }
    }
    if secrets.iter().all(|s| asserted(s)) {
        // Idempotent up to the length of masks: two masks side by side in a `user:pass@` are
        // one password the second time.
        assert_eq!(
            one_mask_per_run(&mask::scrub(&out, secrets)),
            one_mask_per_run(&out),
            "scrub is idempotent"
        );
    }
}

/// `text` with every run of 20 or more `*` made one mask.
fn one_mask_per_run(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut stars = 0;
    for c in text.chars().chain(std::iter::once('\0')) {
        if c == '*' {
            stars += 1;
            continue;
        }
        if stars >= MASK.len() {
            out.push_str(MASK);
        } else {
            out.extend(std::iter::repeat_n('*', stars));
        }
        stars = 0;
        out.push(c);
    }
    out.pop();
    out
}

/// `scheme://user:password@host/…`: the password is masked, nothing else changes.
fn check_userinfo(text: &str) {
    let mut fields = text.split('\t');
    let (Some(user), Some(password)) = (fields.next(), fields.next()) else {
        return;
    };
    // What a URL's userinfo may hold unencoded (WHATWG): no `/ ? # @`, no spaces or controls.
    let allowed = |c: &char| !c.is_whitespace() && !c.is_control() && !"/?#@".contains(*c);
    let user: String = user.chars().filter(allowed).filter(|c| *c != ':').collect();
    let password: String = password.chars().filter(allowed).collect();
    if password.is_empty() {
        return;
    }
    let url = format!("postgres://{user}:{password}@db.example.com:5432/app?sslmode=require");
    let expected = format!("postgres://{user}:{MASK}@db.example.com:5432/app?sslmode=require");
    assert_eq!(mask::mask_url(&url, &[], &[]), expected);
    assert_eq!(mask::scrub(&url, &[]), expected);
}

fn check_names(name: &str) {
    const WORDS: [&str; 12] = [
        "API",
        "AUTH",
        "TOKEN",
        "KEY",
        "SECRET",
        "PASS",
        "SIGNATURE",
        "COOKIE",
        "SESSION",
        "CSRF",
        "CREDENTIAL",
        "PRIVATE",
    ];
    let upper = name.to_ascii_uppercase();
    if WORDS.iter().any(|w| upper.contains(w)) {
        assert!(mask::is_sensitive(name, &[]), "{name:?}");
        assert_eq!(mask::masked_value(name, "value", &[]), MASK);
    }
    assert!(mask::is_sensitive(name, &[name.to_ascii_uppercase()]));
}

/// A request built from the input lines; `values` decides what sensitive values become.
struct Request {
    raw: RawRequest,
    message: Vec<String>,
    /// Values that must not show: of sensitive fields, headers and query parameters.
    hidden: Vec<String>,
}

/// What a control request leaves out.
#[derive(Clone, Copy, PartialEq)]
enum Without {
    Nothing,
    Secrets,
    SensitiveValues,
}

fn build(lines: &[&str], secrets: &[String], without: Without) -> Request {
    let none: Vec<String> = Vec::new();
    let secrets = if without == Without::Secrets {
        &none
    } else {
        secrets
    };
    let control = without == Without::SensitiveValues;
    let mut next = 0;
    let mut path = None;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut has_query = false;
    let mut form = Vec::new();
    let mut headers = Vec::new();
    let mut message = Vec::new();
    let mut hidden = Vec::new();
    let extra = [EXTRA.to_string()];
    let mut pairs = Vec::new();
    // Lines are split into names and values before secrets go in: a secret is a value (or a
    // name) sent in one piece, it does not decide how the request is cut up.
    for line in lines {
        let mut pair = |kind, name, value| {
            let name = insert(name, secrets, &mut next);
            let value = insert(value, secrets, &mut next);
            pairs.push((kind, name, value));
        };
        if let Some(p) = line.strip_prefix('@') {
            let p = insert(p, secrets, &mut next);
            path.get_or_insert(p);
        } else if let Some(rest) = line.strip_prefix('?') {
            let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
            pair('?', name, value);
        } else if let Some((name, value)) = line.split_once(": ") {
            pair(':', name, value);
        } else if let Some((name, value)) = line.split_once('=') {
            pair('=', name, value);
        } else {
            message.push(insert(line, secrets, &mut next));
        }
    }
    // A `?` or `#` in the path would turn the query into something else.
    let path = path
        .unwrap_or_else(|| "/clients/".to_string())
        .replace('?', "%3F")
        .replace('#', "%23");
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let account = mask::is_account_route(&path);
    for (kind, name, value) in pairs {
        let sensitive = mask::is_sensitive(&name, &extra) || (kind == '=' && account);
        let value = if kind == ':' && name.eq_ignore_ascii_case("cookie") {
            // Cookie names are shown, their values never.
            let cookies = value
                .split(';')
                .map(|c| c.split_once('=').unwrap_or((c, "")));
            let mut names = Vec::new();
            for (cookie, v) in cookies {
                hidden.push(v.to_string());
                names.push(format!("{cookie}="));
            }
            if control { names.join(";") } else { value }
        } else if sensitive {
            hidden.push(value.clone());
            if control { String::new() } else { value }
        } else {
            value
        };
        match kind {
            '?' => {
                has_query = true;
                query.append_pair(&name, &value);
            }
            ':' => headers.push((name, value)),
            _ => form.push((name, value)),
        }
    }
    let mut url = format!("https://example.com{path}");
    if has_query {
        url.push('?');
        url.push_str(&query.finish());
    }
    Request {
        raw: RawRequest {
            method: "POST".into(),
            url,
            route: "/clients/".into(),
            form,
            headers,
            user: Some("ann@example.com".into()),
            peer: None,
            request_id: "rid-fuzz".into(),
        },
        message,
        hidden,
    }
}

/// Text, HTML and subject of the report of `request` under `secrets`.
fn render(request: Request, secrets: &[String]) -> String {
    let mut settings = SETTINGS.clone();
    let mut configured = secrets.iter().filter(|s| s.len() >= 4);
    if let Some(s) = configured.next() {
        settings.secret_key = Secret::new(s.clone());
    }
    settings.smtp.password = configured.next().map(|s| Secret::new(s.clone()));
    settings.metrics_token = configured.next().map(|s| Secret::new(s.clone()));
    let message = request.message.join("\n");
    let details = ErrorDetails {
        error_type: "anyhow::Error".into(),
        message: message.clone(),
        chain: request.message.clone(),
        backtrace: message,
        ..ErrorDetails::default()
    };
    let mut report = ErrorReport::for_request(details, request.raw, &settings);
    // Fixed, so a report and its control differ only by what was inserted.
    report.occurred_at = time::OffsetDateTime::UNIX_EPOCH;
    report.host = "fuzz-host".into();
    format!(
        "{}\n{}\n{}",
        report.subject(&settings),
        render_text(&report),
        render_html(&report)
    )
}

fn check_report(lines: &[&str], secrets: &[String]) {
    let request = build(lines, secrets, Without::Nothing);
    let hidden = request.hidden.clone();
    let out = render(request, secrets);
    let configured = secrets.iter().filter(|s| s.len() >= 4 && asserted(s));
    let secret_forms: Vec<String> = configured.flat_map(|s| shown_forms(s)).collect();
    let control = render(build(lines, secrets, Without::Secrets), secrets);
    assert_not_shown(&out, &control, secret_forms);
    let control = render(build(lines, secrets, Without::SensitiveValues), secrets);
    assert_not_shown(&out, &control, hidden.into_iter().filter(|v| asserted(v)));
}

/// None of `needles` (as text or HTML-escaped) is in `out`, unless `control` has it too.
fn assert_not_shown(out: &str, control: &str, needles: impl IntoIterator<Item = String>) {
    for needle in needles {
        for shown in [needle.clone(), maud::html! { (needle) }.into_string()] {
            if control.contains(&shown) {
                continue;
            }
            assert!(!out.contains(&shown), "report shows {shown:?}:\n{out}");
        }
    }
}
