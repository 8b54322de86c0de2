//! The plain-text rendering of a report: a title line, then one section per kind of detail.
//! It is the body of every report e-mail (cut into parts by [`crate::reporting::chunk`]).

use crate::reporting::report::{ErrorReport, ReportSource};

/// The plain-text report: a title line, then one section per kind of detail.
pub fn render_text(report: &ErrorReport) -> String {
    let mut out = String::new();
    let title = report.title();
    out.push_str(&title);
    out.push('\n');
    out.push_str(&"=".repeat(title.chars().count().min(72)));
    out.push_str("\n\n");

    for (label, value) in report.summary_rows() {
        out.push_str(&format!("{:<15} {}\n", format!("{label}:"), indent(&value)));
    }

    section(&mut out, "Cause chain (outermost first)");
    for (i, cause) in report.chain.iter().enumerate() {
        out.push_str(&format!("{i:>3}: {}\n", indent(cause)));
    }

    section(&mut out, "Backtrace");
    if report.backtrace.trim().is_empty() {
        out.push_str("(not captured)\n");
    } else {
        out.push_str(report.backtrace.trim_end());
        out.push('\n');
    }

    if let ReportSource::Request(info) = &report.source {
        pairs_section(&mut out, "Query parameters", &info.query, " = ");
        pairs_section(&mut out, "Form fields", &info.form, " = ");
        section(&mut out, "Cookies (names only)");
        if info.cookie_names.is_empty() {
            out.push_str("(none)\n");
        } else {
            out.push_str(&info.cookie_names.join(", "));
            out.push('\n');
        }
        pairs_section(&mut out, "Headers", &info.headers, ": ");
    }
    pairs_section(&mut out, "Settings", &report.settings, " = ");
    out
}

fn section(out: &mut String, name: &str) {
    out.push('\n');
    out.push_str(name);
    out.push('\n');
    out.push_str(&"-".repeat(name.chars().count()));
    out.push('\n');
}

fn pairs_section(out: &mut String, name: &str, pairs: &[(String, String)], sep: &str) {
    section(out, name);
    if pairs.is_empty() {
        out.push_str("(none)\n");
    }
    for (k, v) in pairs {
        out.push_str(&format!("{k}{sep}{}\n", indent(v)));
    }
}

/// Continuation lines of a multi-line value, indented under it.
fn indent(value: &str) -> String {
    value.replace('\n', "\n    ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::render_html;
    use crate::reporting::report::BackgroundTask;
    use crate::reporting::testing::{details, raw, settings_with};

    #[test]
    fn text_report_has_every_section() {
        let settings = settings_with(&[]);
        let mut req = raw("https://example.com/clients/7?q=1");
        req.form = vec![("comment".into(), "line1\nline2".into())];
        req.headers = vec![("Accept".into(), "*/*".into())];
        let report = ErrorReport::for_request(details("recipient missing"), req, &settings);
        let text = render_text(&report);
        assert!(
            text.starts_with("Internal Server Error: /clients/7\n====="),
            "{text}"
        );
        for needle in [
            "Error:          anyhow::Error",
            "Message:        recipient missing",
            "Request method: POST",
            "Request URL:    https://example.com/clients/7?q=1",
            "Route:          /clients/{id}",
            "Request ID:     rid-1",
            "User:           owner@example.com",
            "Client IP:      203.0.113.7",
            "Version:        ",
            "Fingerprint:    ",
            "  0: recipient missing",
            "  1: root cause",
            "Backtrace\n---------\n   0: autosend::web::routes::clients::show",
            "Query parameters\n----------------\nq = 1",
            "comment = line1\n    line2",
            "Cookies (names only)\n--------------------\n(none)",
            "Headers\n-------\nAccept: */*",
            "Settings\n--------\nDEBUG = false",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
        }
    }

    #[test]
    fn background_report_names_task_run_and_mailing() {
        let settings = settings_with(&[]);
        let report = ErrorReport::for_background(
            details("smtp down"),
            BackgroundTask {
                task: "delivery.send".into(),
                run_id: Some(17),
                mailing_id: Some(3),
            },
            &settings,
        );
        let text = render_text(&report);
        assert!(text.starts_with("Background task failed: delivery.send\n"));
        assert!(text.contains("Mailing ID:     3\n"));
        assert!(text.contains("Run ID:         17\n"));
        assert!(!text.contains("Request method"));
        assert_eq!(report.request_id(), "-");
        assert_eq!(report.route(), "task:delivery.send");
        assert_eq!(
            report.subject(&settings),
            "[autosend] ERROR (background task): delivery.send"
        );
        assert!(render_html(&report).contains("Run ID"));
    }
}
