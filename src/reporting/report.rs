//! The error report (SPEC §8): one model, masked once when built, rendered as text and HTML.
//!
//! Owns: what a report holds ([`ErrorReport`], [`RequestInfo`]), the raw inputs it is built
//! from ([`ErrorDetails`], [`RawRequest`], [`BackgroundTask`]), every masking rule applied on
//! the way in, and the two renderings. Nothing unmasked can reach a renderer: a report can
//! only be built by this module's constructors, which mask before they return.

use std::backtrace::Backtrace;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::Settings;
use crate::reporting::mask::{self, MASK};
use crate::reporting::{fingerprint, subject};

/// What failed, before masking: filled from an `anyhow::Error`, any error, or a panic.
#[derive(Debug, Clone, Default)]
pub struct ErrorDetails {
    /// A type name such as `sqlx::Error::RowNotFound`, or `panic`.
    pub error_type: String,
    /// The outermost message.
    pub message: String,
    /// The messages of the error and each cause, outermost first.
    pub chain: Vec<String>,
    pub backtrace: String,
    /// A backtrace captured but not resolved yet, used when `backtrace` is empty. Resolving
    /// (symbolising) takes long, so it happens when the report is built, off the request path.
    pub captured: Option<Arc<Backtrace>>,
}

impl ErrorDetails {
    /// From an `anyhow::Error`; the backtrace is anyhow's own when it captured one
    /// (replace it with [`with_backtrace`](Self::with_backtrace) when you hold a better one).
    pub fn from_anyhow(error: &anyhow::Error) -> Self {
        let backtrace = match error.backtrace().status() {
            std::backtrace::BacktraceStatus::Captured => error.backtrace().to_string(),
            _ => String::new(),
        };
        Self {
            error_type: error_type_of(error),
            message: error.to_string(),
            chain: error.chain().map(|e| e.to_string()).collect(),
            backtrace,
            captured: None,
        }
    }

    /// From an `anyhow::Error` with a backtrace captured by the caller, left unresolved:
    /// for the request path, where resolving anyhow's own (when `RUST_BACKTRACE` makes it
    /// capture one) would take the failing request hundreds of milliseconds.
    pub fn from_anyhow_with(error: &anyhow::Error, backtrace: Arc<Backtrace>) -> Self {
        Self {
            error_type: error_type_of(error),
            message: error.to_string(),
            chain: error.chain().map(|e| e.to_string()).collect(),
            backtrace: String::new(),
            captured: Some(backtrace),
        }
    }

    /// From any error, walking its `source()` chain.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = Vec::new();
        let mut next = Some(error);
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        Self {
            error_type: "error".to_string(),
            message: error.to_string(),
            chain,
            backtrace: String::new(),
            captured: None,
        }
    }

    /// From a panic's message, location (`file:line:col`) and backtrace.
    pub fn from_panic(message: &str, location: &str, backtrace: &str) -> Self {
        let mut chain = vec![format!("panic: {message}")];
        if !location.is_empty() {
            chain.push(format!("at {location}"));
        }
        Self {
            error_type: "panic".to_string(),
            message: message.to_string(),
            chain,
            backtrace: backtrace.to_string(),
            captured: None,
        }
    }

    /// From what the panic hook kept ([`crate::panics`]).
    pub fn from_panic_details(panic: &crate::panics::PanicDetails) -> Self {
        let mut details = Self::from_panic(&panic.message, &panic.location, "");
        details.captured = panic.backtrace.clone();
        details
    }

    /// A captured backtrace, resolved only when the report is built.
    pub fn with_captured_backtrace(mut self, backtrace: Arc<Backtrace>) -> Self {
        self.captured = Some(backtrace);
        self
    }

    /// The backtrace as text, resolving a captured one (slow: not on a request's path
    /// unless the request shows it, as the DEBUG page does).
    pub fn backtrace_text(&self) -> String {
        match (&self.captured, self.backtrace.is_empty()) {
            (Some(captured), true) => captured.to_string(),
            _ => self.backtrace.clone(),
        }
    }

    pub fn with_backtrace(mut self, backtrace: impl Into<String>) -> Self {
        self.backtrace = backtrace.into();
        self
    }

    pub fn with_type(mut self, error_type: impl Into<String>) -> Self {
        self.error_type = error_type.into();
        self
    }
}

