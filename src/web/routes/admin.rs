//! `/admin/…`: superuser pages.

use poem::web::{Data, Form, Path, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use crate::accounts;
use crate::db::users::AccessFlags;
use crate::domain::PageRequest;
use crate::domain::TimeZone;
use crate::state::AppState;
use crate::web::auth::Superuser;
use crate::web::error::{AppError, AppResult};
use crate::web::htmx::{self, PageCtx, flash, see_other};
use crate::web::views::admin as views;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    q: String,
    page: Option<String>,
}

#[handler]
pub async fn users(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Superuser(_admin): Superuser,
    Query(query): Query<ListQuery>,
) -> AppResult<Response> {
    let q = query.q.trim().chars().take(200).collect::<String>();
    let page = PageRequest::parse(query.page.as_deref());
    let (list, total) = accounts::search_users(&state.db, &q, page).await?;
    Ok(ctx.render(
        "Users",
        views::users(&ctx, &list, &q, page, total, server_zone(state)),
    ))
}

/// An unchecked checkbox is simply absent from the form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccessForm {
    is_active: Option<String>,
    view_all_mailings: Option<String>,
    disable_mailing: Option<String>,
}

fn checked(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| !matches!(v.trim(), "" | "0" | "false" | "off"))
}

#[handler]
pub async fn update_user(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Superuser(admin): Superuser,
    Path(id): Path<String>,
    Form(form): Form<AccessForm>,
) -> AppResult<Response> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let flags = AccessFlags {
        is_active: checked(&form.is_active),
        view_all_mailings: checked(&form.view_all_mailings),
        disable_mailing: checked(&form.disable_mailing),
    };
    if id == admin.id && !flags.is_active {
        return Err(AppError::Unprocessable(
            "You cannot deactivate your own account: ask another superuser.".into(),
        ));
    }
    let user = accounts::set_access(state.accounts(), id, flags)
        .await?
        .ok_or(AppError::NotFound)?;
    if ctx.fragment {
        let row = views::user_row(&ctx, &user, server_zone(state));
        return Ok(htmx::fragment(row)
            .with_header("HX-Trigger", "user-saved")
            .into_response());
    }
    flash(req, "The user was saved.");
    Ok(see_other("/admin/users"))
}

/// Users' dates are shown in the server's zone: the list mixes users of every zone.
fn server_zone(state: &AppState) -> TimeZone {
    TimeZone::for_user(None, &state.settings.time_zone)
}
