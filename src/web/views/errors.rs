//! Error pages: 4xx with a clear message, 500 with a reference (and details in DEBUG).

use maud::{Markup, html};

/// A 4xx page: the status, what went wrong, and a way back.
pub fn client_error(status: u16, reason: &str, message: &str) -> Markup {
    html! {
        section.error-page {
            p.status { (status) }
            h1 { (reason) }
            @if !message.is_empty() && !message.eq_ignore_ascii_case(reason) {
                p.message { (message) }
            }
            p { a href="/" { "Back to the home page" } }
        }
    }
}

/// Details of a failure, shown only with `DEBUG=true`.
pub struct Debug<'a> {
    pub chain: &'a [String],
    pub backtrace: &'a str,
    pub request: &'a [(String, String)],
}

/// The 500 page of SPEC §8: a plain apology with the request id as reference.
pub fn server_error(request_id: &str, debug: Option<Debug<'_>>) -> Markup {
    html! {
        section.error-page {
            p.status { "500" }
            h1 { "Something went wrong" }
            p.message { "The error has been logged. Please try again in a moment." }
            p.reference { "Reference: " code { (request_id) } }
        }
        @if let Some(debug) = debug {
            section.debug {
                h2 { "Error" }
                ol {
                    @for cause in debug.chain { li { code { (cause) } } }
                }
                h2 { "Request" }
                table.list {
                    tbody {
                        @for (name, value) in debug.request {
                            tr { th { (name) } td { code { (value) } } }
                        }
                    }
                }
                h2 { "Backtrace" }
                pre.trace { (debug.backtrace) }
            }
        }
    }
}