/// The type of an `anyhow::Error` as well as it can be told: the root cause is matched
/// against the error types autosend meets (`sqlx::Error::RowNotFound`,
/// `std::io::Error(NotFound)`, …); anything else is `anyhow::Error`.
pub fn error_type_of(error: &anyhow::Error) -> String {
    /// The variant name at the start of a `Debug` form: `RowNotFound`, `Database(…)` → `Database`.
    fn variant(debug: &str) -> &str {
        let end = debug
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(debug.len());
        &debug[..end]
    }
    for cause in error.chain().rev() {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            return format!("sqlx::Error::{}", variant(&format!("{e:?}")));
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            return format!("std::io::Error({:?})", e.kind());
        }
        // The root cause's type by name; the list is what autosend's dependencies raise.
        macro_rules! named {
            ($($ty:ty),+ $(,)?) => {
                $(if cause.is::<$ty>() {
                    return stringify!($ty).replace(' ', "");
                })+
            };
        }
        named!(
            lettre::transport::smtp::Error,
            lettre::error::Error,
            lettre::address::AddressError,
            deadpool_redis::redis::RedisError,
            deadpool_redis::PoolError,
            serde_json::Error,
            tokio::time::error::Elapsed,
            tokio::task::JoinError,
            std::num::ParseIntError,
            url::ParseError,
            time::error::ComponentRange,
        );
    }
    "anyhow::Error".to_string()
}

/// A request as the edge saw it, before masking.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub method: String,
    /// The full URL (`https://host/path?query`); a bare `/path?query` is accepted too.
    pub url: String,
    /// The route template (`/clients/{id}`); empty when no route matched.
    pub route: String,
    /// Decoded form fields of a urlencoded body, in order (see [`RawRequest::parse_form`]).
    pub form: Vec<(String, String)>,
    /// Every header, in order; `Cookie` included (only its names reach the report).
    pub headers: Vec<(String, String)>,
    /// The logged-in user's e-mail, if any.
    pub user: Option<String>,
    /// The TCP peer, when known.
    pub peer: Option<IpAddr>,
    pub request_id: String,
}

impl RawRequest {
    /// The fields of an `application/x-www-form-urlencoded` body.
    pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
        url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// A scheduler or delivery task that failed (no request).
#[derive(Debug, Clone, Default)]
pub struct BackgroundTask {
    /// What ran, e.g. `scheduler.tick` or `delivery.send`.
    pub task: String,
    pub run_id: Option<i64>,
    pub mailing_id: Option<i64>,
}

/// The request section of a report, masked.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub method: String,
    /// Full URL, masked.
    pub url: String,
    /// Path, masked (capability tokens hidden).
    pub path: String,
    /// Route template.
    pub route: String,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub cookie_names: Vec<String>,
    pub headers: Vec<(String, String)>,
    /// The user's e-mail, or `-`.
    pub user: String,
    pub client_ip: Option<IpAddr>,
    pub request_id: String,
}

/// Where a report comes from.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one report per failure, already boxed in the queue; unboxed matches read better"
)]
pub enum ReportSource {
    Request(RequestInfo),
    Background {
        task: String,
        run_id: Option<i64>,
        mailing_id: Option<i64>,
    },
}

/// A masked error report, ready to render. Built only by [`ErrorReport::for_request`] and
/// [`ErrorReport::for_background`].
#[derive(Debug, Clone)]
#[allow(
    clippy::manual_non_exhaustive,
    reason = "the private field keeps construction inside this module, where masking happens; \
              #[non_exhaustive] would still let the rest of the crate build an unmasked report"
)]
pub struct ErrorReport {
    pub fingerprint: String,
    pub error_type: String,
    pub message: String,
    pub chain: Vec<String>,
    pub backtrace: String,
    pub occurred_at: OffsetDateTime,
    /// The machine that saw the error.
    pub host: String,
    pub version: String,
    /// Settings as (name, value), masked.
    pub settings: Vec<(String, String)>,
    pub source: ReportSource,
    /// Private: a report cannot be built around the masking constructors.
    _masked: (),
}

