//! Cutting a report into e-mail-sized parts (SPEC §8; the seed's `ChunkedAdminEmailHandler`,
//! done better): each part holds at most `ERROR_EMAIL_CHUNK_SIZE` characters, cut after a line
//! end where there is one in reach and never inside a character, so the parts put together are
//! the report. [`crate::reporting::compose`] turns the parts into e-mails.

/// The parts of `text`, each at most `max_chars` characters (at least 1), cut after the last
/// `\n` inside the window when there is one, else at the window's end (a character boundary).
/// Concatenated, the parts are `text`; an empty text has no parts.
pub fn chunk(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // Byte offset just past the window of `max_chars` characters, or the end.
        let window_end = rest
            .char_indices()
            .nth(max_chars)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let cut_at = if window_end == rest.len() {
            window_end
        } else {
            match rest[..window_end].rfind('\n') {
                Some(newline) => newline + 1,
                None => window_end,
            }
        };
        let (part, tail) = rest.split_at(cut_at);
        parts.push(part.to_string());
        rest = tail;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_parts(text: &str, max: usize) -> Vec<String> {
        let parts = chunk(text, max);
        assert_eq!(parts.concat(), text, "parts must put back the text");
        for part in &parts {
            let n = part.chars().count();
            assert!(n >= 1 && n <= max, "part of {n} chars for max {max}");
        }
        parts
    }

    #[test]
    fn empty_text_has_no_parts() {
        assert!(chunk("", 10).is_empty());
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(assert_parts("hello\nworld", 100), vec!["hello\nworld"]);
        assert_eq!(assert_parts("exact", 5), vec!["exact"]);
    }

    #[test]
    fn cuts_after_the_last_line_end_in_the_window() {
        let parts = assert_parts("aaa\nbbb\nccc\n", 9);
        assert_eq!(parts, vec!["aaa\nbbb\n", "ccc\n"]);
        // A newline exactly at the end of the window is used.
        assert_eq!(assert_parts("abcd\nefgh\n", 5), vec!["abcd\n", "efgh\n"]);
    }

    #[test]
    fn one_long_line_is_cut_hard() {
        let line = "x".repeat(25);
        assert_eq!(
            assert_parts(&line, 10),
            vec!["x".repeat(10), "x".repeat(10), "x".repeat(5)]
        );
    }

    #[test]
    fn exact_multiples_leave_no_empty_tail() {
        let text = "y".repeat(30);
        let parts = assert_parts(&text, 10);
        assert_eq!(parts.len(), 3);
        let lines = "123456789\n".repeat(4);
        assert_eq!(assert_parts(&lines, 10).len(), 4);
        assert_eq!(assert_parts(&lines, 20).len(), 2);
    }

    #[test]
    fn multibyte_characters_are_never_split() {
        let cyrillic = "Ошибка сервера: ".repeat(40);
        let parts = assert_parts(&cyrillic, 7);
        assert!(parts.iter().all(|p| p.chars().count() <= 7));
        let emoji = "🦀🔥✉️".repeat(50);
        let parts = assert_parts(&emoji, 3);
        assert!(parts.len() > 1);
        // Counted in characters, not bytes: 3 crabs fit a window of 3.
        assert_eq!(assert_parts("🦀🦀🦀", 3).len(), 1);
        let mixed = "строка\n🦀🦀🦀🦀🦀🦀\nend";
        for max in 1..12 {
            assert_parts(mixed, max);
        }
    }

    #[test]
    fn zero_max_counts_as_one() {
        assert_eq!(chunk("ab", 0), vec!["a", "b"]);
    }
}
