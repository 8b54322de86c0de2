//! `GET /healthz`: is this instance able to serve? (SPEC §6)

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Response, handler};
use serde_json::json;

use crate::state::AppState;

/// 200 when the database answers, 503 when it does not. The cache is optional: when Redis is
/// down the instance still serves (uncached), so the status says `degraded` but stays 200.
#[handler]
pub async fn healthz(Data(state): Data<&AppState>) -> Response {
    let database = state.db.ping().await;
    let cache = state.cache.ping().await;
    if let Err(err) = &database {
        tracing::warn!(error = %format!("{err:#}"), "health check: database unreachable");
    }
    let (status, code) = match (&database, &cache) {
        (Err(_), _) => ("error", StatusCode::SERVICE_UNAVAILABLE),
        (Ok(_), Err(_)) => ("degraded", StatusCode::OK),
        (Ok(_), Ok(_)) => ("ok", StatusCode::OK),
    };
    let body = json!({
        "status": status,
        "database": if database.is_ok() { "ok" } else { "unreachable" },
        "cache": if cache.is_ok() { state.cache.kind() } else { "unreachable" },
    });
    Json(body)
        .with_status(code)
        .with_header("Cache-Control", "no-store")
        .into_response()
}
