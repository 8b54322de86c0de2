//! Chunked report e-mails (SPEC §8): `chunk::chunk` and `compose::compose_parts`.
//!
//! The input is text (invalid UTF-8 is replaced); a first line of decimal digits is the size
//! limit in characters, else the first byte picks a small one.
//!
//! Asserted for `chunk(text, max)`:
//! - no parts for an empty text; the parts concatenated are the text;
//! - each part has 1 to max characters (a limit of 0 counts as 1);
//! - a part is cut after the last line end within max characters: a part that does not end
//!   with `\n` has no `\n` at all and is exactly max characters long, and after a part that
//!   ends with `\n`, the characters that would have fitted into it hold no `\n`.
//!
//! Asserted for the e-mails of a report whose message, cause chain and backtrace come from the
//! text (the limit raised so that a report makes at most a dozen e-mails):
//! - one e-mail per chunk, in order; one e-mail (with its HTML alternative) when the report fits;
//! - each subject ends with ` (part X/Y)` when there are several parts, and is at most 200
//!   characters; `X-Autosend-Part` is X/Y, `X-Autosend-Request-Id` and `-Fingerprint` are set;
//! - parts 2..Y answer part 1 (`In-Reply-To`, `References`);
//! - each body starts with the request id, fingerprint and `Part: X/Y`, then the chunk; the
//!   chunks put back together give the plain-text report.
#![no_main]

use autosend::reporting::chunk::chunk;
use autosend::reporting::compose::{MailHead, compose_parts};
use autosend::reporting::subject::{MAX_SUBJECT_CHARS, cut, error_subject};
use autosend::reporting::{ErrorDetails, ErrorReport, RawRequest, render_text};
use autosend_fuzz::SETTINGS;
use libfuzzer_sys::fuzz_target;
use mailparse::MailHeaderMap;

fuzz_target!(|data: &[u8]| {
    let (max, text) = split_input(data);
    check_chunk(&text, max);
    check_mails(&text, max);
});

fn split_input(data: &[u8]) -> (usize, String) {
    let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
    if (1..=6).contains(&digits) && data.get(digits) == Some(&b'\n') {
        let max = std::str::from_utf8(&data[..digits])
            .unwrap()
            .parse()
            .unwrap();
        return (
            max,
            String::from_utf8_lossy(&data[digits + 1..]).into_owned(),
        );
    }
    match data.split_first() {
        Some((first, rest)) => (
            usize::from(*first % 64),
            String::from_utf8_lossy(rest).into_owned(),
        ),
        None => (1, String::new()),
    }
}

fn check_chunk(text: &str, max: usize) {
    let parts = chunk(text, max);
    let max = max.max(1);
    assert_eq!(parts.is_empty(), text.is_empty());
    assert_eq!(parts.concat(), text, "parts put back the text");
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        let n = part.chars().count();
        assert!((1..=max).contains(&n), "part {i} has {n} chars, max {max}");
        rest = &rest[part.len()..];
        if rest.is_empty() {
            assert_eq!(i + 1, parts.len());
            break;
        }
        if part.ends_with('\n') {
            let within: String = rest.chars().take(max - n).collect();
            assert!(
                !within.contains('\n'),
                "part {i} {part:?} is cut before a later line end within {max} chars"
            );
        } else {
            assert!(
                !part.contains('\n'),
                "part {i} {part:?} is not cut after its line end"
            );
            assert_eq!(n, max, "part {i} {part:?} is cut hard before the limit");
        }
    }
}

fn report(text: &str) -> ErrorReport {
    let lines: Vec<String> = text.lines().take(20).map(str::to_string).collect();
    let path = lines.first().cloned().unwrap_or_default();
    ErrorReport::for_request(
        ErrorDetails {
            error_type: "anyhow::Error".into(),
            message: text.to_string(),
            chain: lines.clone(),
            backtrace: lines.join("\n"),
            ..ErrorDetails::default()
        },
        RawRequest {
            method: "GET".into(),
            url: format!("https://example.com/{path}"),
            route: "/clients/{id}".into(),
            request_id: "rid-fuzz".into(),
            ..RawRequest::default()
        },
        &SETTINGS,
    )
}

fn check_mails(text: &str, max: usize) {
    let report = report(text);
    let full = render_text(&report);
    let max = max.max(full.chars().count() / 12 + 1);
    let chunks = chunk(&full, max);
    let path = text.lines().next().unwrap_or_default();
    let head = MailHead {
        from: "server@example.com".parse().unwrap(),
        to: vec!["ops@example.com".parse().unwrap()],
        subject: error_subject("[autosend] ", false, &format!("/{path}")),
        notes: vec!["2 more since 1970-01-01T00:00:00.000Z".into()],
    };
    let messages = compose_parts(&report, &head, max).expect("report e-mails build");
    let total = messages.len();
    assert_eq!(total, chunks.len().max(1));
    let mut first_id = String::new();
    for (i, message) in messages.iter().enumerate() {
        let formatted = message.formatted();
        let mail = mailparse::parse_mail(&formatted).expect("an e-mail parses");
        let header = |name: &str| mail.headers.get_first_value(name);
        let position = format!("{}/{total}", i + 1);
        let subject = header("Subject").expect("a subject");
        let suffix = if total > 1 {
            format!(" (part {position})")
        } else {
            String::new()
        };
        let cut_subject = cut(&head.subject, MAX_SUBJECT_CHARS - suffix.chars().count());
        // Compared without white space: lettre's encoded words lose a space between them,
        // and unfolding does not keep runs of spaces.
        let letters = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(
            letters(&subject),
            letters(&format!("{cut_subject}{suffix}"))
        );
        assert!(subject.ends_with(&suffix), "{subject:?}");
        assert!(subject.chars().count() <= MAX_SUBJECT_CHARS, "{subject:?}");
        assert_eq!(
            header("X-Autosend-Part").as_deref(),
            Some(position.as_str())
        );
        assert_eq!(header("X-Autosend-Request-Id").as_deref(), Some("rid-fuzz"));
        assert_eq!(
            header("X-Autosend-Fingerprint").as_deref(),
            Some(report.fingerprint.as_str())
        );
        let id = header("Message-ID").expect("a Message-ID");
        if i == 0 {
            assert!(header("In-Reply-To").is_none());
            first_id = id;
        } else {
            assert_eq!(header("In-Reply-To").as_ref(), Some(&first_id));
            assert_eq!(header("References").as_ref(), Some(&first_id));
        }
        let plain = if total == 1 {
            assert_eq!(mail.ctype.mimetype, "multipart/alternative");
            mail.subparts
                .iter()
                .find(|p| p.ctype.mimetype == "text/plain")
                .expect("a text/plain part")
        } else {
            assert_eq!(mail.ctype.mimetype, "text/plain");
            &mail
        };
        let body = plain
            .get_body()
            .expect("a decodable body")
            .replace("\r\n", "\n");
        let (top, part) = body
            .split_once(&format!("{}\n", "-".repeat(72)))
            .expect("a head block");
        assert!(top.starts_with(&format!(
            "Request ID: rid-fuzz\nFingerprint: {}\nPart: {position}\n",
            report.fingerprint
        )));
        assert_eq!(part, mail_lines(&chunks[i]), "part {position}");
    }
    // Compared before mail: a hard cut may fall between a CR and its LF.
    assert_eq!(chunks.concat(), full);
}

/// Text as read back from an e-mail body, with `\n` line ends.
fn mail_lines(text: &str) -> String {
    text.replace("\r\n", "\n")
}
