//! The session layer: the cookie jar and the server session (read from the store, written
//! back when changed) around the CSRF and current-user layers — for every path but static
//! assets. An asset is the same for everyone, so it is served without either: no session
//! store read and no user lookup for the several asset requests each page makes.

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem::{Endpoint, Request, Response};

/// Static assets are served from here (see [`crate::web::assets`]).
const ASSETS: &str = "/assets/";

/// Sends asset requests to `assets` (the routes alone) and every other to `pages` (the same
/// routes behind the session, CSRF and user layers).
pub struct SkipForAssets {
    pub assets: BoxEndpoint<'static>,
    pub pages: BoxEndpoint<'static>,
}

impl SkipForAssets {
    /// Whether `req` reads a static asset: answered without session or user. Any other
    /// method on an asset path still passes the CSRF layer (403 before 405, as everywhere).
    pub fn is_asset(req: &Request) -> bool {
        matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path().starts_with(ASSETS)
    }
}

impl Endpoint for SkipForAssets {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if Self::is_asset(&req) {
            self.assets.call(req).await
        } else {
            self.pages.call(req).await
        }
    }
}
