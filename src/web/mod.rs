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
    Route::new()
        .at("/", get(routes::home::index))
        .at("/healthz", get(routes::health::healthz))
        .at("/assets/*path", get(assets::serve))
        .around(middleware::csrf)
        .with(CookieJarManager::new())
        .around(middleware::body_limit)
        .around(middleware::host_check)
        .with(Compression::new())
        .around(middleware::edge)
        .around(middleware::security_headers)
        .data(state)
}
