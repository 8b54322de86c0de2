//! The base layout every page shares.

use maud::{DOCTYPE, Markup, html};

use crate::web::assets;
use crate::web::csrf;
use crate::web::htmx::PageCtx;

/// Navigation entries: (label, path). The current one is marked with `aria-current`.
const NAV: &[(&str, &str)] = &[("Home", "/")];

pub fn layout(ctx: &PageCtx, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · autosend" }
                meta name="csrf-token" content=(ctx.csrf_token);
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url(assets::HTMX)) defer {}
                script src=(assets::url("app.js")) defer {}
            }
            body {
                header.site {
                    a.brand href="/" { "autosend" }
                    nav aria-label="Main" {
                        @for (label, path) in NAV {
                            @if ctx.path == *path {
                                a href=(path) aria-current="page" { (label) }
                            } @else {
                                a href=(path) { (label) }
                            }
                        }
                    }
                }
                main #main { (content) }
                footer {
                    span.muted { "autosend " (env!("CARGO_PKG_VERSION")) }
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(ctx: &PageCtx) -> Markup {
    html! { input type="hidden" name=(csrf::FORM_FIELD) value=(ctx.csrf_token); }
}
