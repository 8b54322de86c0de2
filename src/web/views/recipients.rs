//! Recipient pages (`/clients/…`).

use maud::{Markup, html};

use crate::db::recipients::{ListedRecipient, Sort};
use crate::domain::TimeZone;
use crate::domain::choice::Choice as _;
use crate::domain::{FieldErrors, PageRequest};
use crate::recipients::RecipientForm;
use crate::recipients::csv_io::Rejected;
use crate::web::htmx::PageCtx;
use crate::web::views::layout::{
    Input, Swap, confirm_button, confirm_page, conflict_notice, csrf_field, datetime,
    delete_button, field, pager, query_string, textarea, version_field,
};

/// What the list page shows.
pub struct ListView<'a> {
    pub rows: &'a [ListedRecipient],
    pub q: &'a str,
    pub sort: Sort,
    pub page: PageRequest,
    pub total: i64,
    /// The viewer sees other owners' recipients too: show the owner column.
    pub everyone: bool,
    /// The viewer's own id: only their rows (or all, for superusers) get edit buttons.
    pub can_change: &'a dyn Fn(i64) -> bool,
    pub zone: TimeZone,
}

pub fn list(view: &ListView<'_>) -> Markup {
    let export = format!("/clients/export.csv?{}", query_string(&[("q", view.q)]));
    html! {
        div.page-head {
            h1 { "Recipients" }
            div.actions {
                a.button href="/clients/new" { "New recipient" }
                a.button.secondary href="/clients/import" { "Import CSV" }
                a.button.secondary href=(export) download { "Export CSV" }
            }
        }
        form.search method="get" action="/clients/" role="search" {
            label.sr-only for="q" { "Search recipients" }
            input #q type="search" name="q" value=(view.q) placeholder="Search e-mail, name or comment"
                hx-get="/clients/" hx-trigger="input changed delay:300ms, search"
                hx-target="#results" hx-push-url="true" hx-include="#sort";
            input #sort type="hidden" name="sort" value=(view.sort.word());
            button type="submit" { "Search" }
            span.htmx-indicator { "Searching…" }
        }
        (results(view))
    }
}

/// The part active search replaces: sort links, table and pager.
pub fn results(view: &ListView<'_>) -> Markup {
    let link = |sort: Sort| {
        format!(
            "/clients/?{}",
            query_string(&[("q", view.q), ("sort", sort.word())])
        )
    };
    let extra = query_string(&[("q", view.q), ("sort", view.sort.word())]);
    html! {
        div #results {
            p.muted {
                "Order: "
                @if view.sort == Sort::Newest { strong { "newest first" } } @else { a href=(link(Sort::Newest)) { "newest first" } }
                " · "
                @if view.sort == Sort::Name { strong { "by name" } } @else { a href=(link(Sort::Name)) { "by name" } }
            }
            div.table-wrap {
                table.list {
                    thead {
                        tr {
                            th { "E-mail" } th { "Name" } th { "Comment" }
                            @if view.everyone { th { "Owner" } }
                            th { "Added" } th { span.sr-only { "Actions" } }
                        }
                    }
                    tbody {
                        @for r in view.rows { (row(r, view)) }
                        @if view.rows.is_empty() {
                            tr { td colspan="6" {
                                @if view.q.is_empty() { "No recipients yet. " a href="/clients/new" { "Add the first one" } " or " a href="/clients/import" { "import a CSV file" } "." }
                                @else { "No recipient matches your search." }
                            } }
                        }
                    }
                }
            }
            (pager("/clients/", &extra, view.page, view.total))
        }
    }
}

fn row(r: &ListedRecipient, view: &ListView<'_>) -> Markup {
    let comment: String = r.comment.chars().take(80).collect();
    html! {
        tr id={ "recipient-" (r.id) } {
            td {
                a href={ "/clients/" (r.id) } { (r.email) }
                @if r.unsubscribed != 0 { " " span.badge.unsubscribed { "unsubscribed" } }
            }
            td { (r.full_name) }
            td.muted { (comment) @if r.comment.chars().count() > 80 { "…" } }
            @if view.everyone { td { (r.owner_email) } }
            td { (datetime(r.created_at, view.zone)) }
            td.actions {
                @if (view.can_change)(r.owner_id) {
                    a.button.secondary.small href={ "/clients/" (r.id) "/edit" } { "Edit" }
                    (delete_button(&format!("/clients/{}/delete", r.id), &format!("Delete {}?", r.email)))
                }
            }
        }
    }
}

