//! CSV import and export of recipients: header `email,full_name,comment` (SPEC §6).
//!
//! An import is checked whole before anything is written: a file that is not UTF-8 text, not
//! CSV, has no proper header or too many rows changes nothing; otherwise every valid row is
//! created or updated (by e-mail) in one transaction and every invalid row is reported with
//! its line number and reason.

use std::collections::HashMap;

use super::{parse_comment, parse_name};
use crate::db::recipients::{ImportRow, ListedRecipient};
use crate::domain::{Email, csv_cell};

pub const MAX_ROWS: usize = 100_000;
pub const HEADER: [&str; 3] = ["email", "full_name", "comment"];

/// Why a whole file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("The file is empty.")]
    Empty,
    #[error(
        "The file is not UTF-8 text (first bad byte at offset {0}). Save it as CSV UTF-8 and try again."
    )]
    NotUtf8(usize),
    #[error("The file is not a CSV text file.")]
    Binary,
    #[error("The first line must be the header email,full_name,comment (found: {0}).")]
    BadHeader(String),
    #[error("The file is not valid CSV near line {line}: {reason}.")]
    Malformed { line: u64, reason: String },
    #[error("The file has more than {MAX_ROWS} rows; split it into smaller files.")]
    TooManyRows,
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub email: String,
    pub reason: String,
}

/// A file that parsed: the rows to write and the rows refused.
#[derive(Debug, Default)]
pub struct ParsedImport {
    pub rows: Vec<ImportRow>,
    pub rejected: Vec<Rejected>,
}

/// Parses an uploaded file without touching the database.
pub fn parse(bytes: &[u8]) -> Result<ParsedImport, FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FileError::Empty);
    }
    if bytes.contains(&0) {
        return Err(FileError::Binary);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| FileError::NotUtf8(e.valid_up_to()))?;
    // One line ending for all: the csv crate miscounts record lines after CRLF, and the line
    // numbers of rejected rows must match what the user sees in an editor.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");

    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| malformed(&e))?.clone();
    let names: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let column = |name: &str| names.iter().position(|n| n == name);
    let (Some(email_col), Some(name_col)) = (column("email"), column("full_name")) else {
        let found: String = header
            .iter()
            .collect::<Vec<_>>()
            .join(",")
            .chars()
            .take(80)
            .collect();
        return Err(FileError::BadHeader(found));
    };
    let comment_col = column("comment");

    let mut parsed = ParsedImport::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        if index >= MAX_ROWS {
            return Err(FileError::TooManyRows);
        }
        let record = record.map_err(|e| malformed(&e))?;
        let line = record
            .position()
            .map(|p| p.line())
            .unwrap_or(index as u64 + 2);
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        // Cells the export quoted against formulas come back as they were.
        let field =
            |col: Option<usize>| csv_cell::restore(col.and_then(|c| record.get(c)).unwrap_or(""));
        let raw_email = field(Some(email_col)).to_string();
        let mut reject = |reason: String| {
            parsed.rejected.push(Rejected {
                line,
                email: raw_email.chars().take(254).collect(),
                reason,
            })
        };
        let email = match Email::parse(&raw_email) {
            Ok(email) => email,
            Err(reason) => {
                reject(reason);
                continue;
            }
        };
        let full_name = match parse_name(field(Some(name_col))) {
            Ok(name) => name,
            Err(reason) => {
                reject(format!("full_name: {reason}"));
                continue;
            }
        };
        let comment = match parse_comment(field(comment_col)) {
            Ok(comment) => comment,
            Err(reason) => {
                reject(format!("comment: {reason}"));
                continue;
            }
        };
        if let Some(first) = seen.get(email.as_str()) {
            reject(format!("duplicate of line {first}"));
            continue;
        }
        seen.insert(email.to_string(), line);
        parsed.rows.push(ImportRow {
            email: email.into_string(),
            full_name,
            comment,
        });
    }
    Ok(parsed)
}

fn malformed(err: &csv::Error) -> FileError {
    let line = err.position().map(|p| p.line()).unwrap_or(1);
    let reason = match err.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
        other => format!("{other:?}").chars().take(120).collect(),
    };
    FileError::Malformed { line, reason }
}

/// The recipients as CSV, header first, every cell safe to open in a spreadsheet.
pub fn export(rows: &[ListedRecipient]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 64 + 32));
    writer.write_record(HEADER)?;
    for r in rows {
        writer.write_record(csv_cell::safe_record([&r.email, &r.full_name, &r.comment]))?;
    }
    writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot finish the CSV: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_quotes_crlf_and_reasons() {
        let file = "\u{feff}email,full_name,comment\r\n\
                    ann@example.com,\"Lee, Ann\",\"multi\r\nline\"\r\n\
                    bad-address,Bob,\r\n\
                    cat@example.com,C,too short\r\n\
                    ANN@example.com,Ann Again,\r\n\
                    \r\n\
                    dan@example.com,Dan,\r\n";
        let parsed = parse(file.as_bytes()).unwrap();
        let emails: Vec<_> = parsed.rows.iter().map(|r| r.email.as_str()).collect();
        assert_eq!(emails, ["ann@example.com", "dan@example.com"]);
        assert_eq!(parsed.rows[0].full_name, "Lee, Ann");
        assert_eq!(parsed.rows[0].comment, "multi\nline");
        let reasons: Vec<_> = parsed
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_eq!(reasons[0].0, 4);
        assert!(reasons[0].1.contains("not a valid e-mail"));
        assert!(reasons[1].1.starts_with("full_name:"));
        assert_eq!(reasons[2].1, "duplicate of line 2");
    }

    #[test]
    fn whole_file_refusals() {
        assert_eq!(parse(b"").unwrap_err(), FileError::Empty);
        assert_eq!(
            parse(b"\x89PNG\r\n\x1a\n\0\0").unwrap_err(),
            FileError::Binary
        );
        assert!(matches!(
            parse(b"email,full_name\nb\xe9b@x.com,B\xe9b\n").unwrap_err(),
            FileError::NotUtf8(_)
        ));
        assert!(matches!(
            parse(b"name,address\nx,y\n").unwrap_err(),
            FileError::BadHeader(_)
        ));
        let mut big = String::from("email,full_name\n");
        for i in 0..=MAX_ROWS {
            big.push_str(&format!("u{i}@example.com,User {i}\n"));
        }
        assert_eq!(parse(big.as_bytes()).unwrap_err(), FileError::TooManyRows);
    }

    #[test]
    fn header_columns_may_come_in_any_order_and_comment_is_optional() {
        let parsed = parse(b"Full_Name,EMAIL\nAnn Lee,ann@example.com\n").unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].comment, "");
    }
}
