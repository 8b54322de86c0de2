//! The CSRF layer: the cookie, the token check of every state-changing request, and the
//! per-request body allowance it enforces while it reads the form (keeping a copy of a
//! urlencoded body for the edge's report).

use std::sync::Arc;
use std::time::Duration;

use poem::http::{Method, StatusCode};
use poem::web::cookie::{Cookie, SameSite};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::access_log::cut_for_log;
use super::body_limit::{capped, declared_length, too_large};
use super::snapshot::FormCapture;
use super::state;
use crate::web::csrf::{self, CsrfSecret};
use crate::web::error::Busy;

/// Methods that change state and therefore need a CSRF token.
fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Paths that accept POSTs from outside the site: RFC 8058 one-click unsubscribe comes from
/// mail providers, without our cookie, and is authorised by its signed token instead.
fn csrf_exempt(path: &str) -> bool {
    path.starts_with("/u/")
}

/// Machine endpoints that render no form and change nothing: no CSRF cookie for them
/// (static assets do not reach this layer at all: [`super::session`]).
fn csrf_irrelevant(req: &Request) -> bool {
    let path = req.uri().path();
    !is_unsafe(req.method()) && (path == "/healthz" || path == "/metrics")
}

/// Ensures the CSRF cookie exists and checks the token of every state-changing request.
pub async fn csrf<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    if csrf_irrelevant(&req) {
        return Ok(ep.call(req).await?.into_response());
    }
    let state = state(&req);
    let existing = req
        .cookie()
        .get(csrf::COOKIE_NAME)
        .and_then(|c| CsrfSecret::from_cookie(c.value_str()));
    let secret = match &existing {
        Some(secret) => secret.clone(),
        None => {
            let secret = CsrfSecret::generate();
            let mut cookie = Cookie::new_with_str(csrf::COOKIE_NAME, secret.cookie_value());
            cookie.set_http_only(true);
            cookie.set_same_site(SameSite::Lax);
            cookie.set_secure(state.settings.https());
            cookie.set_path("/");
            cookie.set_max_age(std::time::Duration::from_secs(365 * 24 * 3600));
            req.cookie().add(cookie);
            secret
        }
    };
    req.extensions_mut().insert(secret.clone());

    // Held until the handler is done with the body it buffered.
    let mut _large_body = None;
    if is_unsafe(req.method()) {
        let exempt = csrf_exempt(req.uri().path());
        // Without the cookie no token can be valid: refused before a byte of the body is
        // read, so anonymous floods of large posts cost nothing.
        if existing.is_none() && !exempt {
            return Err(csrf_failed(&req));
        }
        let allowance = body_allowance(&req, state.settings.max_body_bytes);
        if declared_length(&req).is_some_and(|len| len > allowance as u64) {
            return Err(too_large(allowance));
        }
        _large_body = large_body_slot(&req).await?;
        let header_token = req.header(csrf::HEADER).map(str::to_string);
        let form = read_form(&mut req, allowance, header_token.is_none()).await?;
        if !exempt {
            let token = match (header_token, form) {
                (Some(token), _) => Some(token),
                (None, Some(form)) => form.token().await,
                (None, None) => None,
            };
            let valid =
                existing.is_some() && token.is_some_and(|t| secret.verify(&state.signer, &t));
            if !valid {
                return Err(csrf_failed(&req));
            }
        }
    }
    Ok(ep.call(req).await?.into_response())
}

fn csrf_failed(req: &Request) -> poem::Error {
    tracing::warn!(path = %cut_for_log(req.uri().path()), "CSRF verification failed");
    poem::Error::from_string(
        "CSRF verification failed: the form was stale or did not come from this site. \
         Reload the page and try again.",
        StatusCode::FORBIDDEN,
    )
}

/// The largest body an anonymous visitor may send: the forms they can reach (log in, sign
/// up, reset, unsubscribe) are a few hundred bytes.
const ANONYMOUS_BODY: usize = 64 << 10;
/// The largest form a signed-in user sends outside an upload: a message of 200 000
/// characters, text and HTML, percent-encoded.
const FORM_BODY: usize = 4 << 20;
/// Bodies above this are "large": only [`LARGE_BODIES_AT_ONCE`] are taken in at a time.
const LARGE_BODY: u64 = 1 << 20;
const LARGE_BODIES_AT_ONCE: usize = 4;
/// How long a large body waits for its turn before the answer is "busy".
const LARGE_BODY_WAIT: Duration = Duration::from_secs(30);

/// Routes that take uploads up to `MAX_BODY_BYTES`.
fn takes_uploads(path: &str) -> bool {
    path == "/clients/import"
}

