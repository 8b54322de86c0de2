//! The HTTP side: router, middleware, handlers and views.

pub mod assets;
pub mod auth;
pub mod client;
pub mod conditional;
pub mod csrf;
pub mod error;
pub mod htmx;
pub mod middleware;
pub mod routes;
pub mod server;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem::middleware::{Compression, CookieJarManager};
use poem::session::{CookieConfig, ServerSession};
use poem::web::cookie::SameSite;
use poem::{Endpoint, EndpointExt, Route, RouteMethod};

use crate::state::AppState;

/// How long a login lasts without coming back.
const SESSION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
pub const SESSION_COOKIE: &str = "sessionid";

/// One row of the route table: a path pattern, a method, and the handler that answers it.
type RouteRow = (&'static str, Method, BoxEndpoint<'static>);

fn row<E: Endpoint + 'static>(path: &'static str, method: Method, ep: E) -> RouteRow {
    (path, method, ep.map_to_response().boxed())
}

/// Every route of SPEC §6 that exists so far, one row per (path, method).
///
/// The router is built from this table and [`route_table`] lists the same rows, so whatever
/// walks "every route" (the CSRF, header and bad-input tests) sees a route the moment it is
/// added here; there is no second list to forget.
fn routes() -> Vec<RouteRow> {
    use routes::{
        admin, errors, health, home, mailings, messages, metrics, recipients, reports, unsubscribe,
        users,
    };
    const GET: Method = Method::GET;
    const POST: Method = Method::POST;
    vec![
        row("/", GET, home::index),
        row("/healthz", GET, health::healthz),
        row("/metrics", GET, metrics::metrics),
        row("/assets/*path", GET, assets::serve),
        row("/users/login", GET, users::login_page),
        row("/users/login", POST, users::login),
        row("/users/logout", POST, users::logout),
        row("/users/signup", GET, users::signup_page),
        row("/users/signup", POST, users::signup),
        row("/users/activate/:token", GET, users::activate),
        row("/users/password-reset", GET, users::reset_request_page),
        row("/users/password-reset", POST, users::reset_request),
        row("/users/password-reset/:token", GET, users::reset_page),
        row("/users/password-reset/:token", POST, users::reset),
        row("/users/password-change", GET, users::password_change_page),
        row("/users/password-change", POST, users::password_change),
        row("/users/profile", GET, users::profile),
        row("/users/profile/edit", GET, users::profile_edit_page),
        row("/users/profile/edit", POST, users::profile_edit),
        row("/clients/", GET, recipients::list),
        row("/clients/", POST, recipients::create),
        row("/clients/new", GET, recipients::new_page),
        row("/clients/import", GET, recipients::import_page),
        row("/clients/import", POST, recipients::import),
        row("/clients/export.csv", GET, recipients::export),
        row("/clients/:id", GET, recipients::detail),
        row("/clients/:id/edit", GET, recipients::edit_page),
        row("/clients/:id/edit", POST, recipients::edit),
        row("/clients/:id/delete", GET, recipients::delete_page),
        row("/clients/:id/delete", POST, recipients::delete),
        row("/messages/", GET, messages::list),
        row("/messages/", POST, messages::create),
        row("/messages/new", GET, messages::new_page),
        row("/messages/:id", GET, messages::detail),
        row("/messages/:id/edit", GET, messages::edit_page),
        row("/messages/:id/edit", POST, messages::edit),
        row("/messages/:id/delete", GET, messages::delete_page),
        row("/messages/:id/delete", POST, messages::delete),
        row("/mailings/stats/", GET, reports::stats),
        row("/mailings/reports/", GET, reports::report),
        row("/mailings/reports/export.csv", GET, reports::export),
        row("/mailings/", GET, mailings::list),
        row("/mailings/", POST, mailings::create),
        row("/mailings/new", GET, mailings::new_page),
        row("/mailings/:id", GET, mailings::detail),
        row("/mailings/:id/edit", GET, mailings::edit_page),
        row("/mailings/:id/edit", POST, mailings::edit),
        row("/mailings/:id/delete", GET, mailings::delete_page),
        row("/mailings/:id/delete", POST, mailings::delete),
        row("/mailings/:id/restore", GET, mailings::restore_page),
        row("/mailings/:id/restore", POST, mailings::restore),
        row("/mailings/:id/send", GET, mailings::send_page),
        row("/mailings/:id/send", POST, mailings::send),
        row("/mailings/:id/disable", GET, mailings::disable_page),
        row("/mailings/:id/disable", POST, mailings::disable),
        row("/mailings/:id/progress", GET, mailings::progress),
        row("/mailings/:id/logs", GET, mailings::logs),
        row("/admin/users", GET, admin::users),
        row("/admin/users/:id", POST, admin::update_user),
        row("/admin/errors", GET, errors::list),
        row("/admin/errors/:id/resolve", POST, errors::resolve),
        row("/admin/error-test", GET, errors::test_page),
        row("/admin/error-test", POST, errors::test_raise),
        row("/u/:token", GET, unsubscribe::confirm_page),
        row("/u/:token", POST, unsubscribe::confirm),
    ]
}

/// The route table without its handlers: (path pattern in poem's syntax, method), in the
/// order the router was given them.
pub fn route_table() -> Vec<(&'static str, Method)> {
    routes()
        .into_iter()
        .map(|(path, method, _)| (path, method))
        .collect()
}

/// Every route of [`routes`], wrapped in the middleware stack.
pub fn router(state: AppState) -> impl Endpoint {
    // poem wants each path once, with all its methods.
    let mut by_path: Vec<(&str, RouteMethod)> = Vec::new();
    for (path, method, ep) in routes() {
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, methods)) => *methods = std::mem::take(methods).method(method, ep),
            None => by_path.push((path, RouteMethod::new().method(method, ep))),
        }
    }
    let routes = by_path
        .into_iter()
        .fold(Route::new(), |route, (path, methods)| {
            route.at(path, methods)
        });
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
    let routes = Arc::new(routes);
    let pages = routes
        .clone()
        .around(auth::load_user)
        .around(middleware::csrf)
        .with(ServerSession::new(session_cookie, state.sessions.clone()))
        .with(CookieJarManager::new())
        .boxed();
    let inner = middleware::session::SkipForAssets {
        assets: routes.boxed(),
        pages,
    };
    // Compression sits inside the body cap: it would decode a compressed request body,
    // which the cap refuses first (a small gzip can hold a huge body).
    inner
        .with(Compression::new())
        .around(middleware::body_limit)
        .around(middleware::host_check)
        .boxed()
        .around(middleware::edge)
        .around(middleware::security_headers)
        .data(state)
}