impl ErrorReport {
    /// A report of a failed request, with every masking rule applied.
    pub fn for_request(details: ErrorDetails, request: RawRequest, settings: &Settings) -> Self {
        let masker = Masker::new(settings);
        let info = masker.request(&request, settings);
        let route = info.route.clone();
        masker.report(details, ReportSource::Request(info), &route, settings)
    }

    /// A report of a failed background task (scheduler, delivery).
    pub fn for_background(
        details: ErrorDetails,
        task: BackgroundTask,
        settings: &Settings,
    ) -> Self {
        let masker = Masker::new(settings);
        let name = masker.text(&task.task);
        let route = format!("task:{name}");
        let source = ReportSource::Background {
            task: name,
            run_id: task.run_id,
            mailing_id: task.mailing_id,
        };
        masker.report(details, source, &route, settings)
    }

    /// The request id, or `-` for a background task.
    pub fn request_id(&self) -> &str {
        match &self.source {
            ReportSource::Request(info) => &info.request_id,
            ReportSource::Background { .. } => "-",
        }
    }

    /// The route template, or `task:{name}` for a background task (for grouping).
    pub fn route(&self) -> String {
        match &self.source {
            ReportSource::Request(info) => info.route.clone(),
            ReportSource::Background { task, .. } => format!("task:{task}"),
        }
    }

    /// The first line of the report: `Internal Server Error: {path}` or the task.
    pub fn title(&self) -> String {
        match &self.source {
            ReportSource::Request(info) => format!("Internal Server Error: {}", info.path),
            ReportSource::Background { task, .. } => format!("Background task failed: {task}"),
        }
    }

    /// The e-mail subject of SPEC §8 (request) or a background-task subject.
    pub fn subject(&self, settings: &Settings) -> String {
        match &self.source {
            ReportSource::Request(info) => {
                let internal = info
                    .client_ip
                    .is_some_and(|ip| subject::is_internal(ip, &settings.internal_ips));
                subject::error_subject(&settings.email_subject_prefix, internal, &info.path)
            }
            ReportSource::Background { task, .. } => {
                subject::background_subject(&settings.email_subject_prefix, task)
            }
        }
    }
}

/// The masking rules of SPEC §8, with what they need from the settings.
struct Masker {
    secrets: Vec<String>,
    extra: Vec<String>,
}

impl Masker {
    fn new(settings: &Settings) -> Self {
        Self {
            secrets: settings.secret_values(),
            extra: settings.sensitive_fields.clone(),
        }
    }

    /// Free text: secrets and `user:pass@` scrubbed.
    fn text(&self, text: &str) -> String {
        mask::scrub(text, &self.secrets)
    }

    /// A (name, value) pair: the value masked when the name is sensitive or `all` is set.
    fn pair(&self, name: &str, value: &str, all: bool) -> (String, String) {
        let value = if all || mask::is_sensitive(name, &self.extra) {
            MASK.to_string()
        } else {
            self.text(value)
        };
        (self.text(name), value)
    }

    fn url(&self, url: &str) -> String {
        mask::mask_url(url, &self.extra, &self.secrets)
    }

