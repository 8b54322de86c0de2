//! `/clients/…`: recipients, with active search, CSV import and export.

use poem::http::{StatusCode, header};
use poem::web::{Data, Form, Multipart, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use crate::domain::{FieldErrors, PageRequest};
use crate::objects::{ObjectError, parse_id};
use crate::recipients::{self, ListQuery, RecipientForm, Sort, csv_io};
use crate::state::AppState;
use crate::web::auth::AuthUser;
use crate::web::error::AppResult;
use crate::web::htmx::{self, PageCtx, after_action, flash, see_other, wants_results};
use crate::web::views::recipients as views;

/// Longest search text honoured; longer input is cut, never refused.
const MAX_QUERY: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListParams {
    q: String,
    #[serde(deserialize_with = "crate::domain::choice::choice")]
    sort: Sort,
    page: Option<String>,
}

impl ListParams {
    fn query(&self, owner: Option<i64>) -> ListQuery {
        ListQuery {
            owner,
            search: self.q.trim().chars().take(MAX_QUERY).collect(),
            sort: self.sort,
        }
    }
}

#[handler]
pub async fn list(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Query(params): Query<ListParams>,
) -> AppResult<Response> {
    let scope = user.scope();
    let query = params.query(scope.owner_filter());
    let page = PageRequest::parse(params.page.as_deref());
    let (rows, total) = recipients::list(&state.db, &query, page).await?;
    let can_change = |owner: i64| scope.can_change(owner);
    let view = views::ListView {
        rows: &rows,
        q: &query.search,
        sort: query.sort,
        page,
        total,
        everyone: scope.owner_filter().is_none(),
        can_change: &can_change,
        zone: user.zone(&state.settings),
    };
    if wants_results(req) {
        return Ok(htmx::fragment(views::results(&view)));
    }
    Ok(ctx.render("Recipients", views::list(&view)))
}

#[handler]
pub async fn new_page(ctx: PageCtx, AuthUser(_user): AuthUser) -> Response {
    ctx.render(
        "New recipient",
        views::form(
            &ctx,
            "/clients/",
            "New recipient",
            &RecipientForm::default(),
            &FieldErrors::new(),
            None,
        ),
    )
}

#[handler]
pub async fn create(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Form(form): Form<RecipientForm>,
) -> AppResult<Response> {
    match recipients::create(&state.db, &user.scope(), &form).await {
        Ok(_) => {
            flash(req, format!("{} was added.", form.email.trim()));
            Ok(see_other("/clients/"))
        }
        Err(ObjectError::Validation(errors)) => Ok(ctx.render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "New recipient",
            views::form(&ctx, "/clients/", "New recipient", &form, &errors, None),
        )),
        Err(err) => Err(err.into()),
    }
}

#[handler]
pub async fn detail(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let scope = user.scope();
    let recipient = recipients::get(&state.db, &scope, parse_id(&id)?).await?;
    let zone = user.zone(&state.settings);
    Ok(ctx.render(
        &recipient.full_name.clone(),
        views::detail(&recipient, scope.can_change(recipient.owner_id), zone),
    ))
}

#[handler]
pub async fn edit_page(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let recipient = recipients::get_for_change(&state.db, &user.scope(), parse_id(&id)?).await?;
    let action = format!("/clients/{}/edit", recipient.id);
    Ok(ctx.render(
        "Edit recipient",
        views::form(
            &ctx,
            &action,
            "Edit recipient",
            &RecipientForm::from_recipient(&recipient),
            &FieldErrors::new(),
            None,
        ),
    ))
}

#[handler]
pub async fn edit(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Form(form): Form<RecipientForm>,
) -> AppResult<Response> {
    let id = parse_id(&id)?;
    match recipients::update(&state.db, &user.scope(), id, &form).await {
        Ok(()) => {
            flash(req, "The recipient was saved.");
            Ok(see_other(&format!("/clients/{id}")))
        }
        Err(ObjectError::Validation(errors)) => Ok(ctx.render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Edit recipient",
            views::form(
                &ctx,
                &format!("/clients/{id}/edit"),
                "Edit recipient",
                &form,
                &errors,
                None,
            ),
        )),
        Err(ObjectError::Stale) => {
            // Someone saved it since this form was loaded: show theirs beside the user's
            // input, and let a second save (made from their version) replace it knowingly.
            let current = recipients::get_for_change(&state.db, &user.scope(), id).await?;
            let saved = [
                ("E-mail", current.email.clone()),
                ("Full name", current.full_name.clone()),
                ("Comment", current.comment.clone()),
            ];
            let form = RecipientForm {
                version: current.version.to_string(),
                ..form
            };
            Ok(ctx.render_status(
                StatusCode::CONFLICT,
                "Edit recipient",
                views::form(
                    &ctx,
                    &format!("/clients/{id}/edit"),
                    "Edit recipient",
                    &form,
                    &FieldErrors::new(),
                    Some(&saved),
                ),
            ))
        }
        Err(err) => Err(err.into()),
    }
}

