//! `/users/…`: login, logout, sign-up, activation, password reset and change, profile.

use poem::http::StatusCode;
use poem::session::Session;
use poem::web::{Data, Form, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use crate::accounts::sessions::{AUTH_VERSION, USER_ID};
use crate::accounts::{self, AccountError, LoginError, NewPasswordForm, ProfileForm, SignupForm};
use crate::domain::{FieldErrors, MAX_EMAIL_LEN, MAX_PASSWORD_LEN};
use crate::state::AppState;
use crate::web::auth::{AuthUser, safe_next};
use crate::web::client::client_ip;
use crate::web::error::{AppResult, Busy, RetryAfter};
use crate::web::htmx::{PageCtx, flash, see_other};
use crate::web::views::users as views;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: String,
}

#[handler]
pub async fn login_page(ctx: PageCtx, Query(query): Query<NextQuery>) -> Response {
    let next = safe_next(query.next.as_deref());
    if ctx.user.is_some() {
        return see_other(next.as_deref().unwrap_or("/"));
    }
    ctx.render("Log in", views::login(&ctx, "", next.as_deref(), None))
}

#[handler]
pub async fn login(
    req: &Request,
    ctx: PageCtx,
    session: &Session,
    Data(state): Data<&AppState>,
    Query(query): Query<NextQuery>,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    let next = safe_next(query.next.as_deref());
    let client = client_ip(req, &state.settings);
    // Fields past their longest valid length are refused before anything keys on them (the
    // throttle, the password hash): such a login cannot be right anyway.
    let oversized = form.email.chars().count() > MAX_EMAIL_LEN
        || form.password.chars().count() > MAX_PASSWORD_LEN;
    let account = (!oversized).then_some(form.email.as_str());
    if let Err(wait) = state.throttle.login(client, account) {
        tracing::warn!(%client, "login rate limit reached");
        return Err(RetryAfter(wait).into());
    }
    if oversized {
        return Ok(ctx.render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Log in",
            views::login(
                &ctx,
                "",
                next.as_deref(),
                Some(&LoginError::Invalid.to_string()),
            ),
        ));
    }
    match accounts::authenticate(state.accounts(), &form.email, &form.password).await {
        Ok(user) => {
            // A new session id at login: a planted id (fixation) is worth nothing.
            session.renew();
            session.set(USER_ID, user.id);
            session.set(AUTH_VERSION, user.auth_version);
            tracing::info!(user_id = user.id, "logged in");
            let target = if user.must_change_password {
                "/users/password-change".to_string()
            } else {
                next.unwrap_or_else(|| "/".to_string())
            };
            Ok(see_other(&target))
        }
        Err(LoginError::Unexpected(err)) => Err(err.into()),
        Err(LoginError::Busy) => Err(Busy.into()),
        Err(refusal) => {
            let message = refusal.to_string();
            Ok(ctx.render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Log in",
                views::login(&ctx, form.email.trim(), next.as_deref(), Some(&message)),
            ))
        }
    }
}

#[handler]
pub async fn logout(session: &Session) -> Response {
    session.purge();
    see_other("/")
}

#[handler]
pub async fn signup_page(ctx: PageCtx) -> Response {
    ctx.render(
        "Sign up",
        views::signup(&ctx, &SignupForm::default(), &FieldErrors::new()),
    )
}

#[handler]
pub async fn signup(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Form(form): Form<SignupForm>,
) -> AppResult<Response> {
    match accounts::signup(state.accounts(), client_ip(req, &state.settings), &form).await {
        Ok(sent) => Ok(ctx.render(
            "Check your e-mail",
            views::signup_done(form.email.trim(), sent),
        )),
        Err(AccountError::Validation(errors)) => {
            let shown = SignupForm {
                password: String::new(),
                password2: String::new(),
                ..form
            };
            Ok(ctx.render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Sign up",
                views::signup(&ctx, &shown, &errors),
            ))
        }
        Err(other) => Err(other.into()),
    }
}

