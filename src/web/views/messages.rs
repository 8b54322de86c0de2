//! Message pages (`/messages/…`).

use maud::{Markup, html};

use crate::db::messages::{ListedMessage, Message};
use crate::domain::TimeZone;
use crate::domain::template::PLACEHOLDERS;
use crate::domain::{FieldErrors, PageRequest};
use crate::messages::MessageForm;
use crate::web::htmx::PageCtx;
use crate::web::views::layout::{
    Input, Swap, confirm_button, confirm_page, conflict_notice, csrf_field, datetime,
    delete_button, field, pager, query_string, textarea, version_field,
};

pub struct ListView<'a> {
    pub rows: &'a [ListedMessage],
    pub q: &'a str,
    pub page: PageRequest,
    pub total: i64,
    pub everyone: bool,
    pub can_change: &'a dyn Fn(i64) -> bool,
    pub zone: TimeZone,
}

pub fn list(view: &ListView<'_>) -> Markup {
    html! {
        div.page-head {
            h1 { "Messages" }
            div.actions { a.button href="/messages/new" { "New message" } }
        }
        form.search method="get" action="/messages/" role="search" {
            label.sr-only for="q" { "Search messages" }
            input #q type="search" name="q" value=(view.q) placeholder="Search subject or text"
                hx-get="/messages/" hx-trigger="input changed delay:300ms, search"
                hx-target="#results" hx-push-url="true";
            button type="submit" { "Search" }
        }
        (results(view))
    }
}

pub fn results(view: &ListView<'_>) -> Markup {
    html! {
        div #results {
            div.table-wrap {
                table.list {
                    thead {
                        tr {
                            th { "Subject" } th.num { "Mailings" }
                            @if view.everyone { th { "Owner" } }
                            th { "Created" } th { span.sr-only { "Actions" } }
                        }
                    }
                    tbody {
                        @for m in view.rows {
                            tr id={ "message-" (m.id) } {
                                td { a href={ "/messages/" (m.id) } { (m.subject) } }
                                td.num { (m.mailings) }
                                @if view.everyone { td { (m.owner_email) } }
                                td { (datetime(m.created_at, view.zone)) }
                                td.actions {
                                    @if (view.can_change)(m.owner_id) {
                                        a.button.secondary.small href={ "/messages/" (m.id) "/edit" } { "Edit" }
                                        @if m.mailings == 0 {
                                            (delete_button(&format!("/messages/{}/delete", m.id), &format!("Delete the message {:?}?", m.subject)))
                                        } @else {
                                            span.muted title="Mailings use this message" { "in use" }
                                        }
                                    }
                                }
                            }
                        }
                        @if view.rows.is_empty() {
                            tr { td colspan="5" {
                                @if view.q.is_empty() { "No messages yet. " a href="/messages/new" { "Write the first one" } "." }
                                @else { "No message matches your search." }
                            } }
                        }
                    }
                }
            }
            (pager("/messages/", &query_string(&[("q", view.q)]), view.page, view.total))
        }
    }
}

/// What the message form shows besides the fields.
#[derive(Default)]
pub struct FormNotes<'a> {
    /// The other version when a save was refused as stale (409).
    pub saved: Option<&'a [(&'a str, String)]>,
    /// Mailings using the message whose run is sending now.
    pub sending: &'a [i64],
}