/// How large a body this request may have: `MAX_BODY_BYTES` for a signed-in user's upload,
/// [`FORM_BODY`] for their other forms, [`ANONYMOUS_BODY`] without a signed-in session.
fn body_allowance(req: &Request, max: usize) -> usize {
    let signed_in = req
        .extensions()
        .get::<poem::session::Session>()
        .is_some_and(|s| s.get::<i64>(crate::accounts::sessions::USER_ID).is_some());
    let allowance = match (signed_in, takes_uploads(req.uri().path())) {
        (false, _) => ANONYMOUS_BODY,
        (true, false) => FORM_BODY,
        (true, true) => max,
    };
    allowance.min(max)
}

/// A turn among the large bodies, for a body that is (or may be) large; waits a bounded
/// time, then answers busy. Each buffered upload holds its size in memory (and its parse
/// more), so a bound on how many at once bounds the memory.
async fn large_body_slot(
    req: &Request,
) -> poem::Result<Option<tokio::sync::SemaphorePermit<'static>>> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    if declared_length(req).is_some_and(|len| len <= LARGE_BODY) {
        return Ok(None);
    }
    let slots = SLOTS.get_or_init(|| tokio::sync::Semaphore::new(LARGE_BODIES_AT_ONCE));
    match tokio::time::timeout(LARGE_BODY_WAIT, slots.acquire()).await {
        Ok(Ok(permit)) => Ok(Some(permit)),
        _ => {
            tracing::warn!(
                path = %cut_for_log(req.uri().path()),
                "large request bodies at their bound; answering busy"
            );
            Err(Busy.into())
        }
    }
}

/// A form body read once by the CSRF middleware.
enum FormBody {
    Urlencoded(bytes::Bytes),
    Multipart {
        bytes: bytes::Bytes,
        boundary: String,
    },
}

impl FormBody {
    /// The `csrf_token` field.
    async fn token(self) -> Option<String> {
        match self {
            FormBody::Urlencoded(bytes) => url::form_urlencoded::parse(&bytes)
                .find(|(name, _)| name == csrf::FORM_FIELD)
                .map(|(_, value)| value.into_owned()),
            FormBody::Multipart { bytes, boundary } => multipart_token(bytes, boundary).await,
        }
    }
}

/// Reads a form body of at most `max` bytes and puts it back for the handler. A
/// urlencoded body is always read, and a copy left in the edge's [`FormCapture`] for an
/// error report; a multipart one (an upload) only when its token is needed. A body left
/// unread is capped at `max` for the handler.
async fn read_form(
    req: &mut Request,
    max: usize,
    need_token: bool,
) -> poem::Result<Option<FormBody>> {
    let content_type = req.content_type().map(str::to_string).unwrap_or_default();
    let urlencoded = content_type.starts_with("application/x-www-form-urlencoded");
    let boundary = content_type
        .starts_with("multipart/form-data")
        .then(|| multer::parse_boundary(&content_type).ok())
        .flatten();
    let wanted = urlencoded || (need_token && boundary.is_some());
    if !wanted {
        let body = req.take_body();
        req.set_body(capped(body, max));
        return Ok(None);
    }
    let bytes = match req.take_body().into_bytes_limit(max).await {
        Ok(bytes) => bytes,
        Err(err) => return Err(unreadable_body(&err, max)),
    };
    req.set_body(bytes.clone());
    Ok(Some(match boundary {
        Some(boundary) => FormBody::Multipart { bytes, boundary },
        None => {
            if let Some(capture) = req.extensions().get::<FormCapture>() {
                capture.keep(bytes.clone());
            }
            FormBody::Urlencoded(bytes)
        }
    }))
}

/// 413 for a body over the limit, 408 for one that stalled, 400 for one cut short.
fn unreadable_body(err: &poem::error::ReadBodyError, max: usize) -> poem::Error {
    use poem::error::ReadBodyError;
    let kind = match err {
        ReadBodyError::PayloadTooLarge => return too_large(max),
        ReadBodyError::Io(io) => io.kind(),
        _ => std::io::ErrorKind::Other,
    };
    match kind {
        std::io::ErrorKind::InvalidData => too_large(max),
        std::io::ErrorKind::TimedOut => poem::Error::from_string(
            "The request body stopped arriving; please send it again.",
            StatusCode::REQUEST_TIMEOUT,
        ),
        _ => poem::Error::from_string(
            "The request body could not be read; please send it again.",
            StatusCode::BAD_REQUEST,
        ),
    }
}

/// Finds the CSRF field among the parts (forms put it first, so this rarely reads far).
async fn multipart_token(bytes: bytes::Bytes, boundary: String) -> Option<String> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some(csrf::FORM_FIELD) {
            return field.text().await.ok();
        }
    }
    None
}