    fn request(&self, raw: &RawRequest, settings: &Settings) -> RequestInfo {
        let (path, query) = split_url(&raw.url);
        let query = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| self.pair(&k, &v, false))
            .collect();
        let account = mask::is_account_route(&path);
        let form = raw
            .form
            .iter()
            .map(|(k, v)| self.pair(k, v, account))
            .collect();
        let headers = raw
            .headers
            .iter()
            .map(|(name, value)| {
                if is_url_header(name) && !mask::is_sensitive(name, &self.extra) {
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
            path: self.text(&mask::mask_path(&path)),
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

    fn report(
        &self,
        details: ErrorDetails,
        source: ReportSource,
        route: &str,
        settings: &Settings,
    ) -> ErrorReport {
        let error_type = self.text(&details.error_type);
        let message = self.text(&details.message);
        let backtrace = self.text(&compact_backtrace(&details.backtrace_text()));
        let mut chain: Vec<String> = details.chain.iter().map(|c| self.text(c)).collect();
        if chain.is_empty() {
            chain.push(message.clone());
        }
        // The whole chain tells bugs apart better than the outermost context alone.
        let fingerprint =
            fingerprint::fingerprint(&error_type, &chain.join(": "), &backtrace, route);
        let settings_pairs = settings
            .report_pairs()
            .into_iter()
            .map(|(name, value)| self.pair(name, &value, false))
            .collect();
        ErrorReport {
            fingerprint,
            error_type,
            message,
            chain,
            backtrace,
            occurred_at: OffsetDateTime::now_utc(),
            host: self.text(host_name()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            settings: settings_pairs,
            source,
            _masked: (),
        }
    }
}

/// Frames at the top of every backtrace that only show how it was captured.
const CAPTURE_PREFIXES: &[&str] = &[
    "std::backtrace",
    "std::panicking",
    "std::panic::",
    "core::panicking",
    "__rustc::",
    "rust_begin_unwind",
    "anyhow::",
    "<anyhow::",
    "autosend::web::error::",
    "<autosend::web::error::",
    "autosend::panics::",
    "autosend::reporting::",
];

/// autosend frames that only carry a request to its handler (the middleware stack).
const PLUMBING: &[&str] = &[
    "autosend::web::middleware::",
    "autosend::web::server::",
    "autosend::web::auth::load_user",
    "autosend::telemetry::",
];

/// A backtrace without the frames that never help: capture machinery at the top, and the
/// middleware and runtime (tokio, poem, std) below the outermost autosend frame that is not
/// middleware (the handler or task), each replaced by a line
/// saying how many were left out. Frames between (a dependency autosend called) stay. A
/// backtrace without autosend frames, or not in std's format, is kept whole.
pub fn compact_backtrace(backtrace: &str) -> String {
    // A frame is its "N: name" line and the "at file:line" lines under it.
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in backtrace.lines() {
        let is_head = line
            .trim_start()
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        match frames.last_mut() {
            Some(frame) if !is_head => frame.push(line),
            _ if is_head => frames.push(vec![line]),
            _ => return backtrace.to_string(),
        }
    }
    let name = |frame: &Vec<&str>| {
        frame[0]
            .trim_start()
            .split_once(": ")
            .map(|(_, name)| name.to_string())
            .unwrap_or_default()
    };
    let own = |f: &Vec<&str>| name(f).contains("autosend::");
    let plumbing = |f: &Vec<&str>| {
        let name = name(f);
        PLUMBING.iter().any(|p| name.contains(p))
    };
    // The handler (or task) is the last frame of ours that is not middleware; an error raised
    // in the middleware itself keeps the middleware.
    let Some(last_own) = frames
        .iter()
        .rposition(|f| own(f) && !plumbing(f))
        .or_else(|| frames.iter().rposition(own))
    else {
        return backtrace.to_string();
    };
    let first_kept = frames[..last_own]
        .iter()
        .position(|f| {
            let name = name(f);
            !CAPTURE_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .unwrap_or(last_own);
    let mut out = String::new();
    if first_kept > 0 {
        out.push_str(&format!("      … {first_kept} capture frames left out\n"));
    }
    for frame in &frames[first_kept..=last_own] {
        for line in frame {
            out.push_str(line);
            out.push('\n');
        }
    }
    let below = frames.len() - last_own - 1;
    if below > 0 {
        out.push_str(&format!(
            "      … {below} middleware and runtime frames left out\n"
        ));
    }
    out
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

/// This machine's name, looked up once.
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".to_string())
    })
}

/// `2026-11-20T12:00:00.123Z`.
pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at
        .replace_nanosecond(at.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// The plain-text report: a title line, then one section per kind of detail.
pub fn render_text(report: &ErrorReport) -> String {
    let mut out = String::new();
    let title = report.title();
    out.push_str(&title);
    out.push('\n');
    out.push_str(&"=".repeat(title.chars().count().min(72)));
    out.push_str("\n\n");

    for (label, value) in summary_rows(report) {
        out.push_str(&format!("{:<15} {}\n", format!("{label}:"), indent(&value)));
    }

    section(&mut out, "Cause chain (outermost first)");
    for (i, cause) in report.chain.iter().enumerate() {
        out.push_str(&format!("{i:>3}: {}\n", indent(cause)));
    }

    section(&mut out, "Backtrace");
    if report.backtrace.trim().is_empty() {
        out.push_str("(not captured)\n");
    } else {
        out.push_str(report.backtrace.trim_end());
        out.push('\n');
    }

    if let ReportSource::Request(info) = &report.source {
        pairs_section(&mut out, "Query parameters", &info.query, " = ");
        pairs_section(&mut out, "Form fields", &info.form, " = ");
        section(&mut out, "Cookies (names only)");
        if info.cookie_names.is_empty() {
            out.push_str("(none)\n");
        } else {
            out.push_str(&info.cookie_names.join(", "));
            out.push('\n');
        }
        pairs_section(&mut out, "Headers", &info.headers, ": ");
    }
    pairs_section(&mut out, "Settings", &report.settings, " = ");
    out
}

/// The (label, value) rows at the top of both renderings.
fn summary_rows(report: &ErrorReport) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("Error", report.error_type.clone()),
        ("Message", report.message.clone()),
        ("Time", format_time(report.occurred_at)),
        ("Host", report.host.clone()),
        ("Version", report.version.clone()),
        ("Fingerprint", report.fingerprint.clone()),
    ];
    match &report.source {
        ReportSource::Request(info) => rows.extend([
            ("Request method", info.method.clone()),
            ("Request URL", info.url.clone()),
            ("Route", info.route.clone()),
            ("Request ID", info.request_id.clone()),
            ("User", info.user.clone()),
            ("Client IP", ip_text(info.client_ip)),
        ]),
        ReportSource::Background {
            task,
            run_id,
            mailing_id,
        } => rows.extend([
            ("Task", task.clone()),
            ("Mailing ID", id_text(*mailing_id)),
            ("Run ID", id_text(*run_id)),
        ]),
    }
    rows
}

fn section(out: &mut String, name: &str) {
    out.push('\n');
    out.push_str(name);
    out.push('\n');
    out.push_str(&"-".repeat(name.chars().count()));
    out.push('\n');
}

fn pairs_section(out: &mut String, name: &str, pairs: &[(String, String)], sep: &str) {
    section(out, name);
    if pairs.is_empty() {
        out.push_str("(none)\n");
    }
    for (k, v) in pairs {
        out.push_str(&format!("{k}{sep}{}\n", indent(v)));
    }
}

/// Continuation lines of a multi-line value, indented under it.
fn indent(value: &str) -> String {
    value.replace('\n', "\n    ")
}

fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into())
}

fn id_text(id: Option<i64>) -> String {
    id.map(|id| id.to_string()).unwrap_or_else(|| "-".into())
}

const BODY: &str = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;\
                    color:#222;background:#fff;margin:0;padding:16px;";
const H1: &str = "font-size:20px;margin:0 0 12px 0;color:#a40000;";
const H2: &str = "font-size:16px;margin:20px 0 6px 0;border-bottom:1px solid #ddd;";
const TABLE: &str = "border-collapse:collapse;width:100%;font-size:13px;";
const TH: &str = "text-align:left;vertical-align:top;padding:3px 8px;background:#f4f4f4;\
                  border:1px solid #ddd;white-space:nowrap;width:1%;";
const TD: &str = "vertical-align:top;padding:3px 8px;border:1px solid #ddd;\
                  font-family:Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all;";
const PRE: &str = "font-family:Menlo,Consolas,monospace;font-size:12px;background:#f8f8f8;\
                   border:1px solid #ddd;padding:8px;white-space:pre-wrap;word-break:break-all;";
const NOTE: &str =
    "background:#fff3cd;border:1px solid #e0c36b;padding:6px 10px;margin:0 0 12px 0;";

/// The HTML report (an e-mail: escaped by maud, inline styles, no external resources).
pub fn render_html(report: &ErrorReport) -> String {
    render_html_with_notes(report, &[])
}

/// The HTML report with notes (repeat counts, part notes) shown above it.
pub fn render_html_with_notes(report: &ErrorReport, notes: &[String]) -> String {
    let title = report.title();
    let summary = summary_rows(report);
    let markup: Markup = html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (title) }
            }
            body style=(BODY) {
                h1 style=(H1) { (title) }
                @for note in notes {
                    p style=(NOTE) { (note) }
                }
                table style=(TABLE) {
                    @for (label, value) in &summary {
                        tr { th style=(TH) { (label) } td style=(TD) { (value) } }
                    }
                }
                h2 style=(H2) { "Cause chain (outermost first)" }
                ol style="margin:0;padding-left:24px;font-family:Menlo,Consolas,monospace;font-size:13px;" start="0" {
                    @for cause in &report.chain {
                        li style="white-space:pre-wrap;" { (cause) }
                    }
                }
                h2 style=(H2) { "Backtrace" }
                @if report.backtrace.trim().is_empty() {
                    p { "(not captured)" }
                } @else {
                    pre style=(PRE) { (report.backtrace.trim_end()) }
                }
                @if let ReportSource::Request(info) = &report.source {
                    (pairs_table("Query parameters", &info.query))
                    (pairs_table("Form fields", &info.form))
                    h2 style=(H2) { "Cookies (names only)" }
                    @if info.cookie_names.is_empty() {
                        p { "(none)" }
                    } @else {
                        p style="font-family:Menlo,Consolas,monospace;" { (info.cookie_names.join(", ")) }
                    }
                    (pairs_table("Headers", &info.headers))
                }
                (pairs_table("Settings", &report.settings))
            }
        }
    };
    markup.into_string()
}

