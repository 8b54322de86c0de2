//! `/mailings/…`: mailing CRUD, manual runs, disable, progress and delivery logs.

use poem::http::{HeaderValue, StatusCode};
use poem::web::{Data, Form, Path, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use crate::clock::now_ms;
use crate::db::mailings::{Mailing, Removed};
use crate::delivery;
use crate::domain::{DeliveryStatus, FieldErrors, MailingStatus, PageRequest};
use crate::mailings::{self, MailingForm};
use crate::objects::ObjectError;
use crate::state::AppState;
use crate::web::auth::{AuthUser, CurrentUser};
use crate::web::error::AppResult;
use crate::web::htmx::{PageCtx, after_action, flash, see_other, wants_fragment};
use crate::web::views::mailings as views;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListParams {
    status: String,
    page: Option<String>,
}

#[handler]
pub async fn list(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Query(params): Query<ListParams>,
) -> AppResult<Response> {
    let scope = user.scope();
    let archived = params.status.trim() == views::ARCHIVED;
    let status = MailingStatus::parse(params.status.trim()).ok();
    let page = PageRequest::parse(params.page.as_deref());
    let (rows, total) = mailings::list(&state.db, &scope, status, archived, page).await?;
    let view = views::ListView {
        rows: &rows,
        status,
        archived,
        page,
        total,
        everyone: scope.owner_filter().is_none(),
        zone: user.zone(&state.settings),
    };
    Ok(ctx.render("Mailings", views::list(&view)))
}

/// Which mailing the form edits (`None`: a new one), and the other version after a refused
/// stale save.
#[derive(Default)]
struct Editing<'a> {
    mailing_id: Option<i64>,
    saved: Option<&'a [(&'a str, String)]>,
}

/// Renders the form for `owner_id` with the given values and messages.
#[allow(clippy::too_many_arguments)]
async fn render_form(
    ctx: &PageCtx,
    state: &AppState,
    owner_id: i64,
    action: &str,
    page_url: &str,
    title: &str,
    form: &MailingForm,
    errors: &FieldErrors,
    status: StatusCode,
    editing: Editing<'_>,
) -> AppResult<Response> {
    let choices = mailings::form_choices(
        &state.delivery(),
        owner_id,
        editing.mailing_id,
        &form.recipient_q,
    )
    .await?;
    let view = views::FormView {
        action,
        page_url,
        title,
        form,
        errors,
        messages: &choices.messages,
        candidates: &choices.candidates,
        matching: choices.matching,
        zone: choices.zone,
        saved: editing.saved,
        sending: choices.sending,
    };
    Ok(ctx.render_status(status, title, views::form(ctx, &view)))
}

/// Raw query pairs (the picker's reload sends the form's current state).
fn picker_form(req: &Request) -> Option<MailingForm> {
    let query = req.uri().query()?;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    pairs
        .iter()
        .any(|(k, _)| k == "picker")
        .then(|| MailingForm::from_pairs(&pairs))
}

#[handler]
pub async fn new_page(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
) -> AppResult<Response> {
    let form = picker_form(req).unwrap_or_else(|| MailingForm {
        period: "once".into(),
        ..MailingForm::default()
    });
    render_form(
        &ctx,
        state,
        user.id,
        "/mailings/",
        "/mailings/new",
        "New mailing",
        &form,
        &FieldErrors::new(),
        StatusCode::OK,
        Editing::default(),
    )
    .await
}

#[handler]
pub async fn create(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let form = MailingForm::from_pairs(&pairs);
    match mailings::create(
        &state.delivery(),
        &user.scope(),
        user.zone(&state.settings),
        &form,
    )
    .await
    {
        Ok(id) => {
            flash(req, "The mailing was created.");
            Ok(see_other(&format!("/mailings/{id}")))
        }
        Err(ObjectError::Validation(errors)) => {
            render_form(
                &ctx,
                state,
                user.id,
                "/mailings/",
                "/mailings/new",
                "New mailing",
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
                Editing::default(),
            )
            .await
        }
        Err(err) => Err(err.into()),
    }
}

fn may_disable(user: &CurrentUser, owner_id: i64) -> bool {
    mailings::may_disable(&user.scope(), user.disable_mailing, owner_id)
}

