//! Mailing pages (`/mailings/…`): list, form with a recipient picker, detail with progress and
//! run history, delivery logs.

use maud::{Markup, html};

use crate::db::deliveries::Delivery;
use crate::db::mailings::{ListedMailing, Mailing};
use crate::db::recipients::ListedRecipient;
use crate::db::runs::Run;
use crate::delivery::Progress;
use crate::domain::{DeliveryStatus, FieldErrors, MailingStatus, PageRequest, Period};
use crate::mailings::MailingForm;
use crate::web::htmx::PageCtx;
use crate::web::views::layout::{Input, csrf_field, datetime, field, pager, query_string};

fn badge(status: &str, label: &str) -> Markup {
    html! { span class={ "badge " (status) } { (label) } }
}

pub struct ListView<'a> {
    pub rows: &'a [ListedMailing],
    pub status: Option<MailingStatus>,
    pub page: PageRequest,
    pub total: i64,
    pub everyone: bool,
    pub zone: &'a str,
}

pub fn list(view: &ListView<'_>) -> Markup {
    let filter = view.status.map(|s| s.as_str()).unwrap_or("");
    html! {
        div.page-head {
            h1 { "Mailings" }
            div.actions { a.button href="/mailings/new" { "New mailing" } }
        }
        nav.filters aria-label="Filter by status" {
            @if filter.is_empty() { strong { "All" } } @else { a href="/mailings/" { "All" } }
            @for s in MailingStatus::ALL {
                " · "
                @if filter == s.as_str() { strong { (s.label()) } }
                @else { a href={ "/mailings/?status=" (s.as_str()) } { (s.label()) } }
            }
        }
        div.table-wrap {
            table.list {
                thead { tr {
                    th { "#" } th { "Message" } th { "Status" } th { "Window" } th { "Period" }
                    th.num { "Recipients" } th { "Next run" } th { "Last sent" }
                    @if view.everyone { th { "Owner" } }
                } }
                tbody {
                    @for m in view.rows {
                        tr {
                            td { a href={ "/mailings/" (m.id) } { "#" (m.id) } }
                            td { a href={ "/mailings/" (m.id) } { (m.subject) } }
                            td { (badge(&m.status, MailingStatus::parse(&m.status).map(|s| s.label()).unwrap_or("?"))) }
                            td { (datetime(m.start_at, view.zone)) " → " (datetime(m.end_at, view.zone)) }
                            td { (Period::parse(&m.period).map(|p| p.label()).unwrap_or("?")) }
                            td.num { (m.recipients) }
                            td { @if let Some(at) = m.next_run_at { (datetime(at, view.zone)) } }
                            td { @if let Some(at) = m.last_sent_at { (datetime(at, view.zone)) } @else { span.muted { "never" } } }
                            @if view.everyone { td { (m.owner_email) } }
                        }
                    }
                    @if view.rows.is_empty() {
                        tr { td colspan="9" { "No mailings here yet. " a href="/mailings/new" { "Create one" } "." } }
                    }
                }
            }
        }
        (pager("/mailings/", &query_string(&[("status", filter)]), view.page, view.total))
    }
}

/// What the form offers: the owner's messages and a page of their recipients.
pub struct FormView<'a> {
    pub action: &'a str,
    /// The form page itself: the picker's search reloads the candidates from it.
    pub page_url: &'a str,
    pub title: &'a str,
    pub form: &'a MailingForm,
    pub errors: &'a FieldErrors,
    pub messages: &'a [(i64, String)],
    pub candidates: &'a [ListedRecipient],
    pub matching: i64,
    pub zone: &'a str,
}

