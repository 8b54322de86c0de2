//! `GET /`: the landing page for visitors, the dashboard for users.

use poem::web::Data;
use poem::{Response, handler};

use crate::db::dashboard;
use crate::state::AppState;
use crate::web::error::AppError;
use crate::web::htmx::PageCtx;
use crate::web::views::home;

#[handler]
pub async fn index(ctx: PageCtx, Data(state): Data<&AppState>) -> poem::Result<Response> {
    let Some(user) = ctx.user.clone() else {
        return Ok(ctx.render("Welcome", home::landing()));
    };
    let scope = user.scope();
    let counters = dashboard::counters(&state.db, &scope)
        .await
        .map_err(AppError::from)?;
    Ok(ctx.render(
        "Dashboard",
        home::dashboard(&user, &counters, scope.owner_filter().is_none()),
    ))
}