#[handler]
pub async fn delete_page(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let recipient = recipients::get_for_change(&state.db, &user.scope(), parse_id(&id)?).await?;
    Ok(ctx.render("Delete recipient", views::delete_page(&ctx, &recipient)))
}

#[handler]
pub async fn delete(
    req: &Request,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let removed = recipients::delete(&state.db, &user.scope(), parse_id(&id)?).await?;
    Ok(after_action(
        req,
        "/clients/",
        "recipient-deleted",
        format!("{} was deleted.", removed.email),
    ))
}

#[handler]
pub async fn export(
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Query(params): Query<ListParams>,
) -> AppResult<Response> {
    let query = params.query(user.scope().owner_filter());
    let rows = recipients::all(&state.db, &query).await?;
    let csv = csv_io::export(&rows)?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"recipients.csv\"",
        )
        .header(header::CACHE_CONTROL, "private, no-store")
        .body(csv))
}

#[handler]
pub async fn import_page(ctx: PageCtx, AuthUser(_user): AuthUser) -> Response {
    ctx.render("Import recipients", views::import(&ctx, None))
}

/// An import the database stopped part-way: the user learns how far it got and that the
/// same file finishes it, 503 with `Retry-After`. Busy past the timeout or disk full is
/// passing trouble (a warning); anything else is a bug the operator must see (an error with
/// how far it got), but on SQLite the chunks before it are saved all the same, so a bare 500
/// would hide from the user that part of the file is in.
fn import_stopped(ctx: &PageCtx, stopped: recipients::ImportStopped) -> AppResult<Response> {
    let transient = crate::db::is_transient_chain(&stopped.error);
    if transient {
        tracing::warn!(
            landed = stopped.landed,
            total = stopped.total,
            error = %format!("{:#}", stopped.error),
            "recipients import stopped"
        );
    } else {
        tracing::error!(
            landed = stopped.landed,
            total = stopped.total,
            error = %format!("{:#}", stopped.error),
            "recipients import stopped by a database error"
        );
    }
    let cause = if transient {
        "the database is busy or out of space"
    } else {
        "the database refused a write (the error is logged for the operator)"
    };
    let saved = match stopped.landed {
        0 => "Nothing was saved".to_string(),
        n => format!(
            "The first {n} rows are saved ({} added, {} updated)",
            stopped.created, stopped.updated
        ),
    };
    let message = format!(
        "The import stopped after {} of {} rows: {cause}. {saved}; upload the same file \
         again in a moment to import the rest (rows already saved are updated, not added \
         twice).",
        stopped.landed, stopped.total
    );
    let mut resp = ctx.render_status(
        StatusCode::SERVICE_UNAVAILABLE,
        "Import recipients",
        views::import(ctx, Some(&message)),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    Ok(resp)
}

#[handler]
pub async fn import(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    mut multipart: Multipart,
) -> AppResult<Response> {
    let mut upload = None;
    while let Some(part) = multipart.next_field().await? {
        if part.name() == Some("file") {
            upload = Some(part.bytes().await?);
        }
    }
    let refuse = |message: String| {
        ctx.render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Import recipients",
            views::import(&ctx, Some(&message)),
        )
    };
    let Some(bytes) = upload else {
        return Ok(refuse("Choose a CSV file to import.".into()));
    };
    let parsed = match csv_io::parse(&bytes) {
        Ok(parsed) => parsed,
        Err(err) => return Ok(refuse(err.to_string())),
    };
    let (created, updated) = match recipients::import(&state.db, user.id, &parsed.rows).await {
        Ok(counts) => counts,
        Err(stopped) => return import_stopped(&ctx, stopped),
    };
    tracing::info!(
        created,
        updated,
        rejected = parsed.rejected.len(),
        "recipients imported"
    );
    Ok(ctx.render(
        "Import finished",
        views::import_result(created, updated, &parsed.rejected),
    ))
}