/// The recipient form; `saved` is the other version when a save was refused as stale (409).
pub fn form(
    ctx: &PageCtx,
    action: &str,
    title: &str,
    form: &RecipientForm,
    errors: &FieldErrors,
    saved: Option<&[(&str, String)]>,
) -> Markup {
    html! {
        section.narrow {
            h1 { (title) }
            (conflict_notice(saved))
            form.stacked method="post" action=(action) {
                (csrf_field(ctx))
                (version_field(&form.version))
                (field(Input::new("email", "E-mail").kind("email").value(&form.email).required(), errors))
                (field(Input::new("full_name", "Full name").value(&form.full_name).required().hint("At least 2 characters."), errors))
                (textarea("comment", "Comment", &form.comment, 3, Some("Optional, for you only; at most 2000 characters."), errors))
                div.actions {
                    button type="submit" { "Save" }
                    a.button.secondary href="/clients/" { "Cancel" }
                }
            }
        }
    }
}

pub fn detail(r: &ListedRecipient, can_change: bool, zone: TimeZone) -> Markup {
    html! {
        section.narrow {
            h1 { (r.full_name) }
            dl.details {
                dt { "E-mail" } dd { (r.email) @if r.unsubscribed != 0 { " " span.badge.unsubscribed { "unsubscribed" } } }
                dt { "Comment" } dd.pre-line { (r.comment) }
                dt { "Owner" } dd { (r.owner_email) }
                dt { "Added" } dd { (datetime(r.created_at, zone)) }
            }
            p.actions {
                @if can_change {
                    a.button href={ "/clients/" (r.id) "/edit" } { "Edit" }
                    (confirm_button(&format!("/clients/{}/delete", r.id), "Delete",
                        &format!("Delete {}?", r.email), "danger", Swap::Page))
                } @else {
                    span.muted { "Read-only: this recipient belongs to " (r.owner_email) "." }
                }
                a.button.secondary href="/clients/" { "Back to the list" }
            }
        }
    }
}

/// What deleting a recipient does, asked before it happens.
pub fn delete_page(ctx: &PageCtx, r: &ListedRecipient) -> Markup {
    let action = format!("/clients/{}/delete", r.id);
    confirm_page(
        ctx,
        "Delete this recipient?",
        html! {
            p { strong { (r.full_name) } " <" (r.email) ">" }
            p { "The recipient leaves your list and the audiences of your mailings. "
                "Delivery logs and statistics keep what was already sent to this address." }
        },
        &action,
        Some("Delete"),
        &format!("/clients/{}", r.id),
    )
}

pub fn import(ctx: &PageCtx, error: Option<&str>) -> Markup {
    html! {
        section.narrow {
            h1 { "Import recipients" }
            p { "Upload a CSV file (UTF-8) whose first line is the header " code { "email,full_name,comment" } ". "
                "Rows whose e-mail is already in your list update that recipient; others are added. "
                "Up to 100 000 rows; invalid rows are listed with the reason and skipped." }
            @if let Some(error) = error { div.flash.error role="alert" { (error) } }
            form.stacked method="post" action="/clients/import" enctype="multipart/form-data" {
                (csrf_field(ctx))
                div.field {
                    label for="f-file" { "CSV file" }
                    input #f-file type="file" name="file" accept=".csv,text/csv" required;
                }
                div.actions {
                    button type="submit" { "Import" }
                    a.button.secondary href="/clients/" { "Cancel" }
                }
            }
        }
    }
}

pub fn import_result(created: u64, updated: u64, rejected: &[Rejected]) -> Markup {
    html! {
        section {
            h1 { "Import finished" }
            div.cards {
                div.card { p.figure #created { (created) } p { "created" } }
                div.card { p.figure #updated { (updated) } p { "updated" } }
                div.card { p.figure #rejected { (rejected.len()) } p { "rejected" } }
            }
            @if !rejected.is_empty() {
                h2 { "Rejected rows" }
                div.table-wrap {
                    table.list {
                        thead { tr { th.num { "Line" } th { "E-mail" } th { "Reason" } } }
                        tbody {
                            @for r in rejected.iter().take(1000) {
                                tr { td.num { (r.line) } td { (r.email) } td { (r.reason) } }
                            }
                        }
                    }
                }
                @if rejected.len() > 1000 { p.muted { "… and " (rejected.len() - 1000) " more." } }
            }
            p { a.button href="/clients/" { "Back to the recipients" } }
        }
    }
}
