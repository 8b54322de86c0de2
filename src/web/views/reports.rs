//! `/mailings/stats/` and `/mailings/reports/`: figures, sortable tables, and the per-day
//! chart as inline SVG (no JavaScript) whose numbers are also in a table.

use maud::{Markup, html};

use crate::db::stats::{DayTotals, MailingStats, rate};
use crate::domain::TimeZone;
use crate::domain::choice::Choice as _;
use crate::domain::mailing::ARCHIVED;
use crate::domain::{FieldErrors, MailingStatus, PageRequest};
use crate::reports::{Report, Stats, StatsSort, day_date, format_date};
use crate::web::views::layout::{Input, datetime, field, form_error, pager, query_string};

pub struct StatsView<'a> {
    pub stats: &'a Stats,
    pub sort: StatsSort,
    pub ascending: bool,
    pub page: PageRequest,
    pub everyone: bool,
    pub zone: TimeZone,
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.1}%"))
}

fn status_label(word: &str) -> &str {
    match word {
        // Deleted after it ran: its figures stay (SPEC §12).
        ARCHIVED => "Archived",
        _ => MailingStatus::parse(word).map_or(word, |s| s.label()),
    }
}

/// A card with one figure; `id` lets tests and scripts find it.
fn card(id: &str, value: i64, label: &str) -> Markup {
    html! { div.card { p.figure id=(id) { (value) } p { (label) } } }
}

/// A column header that sorts by `sort`: first click descending, the next ascending.
fn sort_header(view: &StatsView<'_>, sort: StatsSort, label: &str) -> Markup {
    let current = view.sort == sort;
    let dir = if current && !view.ascending {
        "asc"
    } else {
        "desc"
    };
    let href = format!(
        "/mailings/stats/?{}",
        query_string(&[("sort", sort.word()), ("dir", dir)])
    );
    let aria = match (current, view.ascending) {
        (true, true) => "ascending",
        (true, false) => "descending",
        _ => "none",
    };
    html! {
        th.num aria-sort=(aria) {
            a href=(href) { (label) @if current { @if view.ascending { " ↑" } @else { " ↓" } } }
        }
    }
}

pub fn stats(view: &StatsView<'_>) -> Markup {
    let t = &view.stats.totals;
    let rows = &view.stats.rows;
    let start = usize::try_from(view.page.offset())
        .unwrap_or(0)
        .min(rows.len());
    let end = (start + view.page.per_page as usize).min(rows.len());
    let extra = query_string(&[
        ("sort", view.sort.word()),
        ("dir", if view.ascending { "asc" } else { "desc" }),
    ]);
    html! {
        div.page-head {
            h1 { "Statistics" }
            div.actions { a.button.secondary href="/mailings/reports/" { "Period report" } }
        }
        @if view.everyone { p.muted { "Figures cover every user's mailings." } }
        div.cards {
            (card("total-mailings", t.mailings, "mailings"))
            (card("total-runs-ok", t.runs_ok, "runs succeeded"))
            (card("total-runs-fail", t.runs_fail, "runs failed"))
            (card("total-sent", t.sent, "messages sent"))
            (card("total-errors", t.errors, "errors"))
            (card("total-dry-run", t.dry_run, "dry-run messages"))
        }
        @if rows.is_empty() {
            p.empty { "No mailings yet." }
        } @else {
            div.table-wrap {
                table.list #stats {
                    thead {
                        tr {
                            th { "Mailing" }
                            @if view.everyone { th { "Owner" } }
                            th { "Status" }
                            (sort_header(view, StatsSort::Recipients, "Recipients"))
                            th.num { "Runs ok" }
                            th.num { "Runs failed" }
                            (sort_header(view, StatsSort::Sent, "Sent"))
                            (sort_header(view, StatsSort::Errors, "Errors"))
                            (sort_header(view, StatsSort::LastSent, "Last sent"))
                            (sort_header(view, StatsSort::Rate, "Success rate"))
                        }
                    }
                    tbody {
                        @for m in &rows[start..end] { (stats_row(view, m)) }
                    }
                }
            }
            (pager("/mailings/stats/", &extra, view.page, rows.len() as i64))
        }
    }
}