pub fn form(ctx: &PageCtx, view: &FormView<'_>) -> Markup {
    let selected = view.form.selected();
    let shown: Vec<i64> = view.candidates.iter().map(|r| r.id).collect();
    let errors = view.errors;
    html! {
        section {
            h1 { (view.title) }
            form.stacked method="post" action=(view.action) {
                (csrf_field(ctx))
                div.field {
                    label for="f-message_id" { "Message" }
                    select #f-message_id name="message_id" aria-invalid=[errors.get("message_id").map(|_| "true")] {
                        option value="" { "— choose —" }
                        @for (id, subject) in view.messages {
                            option value=(id) selected[view.form.message_id == id.to_string()] { (subject) }
                        }
                    }
                    @if let Some(e) = errors.get("message_id") { p.field-error { (e) } }
                    @if view.messages.is_empty() { p.hint { "You have no message yet: " a href="/messages/new" { "write one" } " first." } }
                }
                (field(Input::new("start_at", "Start").kind("datetime-local").value(&view.form.start_at).required()
                    .hint(&format!("In {}.", view.zone)), errors))
                (field(Input::new("end_at", "End").kind("datetime-local").value(&view.form.end_at).required()
                    .hint("Nothing is sent at or after the end."), errors))
                div.field {
                    label for="f-period" { "Repeat" }
                    select #f-period name="period" {
                        @for p in Period::ALL {
                            option value=(p.as_str()) selected[view.form.period == p.as_str()] { (p.label()) }
                        }
                    }
                    @if let Some(e) = errors.get("period") { p.field-error { (e) } }
                }
                fieldset.picker #picker {
                    legend { "Recipients" }
                    @if let Some(e) = errors.get("recipient_ids") { p.field-error { (e) } }
                    div.search {
                        label.sr-only for="f-recipient_q" { "Search recipients" }
                        input #f-recipient_q type="search" name="recipient_q" value=(view.form.recipient_q)
                            placeholder="Search e-mail, name or comment"
                            hx-get=(format!("{}?picker=1", view.page_url)) hx-trigger="input changed delay:300ms, search"
                            hx-target="#candidates" hx-select="#candidates" hx-swap="outerHTML" hx-include="#picker";
                    }
                    div #candidates {
                        label.check {
                            input type="checkbox" name="all_matching" value="1" checked[view.form.all_matching];
                             " All " (crate::domain::count_label(view.matching)) " recipients matching the search"
                        }
                        // Chosen recipients not on this page stay chosen.
                        @for id in selected.iter().filter(|id| !shown.contains(id)) {
                            input type="hidden" name="recipient_ids" value=(id);
                        }
                        ul.checklist {
                            @for r in view.candidates {
                                li { label.check {
                                    input type="checkbox" name="recipient_ids" value=(r.id) checked[selected.contains(&r.id)];
                                    " " (r.full_name) " " span.muted { "<" (r.email) ">" }
                                    @if r.unsubscribed != 0 { " " span.badge.unsubscribed { "unsubscribed" } }
                                } }
                            }
                        }
                        @if view.matching > view.candidates.len() as i64 {
                            p.hint { "Showing " (view.candidates.len()) " of " (crate::domain::count_label(view.matching)) ": search to narrow, or tick “All … matching”." }
                        }
                        p.hint { (selected.len()) " chosen so far." }
                    }
                }
                div.actions {
                    button type="submit" { "Save" }
                    a.button.secondary href="/mailings/" { "Cancel" }
                }
            }
        }
    }
}

/// The detail page's facts and what the viewer may do.
pub struct DetailView<'a> {
    pub mailing: &'a Mailing,
    pub subject: &'a str,
    pub owner: &'a str,
    /// The owner's account is deactivated: the mailing waits.
    pub owner_paused: bool,
    pub recipients: usize,
    pub runs: &'a [Run],
    pub progress: Option<&'a Progress>,
    pub can_change: bool,
    pub can_disable: bool,
    pub zone: &'a str,
}

pub fn detail(ctx: &PageCtx, view: &DetailView<'_>) -> Markup {
    let m = view.mailing;
    let open = m.status != MailingStatus::Finished;
    html! {
        section {
            div.page-head {
                h1 { "Mailing #" (m.id) ": " (view.subject) }
                (badge(m.status.as_str(), m.status.label()))
            }
            dl.details {
                dt { "Message" } dd { a href={ "/messages/" (m.message_id) } { (view.subject) } }
                dt { "Owner" } dd { (view.owner) }
                dt { "Window" } dd { (datetime(m.start_at, view.zone)) " → " (datetime(m.end_at, view.zone)) " (" (view.zone) ")" }
                dt { "Repeat" } dd { (m.period.label()) }
                dt { "Recipients" } dd { (view.recipients) }
                dt { "Next run" } dd { @if let Some(at) = m.next_run_at.filter(|_| open) { (datetime(at, view.zone)) } @else { "—" } }
                dt { "Last sent" } dd { @if let Some(at) = m.last_sent_at { (datetime(at, view.zone)) } @else { "never" } }
            }
            @if view.owner_paused && open {
                div.flash.error role="status" { p {
                    strong { "Paused: " }
                    "the owner's account (" (view.owner) ") is deactivated. Nothing is sent — no run "
                    "starts and a running run sends nothing more; what is pending stays pending — "
                    "until a superuser activates the account again."
                } }
            }
            div.actions {
                @if view.can_change && open {
                    form.inline method="post" action={ "/mailings/" (m.id) "/send" } {
                        (csrf_field(ctx))
                        button type="submit" { "Send now" }
                    }
                    form.inline method="post" action={ "/mailings/" (m.id) "/send" } {
                        (csrf_field(ctx))
                        input type="hidden" name="dry_run" value="1";
                        button.secondary type="submit" { "Dry run" }
                    }
                }
                @if view.can_disable && open {
                    form.inline method="post" action={ "/mailings/" (m.id) "/disable" } {
                        (csrf_field(ctx))
                        button.danger type="submit" hx-post={ "/mailings/" (m.id) "/disable" } hx-target="body"
                            hx-confirm="Finish this mailing now and cancel what is still pending?" { "Disable" }
                    }
                }
                @if view.can_change {
                    a.button.secondary href={ "/mailings/" (m.id) "/edit" } { "Edit" }
                    form.inline method="post" action={ "/mailings/" (m.id) "/delete" } {
                        (csrf_field(ctx))
                        button.danger type="submit" { "Delete" }
                    }
                }
                a.button.secondary href={ "/mailings/" (m.id) "/logs" } { "Delivery log" }
            }
            h2 { "Current run" }
            (progress(m.id, view.progress))
            h2 { "Run history" }
            (runs(view.runs, view.zone))
        }
    }
}

