//! The HTTP side: router, middleware, handlers and views.

pub mod assets;
pub mod csrf;
pub mod error;
pub mod htmx;
pub mod middleware;
pub mod routes;
pub mod views;

use poem::middleware::{Compression, CookieJarManager};
use poem::{Endpoint, EndpointExt, Route, get};

use crate::state::AppState;

/// Every route of SPEC §6 that exists so far, wrapped in the middleware stack.
pub fn router(state: AppState) -> impl Endpoint {
    let routes = Route::new()
        .at("/", get(routes::home::index))
        .at("/healthz", get(routes::health::healthz))
        .at("/assets/*path", get(assets::serve));
    with_middleware(routes, state)
}

/// Wraps routes in the middleware stack (outermost last). Public so tests can mount a
/// deliberately failing handler behind exactly the stack users meet.
pub fn with_middleware(routes: Route, state: AppState) -> impl Endpoint {
    routes
        .around(middleware::csrf)
        .with(CookieJarManager::new())
        .around(middleware::body_limit)
        .around(middleware::host_check)
        .with(Compression::new())
        .around(middleware::edge)
        .around(middleware::security_headers)
        .data(state)
}
