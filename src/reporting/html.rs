//! The HTML rendering of a report: an e-mail alternative, escaped by maud, inline styles, no
//! external resources.

use maud::{DOCTYPE, Markup, html};

use crate::reporting::report::{ErrorReport, ReportSource};

const BODY: &str = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;\
                    color:#222;background:#fff;margin:0;padding:16px;";
const H1: &str = "font-size:20px;margin:0 0 12px 0;color:#a40000;";
const H2: &str = "font-size:16px;margin:20px 0 6px 0;border-bottom:1px solid #ddd;";
const TABLE: &str = "border-collapse:collapse;width:100%;font-size:13px;";
const TH: &str = "text-align:left;vertical-align:top;padding:3px 8px;background:#f4f4f4;\
                  border:1px solid #ddd;white-space:nowrap;width:1%;";
const TD: &str = "vertical-align:top;padding:3px 8px;border:1px solid #ddd;\
                  font-family:Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all;";
const PRE: &str = "font-family:Menlo,Consolas,monospace;font-size:12px;background:#f8f8f8;\
                   border:1px solid #ddd;padding:8px;white-space:pre-wrap;word-break:break-all;";
const NOTE: &str =
    "background:#fff3cd;border:1px solid #e0c36b;padding:6px 10px;margin:0 0 12px 0;";

/// The HTML report (an e-mail: escaped by maud, inline styles, no external resources).
pub fn render_html(report: &ErrorReport) -> String {
    render_html_with_notes(report, &[])
}

/// The HTML report with notes (repeat counts, part notes) shown above it.
pub fn render_html_with_notes(report: &ErrorReport, notes: &[String]) -> String {
    let title = report.title();
    let summary = report.summary_rows();
    let markup: Markup = html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (title) }
            }
            body style=(BODY) {
                h1 style=(H1) { (title) }
                @for note in notes {
                    p style=(NOTE) { (note) }
                }
                table style=(TABLE) {
                    @for (label, value) in &summary {
                        tr { th style=(TH) { (label) } td style=(TD) { (value) } }
                    }
                }
                h2 style=(H2) { "Cause chain (outermost first)" }
                ol style="margin:0;padding-left:24px;font-family:Menlo,Consolas,monospace;font-size:13px;" start="0" {
                    @for cause in &report.chain {
                        li style="white-space:pre-wrap;" { (cause) }
                    }
                }
                h2 style=(H2) { "Backtrace" }
                @if report.backtrace.trim().is_empty() {
                    p { "(not captured)" }
                } @else {
                    pre style=(PRE) { (report.backtrace.trim_end()) }
                }
                @if let ReportSource::Request(info) = &report.source {
                    (pairs_table("Query parameters", &info.query))
                    (pairs_table("Form fields", &info.form))
                    h2 style=(H2) { "Cookies (names only)" }
                    @if info.cookie_names.is_empty() {
                        p { "(none)" }
                    } @else {
                        p style="font-family:Menlo,Consolas,monospace;" { (info.cookie_names.join(", ")) }
                    }
                    (pairs_table("Headers", &info.headers))
                }
                (pairs_table("Settings", &report.settings))
            }
        }
    };
    markup.into_string()
}

fn pairs_table(name: &str, pairs: &[(String, String)]) -> Markup {
    html! {
        h2 style=(H2) { (name) }
        @if pairs.is_empty() {
            p { "(none)" }
        } @else {
            table style=(TABLE) {
                @for (k, v) in pairs {
                    tr { th style=(TH) { (k) } td style=(TD) { (v) } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::testing::{details, raw, settings_with};

    #[test]
    fn html_is_escaped_and_self_contained() {
        let settings = settings_with(&[]);
        let mut req = raw("https://example.com/clients/1?q=<script>");
        req.headers = vec![("User-Agent".into(), "<img src=x onerror=alert(1)>".into())];
        let report = ErrorReport::for_request(details("<b>bold</b> & co"), req, &settings);
        let html = render_html(&report);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<img"));
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; co"));
        assert!(!html.contains("<link") && !html.contains("<style"));
        let with_note = render_html_with_notes(&report, &["3 more since then".to_string()]);
        assert!(with_note.contains("3 more since then"));
    }
}
