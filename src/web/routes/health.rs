//! `GET /healthz`: is this instance able to serve? (SPEC §6)

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Response, handler};
use serde_json::json;

use crate::db::Health;
use crate::state::AppState;

/// 200 when the database answers and takes a write, 503 when it does not (a full disk, a
/// stuck lock, the SQLite file deleted under the process). The cache is optional: when Redis
/// is down the instance still serves (uncached), so the status says `degraded` but stays 200.
#[handler]
pub async fn healthz(Data(state): Data<&AppState>) -> Response {
    let (database, problem) = state.db.health().await;
    let cache = state.cache.ping().await;
    if let Some(err) = &problem {
        tracing::warn!(
            error = %format!("{err:#}"),
            database = database.as_str(),
            "health check: database failing"
        );
    }
    let (status, code) = match (database, &cache) {
        (Health::Ok, Err(_)) => ("degraded", StatusCode::OK),
        (Health::Ok, Ok(_)) => ("ok", StatusCode::OK),
        _ => ("error", StatusCode::SERVICE_UNAVAILABLE),
    };
    let body = json!({
        "status": status,
        "database": database.as_str(),
        "cache": if cache.is_ok() { state.cache.kind() } else { "unreachable" },
    });
    let mut resp = Json(body)
        .with_status(code)
        .with_header("Cache-Control", "no-store")
        .into_response();
    if code == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            poem::http::header::RETRY_AFTER,
            poem::http::HeaderValue::from_static("5"),
        );
    }
    resp
}
