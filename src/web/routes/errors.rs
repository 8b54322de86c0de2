//! `/admin/errors` and `/admin/error-test`: the error groups reporting keeps, and a button that
//! fails on purpose so the whole chain (500 page, report, e-mail) can be tried (SPEC §6, §8).

use anyhow::Context as _;
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use crate::domain::PageRequest;
use crate::domain::TimeZone;
use crate::reporting::groups;
use crate::state::AppState;
use crate::web::auth::Superuser;
use crate::web::error::{AppError, AppResult};
use crate::web::htmx::{self, PageCtx, flash, see_other};
use crate::web::views::error_groups as views;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    page: Option<String>,
}

#[handler]
pub async fn list(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Superuser(admin): Superuser,
    Query(query): Query<ListQuery>,
) -> AppResult<Response> {
    let page = PageRequest::parse(query.page.as_deref());
    let (groups, total) = groups::list(&state.db, page).await?;
    let zone = TimeZone::for_user(admin.time_zone.as_deref(), &state.settings.time_zone);
    Ok(ctx.render("Errors", views::list(&ctx, &groups, page, total, zone)))
}

/// Marks a group resolved: its next occurrence is e-mailed as a new error.
#[handler]
pub async fn resolve(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Superuser(admin): Superuser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let group = groups::resolve(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tracing::info!(group_id = id, "error group resolved");
    if ctx.fragment {
        let zone = TimeZone::for_user(admin.time_zone.as_deref(), &state.settings.time_zone);
        return Ok(htmx::fragment(views::group_row(&ctx, &group, zone)));
    }
    flash(
        req,
        "The error group was resolved: its next occurrence will be e-mailed again.",
    );
    Ok(see_other("/admin/errors"))
}

#[handler]
pub async fn test_page(ctx: PageCtx, Superuser(_admin): Superuser) -> Response {
    ctx.render("Error test", views::error_test(&ctx))
}

/// Fails on purpose with an unhandled error that has a cause chain, like a real bug would.
#[handler]
pub async fn test_raise(Superuser(admin): Superuser) -> AppResult<Response> {
    tracing::warn!(by = %admin.email, "raising the test error of /admin/error-test");
    let root: Result<(), std::io::Error> = Err(std::io::Error::other(
        "simulated I/O failure at the root of the test error",
    ));
    root.context("a step under the test handler failed")
        .context("Deliberate test error from /admin/error-test")?;
    Ok(see_other("/admin/error-test"))
}
