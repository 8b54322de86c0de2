//! `GET /`: the landing page (the dashboard arrives with accounts).

use poem::{Response, handler};

use crate::web::htmx::PageCtx;
use crate::web::views::home;

#[handler]
pub async fn index(ctx: PageCtx) -> Response {
    ctx.render("Welcome", home::landing())
}
