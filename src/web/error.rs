//! The one home of how a failure answers: [`AppError`] (what handlers return, as
//! [`AppResult`]), its status mapping, and the error pages — 404 and every other 4xx, 500,
//! and 503 with `Retry-After` — that the edge middleware ([`crate::web::middleware::edge`])
//! renders from any `poem::Error` a handler or middleware raised.
//!
//! Unexpected failures keep their cause chain and a backtrace taken where they were raised
//! (panics are caught by the edge with [`crate::panics`]); the edge reports what
//! [`answer`] says is due, with the request it keeps.

use std::backtrace::Backtrace;
use std::sync::Arc;

use poem::http::{HeaderMap, HeaderValue, StatusCode, header};
use poem::web::cookie::Cookie;
use poem::{Request, Response};

use crate::reporting::{ErrorDetails, mask};
use crate::state::AppState;
use crate::web::csrf::{self, CsrfSecret};
use crate::web::htmx::PageCtx;
use crate::web::views::errors;

/// What handlers return: `?` turns database, object, account and poem errors into
/// [`AppError`], and poem turns that into its error through the mapping below.
pub type AppResult<T> = Result<T, AppError>;

/// What a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// The change clashes with the current state (someone saved first, a refused transition).
    #[error("{0}")]
    Conflict(String),
    /// A form that cannot be processed as sent.
    #[error("{0}")]
    Unprocessable(String),
    /// A rate limit: the client may try again after this many seconds.
    #[error(transparent)]
    TooMany(#[from] RetryAfter),
    /// A bound the server keeps on purpose: 503 with `Retry-After`, not reported.
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Internal(#[from] InternalError),
    /// An error already in poem's shape (an extractor's rejection, a redirect).
    #[error(transparent)]
    Http(#[from] poem::Error),
}

/// An upload that is not valid multipart: poem's own 400.
impl From<poem::error::ParseMultipartError> for AppError {
    fn from(error: poem::error::ParseMultipartError) -> Self {
        AppError::Http(error.into())
    }
}

impl From<anyhow::Error> for AppError {
    fn from(error: anyhow::Error) -> Self {
        AppError::Internal(InternalError::new(error))
    }
}

/// The status mapping: each variant's one status.
impl From<AppError> for poem::Error {
    fn from(error: AppError) -> Self {
        match error {
            AppError::NotFound => poem::Error::from_status(StatusCode::NOT_FOUND),
            AppError::BadRequest(msg) => poem::Error::from_string(msg, StatusCode::BAD_REQUEST),
            AppError::Forbidden(msg) => poem::Error::from_string(msg, StatusCode::FORBIDDEN),
            AppError::Conflict(msg) => poem::Error::from_string(msg, StatusCode::CONFLICT),
            AppError::Unprocessable(msg) => {
                poem::Error::from_string(msg, StatusCode::UNPROCESSABLE_ENTITY)
            }
            AppError::TooMany(retry) => poem::Error::new(retry, StatusCode::TOO_MANY_REQUESTS),
            AppError::Busy(busy) => poem::Error::new(busy, StatusCode::SERVICE_UNAVAILABLE),
            AppError::Internal(internal) => {
                let status = if internal.is_unavailable() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                poem::Error::new(internal, status)
            }
            AppError::Http(err) => err,
        }
    }
}

/// Handlers re-render their forms; reaching here means a form without fields.
const INVALID_FIELDS: &str = "Some fields are not valid.";

impl From<crate::objects::ObjectError> for AppError {
    fn from(error: crate::objects::ObjectError) -> Self {
        use crate::objects::ObjectError;
        match error {
            ObjectError::NotFound => AppError::NotFound,
            ObjectError::ReadOnly => AppError::Forbidden(error.to_string()),
            ObjectError::Stale => AppError::Conflict(
                "Someone else saved this in the meantime: reload the page to see their version."
                    .into(),
            ),
            ObjectError::Refused(message) => AppError::Conflict(message),
            ObjectError::Validation(_) => AppError::Unprocessable(INVALID_FIELDS.into()),
            ObjectError::Unexpected(err) => AppError::from(err),
        }
    }
}

impl From<crate::accounts::AccountError> for AppError {
    fn from(error: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError;
        match error {
            AccountError::TooMany(wait) => AppError::TooMany(RetryAfter(wait)),
            AccountError::Busy => AppError::Busy(Busy),
            AccountError::Validation(_) => AppError::Unprocessable(INVALID_FIELDS.into()),
            AccountError::Unexpected(err) => AppError::from(err),
        }
    }
}

/// Attached to a 429 error: how many seconds the client should wait.
#[derive(Debug, thiserror::Error)]
#[error("Too many attempts. Please wait {0} seconds and try again.")]
pub struct RetryAfter(pub u64);

/// The server is at a bound it keeps on purpose (password hashing, large bodies): 503 with
/// `Retry-After`, not reported as an error.
#[derive(Debug, thiserror::Error)]
#[error("The server is busy. Please try again in a few seconds.")]
pub struct Busy;

impl Busy {
    pub const RETRY_SECS: u64 = 5;
}

impl From<Busy> for poem::Error {
    fn from(busy: Busy) -> Self {
        AppError::Busy(busy).into()
    }
}

/// An unexpected failure with its cause chain and the backtrace of where it was raised.
#[derive(Debug)]
pub struct InternalError {
    pub error: anyhow::Error,
    /// Captured where the error was raised; resolved to text only when shown or reported.
    pub backtrace: Arc<Backtrace>,
}

impl InternalError {
    pub fn new(error: anyhow::Error) -> Self {
        Self {
            error,
            backtrace: Arc::new(Backtrace::force_capture()),
        }
    }

    /// Whether the database had passing trouble ([`crate::db::is_transient`]: unreachable,
    /// locked or busy past the timeout, disk full): answered 503 with `Retry-After`, not a bug.
    pub fn is_unavailable(&self) -> bool {
        crate::db::is_transient_chain(&self.error)
    }

    /// The messages of the error and each of its causes, outermost first.
    pub fn chain(&self) -> Vec<String> {
        self.error.chain().map(|e| e.to_string()).collect()
    }
}

impl std::fmt::Display for InternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for InternalError {}

/// The page an error answers with, and the details to report when it is a failure (a 5xx
/// that is not a refusal by design). `describe` lists the request, masked, for the DEBUG
/// page; it runs only when that page shows it.
pub(crate) fn answer(
    err: poem::Error,
    state: &AppState,
    request_id: &str,
    page: &PageCtx,
    describe: impl FnOnce() -> Vec<(String, String)>,
) -> (Response, Option<ErrorDetails>) {
    let status = err.status();
    // Redirects raised as errors (an anonymous visitor sent to the login page) pass as they are.
    if status.is_redirection() {
        return (err.into_response(), None);
    }
    // Overload is a refusal by design, not a failure: no report, a wait to come back after.
    if let Some(busy) = err.downcast_ref::<Busy>() {
        let mut resp = page.render(
            "Busy",
            errors::client_error(status.as_u16(), "Service Unavailable", &busy.to_string()),
        );
        resp.set_status(StatusCode::SERVICE_UNAVAILABLE);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(Busy::RETRY_SECS));
        no_store(&mut resp);
        return (resp, None);
    }
    if status.is_server_error() {
        let details = match err.downcast_ref::<InternalError>() {
            Some(internal) => {
                ErrorDetails::from_anyhow_with(&internal.error, internal.backtrace.clone())
            }
            None => ErrorDetails {
                error_type: format!("HTTP {}", status.as_u16()),
                message: err.to_string(),
                chain: vec![err.to_string()],
                ..ErrorDetails::default()
            },
        };
        let resp = server_error(state, request_id, page, &details, status, describe);
        return (resp, Some(details));
    }
    (client_error(page, &err), None)
}

/// A 4xx page: the status, a message a person can act on, and for htmx the message in a
/// header (the page itself is not swapped in).
fn client_error(page: &PageCtx, err: &poem::Error) -> Response {
    let status = err.status();
    let reason = status.canonical_reason().unwrap_or("Error");
    let message = match status {
        StatusCode::NOT_FOUND => {
            "The page you asked for does not exist, or you may not see it.".to_string()
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            "This address does not accept that kind of request.".to_string()
        }
        _ => err.to_string(),
    };
    let mut resp = page.render(
        reason,
        errors::client_error(status.as_u16(), reason, &message),
    );
    resp.set_status(status);
    if status == StatusCode::TOO_MANY_REQUESTS
        && let Some(retry) = err.downcast_ref::<RetryAfter>()
    {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry.0.max(1)));
    }
    no_store(&mut resp);
    // htmx requests show this in a banner (assets/app.js): the page itself is not swapped in.
    let encoded =
        percent_encoding::utf8_percent_encode(&message, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        resp.headers_mut().insert("x-error-message", value);
    }
    resp
}

