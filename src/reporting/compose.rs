//! The report e-mails (SPEC §8): a report as one e-mail or as ordered parts, and the error
//! storm's summary.
//!
//! A report longer than `ERROR_EMAIL_CHUNK_SIZE` characters travels as several e-mails. Each
//! part holds at most that many characters of the report, cut after a line end where there is
//! one in reach and never inside a character, so the parts put together are the report. Every
//! part starts with a short block naming the request id, the fingerprint and `part X/Y` (in
//! addition to the report's characters) and carries the same in `X-Autosend-*` headers; parts
//! 2..Y answer part 1 (`In-Reply-To`, `References`) so mail clients thread them.
//!
//! The HTML alternative is attached only when the whole report fits one e-mail: an HTML page
//! cut in pieces renders as nothing useful. A split report is plain text in every part, and
//! part 1 says so.

use anyhow::Context as _;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use crate::config::Settings;
use crate::db::error_groups::from_ms;
use crate::reporting::chunk::chunk;
use crate::reporting::html::render_html_with_notes;
use crate::reporting::policy::Storm;
use crate::reporting::report::{ErrorReport, format_time};
use crate::reporting::subject::{self, MAX_SUBJECT_CHARS, cut};
use crate::reporting::text::render_text;

/// Who a report e-mail goes to, what it is called, and notes for its first part.
#[derive(Debug, Clone)]
pub struct MailHead {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// The subject without the part suffix; cut so the suffix always fits in 200 characters.
    pub subject: String,
    /// Lines shown above the report in part 1 (and in the HTML), e.g. `37 more since …`.
    pub notes: Vec<String>,
}

/// The e-mails of one report: one when it fits `max_chars`, else one per chunk, in order.
pub fn compose_parts(
    report: &ErrorReport,
    head: &MailHead,
    max_chars: usize,
) -> anyhow::Result<Vec<Message>> {
    let text = render_text(report);
    let mut chunks = chunk(&text, max_chars);
    if chunks.is_empty() {
        chunks.push(String::new());
    }
    let total = chunks.len();
    let domain = head.from.email.domain().to_string();
    let thread = uuid::Uuid::new_v4().simple().to_string();
    let message_id = |part: usize| format!("<{thread}.{part}of{total}@{domain}>");
    let first_id = message_id(1);

    let mut notes = head.notes.clone();
    if total > 1 {
        notes.push(format!(
            "This report is {} characters long, so it is sent as {total} plain-text e-mails \
             of at most {max_chars} characters; the HTML version is left out.",
            text.chars().count()
        ));
    }

    let mut messages = Vec::with_capacity(total);
    for (i, body) in chunks.into_iter().enumerate() {
        let part = i + 1;
        let position = format!("{part}/{total}");
        let suffix = if total > 1 {
            format!(" (part {position})")
        } else {
            String::new()
        };
        let subject = format!(
            "{}{suffix}",
            cut(&head.subject, MAX_SUBJECT_CHARS - suffix.chars().count())
        );

        let mut top = format!(
            "Request ID: {}\nFingerprint: {}\nPart: {position}\n",
            report.request_id(),
            report.fingerprint
        );
        if part == 1 {
            for note in &notes {
                top.push_str(note);
                top.push('\n');
            }
        }
        top.push_str(&"-".repeat(72));
        top.push('\n');
        let plain = format!("{top}{body}");

        let mut builder = Message::builder()
            .from(head.from.clone())
            .subject(subject.clone())
            .message_id(Some(message_id(part)))
            .raw_header(crate::mail::auto_submitted())
            .raw_header(header("X-Autosend-Request-Id", report.request_id()))
            .raw_header(header("X-Autosend-Fingerprint", &report.fingerprint))
            .raw_header(header("X-Autosend-Part", &position));
        for to in &head.to {
            builder = builder.to(to.clone());
        }
        if part > 1 {
            builder = builder
                .in_reply_to(first_id.clone())
                .references(first_id.clone());
        }
        let message = if total == 1 {
            let html = render_html_with_notes(report, &notes);
            builder.multipart(MultiPart::alternative_plain_html(plain, html))
        } else {
            crate::mail::plain_text(builder, plain)
        };
        let mut message =
            message.with_context(|| format!("cannot build report e-mail part {position}"))?;
        // The path in the subject is whatever the client asked for, `=?…?=` included.
        crate::mail::keep_subject_literal(&mut message, &subject);
        messages.push(message);
    }
    Ok(messages)
}