#[handler]
pub async fn activate(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Path(token): Path<String>,
) -> Response {
    match accounts::activate(state.accounts(), &token).await {
        Ok(_) => ctx.render(
            "Account activated",
            views::message(
                "Account activated",
                "Your account is active. You can log in now.",
                Some(("Log in", "/users/login")),
            ),
        ),
        Err(err) => ctx.render_status(
            StatusCode::BAD_REQUEST,
            "Activation failed",
            views::message("Activation failed", &err.to_string(), None),
        ),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EmailForm {
    email: String,
}

#[handler]
pub async fn reset_request_page(ctx: PageCtx) -> Response {
    ctx.render(
        "Reset your password",
        views::reset_request(&ctx, "", &FieldErrors::new()),
    )
}

#[handler]
pub async fn reset_request(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Form(form): Form<EmailForm>,
) -> AppResult<Response> {
    let client = client_ip(req, &state.settings);
    match accounts::request_password_reset(state.accounts(), client, &form.email).await {
        Ok(()) => Ok(ctx.render(
            "Check your e-mail",
            views::message(
                "Check your e-mail",
                "If an active account uses this address, we sent it a link to choose a new password.",
                None,
            ),
        )),
        Err(AccountError::Validation(errors)) => Ok(ctx.render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Reset your password",
            views::reset_request(&ctx, form.email.trim(), &errors),
        )),
        Err(other) => Err(other.into()),
    }
}

fn bad_link(ctx: &PageCtx, message: &str) -> Response {
    ctx.render_status(
        StatusCode::BAD_REQUEST,
        "Password reset",
        views::message(
            "Password reset",
            message,
            Some(("Ask for a new link", "/users/password-reset")),
        ),
    )
}

#[handler]
pub async fn reset_page(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Path(token): Path<String>,
) -> Response {
    match accounts::check_reset_token(state.accounts(), &token).await {
        Ok(_) => ctx.render(
            "Choose a new password",
            views::reset_form(&ctx, &token, &FieldErrors::new()),
        ),
        Err(err) => bad_link(&ctx, &err.to_string()),
    }
}

#[handler]
pub async fn reset(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    Path(token): Path<String>,
    Form(form): Form<NewPasswordForm>,
) -> AppResult<Response> {
    let user = match accounts::check_reset_token(state.accounts(), &token).await {
        Ok(user) => user,
        Err(err) => return Ok(bad_link(&ctx, &err.to_string())),
    };
    match accounts::reset_password(state.accounts(), &user, &form).await {
        Ok(()) => {
            flash(req, "Your password was changed. Log in with the new one.");
            Ok(see_other("/users/login"))
        }
        Err(AccountError::Validation(errors)) => Ok(ctx.render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a new password",
            views::reset_form(&ctx, &token, &errors),
        )),
        Err(other) => Err(other.into()),
    }
}

#[handler]
pub async fn password_change_page(ctx: PageCtx, AuthUser(user): AuthUser) -> Response {
    ctx.render(
        "Change your password",
        views::password_change(&ctx, user.must_change_password, &FieldErrors::new()),
    )
}

#[handler]
pub async fn password_change(
    req: &Request,
    ctx: PageCtx,
    session: &Session,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Form(form): Form<NewPasswordForm>,
) -> AppResult<Response> {
    match accounts::change_password(state.accounts(), &user, &form).await {
        Ok(updated) => {
            // Every other session ended with the change; this one carries on, renewed.
            session.renew();
            session.set(USER_ID, updated.id);
            session.set(AUTH_VERSION, updated.auth_version);
            flash(
                req,
                "Your password was changed. Other sessions have been logged out.",
            );
            Ok(see_other("/users/profile"))
        }
        Err(AccountError::Validation(errors)) => Ok(ctx.render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Change your password",
            views::password_change(&ctx, user.must_change_password, &errors),
        )),
        Err(other) => Err(other.into()),
    }
}

fn zone_of(state: &AppState, user: &crate::db::users::User) -> String {
    user.time_zone
        .clone()
        .unwrap_or_else(|| format!("{} (server default)", state.settings.time_zone))
}

#[handler]
pub async fn profile(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
) -> Response {
    ctx.render(
        "Your profile",
        views::profile(&user, &zone_of(state, &user)),
    )
}

#[handler]
pub async fn profile_edit_page(
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
) -> Response {
    ctx.render(
        "Edit your profile",
        views::profile_edit(
            &ctx,
            &ProfileForm::from_user(&user),
            &state.settings.time_zone,
            &FieldErrors::new(),
        ),
    )
}

#[handler]
pub async fn profile_edit(
    req: &Request,
    ctx: PageCtx,
    Data(state): Data<&AppState>,
    AuthUser(user): AuthUser,
    Form(form): Form<ProfileForm>,
) -> AppResult<Response> {
    match accounts::update_profile(state.accounts(), &user, &form).await {
        Ok(()) => {
            flash(req, "Your profile was saved.");
            Ok(see_other("/users/profile"))
        }
        Err(AccountError::Validation(errors)) => Ok(ctx.render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Edit your profile",
            views::profile_edit(&ctx, &form, &state.settings.time_zone, &errors),
        )),
        Err(other) => Err(other.into()),
    }
}
