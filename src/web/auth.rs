//! The current user: loaded once per request from the session by the [`load_user`] layer
//! (the innermost of [`crate::web::middleware`]; static assets skip it), checked, and
//! offered to handlers through extractors that say what a route needs.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::session::Session;
use poem::web::Redirect;
use poem::{Endpoint, FromRequest, IntoResponse, Request, RequestBody, Response};

use crate::accounts::sessions::{AUTH_VERSION, USER_ID};
use crate::db::users::{self, User};
use crate::domain::Scope;
use crate::state::AppState;
use crate::telemetry::current_context;

/// The logged-in user, put into the request by [`load_user`].
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Arc<User>);

impl CurrentUser {
    /// The zone this user sees and enters times in: their profile's, else the server's.
    pub fn zone(&self, settings: &crate::config::Settings) -> crate::domain::TimeZone {
        crate::domain::TimeZone::for_user(self.0.time_zone.as_deref(), &settings.time_zone)
    }

    pub fn scope(&self) -> Scope {
        Scope {
            user_id: self.0.id,
            view_all: self.0.view_all_mailings,
            superuser: self.0.is_superuser,
        }
    }
}

impl std::ops::Deref for CurrentUser {
    type Target = User;
    fn deref(&self) -> &User {
        &self.0
    }
}

/// Paths a user who must change their password may still reach (static assets never reach
/// this layer: [`crate::web::middleware::session`]).
fn allowed_before_password_change(path: &str) -> bool {
    matches!(
        path,
        "/users/password-change" | "/users/logout" | "/healthz"
    )
}

/// Loads the session's user. A session whose user is gone, inactive, or whose password
/// changed since (auth_version) is ended: a replayed old cookie gets nobody.
pub async fn load_user<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let session = req.extensions().get::<Session>().cloned();
    if let Some(session) = session
        && let Some(user_id) = session.get::<i64>(USER_ID)
    {
        let state = req
            .data::<AppState>()
            .cloned()
            .expect("AppState is attached");
        let user = users::find_by_id(&state.db, user_id)
            .await
            .map_err(crate::web::error::AppError::from)?;
        let version = session.get::<i64>(AUTH_VERSION);
        match user {
            Some(user) if user.is_active && Some(user.auth_version) == version => {
                if let Some(ctx) = current_context() {
                    ctx.set_user(&user.email);
                }
                if user.must_change_password && !allowed_before_password_change(req.uri().path()) {
                    return Ok(Redirect::see_other("/users/password-change").into_response());
                }
                req.extensions_mut().insert(CurrentUser(Arc::new(user)));
            }
            _ => session.purge(),
        }
    }
    Ok(ep.call(req).await?.into_response())
}

/// Where an anonymous visitor is sent: the login page, coming back here afterwards.
fn login_redirect(req: &Request) -> poem::Error {
    let here = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let target = format!(
        "/users/login?next={}",
        percent_encoding::utf8_percent_encode(here, percent_encoding::NON_ALPHANUMERIC)
    );
    poem::Error::from_response(Redirect::see_other(target).into_response())
}

/// Extractor for pages that need a logged-in user; anonymous visitors go to the login page.
pub struct AuthUser(pub CurrentUser);

impl<'a> FromRequest<'a> for AuthUser {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        match req.extensions().get::<CurrentUser>() {
            Some(user) => Ok(AuthUser(user.clone())),
            None => Err(login_redirect(req)),
        }
    }
}

/// Extractor for superuser pages: anonymous → login, anyone else → 404 (the page is not
/// theirs to know about).
pub struct Superuser(pub CurrentUser);

impl<'a> FromRequest<'a> for Superuser {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        match req.extensions().get::<CurrentUser>() {
            Some(user) if user.is_superuser => Ok(Superuser(user.clone())),
            Some(_) => Err(poem::Error::from_status(StatusCode::NOT_FOUND)),
            None => Err(login_redirect(req)),
        }
    }
}

/// A `next` target that stays on this site: a local absolute path, nothing else.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    local.then(|| next.to_string())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(
            safe_next(Some("/clients/?q=a")).as_deref(),
            Some("/clients/?q=a")
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "",
            "/a\r\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad}");
        }
        assert_eq!(safe_next(None), None);
    }
}
