//! `/mailings/stats/` and `/mailings/reports/` (SPEC §9): figures from the reports service,
//! with ETag / Last-Modified validation so unchanged pages answer 304.

use poem::http::{StatusCode, header};
use poem::web::{Data, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use crate::domain::PageRequest;
use crate::domain::choice::Choice as _;
use crate::domain::choice::SortDir;
use crate::reports::{self, ReportError, ReportParams, ReportRows, StatsSort};
use crate::state::AppState;
use crate::web::auth::AuthUser;
use crate::web::conditional;
use crate::web::error::{AppError, AppResult};
use crate::web::htmx::PageCtx;
use crate::web::views::reports as views;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatsParams {
    #[serde(deserialize_with = "crate::domain::choice::choice")]
    sort: StatsSort,
    #[serde(deserialize_with = "crate::domain::choice::choice")]
    dir: SortDir,
    page: Option<String>,
}

#[handler]
pub async fn stats(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Query(params): Query<StatsParams>,
) -> AppResult<Response> {
    let scope = user.scope();
    let sort = params.sort;
    let ascending = params.dir.ascending();
    let page = PageRequest::parse(params.page.as_deref());
    let version = reports::viewer_version(&state.db, &scope).await?;
    let variant = format!("{}:{ascending}:{}", sort.word(), page.page);
    let validator = conditional::for_page(&ctx, &user, &version, "stats", &variant);
    if let Some(resp) = conditional::not_modified(req, &ctx, &validator) {
        return Ok(resp);
    }
    let mut stats = reports::stats(state.reports(), &scope, &version).await?;
    reports::sort_rows(&mut stats.rows, sort, ascending);
    let view = views::StatsView {
        stats: &stats,
        sort,
        ascending,
        page,
        everyone: scope.owner_filter().is_none(),
        zone: user.zone(&state.settings),
    };
    let mut resp = ctx.render("Statistics", views::stats(&view));
    validator.apply(&mut resp);
    Ok(resp)
}

/// The report page, or its CSV with `?format=csv`.
#[handler]
pub async fn report(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Query(params): Query<ReportParams>,
) -> AppResult<Response> {
    let csv = params.format.eq_ignore_ascii_case("csv");
    respond(req, &ctx, state, &user, &params, csv).await
}

/// `/mailings/reports/export.csv`: the same rows as the page's table.
#[handler]
pub async fn export(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Query(params): Query<ReportParams>,
) -> AppResult<Response> {
    respond(req, &ctx, state, &user, &params, true).await
}

async fn respond(
    req: &Request,
    ctx: &PageCtx,
    state: &AppState,
    user: &crate::web::auth::CurrentUser,
    params: &ReportParams,
    csv: bool,
) -> AppResult<Response> {
    let scope = user.scope();
    let today = user.zone(&state.settings).date_at(crate::clock::now_ms());
    let query = match reports::resolve(&state.db, &scope, params, today).await {
        Ok(query) => query,
        Err(ReportError::NotFound) => return Err(AppError::NotFound),
        Err(ReportError::Invalid(errors)) => {
            let form = views::ReportForm {
                from: &params.from,
                to: &params.to,
                user: &params.user,
                errors: &errors,
                everyone: scope.owner_filter().is_none(),
            };
            return Ok(ctx.render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Report",
                views::report_invalid(&form),
            ));
        }
        Err(ReportError::Unexpected(err)) => return Err(err.into()),
    };
    let version = reports::user_version(&state.db, query.user_id).await?;
    let days = params.rows == ReportRows::Days;
    let variant = format!(
        "{}:{}:{}:{}:{}",
        query.user_id,
        query.from_day(),
        query.to_day(),
        if csv { "csv" } else { "html" },
        days
    );
    let validator = conditional::for_page(ctx, user, &version, "report", &variant);
    if let Some(resp) = conditional::not_modified(req, ctx, &validator) {
        return Ok(resp);
    }
    let rep = reports::report(state.reports(), &scope, &query, &version).await?;
    let mut resp = if csv {
        let body = reports::to_csv(&rep, days)?;
        let name = format!(
            "attachment; filename=\"report-{}-{}-{}.csv\"",
            rep.user_id, rep.from, rep.to
        );
        Response::builder()
            .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
            .header(header::CONTENT_DISPOSITION, name)
            .body(body)
    } else {
        let form = views::ReportForm {
            from: &rep.from,
            to: &rep.to,
            user: &params.user,
            errors: &crate::domain::FieldErrors::new(),
            everyone: scope.owner_filter().is_none(),
        };
        ctx.render("Report", views::report(&form, &rep))
    };
    validator.apply(&mut resp);
    Ok(resp)
}
