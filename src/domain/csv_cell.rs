//! Spreadsheet-safe CSV cells (OWASP "CSV injection"): a cell that starts with `=`, `+`, `-`,
//! `@`, a tab or a carriage return is a formula to Excel, LibreOffice and Google Sheets, so
//! every CSV autosend writes passes each cell through [`neutralise`], which puts a single
//! quote in front (spreadsheets show the text, not a formula). [`restore`] undoes it on import,
//! so an exported file imports as what was exported.
//!
//! To keep the pair exact, a cell that already starts with quotes before such a character
//! (`'=x`) gets one more quote too: `neutralise` adds one quote to exactly the cells that match
//! `'*[=+\-@\t\r]…`, and `restore` removes one from exactly the cells that match
//! `'+[=+\-@\t\r]…`.

use std::borrow::Cow;

/// The characters that make a spreadsheet read a cell as a formula.
const TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

fn starts_with_trigger(text: &str) -> bool {
    text.trim_start_matches('\'').starts_with(TRIGGERS)
}

/// The cell as it may be written to a CSV file.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if starts_with_trigger(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A cell ready for `csv::Writer::write_record` (which wants bytes).
pub struct SafeCell<'a>(Cow<'a, str>);

impl AsRef<[u8]> for SafeCell<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// One CSV record, every cell neutralised: what every CSV writer of autosend writes.
pub fn safe_record<'a, S: AsRef<str> + ?Sized + 'a>(
    cells: impl IntoIterator<Item = &'a S>,
) -> Vec<SafeCell<'a>> {
    cells
        .into_iter()
        .map(|cell| SafeCell(neutralise(cell.as_ref())))
        .collect()
}

/// The value of a cell read from a CSV file: [`neutralise`] undone.
pub fn restore(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if starts_with_trigger(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_quoted_and_come_back() {
        for (value, written) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'=x", "''=x"),
            ("Ann", "Ann"),
            ("'quoted'", "'quoted'"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(neutralise(value), written, "{value:?}");
            assert_eq!(restore(&neutralise(value)), value, "{value:?}");
        }
        assert_eq!(restore("'plain"), "'plain", "a quote before text stays");
    }
}
