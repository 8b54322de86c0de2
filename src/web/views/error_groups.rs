//! `/admin/errors` (the groups reporting keeps) and `/admin/error-test` (a button that fails).

use crate::db::error_groups::ErrorGroup;
use crate::domain::PageRequest;
use crate::domain::TimeZone;
use crate::domain::instant::to_ms as ms;
use crate::web::htmx::PageCtx;
use crate::web::views::layout::{csrf_field, datetime, pager};
use maud::{Markup, html};

/// Characters of a fingerprint shown in the table (the full one is in its `title`).
const SHORT_FINGERPRINT: usize = 12;

pub fn list(
    ctx: &PageCtx,
    groups: &[ErrorGroup],
    page: PageRequest,
    total: i64,
    zone: TimeZone,
) -> Markup {
    html! {
        h1 { "Errors" }
        p.muted {
            "Unhandled errors and broken links, grouped by fingerprint. A group is e-mailed when \
             it first occurs and then at most once per cooldown; resolve it to be told again \
             the next time it happens."
        }
        div.table-wrap {
            table.list {
                thead {
                    tr {
                        th { "Fingerprint" } th { "Kind" } th { "Type" } th { "Message" }
                        th { "Route" } th { "Occurrences" } th { "First seen" } th { "Last seen" }
                        th { "Last request id" } th { "Resolved" }
                    }
                }
                tbody {
                    @for group in groups { (group_row(ctx, group, zone)) }
                    @if groups.is_empty() { tr { td colspan="10" { "No error has been reported." } } }
                }
            }
        }
        (pager("/admin/errors", "", page, total))
    }
}

/// One group; its resolve form swaps the row in place under htmx.
pub fn group_row(ctx: &PageCtx, group: &ErrorGroup, zone: TimeZone) -> Markup {
    let short: String = group.fingerprint.chars().take(SHORT_FINGERPRINT).collect();
    let kind = group.kind.label();
    html! {
        tr id={ "group-" (group.id) } {
            td { code title=(group.fingerprint) { (short) } }
            td { (kind) }
            td { code { (group.error_type) } }
            td { (group.message) }
            td { code { (group.route) } }
            td {
                (group.occurrences)
                @if group.suppressed > 0 {
                    " " span.muted title="Repeats not e-mailed yet" { "(" (group.suppressed) " not e-mailed)" }
                }
            }
            td { (datetime(ms(group.first_seen_at), zone)) }
            td { (datetime(ms(group.last_seen_at), zone)) }
            td { code { (group.last_request_id) } }
            td {
                @if let Some(at) = group.resolved_at {
                    "Resolved " (datetime(ms(at), zone))
                } @else {
                    form method="post" action={ "/admin/errors/" (group.id) "/resolve" }
                        hx-post={ "/admin/errors/" (group.id) "/resolve" }
                        hx-target="closest tr" hx-swap="outerHTML" {
                        (csrf_field(ctx))
                        button type="submit" { "Resolve" }
                    }
                }
            }
        }
    }
}

pub fn error_test(ctx: &PageCtx) -> Markup {
    html! {
        h1 { "Error test" }
        p {
            "The button below makes the server fail with an unhandled error, as a bug would: \
             you get the 500 page with its reference, ADMINS get the error report (unless \
             DEBUG is on or ADMINS is empty), and the error appears on "
            a href="/admin/errors" { "Errors" } "."
        }
        p.muted {
            "Repeats inside ERROR_EMAIL_COOLDOWN_SECS are counted, not e-mailed: resolve the \
             group on the Errors page to receive the next one."
        }
        form method="post" action="/admin/error-test" {
            (csrf_field(ctx))
            div.field {
                label for="f-note" { "Note (shown in the report)" }
                input #f-note type="text" name="note" autocomplete="off";
            }
            button type="submit" { "Raise a test error" }
        }
    }
}
