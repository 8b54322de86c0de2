//! Mailing pages (`/mailings/…`): list, form with a recipient picker, detail with progress and
//! run history, delivery logs.

use maud::{Markup, html};

use crate::db::deliveries::Delivery;
use crate::db::mailings::{ListedMailing, Mailing};
use crate::db::recipients::ListedRecipient;
use crate::db::runs::Run;
use crate::delivery::Progress;
use crate::domain::TimeZone;
use crate::domain::{DeliveryStatus, FieldErrors, MailingStatus, PageRequest, Period};
use crate::mailings::MailingForm;
use crate::web::htmx::PageCtx;
use crate::web::views::layout::{
    Input, Swap, confirm_button, confirm_page, conflict_notice, csrf_field, datetime, field, pager,
    query_string, version_field,
};

/// The `?status=` word of the archived list.
pub use crate::domain::mailing::ARCHIVED;

fn badge(status: &str, label: &str) -> Markup {
    html! { span class={ "badge " (status) } { (label) } }
}

pub struct ListView<'a> {
    pub rows: &'a [ListedMailing],
    pub status: Option<MailingStatus>,
    /// The archived mailings (`?status=archived`) instead of the others.
    pub archived: bool,
    pub page: PageRequest,
    pub total: i64,
    pub everyone: bool,
    pub zone: TimeZone,
}

pub fn list(view: &ListView<'_>) -> Markup {
    let filter = if view.archived {
        ARCHIVED
    } else {
        view.status.map(|s| s.as_str()).unwrap_or("")
    };
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
            " · "
            @if view.archived { strong { "Archived" } }
            @else { a href={ "/mailings/?status=" (ARCHIVED) } { "Archived" } }
        }
        @if view.archived {
            p.hint { "Mailings deleted after they ran: their runs, delivery logs and figures are kept. Open one to restore it." }
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
                            td {
                                (badge(&m.status, MailingStatus::parse(&m.status).map(|s| s.label()).unwrap_or("?")))
                                @if view.archived { " " (badge(ARCHIVED, "Archived")) }
                            }
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
    pub zone: TimeZone,
    /// The other version when a save was refused as stale (409).
    pub saved: Option<&'a [(&'a str, String)]>,
    /// A run of the mailing is sending now (it keeps its content and audience).
    pub sending: bool,
}