pub fn form(
    ctx: &PageCtx,
    action: &str,
    title: &str,
    form: &MessageForm,
    errors: &FieldErrors,
    notes: &FormNotes<'_>,
) -> Markup {
    html! {
        section.narrow {
            h1 { (title) }
            (conflict_notice(notes.saved))
            @if !notes.sending.is_empty() {
                (sending_notice(notes.sending))
            }
            div.hint {
                p { "Placeholders are replaced for each recipient: "
                    @for (i, p) in PLACEHOLDERS.iter().enumerate() {
                        @if i > 0 { " and " }
                        code { (p) }
                    }
                    " (their name and e-mail address; spaces inside the braces are fine). "
                    "They work in the subject and in both bodies; any other placeholder is refused." }
            }
            form.stacked method="post" action=(action) {
                (csrf_field(ctx))
                (version_field(&form.version))
                (field(Input::new("subject", "Subject").value(&form.subject).required().hint("One line, at most 255 characters."), errors))
                (textarea("body", "Text", &form.body, 10, Some("Plain text: every recipient gets it."), errors))
                (textarea("body_html", "HTML (optional)", &form.body_html, 8,
                    Some("When set, mail programs that show HTML show this instead of the text."), errors))
                div.actions {
                    button type="submit" { "Save" }
                    a.button.secondary href="/messages/" { "Cancel" }
                }
            }
        }
    }
}

/// Who the preview pretends to send to.
pub struct Preview<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
}

pub fn detail(
    m: &Message,
    owner: &str,
    used_by: &[(i64, String)],
    can_change: bool,
    preview: &Preview<'_>,
    zone: TimeZone,
) -> Markup {
    html! {
        section {
            h1 { (m.subject) }
            dl.details {
                dt { "Owner" } dd { (owner) }
                dt { "Created" } dd { (datetime(m.created_at, zone)) }
                dt { "Updated" } dd { (datetime(m.updated_at, zone)) }
                dt { "Used by" } dd {
                    @if used_by.is_empty() { span.muted { "no mailing" } }
                    @for (i, (id, status)) in used_by.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href={ "/mailings/" (id) } { "mailing #" (id) } " (" (status) ")"
                    }
                }
            }
            p.actions {
                @if can_change {
                    a.button href={ "/messages/" (m.id) "/edit" } { "Edit" }
                    @if used_by.is_empty() {
                        (confirm_button(&format!("/messages/{}/delete", m.id), "Delete",
                            &format!("Delete the message {:?}?", m.subject), "danger", Swap::Page))
                    } @else {
                        span.muted { "It cannot be deleted while mailings use it." }
                    }
                } @else {
                    span.muted { "Read-only: this message belongs to " (owner) "." }
                }
                a.button.secondary href="/messages/" { "Back to the list" }
            }
            h2 { "Preview for " (preview.name) " <" (preview.email) ">" }
            p { strong { "Subject: " } (preview.subject) }
            h3 { "Text" }
            pre.preview { (preview.text) }
            @if let Some(html) = preview.html {
                h3 { "HTML" }
                // Rendered in a sandbox: the message's markup can neither script nor style our page.
                iframe.preview sandbox="" referrerpolicy="no-referrer" title="HTML preview" srcdoc=(html) {}
            }
        }
    }
}

/// Says that runs sending now keep the content they started with.
pub fn sending_notice(mailings: &[i64]) -> Markup {
    html! {
        div.flash.info role="status" {
            "A run of "
            @for (i, id) in mailings.iter().enumerate() {
                @if i > 0 { ", " }
                a href={ "/mailings/" (id) } { "mailing #" (id) }
            }
            " is sending now: it keeps the version it started with. A change saved here applies to the next run."
        }
    }
}

/// What deleting a message does, asked before it happens; a message in use cannot go.
pub fn delete_page(ctx: &PageCtx, m: &Message, used_by: &[(i64, String)]) -> Markup {
    let action = format!("/messages/{}/delete", m.id);
    confirm_page(
        ctx,
        if used_by.is_empty() {
            "Delete this message?"
        } else {
            "This message cannot be deleted"
        },
        html! {
            p { strong { (m.subject) } }
            @if used_by.is_empty() {
                p { "The message and its text are deleted. No mailing uses it." }
            } @else {
                p { "Mailings use it (their runs and statistics refer to it): "
                    @for (i, (id, status)) in used_by.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href={ "/mailings/" (id) } { "mailing #" (id) } " (" (status) ")"
                    }
                    ". A mailing that never ran can be deleted first; one that ran keeps its message with its history." }
            }
        },
        &action,
        used_by.is_empty().then_some("Delete"),
        &format!("/messages/{}", m.id),
    )
}