fn stats_row(view: &StatsView<'_>, m: &MailingStats) -> Markup {
    html! {
        tr id={ "mailing-" (m.id) } data-mailing=(m.id) {
            td { a href={ "/mailings/" (m.id) } { (m.subject) } }
            @if view.everyone { td { (m.owner_email) } }
            td { (status_label(&m.status)) }
            td.num data-col="recipients" { (m.recipients) }
            td.num data-col="runs_ok" { (m.runs_ok) }
            td.num data-col="runs_fail" { (m.runs_fail) }
            td.num data-col="sent" { (m.sent) }
            td.num data-col="errors" { (m.errors) }
            td data-col="last_sent" {
                @match m.last_sent_at { Some(at) => (datetime(at, view.zone)), None => "never" }
            }
            td.num data-col="rate" { (percent(m.success_rate())) }
        }
    }
}

/// The report form's values (as typed, or as resolved) and its messages.
pub struct ReportForm<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub user: &'a str,
    pub errors: &'a FieldErrors,
    /// The viewer may pick any user's report.
    pub everyone: bool,
}

fn report_form(form: &ReportForm<'_>) -> Markup {
    let problem = (!form.errors.is_empty()).then_some("The report could not be made: see below.");
    html! {
        (form_error(problem))
        form.report-form method="get" action="/mailings/reports/" {
            (field(Input::new("from", "From").kind("date").value(form.from), form.errors))
            (field(Input::new("to", "To").kind("date").value(form.to), form.errors))
            @if form.everyone {
                (field(Input::new("user", "User id").kind("number").value(form.user)
                    .hint("Empty: your own mailings."), form.errors))
            }
            button type="submit" { "Show" }
        }
    }
}

/// The form alone, with its messages (422).
pub fn report_invalid(form: &ReportForm<'_>) -> Markup {
    html! {
        h1 { "Report" }
        (report_form(form))
    }
}

