//! The body cap layer, and the capped body the CSRF layer reuses for what it leaves unread.

use std::sync::Arc;
use std::time::Duration;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::state;

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

pub(super) fn too_large(max: usize) -> poem::Error {
    poem::Error::from_string(
        format!("The request is too large: the limit is {} KiB.", max / 1024),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}

pub(super) fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// `body`, failing once more than `max` bytes came or when it stalls for [`BODY_IDLE`].
pub(super) fn capped(body: poem::Body, max: usize) -> poem::Body {
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
