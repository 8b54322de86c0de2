//! htmx awareness: a page for browsers, the fragment alone for htmx swaps (kanidm's HxRequest).
//!
//! This module is the one home of htmx detection ([`wants_fragment`], and [`wants_results`]
//! built on it) and of `Vary: HX-Request`: every answer that depends on the header is built
//! here ([`PageCtx::render`], [`fragment`]), so a cache never serves a fragment for a page.

use poem::http::{HeaderMap, HeaderValue, StatusCode, header};
use poem::session::Session;
use poem::{FromRequest, IntoResponse, Request, RequestBody, Response};

use crate::accounts::sessions::FLASH;
use crate::state::AppState;
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfSecret;
use crate::web::views::layout::layout;

/// Whether the request wants a fragment: `HX-Request` set, and neither a boosted navigation
/// nor a history restore (htmx 2 marks that one `HX-Request` too, yet swaps the answer into
/// `<body>` when its history cache misses: a fragment there would lose the page's frame).
pub fn wants_fragment(headers: &HeaderMap) -> bool {
    let has = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    has("hx-request") && !has("hx-boosted") && !has("hx-history-restore-request")
}

/// Whether an htmx request swaps only the list results (`hx-target="#results"`: active
/// search and pager), so the handler answers with that fragment alone.
pub fn wants_results(req: &Request) -> bool {
    wants_fragment(req.headers()) && req.header("hx-target") == Some("results")
}

/// What every rendered page needs to know about its request.
#[derive(Debug, Clone)]
pub struct PageCtx {
    /// A fresh CSRF token for forms and the page's meta tag (empty when no cookie is known).
    pub csrf_token: String,
    /// Render the fragment only.
    pub fragment: bool,
    /// The request path, to mark the current navigation entry.
    pub path: String,
    /// Who is logged in, for the navigation.
    pub user: Option<CurrentUser>,
    /// A one-time message left by the previous request (after a redirect).
    pub flash: Option<String>,
}

impl PageCtx {
    pub fn from_request(req: &Request) -> Self {
        let csrf_token = match (req.extensions().get::<CsrfSecret>(), req.data::<AppState>()) {
            (Some(secret), Some(state)) => secret.token(&state.signer),
            _ => String::new(),
        };
        // Taking the flash consumes it: it shows on exactly one page.
        let flash = req.extensions().get::<Session>().and_then(|session| {
            let flash = session.get::<String>(FLASH);
            if flash.is_some() {
                session.remove(FLASH);
            }
            flash
        });
        Self {
            csrf_token,
            fragment: wants_fragment(req.headers()),
            path: req.uri().path().to_string(),
            user: req.extensions().get::<CurrentUser>().cloned(),
            flash,
        }
    }

    /// The full page, or only `content` for an htmx swap; always `Vary: HX-Request`.
    pub fn render(&self, title: &str, content: maud::Markup) -> Response {
        if self.fragment {
            fragment(content)
        } else {
            varies(layout(self, title, content).into_response())
        }
    }

    /// [`PageCtx::render`] with another status (422 for a form to correct, 400 for a bad link).
    pub fn render_status(
        &self,
        status: StatusCode,
        title: &str,
        content: maud::Markup,
    ) -> Response {
        let mut resp = self.render(title, content);
        resp.set_status(status);
        resp
    }
}

/// The header every answer that depends on `HX-Request` names in `Vary`.
pub const VARY: &str = "HX-Request";

/// A fragment for an htmx swap (a list's results, a row): `Vary: HX-Request`, since the
/// same URL answers a whole page without the header.
pub fn fragment(content: maud::Markup) -> Response {
    varies(content.into_response())
}

fn varies(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static(VARY));
    resp
}

/// Leaves a message for the next page the user sees (after a redirect).
pub fn flash(req: &Request, message: impl Into<String>) {
    if let Some(session) = req.extensions().get::<Session>() {
        session.set(FLASH, message.into());
    }
}

/// A 303 to `location`, the answer to a successful form post.
pub fn see_other(location: &str) -> Response {
    poem::web::Redirect::see_other(location).into_response()
}

/// The answer to a confirmed action (delete, archive, send, disable). A list row's htmx
/// delete (its target, the row, has an id) gets an empty 200 that removes the row, with
/// `HX-Trigger: {event}`; any other htmx request an `HX-Redirect` to `location` (a full page
/// load: a fragment swapped into `<body>` would lose the page's frame); a plain form a 303.
/// The flash shows on the page that follows.
pub fn after_action(req: &Request, location: &str, event: &str, message: String) -> Response {
    if wants_fragment(req.headers()) {
        if req.header("hx-target").is_some_and(|t| !t.is_empty()) {
            return Response::builder().header("HX-Trigger", event).body("");
        }
        flash(req, message);
        return Response::builder().header("HX-Redirect", location).body("");
    }
    flash(req, message);
    see_other(location)
}

impl<'a> FromRequest<'a> for PageCtx {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self::from_request(req))
    }
}

#[cfg(test)]
mod tests {
    use poem::http::{HeaderMap, HeaderValue};

    use super::wants_fragment;

    fn headers(names: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for name in names {
            map.insert(*name, HeaderValue::from_static("true"));
        }
        map
    }

    #[test]
    fn only_plain_htmx_swaps_get_fragments() {
        assert!(!wants_fragment(&headers(&[])));
        assert!(wants_fragment(&headers(&["hx-request"])));
        assert!(!wants_fragment(&headers(&["hx-request", "hx-boosted"])));
        assert!(!wants_fragment(&headers(&[
            "hx-request",
            "hx-history-restore-request"
        ])));
    }
}
