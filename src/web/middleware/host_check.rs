//! The host check layer.

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::state;

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
