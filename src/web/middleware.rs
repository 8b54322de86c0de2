//! The middleware every request passes, outermost first:
//! security headers → edge (request id, context, access log, metrics, error pages, panics,
//! error and broken-link reports) → host check → body cap → (response) compression →
//! cookies → session → CSRF (and the per-request body allowance) → routes.

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use poem::web::cookie::{Cookie, SameSite};
use poem::{Endpoint, IntoResponse, PathPattern, Request, Response};

use crate::metrics;
use crate::panics::take_panic;
use crate::reporting::{ErrorDetails, NotFound, RawRequest, mask};
use crate::state::AppState;
use crate::telemetry::{RequestContext, in_context};
use crate::web::client;
use crate::web::csrf::{self, CsrfSecret};
use crate::web::error::{self, Busy};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn state(req: &Request) -> AppState {
    req.data::<AppState>()
        .cloned()
        .expect("AppState is attached to the router")
}

/// The incoming `X-Request-Id` when it is a sane token (≤ 64 of `[A-Za-z0-9._-]`), SPEC §8.
pub fn sane_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let sane = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    sane.then(|| value.to_string())
}

/// The urlencoded body of a state-changing request, kept by the CSRF middleware (which reads
/// it anyway) for the error report the edge may have to write after the handler consumed it.
#[derive(Clone, Default)]
pub struct FormCapture(Arc<Mutex<Option<bytes::Bytes>>>);

impl FormCapture {
    fn keep(&self, body: bytes::Bytes) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(body);
        }
    }

    fn fields(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .ok()
            .and_then(|slot| slot.as_deref().map(RawRequest::parse_form))
            .unwrap_or_default()
    }
}

/// What is known of a request before it is handed on, for error pages, reports and logs.
struct RequestSnapshot {
    method: Method,
    path: String,
    uri: String,
    headers: HeaderMap,
    peer: Option<IpAddr>,
    form: FormCapture,
}

impl RequestSnapshot {
    fn of(req: &Request, form: FormCapture) -> Self {
        Self {
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            uri: req.original_uri().to_string(),
            headers: req.headers().clone(),
            peer: req.remote_addr().as_socket_addr().map(|a| a.ip()),
            form,
        }
    }

    fn header(&self, name: header::HeaderName) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    fn host(&self) -> String {
        self.header(header::HOST).unwrap_or_default()
    }

    /// The URL as the client asked for it: `BASE_URL`'s scheme, the `Host`, path and query.
    fn full_url(&self, state: &AppState) -> String {
        let path_and_query = if self.uri.starts_with('/') {
            self.uri.clone()
        } else {
            // An absolute-form request target already names scheme and host.
            return self.uri.clone();
        };
        format!(
            "{}://{}{path_and_query}",
            state.settings.base_url.scheme(),
            self.host()
        )
    }

    /// The client: the peer, or what `X-Forwarded-For` says when the peer is a trusted proxy.
    fn client_ip(&self, state: &AppState) -> Option<IpAddr> {
        self.peer
            .map(|peer| client::client_addr(peer, &self.headers, &state.settings))
    }

    /// Method, URL and headers, masked, for the DEBUG page.
    fn describe(&self, state: &AppState) -> Vec<(String, String)> {
        let settings = &state.settings;
        let secrets = settings.secret_values();
        let mut rows = vec![
            ("Method".to_string(), self.method.to_string()),
            ("URL".to_string(), mask::scrub(&self.uri, &secrets)),
        ];
        for (name, value) in &self.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            let shown = mask::masked_value(name.as_str(), &value, &settings.sensitive_fields);
            rows.push((name.to_string(), mask::scrub(&shown, &secrets)));
        }
        rows
    }

    /// The unmasked request for a report (the report masks it when it is built).
    fn raw(&self, state: &AppState, ctx: &RequestContext, route: &str) -> RawRequest {
        let user = ctx.user();
        RawRequest {
            method: self.method.to_string(),
            url: self.full_url(state),
            route: route.to_string(),
            form: self.form.fields(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            user: (user != "-").then_some(user),
            peer: self.peer,
            request_id: ctx.request_id.clone(),
        }
    }

    fn not_found(&self, state: &AppState, ctx: &RequestContext) -> NotFound {
        NotFound {
            status: 404,
            path: self.path.clone(),
            url: self.full_url(state),
            host: self.host(),
            referer: self.header(header::REFERER),
            user_agent: self.header(header::USER_AGENT),
            client_ip: self.client_ip(state),
            request_id: ctx.request_id.clone(),
        }
    }
}

