//! CSV import of recipients (SPEC §6), through `csv_io::parse`, the whole of the import that does
//! not touch the database (the database then creates or updates each parsed row, so
//! created + updated = `rows`).
//!
//! Each input is used twice:
//! - as the uploaded file itself: whatever the bytes, no panic; a refused file says why; rejected
//!   rows carry a reason and increasing line numbers; accepted rows are canonical and unique, and
//!   exporting them and importing the export gives them back with nothing rejected;
//! - as the cells of a well-formed file that we write with the csv crate (records split on `\n`,
//!   cells on `,`; or on the ASCII record/unit separators when the input has them, so cells may
//!   hold line breaks): then every non-blank data row is accounted for, accepted with exactly its
//!   cleaned cells (a cell quoted against formulas, `'=x`, read as `=x`) or rejected at the line where it starts, for the reason the form would give.
#![no_main]

use std::collections::{HashMap, HashSet};

use autosend::db::recipients::ListedRecipient;
use autosend::domain::{Email, csv_cell};
use autosend::recipients::csv_io::{self, HEADER, ParsedImport};
use autosend::recipients::{parse_comment, parse_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_uploaded_bytes(data);
    check_written_file(data);
});

fn check_uploaded_bytes(data: &[u8]) {
    let parsed = match csv_io::parse(data) {
        Ok(parsed) => parsed,
        Err(err) => {
            assert!(!err.to_string().trim().is_empty());
            return;
        }
    };
    let mut last_line = 1;
    for rejected in &parsed.rejected {
        assert!(!rejected.reason.trim().is_empty(), "{rejected:?}");
        assert!(rejected.line > last_line, "{:?}", parsed.rejected);
        last_line = rejected.line;
    }
    let mut emails = HashSet::new();
    for row in &parsed.rows {
        let email = Email::parse(&row.email).expect("an accepted e-mail parses again");
        assert_eq!(email.as_str(), row.email, "accepted e-mails are canonical");
        assert!(emails.insert(row.email.clone()), "duplicate row {row:?}");
        assert_eq!(parse_name(&row.full_name).as_ref(), Ok(&row.full_name));
        assert_eq!(parse_comment(&row.comment).as_ref(), Ok(&row.comment));
    }
    if parsed.rows.is_empty() {
        return;
    }
    // The export of what was imported imports as itself.
    let listed: Vec<ListedRecipient> = parsed
        .rows
        .iter()
        .map(|row| ListedRecipient {
            id: 0,
            owner_id: 0,
            email: row.email.clone(),
            full_name: row.full_name.clone(),
            comment: row.comment.clone(),
            created_at: 0,
            owner_email: String::new(),
            unsubscribed: 0,
            version: 0,
        })
        .collect();
    let exported = csv_io::export(&listed).expect("export");
    let again = csv_io::parse(&exported).expect("an export imports");
    assert!(again.rejected.is_empty(), "{:?}", again.rejected);
    assert_eq!(rows(&again), rows(&parsed));
}

fn rows(parsed: &ParsedImport) -> Vec<(String, String, String)> {
    parsed
        .rows
        .iter()
        .map(|r| (r.email.clone(), r.full_name.clone(), r.comment.clone()))
        .collect()
}

/// What the import must make of one data row.
#[derive(Debug, PartialEq)]
enum Outcome {
    Row(String, String, String),
    Rejected {
        line: u64,
        duplicate_of: Option<u64>,
    },
}

fn check_written_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data).replace('\0', " ");
    let (record_sep, cell_sep) = if text.contains('\x1e') || text.contains('\x1f') {
        ('\x1e', '\x1f')
    } else {
        ('\n', ',')
    };
    let records: Vec<Vec<&str>> = text
        .split(record_sep)
        .take(64)
        .map(|record| record.split(cell_sep).take(5).collect())
        .collect();

    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    writer.write_record(HEADER).expect("write");
    let mut starts = Vec::with_capacity(records.len());
    for record in &records {
        writer.flush().expect("flush");
        starts.push(writer.get_ref().len());
        writer.write_record(record).expect("write");
    }
    let file = writer.into_inner().expect("finish");

    // The line a record starts on, as an editor counts lines (CRLF, CR and LF each end one).
    let line_at = |offset: usize| -> u64 {
        let prefix = String::from_utf8_lossy(&file[..offset]);
        1 + normalise(&prefix).matches('\n').count() as u64
    };
    let mut expected = Vec::new();
    let mut first_seen: HashMap<String, u64> = HashMap::new();
    for (record, &start) in records.iter().zip(&starts) {
        // A cell quoted against formulas (`'=x`) is read as what it quotes (`=x`).
        let cells: Vec<String> = record
            .iter()
            .map(|cell| csv_cell::restore(normalise(cell).trim()).to_string())
            .collect();
        if cells.iter().all(|c| c.is_empty()) {
            continue;
        }
        let line = line_at(start);
        let cell = |i: usize| cells.get(i).map(String::as_str).unwrap_or("");
        let parsed = (
            Email::parse(cell(0)),
            parse_name(cell(1)),
            parse_comment(cell(2)),
        );
        expected.push(match parsed {
            (Ok(email), Ok(name), Ok(comment)) => match first_seen.get(email.as_str()) {
                Some(&first) => Outcome::Rejected {
                    line,
                    duplicate_of: Some(first),
                },
                None => {
                    first_seen.insert(email.to_string(), line);
                    Outcome::Row(email.into_string(), name, comment)
                }
            },
            _ => Outcome::Rejected {
                line,
                duplicate_of: None,
            },
        });
    }

    let parsed = csv_io::parse(&file).unwrap_or_else(|e| panic!("{e} for {file:?}"));
    let accepted: Vec<Outcome> = parsed
        .rows
        .iter()
        .map(|r| Outcome::Row(r.email.clone(), r.full_name.clone(), r.comment.clone()))
        .collect();
    let rejected: Vec<Outcome> = parsed
        .rejected
        .iter()
        .map(|r| Outcome::Rejected {
            line: r.line,
            duplicate_of: r
                .reason
                .strip_prefix("duplicate of line ")
                .map(|n| n.parse().expect("a line number")),
        })
        .collect();
    assert_eq!(
        accepted.len() + rejected.len(),
        expected.len(),
        "every data row is created, updated or rejected"
    );
    let expected_rows: Vec<&Outcome> = expected
        .iter()
        .filter(|o| matches!(o, Outcome::Row(..)))
        .collect();
    let expected_rejected: Vec<&Outcome> = expected
        .iter()
        .filter(|o| matches!(o, Outcome::Rejected { .. }))
        .collect();
    assert_eq!(accepted.iter().collect::<Vec<_>>(), expected_rows);
    assert_eq!(rejected.iter().collect::<Vec<_>>(), expected_rejected);
}

/// Line ends as the import sees them.
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}