/// The 500 page: a reference for everyone, the masked details with `DEBUG=true`. A 503 (a
/// dependency down for a moment, as the session store says) keeps its status and asks
/// clients to come back, so a load balancer or a script can tell it from a bug.
pub(crate) fn server_error(
    state: &AppState,
    request_id: &str,
    page: &PageCtx,
    details: &ErrorDetails,
    status: StatusCode,
    describe: impl FnOnce() -> Vec<(String, String)>,
) -> Response {
    let debug = state.settings.debug;
    let secrets = state.settings.secret_values();
    let chain: Vec<String> = details
        .chain
        .iter()
        .map(|c| mask::scrub(c, &secrets))
        .collect();
    let backtrace = match debug {
        true => mask::scrub(&details.backtrace_text(), &secrets),
        false => String::new(),
    };
    let request = if debug { describe() } else { Vec::new() };
    let debug = debug.then(|| errors::Debug {
        chain: &chain,
        backtrace: &backtrace,
        request: &request,
    });
    let mut resp = page.render("Server error", errors::server_error(request_id, debug));
    no_store(&mut resp);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.set_status(status);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    } else {
        resp.set_status(StatusCode::INTERNAL_SERVER_ERROR);
    }
    resp
}

fn no_store(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Error pages render outside the CSRF middleware; they get a token from the cookie if any.
pub(crate) fn page_ctx(req: &Request) -> PageCtx {
    let mut ctx = PageCtx::from_request(req);
    if ctx.csrf_token.is_empty() {
        let secret = cookie_value(req.headers(), csrf::COOKIE_NAME)
            .and_then(|v| CsrfSecret::from_cookie(&v));
        if let (Some(secret), Some(state)) = (secret, req.data::<AppState>()) {
            ctx.csrf_token = secret.token(&state.signer);
        }
    }
    ctx
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| Cookie::parse(pair.trim()).ok())
        .find(|c| c.name() == name)
        .map(|c| c.value_str().to_string())
}