/// The route template of SPEC §6 (`/admin/users/{id}`) from poem's matched pattern
/// (`/admin/users/:id`); `None` when no route matched.
fn route_template(pattern: Option<&PathPattern>) -> Option<String> {
    let pattern = pattern?;
    let segments: Vec<String> = pattern
        .0
        .split('/')
        .map(|segment| match segment.strip_prefix([':', '*']) {
            Some(name) if !name.is_empty() => format!("{{{name}}}"),
            _ => segment.to_string(),
        })
        .collect();
    Some(segments.join("/"))
}

/// A template guessed from a path, for a handler that panicked (the panic unwound past the
/// router, taking its pattern along): numbers become `{id}`, token-like segments `{token}`.
fn guessed_template(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let token_like = segment.len() >= 16
                && segment.bytes().any(|b| b.is_ascii_digit())
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else if token_like {
                "{token}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Request id, task-local context, access log, metrics, error pages and reports: every 5xx
/// (errors, panics, 5xx responses) is reported to ADMINS and every 404 offered to the
/// broken-link check, both queued so the answer never waits for mail.
pub async fn edge<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let state = state(&req);
    let request_id =
        sane_request_id(req.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let ctx = RequestContext::new(request_id.clone());
    let form = FormCapture::default();
    req.extensions_mut().insert(form.clone());
    in_context(ctx.clone(), async move {
        let started = Instant::now();
        let snapshot = RequestSnapshot::of(&req, form);
        let page = error::page_ctx(&req);
        let outcome = AssertUnwindSafe(ep.call(req)).catch_unwind().await;
        let (mut resp, route) = match outcome {
            Ok(Ok(resp)) => {
                let resp = resp.into_response();
                let route = route_template(resp.data::<PathPattern>());
                let status = resp.status();
                if status.is_server_error() {
                    let details = ErrorDetails {
                        error_type: format!("HTTP {}", status.as_u16()),
                        message: format!("the handler answered {status}"),
                        ..ErrorDetails::default()
                    };
                    report_failure(&state, &ctx, &snapshot, route.as_deref(), details);
                }
                (resp, route)
            }
            Ok(Err(err)) => {
                let route = route_template(err.data::<PathPattern>());
                let (resp, failure) = error::answer(err, &state, &ctx.request_id, &page, || {
                    snapshot.describe(&state)
                });
                if let Some(details) = failure {
                    tracing::error!(
                        error = %details.chain.join(": "),
                        status = resp.status().as_u16(),
                        "request failed"
                    );
                    report_failure(&state, &ctx, &snapshot, route.as_deref(), details);
                }
                (resp, route)
            }
            Err(payload) => {
                let panic = take_panic(&*payload);
                let details = ErrorDetails::from_panic_details(&panic);
                tracing::error!(error = %details.chain.join(" "), "request panicked");
                let route = Some(guessed_template(&snapshot.path));
                report_failure(&state, &ctx, &snapshot, route.as_deref(), details.clone());
                let resp = error::server_error(
                    &state,
                    &ctx.request_id,
                    &page,
                    &details,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    || snapshot.describe(&state),
                );
                (resp, route)
            }
        };
        if resp.status() == StatusCode::NOT_FOUND {
            // Skipped 404s (no referer, a crawler, …) are the rule; nothing to log.
            let _ = state
                .reporter
                .report_not_found(snapshot.not_found(&state, &ctx));
        }
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let took = started.elapsed();
        state.metrics.observe_request(
            route.as_deref().unwrap_or(metrics::UNMATCHED_ROUTE),
            snapshot.method.as_str(),
            resp.status().as_u16(),
            took,
        );
        tracing::info!(
            target: "access",
            method = %snapshot.method,
            path = %cut_for_log(&snapshot.path),
            status = resp.status().as_u16(),
            duration_ms = format!("{:.1}", took.as_secs_f64() * 1000.0),
            "request"
        );
        Ok(resp)
    })
    .await
}

/// Longest path an access-log line carries; a longer one is cut, with a marker.
const LOGGED_PATH_MAX: usize = 2048;

/// `path` as the access log shows it: at most [`LOGGED_PATH_MAX`] bytes, and when cut,
/// a marker saying how much was left out (a 60 kB path is an attack, not information).
fn cut_for_log(path: &str) -> std::borrow::Cow<'_, str> {
    if path.len() <= LOGGED_PATH_MAX {
        return path.into();
    }
    let mut end = LOGGED_PATH_MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[cut {} bytes]", &path[..end], path.len() - end).into()
}

/// Queues the report of a 5xx; never waits (the notifier's queue drops when full).
fn report_failure(
    state: &AppState,
    ctx: &RequestContext,
    snapshot: &RequestSnapshot,
    route: Option<&str>,
    details: ErrorDetails,
) {
    let route = route.map_or_else(|| guessed_template(&snapshot.path), str::to_string);
    state
        .reporter
        .report_request(details, snapshot.raw(state, ctx, &route));
}

/// `ALLOWED_HOSTS` (SPEC §3): any other `Host` gets 400.
pub async fn host_check<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let state = state(&req);
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if !state.settings.allowed_hosts.allows(&host) {
        return Err(poem::Error::from_string(
            format!("Invalid Host header {host:?}: this server does not answer for that name."),
            StatusCode::BAD_REQUEST,
        ));
    }
    Ok(ep.call(req).await?.into_response())
}