/// The progress bar; while a run is active it polls itself every second.
pub fn progress(mailing_id: i64, progress: Option<&Progress>) -> Markup {
    let Some(p) = progress else {
        return html! { div #progress { p.muted { "No run yet." } } };
    };
    let t = p.run.totals;
    html! {
        div #progress hx-get=[p.active().then(|| format!("/mailings/{mailing_id}/progress"))]
            hx-trigger=[p.active().then_some("every 1s")] hx-swap="outerHTML" {
            progress max="100" value=(p.percent) aria-label="Progress" { (p.percent) "%" }
            p {
                strong { (p.percent) "%" } " · run #" (p.run.id) " " (badge(p.run.status.as_str(), p.run.status.label()))
                @if p.run.dry_run { " " span.badge.dry_run { "dry run" } }
            }
            p.muted {
                (t.sent) " sent · " (t.errors) " errors · " (t.dry_run) " dry-run · " (t.skipped) " skipped · "
                (t.pending) " pending of " (t.total)
                " · " (format!("{:.1}", p.rate_per_sec)) " per second"
                @if let Some(eta) = p.eta_secs { " · about " (eta) " s left" }
            }
        }
    }
}

fn runs(runs: &[Run], zone: &str) -> Markup {
    html! {
        div.table-wrap {
            table.list {
                thead { tr {
                    th { "Run" } th { "Started" } th { "Finished" } th { "By" } th { "Status" }
                    th.num { "Total" } th.num { "Sent" } th.num { "Errors" } th.num { "Skipped" } th { "Summary" }
                } }
                tbody {
                    @for r in runs {
                        tr {
                            td { "#" (r.id) @if r.dry_run { " " span.badge.dry_run { "dry" } } }
                            td { (datetime(r.started_at, zone)) }
                            td { @if let Some(at) = r.finished_at { (datetime(at, zone)) } }
                            td { (r.triggered_by) }
                            td { (badge(r.status.as_str(), r.status.label())) }
                            td.num { (r.totals.total) } td.num { (r.totals.sent) } td.num { (r.totals.errors) } td.num { (r.totals.skipped) }
                            td.muted { (r.server_response) }
                        }
                    }
                    @if runs.is_empty() { tr { td colspan="10" { "No run yet." } } }
                }
            }
        }
    }
}

pub fn logs(
    m: &Mailing,
    rows: &[Delivery],
    status: Option<DeliveryStatus>,
    page: PageRequest,
    total: i64,
    zone: &str,
) -> Markup {
    let filter = status.map(|s| s.as_str()).unwrap_or("");
    let path = format!("/mailings/{}/logs", m.id);
    html! {
        section {
            h1 { "Delivery log of mailing #" (m.id) }
            nav.filters aria-label="Filter by status" {
                @if filter.is_empty() { strong { "All" } } @else { a href=(path) { "All" } }
                @for s in DeliveryStatus::ALL {
                    " · "
                    @if filter == s.as_str() { strong { (s.label()) } }
                    @else { a href={ (path) "?status=" (s.as_str()) } { (s.label()) } }
                }
            }
            div.table-wrap {
                table.list {
                    thead { tr {
                        th { "Recipient" } th { "Status" } th.num { "Attempts" } th { "Run" } th { "Updated" } th { "Server reply / error" }
                    } }
                    tbody {
                        @for d in rows {
                            tr {
                                td { (d.full_name) " " span.muted { "<" (d.email) ">" } }
                                td { (badge(d.status.as_str(), d.status.label())) }
                                td.num { (d.attempts) }
                                td { "#" (d.run_id) }
                                td { (datetime(d.updated_at, zone)) }
                                td { code { (d.detail) } }
                            }
                        }
                        @if rows.is_empty() { tr { td colspan="6" { "Nothing logged here." } } }
                    }
                }
            }
            (pager(&path, &query_string(&[("status", filter)]), page, total))
            p { a.button.secondary href={ "/mailings/" (m.id) } { "Back to the mailing" } }
        }
    }
}
