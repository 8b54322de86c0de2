//! Superuser pages: user administration.

use maud::{Markup, html};

use crate::db::users::User;
use crate::domain::PageRequest;
use crate::domain::TimeZone;
use crate::web::htmx::PageCtx;
use crate::web::views::layout::{csrf_field, datetime, pager};

pub fn users(
    ctx: &PageCtx,
    list: &[User],
    q: &str,
    page: PageRequest,
    total: i64,
    zone: TimeZone,
) -> Markup {
    let extra = if q.is_empty() {
        String::new()
    } else {
        format!(
            "q={}",
            percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    html! {
        h1 { "Users" }
        form.search method="get" action="/admin/users" role="search" {
            label.sr-only for="q" { "Search users" }
            input #q type="search" name="q" value=(q) placeholder="Search by e-mail or name";
            button type="submit" { "Search" }
        }
        div.table-wrap {
            table.list {
                thead {
                    tr {
                        th { "E-mail" } th { "Name" } th { "Joined" } th { "Last login" }
                        th { "Active" } th { "Sees all mailings" } th { "May disable mailings" } th { "" }
                    }
                }
                tbody {
                    @for user in list { (user_row(ctx, user, zone)) }
                    @if list.is_empty() { tr { td colspan="8" { "No user matches." } } }
                }
            }
        }
        (pager("/admin/users", &extra, page, total))
    }
}

/// One row with its own form; htmx swaps the row in place after saving.
pub fn user_row(ctx: &PageCtx, user: &User, zone: TimeZone) -> Markup {
    let form_id = format!("user-{}", user.id);
    html! {
        tr id=(form_id) {
            td {
                (user.email)
                @if user.is_superuser { " " span.badge { "superuser" } }
            }
            td { (user.full_name) }
            td { (datetime(user.created_at, zone)) }
            td { @if let Some(at) = user.last_login_at { (datetime(at, zone)) } @else { span.muted { "never" } } }
            td { input type="checkbox" name="is_active" value="1" form={ "f-" (form_id) } checked[user.is_active] aria-label="Active"; }
            td { input type="checkbox" name="view_all_mailings" value="1" form={ "f-" (form_id) } checked[user.view_all_mailings] aria-label="Sees all mailings"; }
            td { input type="checkbox" name="disable_mailing" value="1" form={ "f-" (form_id) } checked[user.disable_mailing] aria-label="May disable mailings"; }
            td {
                form id={ "f-" (form_id) } method="post" action={ "/admin/users/" (user.id) }
                    hx-post={ "/admin/users/" (user.id) } hx-target="closest tr" hx-swap="outerHTML" {
                    (csrf_field(ctx))
                    button type="submit" { "Save" }
                }
            }
        }
    }
}