/// Request bodies are capped (SPEC §11), and the cap holds for the bytes a handler reads:
/// a declared length over it answers 413 before anything is read; any other body is cut
/// off at the cap while it streams in, and stalls for [`BODY_IDLE`] end it.
///
/// Request `Content-Encoding` other than `identity` answers 415 (RFC 7694): no browser
/// compresses what it sends, and decoding a 299 KiB gzip into 300 MiB is the bomb the cap
/// is there to stop. This runs outside the compression middleware, which would decode it.
pub async fn body_limit<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let max = state(&req).settings.max_body_bytes;
    let encoded = req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Err(poem::Error::from_string(
            "Compressed request bodies are not accepted: send the body without Content-Encoding.",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ));
    }
    if declared_length(&req).is_some_and(|len| len > max as u64) {
        return Err(too_large(max));
    }
    let body = req.take_body();
    req.set_body(capped(body, max));
    Ok(ep.call(req).await?.into_response())
}

/// How long a body may stall between two chunks before the request is given up.
const BODY_IDLE: Duration = Duration::from_secs(30);

fn too_large(max: usize) -> poem::Error {
    poem::Error::from_string(
        format!("The request is too large: the limit is {} KiB.", max / 1024),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// `body`, failing once more than `max` bytes came or when it stalls for [`BODY_IDLE`].
fn capped(body: poem::Body, max: usize) -> poem::Body {
    use futures_util::StreamExt as _;
    let stream = body.into_bytes_stream();
    let limited = futures_util::stream::unfold(
        (Box::pin(stream), 0usize, false),
        move |(mut stream, seen, failed)| async move {
            if failed {
                return None;
            }
            match tokio::time::timeout(BODY_IDLE, stream.next()).await {
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body stalled",
                    )),
                    (stream, seen, true),
                )),
                Ok(None) => None,
                Ok(Some(Err(err))) => Some((Err(err), (stream, seen, true))),
                Ok(Some(Ok(chunk))) => {
                    let seen = seen + chunk.len();
                    if seen > max {
                        Some((
                            Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "request body over the limit",
                            )),
                            (stream, seen, true),
                        ))
                    } else {
                        Some((Ok(chunk), (stream, seen, false)))
                    }
                }
            }
        },
    );
    poem::Body::from_bytes_stream(limited)
}

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

/// Machine endpoints that render no form and change nothing: no CSRF cookie for them.
fn csrf_irrelevant(req: &Request) -> bool {
    let path = req.uri().path();
    !is_unsafe(req.method())
        && (path.starts_with("/assets/") || path == "/healthz" || path == "/metrics")
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

/// The security headers of SPEC §11, on every response.
pub async fn security_headers<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let https = state(&req).settings.https();
    let mut resp = ep.call(req).await?.into_response();
    let headers = resp.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(
        headers,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    if https {
        set(
            headers,
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use poem::PathPattern;

    use super::{guessed_template, route_template};

    #[test]
    fn poem_patterns_become_spec_templates() {
        let pattern = |p: &str| PathPattern(Arc::from(p));
        assert_eq!(
            route_template(Some(&pattern("/admin/errors/:id/resolve"))).as_deref(),
            Some("/admin/errors/{id}/resolve")
        );
        assert_eq!(
            route_template(Some(&pattern("/assets/*path"))).as_deref(),
            Some("/assets/{path}")
        );
        assert_eq!(route_template(Some(&pattern("/"))).as_deref(), Some("/"));
        assert_eq!(route_template(None), None);
    }

    #[test]
    fn templates_are_guessed_from_ids_and_tokens() {
        assert_eq!(guessed_template("/clients/42/edit"), "/clients/{id}/edit");
        assert_eq!(
            guessed_template("/users/activate/MTIzNDU2Nzg5MA.abc-def_0123"),
            "/users/activate/{token}"
        );
        assert_eq!(guessed_template("/mailings/stats/"), "/mailings/stats/");
        assert_eq!(guessed_template("/"), "/");
    }
}
