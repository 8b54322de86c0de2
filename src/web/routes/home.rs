//! `GET /`: the landing page for visitors, the dashboard for users (counters cached by data
//! version, answered 304 while they have not changed).

use poem::web::Data;
use poem::{Request, Response, handler};

use crate::reports;
use crate::state::AppState;
use crate::web::conditional;
use crate::web::error::AppResult;
use crate::web::htmx::PageCtx;
use crate::web::views::home;

#[handler]
pub async fn index(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
) -> AppResult<Response> {
    let Some(user) = ctx.user.clone() else {
        return Ok(ctx.render("Welcome", home::landing()));
    };
    let scope = user.scope();
    let version = reports::viewer_version(&state.db, &scope).await?;
    let validator = conditional::for_page(&ctx, &user, &version, "dashboard", "");
    if let Some(resp) = conditional::not_modified(req, &ctx, &validator) {
        return Ok(resp);
    }
    let counters = reports::dashboard(state.reports(), &scope, &version).await?;
    let mut resp = ctx.render(
        "Dashboard",
        home::dashboard(&user, &counters, scope.owner_filter().is_none()),
    );
    validator.apply(&mut resp);
    Ok(resp)
}
