//! `/u/{token}`: one-click unsubscribe (SPEC §6, RFC 8058). GET asks, POST unsubscribes;
//! the signed token authorises the POST (the path is exempt from CSRF, since mail providers
//! post to it without our cookie).

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Response, handler};

use crate::delivery::unsubscribe::{self as service, UnsubscribeError};
use crate::state::AppState;
use crate::web::error::AppResult;
use crate::web::htmx::PageCtx;
use crate::web::views::unsubscribe as views;

fn invalid(ctx: &PageCtx, err: &UnsubscribeError) -> Response {
    ctx.render_status(
        StatusCode::BAD_REQUEST,
        "Invalid link",
        views::invalid(&err.to_string()),
    )
}

#[handler]
pub async fn confirm_page(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Path(token): Path<String>,
) -> Response {
    match service::check(&state.delivery(), &token) {
        Ok(subscriber) => ctx.render("Unsubscribe", views::confirm(&subscriber.email)),
        Err(err) => invalid(&ctx, &err),
    }
}

#[handler]
pub async fn confirm(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Path(token): Path<String>,
) -> AppResult<Response> {
    match service::unsubscribe(&state.delivery(), &token).await {
        Ok(subscriber) => Ok(ctx.render("Unsubscribed", views::done(&subscriber.email))),
        Err(err @ UnsubscribeError::InvalidToken) => Ok(invalid(&ctx, &err)),
        Err(UnsubscribeError::Unexpected(err)) => Err(err.into()),
    }
}
