//! The error report model (SPEC §8): what a report holds ([`ErrorReport`], [`RequestInfo`])
//! and the raw inputs it is built from ([`ErrorDetails`], [`RawRequest`], [`BackgroundTask`]).
//!
//! A report can only be built by this module's constructors, which apply every masking rule
//! ([`crate::reporting::mask`]) before they return: nothing unmasked reaches a renderer
//! ([`crate::reporting::text`], [`crate::reporting::html`]).

use std::backtrace::Backtrace;
use std::net::IpAddr;
use std::sync::Arc;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::Settings;
use crate::reporting::mask::Masker;
use crate::reporting::{backtrace, fingerprint, subject};

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

    pub(crate) fn header(&self, name: &str) -> Option<String> {
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
        Self::assemble(
            &masker,
            details,
            ReportSource::Request(info),
            &route,
            settings,
        )
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
        Self::assemble(&masker, details, source, &route, settings)
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

    /// The (label, value) rows at the top of both renderings.
    pub fn summary_rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("Error", self.error_type.clone()),
            ("Message", self.message.clone()),
            ("Time", format_time(self.occurred_at)),
            ("Host", self.host.clone()),
            ("Version", self.version.clone()),
            ("Fingerprint", self.fingerprint.clone()),
        ];
        match &self.source {
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

    fn assemble(
        masker: &Masker,
        details: ErrorDetails,
        source: ReportSource,
        route: &str,
        settings: &Settings,
    ) -> ErrorReport {
        let error_type = masker.text(&details.error_type);
        let message = masker.text(&details.message);
        let backtrace = masker.text(&backtrace::compact(&details.backtrace_text()));
        let mut chain: Vec<String> = details.chain.iter().map(|c| masker.text(c)).collect();
        if chain.is_empty() {
            chain.push(message.clone());
        }
        // The whole chain tells bugs apart better than the outermost context alone.
        let fingerprint =
            fingerprint::fingerprint(&error_type, &chain.join(": "), &backtrace, route);
        let settings_pairs = settings
            .report_pairs()
            .into_iter()
            .map(|(name, value)| masker.pair(name, &value, false))
            .collect();
        ErrorReport {
            fingerprint,
            error_type,
            message,
            chain,
            backtrace,
            occurred_at: OffsetDateTime::now_utc(),
            host: masker.text(crate::telemetry::host_name()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            settings: settings_pairs,
            source,
            _masked: (),
        }
    }
}

/// `2026-11-20T12:00:00.123Z`.
pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at
        .replace_nanosecond(at.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into())
}

fn id_text(id: Option<i64>) -> String {
    id.map(|id| id.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::testing::{details, raw, settings_with};

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
}
