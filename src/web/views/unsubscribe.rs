//! The one-click unsubscribe pages (`/u/{token}`).

use maud::{Markup, html};

/// The confirmation asked on GET: mail clients and scanners open links, so only the button's
/// POST unsubscribes.
pub fn confirm(email: &str) -> Markup {
    html! {
        section.narrow {
            h1 { "Unsubscribe" }
            p { "Stop sending mailings to " strong { (email) } " from this sender?" }
            // Posts to this very URL; the signed token in it is the authorisation.
            form method="post" {
                input type="hidden" name="List-Unsubscribe" value="One-Click";
                button.danger type="submit" { "Unsubscribe" }
            }
            p.muted { "If you opened this page by mistake, just close it: nothing has changed." }
        }
    }
}

pub fn done(email: &str) -> Markup {
    html! {
        section.narrow {
            h1 { "You are unsubscribed" }
            p { strong { (email) } " will receive no more mailings from this sender." }
        }
    }
}

pub fn invalid(message: &str) -> Markup {
    html! {
        section.narrow {
            h1 { "Invalid unsubscribe link" }
            p { (message) }
            p.muted {
                "Links in e-mails are sometimes broken across lines; "
                "open the link from the e-mail again or copy all of it."
            }
        }
    }
}