fn pairs_table(name: &str, pairs: &[(String, String)]) -> Markup {
    html! {
        h2 style=(H2) { (name) }
        @if pairs.is_empty() {
            p { "(none)" }
        } @else {
            table style=(TABLE) {
                @for (k, v) in pairs {
                    tr { th style=(TH) { (k) } td style=(TD) { (v) } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::testing::settings_with;
    use proptest::prelude::*;

    const KEY: &str = crate::reporting::testing::SECRET_KEY;

    fn raw(url: &str) -> RawRequest {
        RawRequest {
            method: "POST".into(),
            url: url.into(),
            route: "/clients/{id}".into(),
            form: vec![],
            headers: vec![],
            user: Some("owner@example.com".into()),
            peer: Some("203.0.113.7".parse().unwrap()),
            request_id: "rid-1".into(),
        }
    }

    fn details(message: &str) -> ErrorDetails {
        ErrorDetails {
            error_type: "anyhow::Error".into(),
            message: message.into(),
            chain: vec![message.into(), "root cause".into()],
            backtrace: "   0: autosend::web::routes::clients::show\n".into(),
            ..ErrorDetails::default()
        }
    }

    fn request_info(report: &ErrorReport) -> &RequestInfo {
        match &report.source {
            ReportSource::Request(info) => info,
            ReportSource::Background { .. } => panic!("not a request report"),
        }
    }

    fn value<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} missing in {pairs:?}"))
    }

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

    #[test]
    fn text_report_has_every_section() {
        let settings = settings_with(&[]);
        let mut req = raw("https://example.com/clients/7?q=1");
        req.form = vec![("comment".into(), "line1\nline2".into())];
        req.headers = vec![("Accept".into(), "*/*".into())];
        let report = ErrorReport::for_request(details("recipient missing"), req, &settings);
        let text = render_text(&report);
        assert!(
            text.starts_with("Internal Server Error: /clients/7\n====="),
            "{text}"
        );
        for needle in [
            "Error:          anyhow::Error",
            "Message:        recipient missing",
            "Request method: POST",
            "Request URL:    https://example.com/clients/7?q=1",
            "Route:          /clients/{id}",
            "Request ID:     rid-1",
            "User:           owner@example.com",
            "Client IP:      203.0.113.7",
            "Version:        ",
            "Fingerprint:    ",
            "  0: recipient missing",
            "  1: root cause",
            "Backtrace\n---------\n   0: autosend::web::routes::clients::show",
            "Query parameters\n----------------\nq = 1",
            "comment = line1\n    line2",
            "Cookies (names only)\n--------------------\n(none)",
            "Headers\n-------\nAccept: */*",
            "Settings\n--------\nDEBUG = false",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
        }
    }

    #[test]
    fn background_report_names_task_run_and_mailing() {
        let settings = settings_with(&[]);
        let report = ErrorReport::for_background(
            details("smtp down"),
            BackgroundTask {
                task: "delivery.send".into(),
                run_id: Some(17),
                mailing_id: Some(3),
            },
            &settings,
        );
        let text = render_text(&report);
        assert!(text.starts_with("Background task failed: delivery.send\n"));
        assert!(text.contains("Mailing ID:     3\n"));
        assert!(text.contains("Run ID:         17\n"));
        assert!(!text.contains("Request method"));
        assert_eq!(report.request_id(), "-");
        assert_eq!(report.route(), "task:delivery.send");
        assert_eq!(
            report.subject(&settings),
            "[autosend] ERROR (background task): delivery.send"
        );
        assert!(render_html(&report).contains("Run ID"));
    }

    #[test]
    fn html_is_escaped_and_self_contained() {
        let settings = settings_with(&[]);
        let mut req = raw("https://example.com/clients/1?q=<script>");
        req.headers = vec![("User-Agent".into(), "<img src=x onerror=alert(1)>".into())];
        let report = ErrorReport::for_request(details("<b>bold</b> & co"), req, &settings);
        let html = render_html(&report);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<img"));
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; co"));
        assert!(!html.contains("<link") && !html.contains("<style"));
        let with_note = render_html_with_notes(&report, &["3 more since then".to_string()]);
        assert!(with_note.contains("3 more since then"));
    }

    #[test]
    fn error_types_are_named_from_the_root_cause() {
        let io = anyhow::Error::new(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"))
            .context("reading config");
        let d = ErrorDetails::from_anyhow(&io);
        assert_eq!(d.error_type, "std::io::Error(NotFound)");
        assert_eq!(d.chain, vec!["reading config", "gone"]);
        assert_eq!(d.message, "reading config");
        let row = anyhow::Error::new(sqlx::Error::RowNotFound).context("loading recipient");
        assert_eq!(error_type_of(&row), "sqlx::Error::RowNotFound");
        assert_eq!(error_type_of(&anyhow::anyhow!("plain")), "anyhow::Error");
        let p = ErrorDetails::from_panic("index out of bounds", "src/x.rs:1:2", "bt");
        assert_eq!(p.error_type, "panic");
        assert_eq!(
            p.chain,
            vec!["panic: index out of bounds", "at src/x.rs:1:2"]
        );
    }

    #[test]
    fn same_bug_on_different_ids_groups_together() {
        let settings = settings_with(&[]);
        let a = ErrorReport::for_request(
            details("recipient 42 missing"),
            raw("/clients/42"),
            &settings,
        );
        let b = ErrorReport::for_request(
            details("recipient 97 missing"),
            raw("/clients/97"),
            &settings,
        );
        assert_eq!(a.fingerprint, b.fingerprint);
        let mut other_route = raw("/mailings/42");
        other_route.route = "/mailings/{id}".into();
        let c = ErrorReport::for_request(details("recipient 42 missing"), other_route, &settings);
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn backtraces_lose_capture_and_runtime_frames_only() {
        let bt = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/x/library/std/src/backtrace.rs:312:13
   1: autosend::web::error::InternalError::new
             at ./src/web/error.rs:55:24
   2: sqlx_core::pool::inner::acquire
             at /cargo/sqlx-core/src/pool/inner.rs:10:1
   3: autosend::db::recipients::find::{{closure}}
             at ./src/db/recipients.rs:12:5
   4: autosend::web::middleware::edge::{{closure}}
   5: tokio::runtime::task::harness::poll
             at /cargo/tokio/src/runtime/task/harness.rs:1:1
   6: std::thread::start
";
        assert_eq!(
            compact_backtrace(bt),
            "      … 2 capture frames left out
   2: sqlx_core::pool::inner::acquire
             at /cargo/sqlx-core/src/pool/inner.rs:10:1
   3: autosend::db::recipients::find::{{closure}}
             at ./src/db/recipients.rs:12:5
      … 3 middleware and runtime frames left out
"
        );
        // Nothing of ours, or not a std backtrace: kept whole.
        let foreign = "   0: tokio::x\n   1: std::y\n";
        assert_eq!(compact_backtrace(foreign), foreign);
        assert_eq!(
            compact_backtrace("disabled backtrace"),
            "disabled backtrace"
        );
        assert_eq!(compact_backtrace(""), "");
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