#[handler]
pub async fn detail(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let scope = user.scope();
    let mailing = mailings::get(&state.delivery(), &scope, &id).await?;
    let detail = mailings::detail(&state.db, &mailing).await?;
    let view = views::DetailView {
        mailing: &mailing,
        subject: &detail.subject,
        owner: &detail.owner,
        owner_paused: detail.owner_paused,
        recipients: detail.recipients,
        runs: &detail.runs,
        progress: detail.progress.as_ref(),
        can_change: scope.can_change(mailing.owner_id),
        can_disable: may_disable(&user, mailing.owner_id),
        zone: user.zone(&state.settings),
    };
    Ok(ctx.render(
        &format!("Mailing #{}", mailing.id),
        views::detail(&ctx, &view),
    ))
}

#[handler]
pub async fn edit_page(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let mailing = mailings::get_for_edit(&state.delivery(), &user.scope(), &id).await?;
    let form = match picker_form(req) {
        Some(form) => form,
        None => mailings::saved_form(&state.delivery(), &mailing).await?.0,
    };
    edit_form(
        &ctx,
        state,
        &mailing,
        &form,
        &FieldErrors::new(),
        StatusCode::OK,
        None,
    )
    .await
}

#[handler]
pub async fn edit(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let form = MailingForm::from_pairs(&pairs);
    match mailings::update(&state.delivery(), &user.scope(), &id, &form).await {
        Ok(id) => {
            flash(req, "The mailing was saved.");
            Ok(see_other(&format!("/mailings/{id}")))
        }
        Err(ObjectError::Validation(errors)) => {
            let mailing = mailings::get_for_change(&state.delivery(), &user.scope(), &id).await?;
            edit_form(
                &ctx,
                state,
                &mailing,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
            )
            .await
        }
        Err(ObjectError::Stale) => {
            // Someone saved it since this form was loaded: show theirs beside the user's
            // input, and let a second save (made from their version) replace it knowingly.
            let mailing = mailings::get_for_change(&state.delivery(), &user.scope(), &id).await?;
            let (theirs, recipients) = mailings::saved_form(&state.delivery(), &mailing).await?;
            let subject = mailings::subject_of(&state.db, &mailing).await?;
            let saved = [
                ("Message", subject),
                ("Start", theirs.start_at.clone()),
                ("End", theirs.end_at.clone()),
                ("Repeat", mailing.period.label().to_string()),
                ("Recipients", format!("{recipients} chosen")),
            ];
            let form = MailingForm {
                version: theirs.version,
                ..form
            };
            edit_form(
                &ctx,
                state,
                &mailing,
                &form,
                &FieldErrors::new(),
                StatusCode::CONFLICT,
                Some(&saved),
            )
            .await
        }
        Err(err) => Err(err.into()),
    }
}

/// The edit form of `mailing` (the edit page, a refused save, a stale save beside the
/// version `saved` since), one rendering for all three.
async fn edit_form(
    ctx: &PageCtx,
    state: &AppState,
    mailing: &Mailing,
    form: &MailingForm,
    errors: &FieldErrors,
    status: StatusCode,
    saved: Option<&[(&str, String)]>,
) -> AppResult<Response> {
    let url = format!("/mailings/{}/edit", mailing.id);
    render_form(
        ctx,
        state,
        mailing.owner_id,
        &url,
        &url,
        "Edit mailing",
        form,
        errors,
        status,
        Editing {
            mailing_id: Some(mailing.id),
            saved,
        },
    )
    .await
}

/// The confirmation pages of the actions on a mailing the viewer may change: each loads the
/// mailing for change and shows [`confirm`] with its own title and view.
macro_rules! confirm_pages {
    ($($name:ident => $title:literal, $render:path;)+) => {$(
        #[handler]
        pub async fn $name(
            ctx: PageCtx,
            Data(state): Data<&AppState>,
            AuthUser(user): AuthUser,
            Path(id): Path<String>,
        ) -> AppResult<Response> {
            let mailing = mailings::get_for_change(&state.delivery(), &user.scope(), &id).await?;
            confirm(&ctx, state, &mailing, $title, $render).await
        }
    )+};
}

confirm_pages! {
    delete_page => "Delete mailing", views::delete_page;
    restore_page => "Restore mailing", views::restore_page;
    send_page => "Send mailing", views::send_page;
}

