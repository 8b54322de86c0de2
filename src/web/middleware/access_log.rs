//! The access log and the request metrics: one line and one observation per request, written
//! by the [`super::edge`] layer once the answer is known.

use std::time::Duration;

use poem::http::Method;

use crate::metrics;
use crate::state::AppState;

/// Logs and counts one answered request.
pub(super) fn record(
    state: &AppState,
    route: Option<&str>,
    method: &Method,
    path: &str,
    status: u16,
    took: Duration,
) {
    state.metrics.observe_request(
        route.unwrap_or(metrics::UNMATCHED_ROUTE),
        method.as_str(),
        status,
        took,
    );
    tracing::info!(
        target: "access",
        method = %method,
        path = %cut_for_log(path),
        status,
        duration_ms = format!("{:.1}", took.as_secs_f64() * 1000.0),
        "request"
    );
}

/// Longest path an access-log line carries; a longer one is cut, with a marker.
const LOGGED_PATH_MAX: usize = 2048;

/// `path` as the access log shows it: at most [`LOGGED_PATH_MAX`] bytes, and when cut,
/// a marker saying how much was left out (a 60 kB path is an attack, not information).
pub(super) fn cut_for_log(path: &str) -> std::borrow::Cow<'_, str> {
    if path.len() <= LOGGED_PATH_MAX {
        return path.into();
    }
    let mut end = LOGGED_PATH_MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[cut {} bytes]", &path[..end], path.len() - end).into()
}
