//! The request id (SPEC §8): the client's `X-Request-Id` when sane, else a fresh one; it
//! names the request in the task-local context, the access log, reports and the 500 page,
//! and comes back in the response header. Assigned by the [`super::edge`] layer.

use poem::http::HeaderMap;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

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

/// The id of a request: the client's when [`sane_request_id`], else a new one.
pub(super) fn assign(headers: &HeaderMap) -> String {
    sane_request_id(headers).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}
