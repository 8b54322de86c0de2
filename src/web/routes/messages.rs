//! `/messages/…`: message CRUD with a preview for a sample recipient.

use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use crate::domain::{FieldErrors, PageRequest};
use crate::messages::{self, MessageForm};
use crate::objects::{ObjectError, parse_id};
use crate::state::AppState;
use crate::web::auth::AuthUser;
use crate::web::error::AppResult;
use crate::web::htmx::{self, PageCtx, after_action, flash, see_other, wants_results};
use crate::web::views::messages as views;

/// The sample recipient of previews.
const SAMPLE_NAME: &str = "Ann Example";
const SAMPLE_EMAIL: &str = "ann@example.com";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListParams {
    q: String,
    page: Option<String>,
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
    let q: String = params.q.trim().chars().take(200).collect();
    let page = PageRequest::parse(params.page.as_deref());
    let owner = scope.owner_filter();
    let (rows, total) = messages::list(&state.db, &scope, &q, page).await?;
    let can_change = |owner: i64| scope.can_change(owner);
    let view = views::ListView {
        rows: &rows,
        q: &q,
        page,
        total,
        everyone: owner.is_none(),
        can_change: &can_change,
        zone: user.zone(&state.settings),
    };
    if wants_results(req) {
        return Ok(htmx::fragment(views::results(&view)));
    }
    Ok(ctx.render("Messages", views::list(&view)))
}

#[handler]
pub async fn new_page(ctx: PageCtx, AuthUser(_user): AuthUser) -> Response {
    ctx.render(
        "New message",
        views::form(
            &ctx,
            "/messages/",
            "New message",
            &MessageForm::default(),
            &FieldErrors::new(),
            &views::FormNotes::default(),
        ),
    )
}

#[handler]
pub async fn create(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Form(form): Form<MessageForm>,
) -> AppResult<Response> {
    match messages::create(&state.db, &user.scope(), &form).await {
        Ok(id) => {
            flash(req, "The message was saved.");
            Ok(see_other(&format!("/messages/{id}")))
        }
        Err(ObjectError::Validation(errors)) => Ok(ctx.render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "New message",
            views::form(
                &ctx,
                "/messages/",
                "New message",
                &form,
                &errors,
                &views::FormNotes::default(),
            ),
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
    let message = messages::get(&state.db, &scope, parse_id(&id)?).await?;
    let used_by = messages::used_by(&state.db, message.id).await?;
    let owner = crate::accounts::find_user(&state.db, message.owner_id)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    let (subject, text, html) = messages::preview(&message, SAMPLE_NAME, SAMPLE_EMAIL);
    let preview = views::Preview {
        name: SAMPLE_NAME,
        email: SAMPLE_EMAIL,
        subject: &subject,
        text: &text,
        html: html.as_deref(),
    };
    let zone = user.zone(&state.settings);
    Ok(ctx.render(
        &message.subject.clone(),
        views::detail(
            &message,
            &owner,
            &used_by,
            scope.can_change(message.owner_id),
            &preview,
            zone,
        ),
    ))
}

#[handler]
pub async fn edit_page(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let message = messages::get_for_change(&state.db, &user.scope(), parse_id(&id)?).await?;
    let form = MessageForm::from_message(&message);
    render_edit(&ctx, state, message.id, &form, &FieldErrors::new(), None).await
}

/// The edit form with what it must say: a run sending now keeps its version (the edit is
/// for the next run), and, after a refused stale save, the version someone else saved.
async fn render_edit(
    ctx: &PageCtx,
    state: &AppState,
    id: i64,
    form: &MessageForm,
    errors: &FieldErrors,
    saved: Option<(&[(&str, String)], StatusCode)>,
) -> AppResult<Response> {
    let sending = messages::sending_mailings(&state.db, id).await?;
    let status = match (&saved, errors.is_empty()) {
        (Some((_, status)), _) => *status,
        (None, true) => StatusCode::OK,
        (None, false) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let notes = views::FormNotes {
        saved: saved.map(|(s, _)| s),
        sending: &sending,
    };
    Ok(ctx.render_status(
        status,
        "Edit message",
        views::form(
            ctx,
            &format!("/messages/{id}/edit"),
            "Edit message",
            form,
            errors,
            &notes,
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
    Form(form): Form<MessageForm>,
) -> AppResult<Response> {
    let id = parse_id(&id)?;
    match messages::update(&state.db, &user.scope(), id, &form).await {
        Ok(()) => {
            let sending = messages::sending_mailings(&state.db, id).await?;
            flash(
                req,
                if sending.is_empty() {
                    "The message was saved."
                } else {
                    "The message was saved. The run sending now keeps the version it started \
                     with; the change applies to the next run."
                },
            );
            Ok(see_other(&format!("/messages/{id}")))
        }
        Err(ObjectError::Validation(errors)) => {
            render_edit(&ctx, state, id, &form, &errors, None).await
        }
        Err(ObjectError::Stale) => {
            // Someone saved it since this form was loaded: show theirs beside the user's
            // input, and let a second save (made from their version) replace it knowingly.
            let current = messages::get_for_change(&state.db, &user.scope(), id).await?;
            let saved = [
                ("Subject", current.subject.clone()),
                ("Text", current.body.clone()),
                ("HTML", current.body_html.clone().unwrap_or_default()),
            ];
            let form = MessageForm {
                version: current.version.to_string(),
                ..form
            };
            render_edit(
                &ctx,
                state,
                id,
                &form,
                &FieldErrors::new(),
                Some((&saved, StatusCode::CONFLICT)),
            )
            .await
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
    let message = messages::get_for_change(&state.db, &user.scope(), parse_id(&id)?).await?;
    let used_by = messages::used_by(&state.db, message.id).await?;
    Ok(ctx.render(
        "Delete message",
        views::delete_page(&ctx, &message, &used_by),
    ))
}

#[handler]
pub async fn delete(
    req: &Request,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    messages::delete(&state.db, &user.scope(), parse_id(&id)?).await?;
    Ok(after_action(
        req,
        "/messages/",
        "message-deleted",
        "The message was deleted.".to_string(),
    ))
}