pub fn form(ctx: &PageCtx, view: &FormView<'_>) -> Markup {
    let selected = view.form.selected();
    let shown: Vec<i64> = view.candidates.iter().map(|r| r.id).collect();
    let errors = view.errors;
    html! {
        section {
            h1 { (view.title) }
            (conflict_notice(view.saved))
            @if view.sending {
                div.flash.info role="status" {
                    "A run of this mailing is sending now: it keeps the message and recipients it started with. "
                    "A change saved here applies to the next run."
                }
            }
            form.stacked method="post" action=(view.action) {
                (csrf_field(ctx))
                (version_field(&view.form.version))
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
    pub recipients: i64,
    pub runs: &'a [Run],
    pub progress: Option<&'a Progress>,
    pub can_change: bool,
    pub can_disable: bool,
    pub zone: TimeZone,
}

/// What "Delete" will do: a mailing that ran is archived (its history stays), else deleted.
fn delete_question(id: i64, has_runs: bool) -> String {
    if has_runs {
        format!(
            "Mailing #{id} has runs: it will be archived (hidden and never sent; its history and \
             figures stay, and it can be restored). Go on?"
        )
    } else {
        format!("Delete mailing #{id}? It has never run.")
    }
}

/// What "Restore" will do: back in the lists and the schedule, a missed run not sent.
fn restore_question(id: i64, open: bool) -> String {
    if open {
        format!(
            "Restore mailing #{id}? It goes back into the lists and is sent again at its next \
             scheduled run (a run missed while it was archived is not sent)."
        )
    } else {
        format!("Restore mailing #{id}? It goes back into the lists; it is finished and not sent.")
    }
}

pub fn detail(ctx: &PageCtx, view: &DetailView<'_>) -> Markup {
    let m = view.mailing;
    let open = m.status != MailingStatus::Finished;
    let archived = m.archived_at.is_some();
    html! {
        section {
            div.page-head {
                h1 { "Mailing #" (m.id) ": " (view.subject) }
                (badge(m.status.as_str(), m.status.label()))
                @if archived { " " (badge(ARCHIVED, "Archived")) }
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
            @if archived {
                div.flash.info role="status" {
                    "This mailing is archived: it is out of the lists and is not sent; its runs, "
                    "delivery log and figures are kept."
                }
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
                // A paused mailing cannot start a run: no button that would only be refused.
                @if view.can_change && open && !archived && !view.owner_paused {
                    (confirm_button(&format!("/mailings/{}/send", m.id), "Send now",
                        &format!("Send mailing #{} now to its {} recipient(s)?", m.id, view.recipients), "", Swap::Page))
                    form.inline method="post" action={ "/mailings/" (m.id) "/send" } {
                        (csrf_field(ctx))
                        input type="hidden" name="dry_run" value="1";
                        button.secondary type="submit" { "Dry run" }
                    }
                }
                @if view.can_disable && open {
                    (confirm_button(&format!("/mailings/{}/disable", m.id), "Disable",
                        "Finish this mailing now and cancel what is still pending?", "danger", Swap::Page))
                }
                @if view.can_change {
                    // An archived mailing is history: restored first, then edited.
                    @if !archived { a.button.secondary href={ "/mailings/" (m.id) "/edit" } { "Edit" } }
                    @if archived {
                        (confirm_button(&format!("/mailings/{}/restore", m.id), "Restore",
                            &restore_question(m.id, open), "", Swap::Page))
                    } @else {
                        (confirm_button(&format!("/mailings/{}/delete", m.id), "Delete",
                            &delete_question(m.id, !view.runs.is_empty()), "danger", Swap::Page))
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

fn runs(runs: &[Run], zone: TimeZone) -> Markup {
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
    zone: TimeZone,
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

/// The confirmation page of a mailing action (without JavaScript): what will happen and a
/// button that does it.
pub struct ConfirmView<'a> {
    pub mailing: &'a Mailing,
    pub subject: &'a str,
    pub recipients: i64,
    pub runs: i64,
    /// A run of it is sending now.
    pub active_run: bool,
    /// Its next run if it is restored now.
    pub next_run_after_restore: Option<i64>,
    pub zone: TimeZone,
}

/// Why a mailing's send or delete would be refused now, if it would: the page says so
/// instead of offering a button that fails.
fn refusal(view: &ConfirmView<'_>, sending: bool) -> Option<Markup> {
    let m = view.mailing;
    let archived = m.archived_at.is_some();
    let why = if archived {
        if sending {
            "It is archived: restore it first to send it."
        } else {
            "It is archived already."
        }
    } else if view.active_run {
        "A run of it is sending now: wait for it to finish, or disable the mailing first."
    } else if sending && m.status == MailingStatus::Finished {
        "It is finished: it cannot be sent again."
    } else {
        return None;
    };
    Some(html! {
        p { "Mailing #" (m.id) " (" (view.subject) ") cannot be "
            (if sending { "sent" } else { "deleted" }) " now. " (why) }
    })
}

/// "Restore": back in the lists and the schedule; what fell due meanwhile is not sent.
pub fn restore_page(ctx: &PageCtx, view: &ConfirmView<'_>) -> Markup {
    let m = view.mailing;
    let (what, button) = if m.archived_at.is_none() {
        (
            html! { p { "Mailing #" (m.id) " (" (view.subject) ") is not archived: there is nothing to restore." } },
            None,
        )
    } else {
        (
            html! {
                p { "Mailing #" (m.id) " (" (view.subject) ") goes back into the mailing lists. " }
                @match view.next_run_after_restore {
                    Some(at) => p { "Its next scheduled run is " strong { (datetime(at, view.zone)) } " (" (view.zone) "), to its "
                        (view.recipients) " recipient(s). A run that fell due while it was archived is not sent." },
                    None => p { "It has no next scheduled run: nothing is sent unless you send it yourself." },
                }
            },
            Some("Restore"),
        )
    };
    confirm_page(
        ctx,
        "Restore this mailing?",
        what,
        &format!("/mailings/{}/restore", m.id),
        button,
        &format!("/mailings/{}", m.id),
    )
}

/// "Delete": archived when it has runs, else deleted.
pub fn delete_page(ctx: &PageCtx, view: &ConfirmView<'_>) -> Markup {
    let m = view.mailing;
    let (title, button, what) = if let Some(why) = refusal(view, false) {
        ("This mailing cannot be deleted now", None, why)
    } else if view.runs > 0 {
        (
            "Archive this mailing?",
            Some("Archive"),
            html! {
                p { "Mailing #" (m.id) " (" (view.subject) ") has " (view.runs) " run(s). "
                    "Deleting it archives it: it leaves the mailing lists and is never sent again, "
                    "while its runs, delivery log and figures in statistics and reports stay. "
                    "You can restore it from " a href={ "/mailings/?status=" (ARCHIVED) } { "the archived mailings" } "." }
            },
        )
    } else {
        (
            "Delete this mailing?",
            Some("Delete"),
            html! {
                p { "Mailing #" (m.id) " (" (view.subject) ") has never run: it is deleted with its list of "
                    (view.recipients) " recipient(s). The message and the recipients themselves stay." }
            },
        )
    };
    confirm_page(
        ctx,
        title,
        what,
        &format!("/mailings/{}/delete", m.id),
        button,
        &format!("/mailings/{}", m.id),
    )
}

/// "Send now": mails every recipient of the mailing.
pub fn send_page(ctx: &PageCtx, view: &ConfirmView<'_>) -> Markup {
    let m = view.mailing;
    let (title, what, button) = match refusal(view, true) {
        Some(why) => ("This mailing cannot be sent now", why, None),
        None => (
            "Send this mailing now?",
            html! {
                p { "Mailing #" (m.id) " (" (view.subject) ") is sent now to its "
                    (view.recipients) " recipient(s) (unsubscribed addresses are skipped)." }
            },
            Some("Send now"),
        ),
    };
    confirm_page(
        ctx,
        title,
        what,
        &format!("/mailings/{}/send", m.id),
        button,
        &format!("/mailings/{}", m.id),
    )
}

/// "Disable": finishes the mailing and cancels what is pending.
pub fn disable_page(ctx: &PageCtx, view: &ConfirmView<'_>) -> Markup {
    let m = view.mailing;
    confirm_page(
        ctx,
        "Disable this mailing?",
        html! {
            p { "Mailing #" (m.id) " (" (view.subject) ") is finished now: it is never sent again, and "
                "messages of its current run that are still pending are cancelled." }
        },
        &format!("/mailings/{}/disable", m.id),
        Some("Disable"),
        &format!("/mailings/{}", m.id),
    )
}
