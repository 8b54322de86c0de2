//! The HTTP side: router, middleware, handlers and views.

pub mod assets;
pub mod auth;
pub mod conditional;
pub mod csrf;
pub mod error;
pub mod htmx;
pub mod middleware;
pub mod routes;
pub mod views;

use std::time::Duration;

use poem::middleware::{Compression, CookieJarManager};
use poem::session::{CookieConfig, ServerSession};
use poem::web::cookie::SameSite;
use poem::{Endpoint, EndpointExt, Route, get, post};

use crate::state::AppState;

/// How long a login lasts without coming back.
const SESSION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
pub const SESSION_COOKIE: &str = "sessionid";

/// Every route of SPEC §6 that exists so far, wrapped in the middleware stack.
pub fn router(state: AppState) -> impl Endpoint {
    use routes::{
        admin, errors, health, home, mailings, messages, metrics, recipients, reports, unsubscribe,
        users,
    };
    let routes = Route::new()
        .at("/", get(home::index))
        .at("/healthz", get(health::healthz))
        .at("/metrics", get(metrics::metrics))
        .at("/assets/*path", get(assets::serve))
        .at("/users/login", get(users::login_page).post(users::login))
        .at("/users/logout", post(users::logout))
        .at("/users/signup", get(users::signup_page).post(users::signup))
        .at("/users/activate/:token", get(users::activate))
        .at(
            "/users/password-reset",
            get(users::reset_request_page).post(users::reset_request),
        )
        .at(
            "/users/password-reset/:token",
            get(users::reset_page).post(users::reset),
        )
        .at(
            "/users/password-change",
            get(users::password_change_page).post(users::password_change),
        )
        .at("/users/profile", get(users::profile))
        .at(
            "/users/profile/edit",
            get(users::profile_edit_page).post(users::profile_edit),
        )
        .at("/clients/", get(recipients::list).post(recipients::create))
        .at("/clients/new", get(recipients::new_page))
        .at(
            "/clients/import",
            get(recipients::import_page).post(recipients::import),
        )
        .at("/clients/export.csv", get(recipients::export))
        .at("/clients/:id", get(recipients::detail))
        .at(
            "/clients/:id/edit",
            get(recipients::edit_page).post(recipients::edit),
        )
        .at("/clients/:id/delete", post(recipients::delete))
        .at("/messages/", get(messages::list).post(messages::create))
        .at("/messages/new", get(messages::new_page))
        .at("/messages/:id", get(messages::detail))
        .at(
            "/messages/:id/edit",
            get(messages::edit_page).post(messages::edit),
        )
        .at("/messages/:id/delete", post(messages::delete))
        .at("/mailings/stats/", get(reports::stats))
        .at("/mailings/reports/", get(reports::report))
        .at("/mailings/reports/export.csv", get(reports::export))
        .at("/mailings/", get(mailings::list).post(mailings::create))
        .at("/mailings/new", get(mailings::new_page))
        .at("/mailings/:id", get(mailings::detail))
        .at(
            "/mailings/:id/edit",
            get(mailings::edit_page).post(mailings::edit),
        )
        .at("/mailings/:id/delete", post(mailings::delete))
        .at("/mailings/:id/send", post(mailings::send))
        .at("/mailings/:id/disable", post(mailings::disable))
        .at("/mailings/:id/progress", get(mailings::progress))
        .at("/mailings/:id/logs", get(mailings::logs))
        .at("/admin/users", get(admin::users))
        .at("/admin/users/:id", post(admin::update_user))
        .at("/admin/errors", get(errors::list))
        .at("/admin/errors/:id/resolve", post(errors::resolve))
        .at(
            "/admin/error-test",
            get(errors::test_page).post(errors::test_raise),
        )
        .at(
            "/u/:token",
            get(unsubscribe::confirm_page).post(unsubscribe::confirm),
        );
    with_middleware(routes, state)
}

/// Wraps routes in the middleware stack (outermost last). Public so tests can mount a
/// deliberately failing handler behind exactly the stack users meet.
pub fn with_middleware(routes: Route, state: AppState) -> impl Endpoint {
    let session_cookie = CookieConfig::new()
        .name(SESSION_COOKIE)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.https())
        .max_age(SESSION_TTL);
    // Boxing between layers keeps the nested endpoint type (and compile times) small.
    let inner = routes
        .around(auth::load_user)
        .around(middleware::csrf)
        .with(ServerSession::new(session_cookie, state.sessions.clone()))
        .with(CookieJarManager::new())
        .boxed();
    inner
        .around(middleware::body_limit)
        .around(middleware::host_check)
        .with(Compression::new())
        .boxed()
        .around(middleware::edge)
        .around(middleware::security_headers)
        .data(state)
}