/// The confirmation page of `render`, for a mailing the viewer may act on.
async fn confirm(
    ctx: &PageCtx,
    state: &AppState,
    mailing: &Mailing,
    title: &str,
    render: fn(&PageCtx, &views::ConfirmView<'_>) -> maud::Markup,
) -> AppResult<Response> {
    let summary = mailings::summary(&state.delivery(), mailing).await?;
    let view = views::ConfirmView {
        mailing,
        subject: &summary.subject,
        recipients: summary.recipients,
        runs: summary.runs,
        active_run: summary.active_run,
        next_run_after_restore: summary.next_run_after_restore,
        zone: summary.zone,
    };
    Ok(ctx.render(title, render(ctx, &view)))
}

#[handler]
pub async fn delete(
    req: &Request,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (mailing, removed) = mailings::delete(&state.delivery(), &user.scope(), &id).await?;
    let message = match removed {
        Removed::Deleted => format!("Mailing #{} was deleted.", mailing.id),
        Removed::Archived => format!(
            "Mailing #{} was archived: its history is kept, and it can be restored from the \
             archived mailings.",
            mailing.id
        ),
    };
    Ok(after_action(req, "/mailings/", "mailing-deleted", message))
}

#[handler]
pub async fn restore(
    req: &Request,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let mailing = mailings::restore(&state.delivery(), &user.scope(), &id).await?;
    let target = format!("/mailings/{}", mailing.id);
    Ok(after_action(
        req,
        &target,
        "mailing-restored",
        format!("Mailing #{} was restored.", mailing.id),
    ))
}

#[handler]
pub async fn disable_page(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let mailing = mailings::get(&state.delivery(), &user.scope(), &id).await?;
    if !may_disable(&user, mailing.owner_id) {
        return Err(ObjectError::ReadOnly.into());
    }
    confirm(
        &ctx,
        state,
        &mailing,
        "Disable mailing",
        views::disable_page,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendForm {
    #[serde(deserialize_with = "crate::domain::choice::flag")]
    dry_run: bool,
}

#[handler]
pub async fn send(
    req: &Request,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Form(form): Form<SendForm>,
) -> AppResult<Response> {
    let dry_run = form.dry_run;
    let run_id =
        mailings::send_now(&state.delivery(), &user.scope(), &user.email, &id, dry_run).await?;
    let what = if dry_run { "Dry run" } else { "Run" };
    Ok(after_action(
        req,
        &format!("/mailings/{}", id.trim()),
        "run-started",
        format!("{what} #{run_id} started."),
    ))
}

#[handler]
pub async fn disable(
    req: &Request,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let cancelled =
        mailings::disable(&state.delivery(), &user.scope(), user.disable_mailing, &id).await?;
    Ok(after_action(
        req,
        &format!("/mailings/{}", id.trim()),
        "mailing-disabled",
        format!("The mailing is finished; {cancelled} pending message(s) cancelled."),
    ))
}

/// htmx stops polling when it receives this status (htmx 2: 286 "stop polling").
const STOP_POLLING: u16 = 286;

#[handler]
pub async fn progress(
    req: &Request,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let mailing = mailings::get(&state.delivery(), &user.scope(), &id).await?;
    let current = delivery::progress(&state.db, mailing.id, now_ms()).await?;
    let active = current.as_ref().is_some_and(|p| p.active());
    let mut resp = views::progress(mailing.id, current.as_ref())
        .with_header("Cache-Control", "no-store")
        .into_response();
    if !active {
        resp.set_status(StatusCode::from_u16(STOP_POLLING).unwrap_or(StatusCode::OK));
        if wants_fragment(req.headers()) {
            // A polling bar saw its run end: the page around it (status, next run, run
            // history, the send buttons) still shows the run going, so htmx reloads it once.
            resp.headers_mut()
                .insert("HX-Refresh", HeaderValue::from_static("true"));
        }
    }
    Ok(resp)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogParams {
    status: String,
    page: Option<String>,
}

#[handler]
pub async fn logs(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Query(params): Query<LogParams>,
) -> AppResult<Response> {
    let mailing = mailings::get(&state.delivery(), &user.scope(), &id).await?;
    let status = DeliveryStatus::parse(params.status.trim()).ok();
    let page = PageRequest::parse(params.page.as_deref());
    let (rows, total) = mailings::deliveries(&state.db, &mailing, status, page).await?;
    Ok(ctx.render(
        &format!("Delivery log of mailing #{}", mailing.id),
        views::logs(
            &mailing,
            &rows,
            status,
            page,
            total,
            user.zone(&state.settings),
        ),
    ))
}