pub fn report(form: &ReportForm<'_>, r: &Report) -> Markup {
    let f = &r.figures;
    let mut csv_query = vec![
        ("format", "csv"),
        ("from", r.from.as_str()),
        ("to", r.to.as_str()),
    ];
    if !form.user.trim().is_empty() {
        csv_query.push(("user", form.user.trim()));
    }
    let csv_href = format!("/mailings/reports/?{}", query_string(&csv_query));
    let mut days_query = csv_query.clone();
    days_query.push(("rows", "days"));
    let days_href = format!("/mailings/reports/?{}", query_string(&days_query));
    html! {
        div.page-head {
            h1 { "Report" }
            div.actions { a.button.secondary href="/mailings/stats/" { "Statistics" } }
        }
        (report_form(form))
        p.lead #report-scope { "Mailings of " strong { (r.user_email) } " from " (r.from) " to " (r.to) " (days in UTC)." }
        div.cards {
            (card("report-mailings", f.mailings.total, "mailings"))
            (card("report-running", f.mailings.running, "running"))
            (card("report-finished", f.mailings.finished, "finished"))
            (card("report-recipients", f.recipients, "distinct recipients"))
            (card("report-runs-ok", r.runs_ok, "runs succeeded"))
            (card("report-runs-fail", r.runs_fail, "runs failed"))
            (card("report-sent", r.sent, "messages sent"))
            (card("report-errors", r.errors, "errors"))
        }
        h2 { "Per day" }
        (chart(&f.days))
        details {
            summary { "The chart's numbers" }
            div.table-wrap {
                table.list #days {
                    thead { tr { th { "Date" } th.num { "Sent" } th.num { "Errors" } th.num { "Dry run" } th.num { "Runs ok" } th.num { "Runs failed" } } }
                    tbody {
                        @for d in &f.days {
                            tr data-day=(format_date(day_date(d.day))) {
                                td { (format_date(day_date(d.day))) }
                                td.num data-col="sent" { (d.sent) }
                                td.num data-col="errors" { (d.errors) }
                                td.num data-col="dry_run" { (d.dry_run) }
                                td.num data-col="runs_ok" { (d.runs_ok) }
                                td.num data-col="runs_fail" { (d.runs_fail) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Per mailing" }
        @if f.per_mailing.is_empty() {
            p.empty { "No mailing sent anything in this period." }
        } @else {
            div.table-wrap {
                table.list #per-mailing {
                    thead { tr { th { "Mailing" } th { "Status" } th.num { "Runs ok" } th.num { "Runs failed" } th.num { "Sent" } th.num { "Errors" } th.num { "Dry run" } th.num { "Success rate" } } }
                    tbody {
                        @for m in &f.per_mailing {
                            tr data-mailing=(m.id) {
                                td { a href={ "/mailings/" (m.id) } { (m.subject) } }
                                td { (status_label(&m.status)) }
                                td.num data-col="runs_ok" { (m.runs_ok) }
                                td.num data-col="runs_fail" { (m.runs_fail) }
                                td.num data-col="sent" { (m.sent) }
                                td.num data-col="errors" { (m.errors) }
                                td.num data-col="dry_run" { (m.dry_run) }
                                td.num { (percent(rate(m.sent, m.errors))) }
                            }
                        }
                    }
                }
            }
        }
        p {
            a.button.secondary href=(csv_href) download { "Download CSV" }
            " "
            a.button.secondary href=(days_href) download { "Per-day CSV" }
        }
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;

/// A round upper bound for the y axis (1, 2 or 5 times a power of ten).
fn axis_max(max: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= max.max(1) {
                return step * m;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// Stacked bars per day (sent, errors above), a labelled y axis, dates under the x axis.
fn chart(days: &[DayTotals]) -> Markup {
    let top = axis_max(days.iter().map(|d| d.sent + d.errors).max().unwrap_or(0));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: i64| TOP + plot_h - v as f64 * plot_h / top as f64;
    let every = days.len().div_ceil(8).max(1);
    let ticks = [0, top / 2, top];
    html! {
        figure.chart {
            svg #chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%" role="img"
                aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg" {
                title #chart-title { "Messages per day" }
                desc #chart-desc { "Sent (dark) and errors (light) per day; the same numbers are in the table below." }
                text x=(LEFT) y="16" font-size="13" font-weight="600" { "Messages per day" }
                @for t in ticks {
                    line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(t)) y2=(y(t)) stroke="#ccc" stroke-width="1" {}
                    text x=(LEFT - 6.0) y=(y(t) + 4.0) font-size="11" text-anchor="end" { (t) }
                }
                text x="12" y=(TOP + plot_h / 2.0) font-size="11" text-anchor="middle"
                    transform={ "rotate(-90 12 " (TOP + plot_h / 2.0) ")" } { "messages" }
                @for (i, d) in days.iter().enumerate() {
                    @let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
                    @let date = format_date(day_date(d.day));
                    g.day data-day=(date) data-sent=(d.sent) data-errors=(d.errors) {
                        title { (date) ": " (d.sent) " sent, " (d.errors) " errors" }
                        @if d.sent > 0 {
                            rect x=(x) y=(y(d.sent)) width=(bar) height=(y(0) - y(d.sent)) fill="#2f6fb0" {}
                        }
                        @if d.errors > 0 {
                            rect x=(x) y=(y(d.sent + d.errors)) width=(bar) height=(y(d.sent) - y(d.sent + d.errors)) fill="#e08a7a" {}
                        }
                    }
                    @if i % every == 0 || i + 1 == days.len() {
                        text x=(x + bar / 2.0) y=(HEIGHT - BOTTOM + 16.0) font-size="10" text-anchor="middle" { (&date[5..]) }
                    }
                }
                line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(y(0)) stroke="#555" stroke-width="1" {}
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(0)) y2=(y(0)) stroke="#555" stroke-width="1" {}
                text x=(LEFT + plot_w / 2.0) y=(HEIGHT - 6.0) font-size="11" text-anchor="middle" { "day (UTC, month-day)" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::axis_max;

    #[test]
    fn axes_round_up() {
        assert_eq!(axis_max(0), 1);
        assert_eq!(axis_max(3), 5);
        assert_eq!(axis_max(7), 10);
        assert_eq!(axis_max(11), 20);
        assert_eq!(axis_max(1_000_001), 2_000_000);
    }
}
