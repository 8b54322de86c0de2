//! The edge layer: request id, task-local context, access log and metrics, error pages
//! (rendered by [`crate::web::error`]), panics, and error and broken-link reports.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt as _;
use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, PathPattern, Request, Response};

use super::snapshot::{FormCapture, RequestSnapshot};
use super::{access_log, request_id, state};
use crate::panics::take_panic;
use crate::reporting::ErrorDetails;
use crate::state::AppState;
use crate::telemetry::{RequestContext, in_context};
use crate::web::error;

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
    let request_id = request_id::assign(req.headers());
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
                let route = Some(guessed_template(snapshot.path()));
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
            resp.headers_mut()
                .insert(request_id::REQUEST_ID_HEADER, value);
        }
        access_log::record(
            &state,
            route.as_deref(),
            &snapshot.method,
            snapshot.path(),
            resp.status().as_u16(),
            started.elapsed(),
        );
        Ok(resp)
    })
    .await
}

/// Queues the report of a 5xx; never waits (the notifier's queue drops when full).
fn report_failure(
    state: &AppState,
    ctx: &RequestContext,
    snapshot: &RequestSnapshot,
    route: Option<&str>,
    details: ErrorDetails,
) {
    let route = route.map_or_else(|| guessed_template(snapshot.path()), str::to_string);
    state
        .reporter
        .report_request(details, snapshot.raw(state, ctx, &route));
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