/// A custom header; the value is encoded (and freed of line breaks) by lettre.
fn header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(
        HeaderName::new_from_ascii_str(name),
        value.replace(['\r', '\n'], " "),
    )
}

/// The one e-mail that stands for the reports held back by the per-minute cap: how many, in
/// which groups, between when and now; at most `ERROR_EMAIL_CHUNK_SIZE` characters.
pub fn storm_summary(storm: &Storm, settings: &Settings, now: i64) -> anyhow::Result<Message> {
    let groups = storm.groups.len();
    let subject = subject::cut(
        &subject::escape(&format!(
            "{}Error storm: {} errors in {groups} groups suppressed",
            settings.email_subject_prefix, storm.total
        )),
        subject::MAX_SUBJECT_CHARS,
    );
    let since = format_time(from_ms(storm.since_ms.unwrap_or(now)));
    let mut body = format!(
        "Error storm: {} errors in {groups} groups suppressed between {since} and {}: \
         more than ERROR_EMAIL_MAX_PER_MINUTE={} error e-mails a minute were due, so they \
         were not sent one by one.\nHost: {}\nEvery group is listed at /admin/errors.\n\n",
        storm.total,
        format_time(from_ms(now)),
        settings.error_email_max_per_minute,
        crate::telemetry::host_name(),
    );
    // The summary stays one e-mail of at most ERROR_EMAIL_CHUNK_SIZE characters.
    let budget = settings.error_email_chunk_size.saturating_sub(100);
    for (i, group) in storm.groups.iter().enumerate() {
        let entry = format!(
            "{:>5} × {}: {}\n        route {}, fingerprint {}, last request {}\n",
            group.count,
            group.error_type,
            group.message,
            group.route,
            group.fingerprint,
            group.last_request_id
        );
        if body.chars().count() + entry.chars().count() > budget {
            body.push_str(&format!("… and {} more groups\n", groups - i));
            break;
        }
        body.push_str(&entry);
    }
    let mut builder = Message::builder()
        .from(settings.server_email.clone())
        .subject(subject)
        .raw_header(crate::mail::auto_submitted());
    for admin in &settings.admins {
        builder = builder.to(admin.clone());
    }
    Ok(crate::mail::plain_text(builder, body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::report::{ErrorDetails, RawRequest};
    use crate::reporting::testing::{body_text, settings_with};

    fn report(message_lines: usize) -> ErrorReport {
        let settings = settings_with(&[]);
        let backtrace: String = (0..message_lines)
            .map(|i| format!("  {i}: autosend::frame_{i}\n"))
            .collect();
        ErrorReport::for_request(
            ErrorDetails {
                error_type: "anyhow::Error".into(),
                message: "boom".into(),
                chain: vec!["boom".into()],
                backtrace,
                ..ErrorDetails::default()
            },
            RawRequest {
                method: "GET".into(),
                url: "https://example.com/clients/1".into(),
                route: "/clients/{id}".into(),
                request_id: "rid-42".into(),
                ..Default::default()
            },
            &settings,
        )
    }

    fn head() -> MailHead {
        MailHead {
            from: "root@example.com".parse().unwrap(),
            to: vec![
                "Ops <ops@example.com>".parse().unwrap(),
                "dev@example.com".parse().unwrap(),
            ],
            subject: "[autosend] ERROR (EXTERNAL IP): Internal Server Error: /clients/1".into(),
            notes: vec!["3 more since 2026-11-20T12:00:00.000Z".into()],
        }
    }

    fn parse(message: &Message) -> mailparse::ParsedMail<'static> {
        let raw: &'static [u8] = Box::leak(message.formatted().into_boxed_slice());
        mailparse::parse_mail(raw).unwrap()
    }

    fn header_of(mail: &mailparse::ParsedMail<'_>, name: &str) -> Option<String> {
        use mailparse::MailHeaderMap;
        mail.headers.get_first_value(name)
    }

    #[test]
    fn a_report_that_fits_is_one_mail_with_html() {
        let report = report(3);
        let messages = compose_parts(&report, &head(), 100_000).unwrap();
        assert_eq!(messages.len(), 1);
        let mail = parse(&messages[0]);
        let subject = header_of(&mail, "Subject").unwrap();
        assert!(!subject.contains("(part"), "{subject}");
        assert_eq!(header_of(&mail, "X-Autosend-Part").unwrap(), "1/1");
        assert_eq!(header_of(&mail, "X-Autosend-Request-Id").unwrap(), "rid-42");
        assert_eq!(
            header_of(&mail, "X-Autosend-Fingerprint").unwrap(),
            report.fingerprint
        );
        assert!(header_of(&mail, "In-Reply-To").is_none());
        assert_eq!(mail.ctype.mimetype, "multipart/alternative");
        let text = body_text(&mail);
        assert!(
            text.starts_with("Request ID: rid-42\nFingerprint: "),
            "{text}"
        );
        assert!(text.contains("Part: 1/1\n3 more since 2026-11-20T12:00:00.000Z\n"));
        let html = mail.subparts[1].get_body().unwrap();
        assert!(html.contains("3 more since"));
        let to = header_of(&mail, "To").unwrap();
        assert!(to.contains("ops@example.com") && to.contains("dev@example.com"));
        assert!(
            header_of(&mail, "From")
                .unwrap()
                .contains("root@example.com")
        );
    }

    #[test]
    fn a_long_report_is_split_threaded_and_puts_back_together() {
        let report = report(400);
        let full = render_text(&report);
        let max = 1000;
        let messages = compose_parts(&report, &head(), max).unwrap();
        let total = messages.len();
        assert!(total > 3, "{total}");
        let mails: Vec<_> = messages.iter().map(parse).collect();
        let first_id = header_of(&mails[0], "Message-ID").unwrap();
        let mut rebuilt = String::new();
        let mut ids = std::collections::HashSet::new();
        for (i, mail) in mails.iter().enumerate() {
            let position = format!("{}/{total}", i + 1);
            let subject = header_of(mail, "Subject").unwrap();
            assert!(
                subject.ends_with(&format!(" (part {position})")),
                "{subject}"
            );
            assert_eq!(header_of(mail, "X-Autosend-Part").unwrap(), position);
            assert_eq!(mail.ctype.mimetype, "text/plain");
            assert!(ids.insert(header_of(mail, "Message-ID").unwrap()));
            if i == 0 {
                assert!(header_of(mail, "In-Reply-To").is_none());
            } else {
                assert_eq!(header_of(mail, "In-Reply-To").unwrap(), first_id);
                assert_eq!(header_of(mail, "References").unwrap(), first_id);
            }
            let body = body_text(mail);
            let (top, chunk) = body.split_once(&format!("{}\n", "-".repeat(72))).unwrap();
            assert!(top.contains(&format!("Part: {position}\n")));
            assert!(top.contains("Request ID: rid-42\n"));
            assert_eq!(i == 0, top.contains("HTML version is left out"));
            assert_eq!(i == 0, top.contains("3 more since"));
            assert!(chunk.chars().count() <= max);
            rebuilt.push_str(chunk);
        }
        assert_eq!(rebuilt, full);
    }

    #[test]
    fn the_part_suffix_survives_a_long_subject() {
        let mut head = head();
        head.subject = format!(
            "[autosend] ERROR (EXTERNAL IP): Internal Server Error: /{}",
            "x".repeat(400)
        );
        let messages = compose_parts(&report(400), &head, 1000).unwrap();
        let subject = header_of(&parse(&messages[1]), "Subject").unwrap();
        assert_eq!(subject.chars().count(), MAX_SUBJECT_CHARS);
        assert!(
            subject.ends_with(&format!("… (part 2/{})", messages.len())),
            "{subject}"
        );
    }
}
