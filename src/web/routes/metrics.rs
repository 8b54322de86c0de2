//! `GET /metrics`: Prometheus text for a superuser or a `METRICS_TOKEN` bearer (SPEC §6).
//!
//! Everyone else gets 404, anonymous visitors included: the endpoint does not advertise itself.

use poem::http::header;
use poem::web::Data;
use poem::{IntoResponse, Request, Response, handler};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::Secret;
use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;
use crate::web::auth::CurrentUser;
use crate::web::error::{AppError, AppResult};

#[handler]
pub async fn metrics(req: &Request, Data(state): Data<&AppState>) -> AppResult<Response> {
    let superuser = req
        .extensions()
        .get::<CurrentUser>()
        .is_some_and(|user| user.is_superuser);
    let bearer = req
        .header(header::AUTHORIZATION)
        .and_then(|value| value.strip_prefix("Bearer "));
    let token_ok = match (&state.settings.metrics_token, bearer) {
        (Some(expected), Some(given)) => same_secret(expected, given.trim()),
        _ => false,
    };
    if !(superuser || token_ok) {
        return Err(AppError::NotFound);
    }
    Ok(state
        .metrics
        .render()
        .with_content_type(CONTENT_TYPE)
        .with_header(header::CACHE_CONTROL, "no-store")
        .into_response())
}

/// Compares digests in constant time, so neither the token's bytes nor its length leak
/// through response times.
fn same_secret(expected: &Secret, given: &str) -> bool {
    let expected = Sha256::digest(expected.expose().as_bytes());
    let given = Sha256::digest(given.as_bytes());
    expected.ct_eq(&given).into()
}
