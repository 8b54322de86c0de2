//! The middleware every request passes, one file per layer, outermost first:
//! [`security_headers`] → [`edge`] (request id, context, access log, metrics, error pages
//! from [`crate::web::error`], panics, error and broken-link reports) → [`host_check`] →
//! [`body_limit`] → (response) compression → [`session`] (cookies and the server session,
//! skipped for static assets) → [`csrf`] (and the per-request body allowance) →
//! [`crate::web::auth::load_user`] (the current user) → routes. The order is built in one
//! place, [`crate::web::with_middleware`]; each layer's rule lives in its file here.

mod access_log;
mod body_limit;
mod csrf;
mod edge;
mod host_check;
mod request_id;
mod security_headers;
pub mod session;
mod snapshot;

pub use body_limit::body_limit;
pub use csrf::csrf;
pub use edge::edge;
pub use host_check::host_check;
pub use request_id::{REQUEST_ID_HEADER, sane_request_id};
pub use security_headers::security_headers;

use poem::Request;

use crate::state::AppState;

/// The shared state the router attached (a reference-counted handle: cloning it is cheap).
fn state(req: &Request) -> AppState {
    req.data::<AppState>()
        .cloned()
        .expect("AppState is attached to the router")
}
