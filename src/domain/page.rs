//! Pagination as lists use it: `?page=` (1-based), a fixed page size.

pub const PER_PAGE: i64 = 25;

/// Large lists stop counting here: past it a list says "more than 10000" instead of
/// scanning every row on every page view.
pub const COUNT_CAP: i64 = 10_000;

/// A count as lists show it: exact up to [`COUNT_CAP`], then "more than …".
pub fn count_label(total: i64) -> String {
    if total > COUNT_CAP {
        format!("more than {COUNT_CAP}")
    } else {
        total.to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: i64,
    pub per_page: i64,
}

impl PageRequest {
    /// From the raw `?page=` value: anything missing, unparsable or below 1 is page 1, and
    /// absurd values are capped so the offset cannot overflow.
    pub fn parse(raw: Option<&str>) -> Self {
        let page = raw
            .and_then(|p| p.trim().parse::<i64>().ok())
            .unwrap_or(1)
            .clamp(1, 1_000_000);
        Self {
            page,
            per_page: PER_PAGE,
        }
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    /// The total, when the page itself tells it: a page shorter than `per_page` (and not an
    /// empty page past the end) is the last one. Saves the count query on most searches, which
    /// is as costly as the search itself.
    pub fn known_total(&self, rows_on_page: usize) -> Option<i64> {
        let rows = rows_on_page as i64;
        (rows < self.per_page && (rows > 0 || self.page == 1)).then(|| self.offset() + rows)
    }

    pub fn pages(&self, total: i64) -> i64 {
        ((total + self.per_page - 1) / self.per_page).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::PageRequest;

    #[test]
    fn a_short_page_tells_the_total() {
        let first = PageRequest::parse(None);
        assert_eq!(first.known_total(0), Some(0));
        assert_eq!(first.known_total(3), Some(3));
        assert_eq!(
            first.known_total(25),
            None,
            "a full page may have more after it"
        );
        let third = PageRequest::parse(Some("3"));
        assert_eq!(third.known_total(4), Some(54));
        assert_eq!(third.known_total(0), None, "past the end: count");
    }

    #[test]
    fn parse_is_forgiving() {
        assert_eq!(PageRequest::parse(None).page, 1);
        assert_eq!(PageRequest::parse(Some("3")).offset(), 50);
        assert_eq!(PageRequest::parse(Some("-2")).page, 1);
        assert_eq!(PageRequest::parse(Some("abc")).page, 1);
        assert_eq!(PageRequest::parse(Some("99999999999999999999")).page, 1);
        assert_eq!(PageRequest::parse(Some("1")).pages(0), 1);
        assert_eq!(PageRequest::parse(Some("1")).pages(26), 2);
    }

    #[test]
    fn counts_past_the_cap_are_not_exact() {
        assert_eq!(super::count_label(10_000), "10000");
        assert_eq!(super::count_label(10_001), "more than 10000");
    }
}
