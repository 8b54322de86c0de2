//! Reading what a page shows, the way a user reads it: a fetched [`Page`] (status, headers,
//! text), the CSRF token of its meta tag, a hidden input's value, the text of an element by
//! id. One home for the scraping every test file used to write again.
//!
//! Shared by two test binaries (`api`, `faults`) through `#[path]`; each uses part of it.
#![allow(dead_code)]

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// A response read to its end. The `assert_*` methods name the page's text when they fail,
/// so a failure shows what the user would have seen.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Page {
    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("the response body is text");
        Self {
            status,
            headers,
            text,
        }
    }

    pub fn assert_status(&self, want: u16) -> &Self {
        assert_eq!(self.status, want, "status; the page said:\n{}", self.text);
        self
    }

    pub fn assert_contains(&self, needle: &str) -> &Self {
        assert!(
            self.text.contains(needle),
            "{needle:?} is not on the page:\n{}",
            self.text
        );
        self
    }

    pub fn assert_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.text.contains(needle),
            "{needle:?} is on the page:\n{}",
            self.text
        );
        self
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.text.contains(needle)
    }

    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("a text header"))
            .unwrap_or("")
    }

    /// Where a redirect points.
    pub fn location(&self) -> &str {
        let location = self.header("location");
        assert!(
            !location.is_empty(),
            "no Location ({}):\n{}",
            self.status,
            self.text
        );
        location
    }
}

/// Sends `request` and reads the answer (for clients of a process, not of a `TestApp`).
pub async fn fetch(request: reqwest::RequestBuilder) -> Page {
    Page::read(request.send().await.expect("request failed")).await
}

/// The `Location` of a redirect response (a panic naming the status when there is none).
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location ({})", resp.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// The id at the end of a redirect to an object's page (`/mailings/42` → 42).
pub fn id_in(location: &str, prefix: &str) -> i64 {
    location
        .strip_prefix(prefix)
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("{location:?} is no {prefix}{{id}}"))
}

/// The token of a page's `<meta name="csrf-token">`.
pub fn meta_csrf(html: &str) -> Option<String> {
    attribute_after(html, r#"name="csrf-token" content=""#)
}

/// The `value` of the hidden input `name` in a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    attribute_after(html, &format!(r#"name="{name}" value=""#))
}

fn attribute_after(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// The text of the element with this `id`, up to its first child (a figure card's number).
pub fn text_of(html: &str, id: &str) -> String {
    let at = html
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no #{id} on the page"));
    let start = html[at..].find('>').unwrap() + at + 1;
    let end = html[start..].find('<').unwrap() + start;
    html[start..end].to_string()
}

/// The number in the element with this `id` (`<p class="figure" id=…>N</p>`).
pub fn figure(html: &str, id: &str) -> i64 {
    let text = text_of(html, id);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("#{id} holds {text:?}, not a number"))
}
